//! The delivery loop. Each round leases a batch of unsent rows (a conditional UPDATE,
//! so several nodes can run relays), sends them one by one, and marks each sent, or
//! records the error with a retry time that doubles per attempt (5 s … 10 min). A
//! relay that crashes mid-send leaves its lease to expire; the row is sent again
//! (at-least-once: SMTP has no idempotency key).

use std::time::Duration;

use castellan_projections::outbox::OutgoingMail;
use castellan_projections::store::StoreError;
use castellan_projections::ReadStore;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::watch;

use crate::config::{SmtpConfig, TlsMode};

/// How long a leased row is ours before another relay may take it.
const LEASE: Duration = Duration::from_secs(120);
const BATCH: i64 = 32;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("smtp.from {0:?} is not a mailbox: {1}")]
    From(String, String),
    #[error("smtp: {0}")]
    Transport(String),
}

pub struct Relay {
    store: ReadStore,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    poll: Duration,
    max_attempts: i64,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Relay {
    /// Checks the settings (the sender must parse; the TLS setup must build).
    pub fn new(store: ReadStore, config: &SmtpConfig) -> Result<Relay, RelayError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                RelayError::From(config.from.clone(), e.to_string())
            })?;
        let tls = || {
            TlsParameters::new(config.host.clone())
                .map_err(|e| RelayError::Transport(e.to_string()))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .timeout(Some(Duration::from_secs(30)));
        builder = match config.tls {
            TlsMode::None => builder.tls(Tls::None),
            TlsMode::Starttls => builder.tls(Tls::Required(tls()?)),
            TlsMode::Tls => builder.tls(Tls::Wrapper(tls()?)),
        };
        if !config.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.username.clone(),
                config.password.clone(),
            ));
        }
        Ok(Relay {
            store,
            transport: builder.build(),
            from,
            poll: Duration::from_millis(config.poll_interval_ms.max(50)),
            max_attempts: config.max_attempts.max(1),
        })
    }

    /// Delivers until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!("mail relay started");
        loop {
            match self.round().await {
                Ok(sent) if sent > 0 => tracing::debug!(sent, "mail relay round"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "mail relay: outbox unreadable"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        tracing::info!("mail relay stopped");
    }

    /// One round: lease, send, record. Returns how many were sent.
    pub async fn round(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let leased = self
            .store
            .lease_mail(
                now,
                now + LEASE.as_millis() as i64,
                self.max_attempts,
                BATCH,
            )
            .await?;
        let mut sent = 0;
        for mail in leased {
            match self.send(&mail).await {
                Ok(()) => {
                    self.store.mark_mail_sent(&mail.id).await?;
                    sent += 1;
                }
                Err((error, permanent)) => {
                    let attempts = if permanent {
                        self.max_attempts
                    } else {
                        mail.attempts + 1
                    };
                    let backoff = 5_000i64 << (mail.attempts.clamp(0, 7) as u32);
                    tracing::warn!(id = %mail.id, attempts, error = %error, "mail not delivered");
                    self.store
                        .mark_mail_failed(
                            &mail.id,
                            attempts,
                            &error,
                            now_ms() + backoff.min(600_000),
                        )
                        .await?;
                }
            }
        }
        Ok(sent)
    }

    /// Sends one email; the error and whether retrying cannot help.
    async fn send(&self, mail: &OutgoingMail) -> Result<(), (String, bool)> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| (format!("recipient {:?}: {e}", mail.to), true))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .body(mail.body.clone())
            .map_err(|e| (format!("message: {e}"), true))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| (e.to_string(), e.is_permanent()))
    }
}
