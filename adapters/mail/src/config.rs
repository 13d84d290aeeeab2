//! `[smtp]`: where and how to send. An empty `host` turns delivery off.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS (required), usually port 587.
    Starttls,
    /// TLS from the first byte, usually port 465.
    Tls,
    /// No encryption: only for a relay on loopback or a trusted network.
    None,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Empty: no authentication.
    pub username: String,
    /// Use `CASTELLAN_SMTP_PASSWORD_FILE` to keep it out of the file.
    pub password: String,
    /// The sender, e.g. `Castellan <directory@example.com>`.
    pub from: String,
    /// How often the relay looks for new rows.
    pub poll_interval_ms: u64,
    /// Attempts before an email is given up (it stays in the outbox with its error).
    pub max_attempts: i64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 587,
            tls: TlsMode::Starttls,
            username: String::new(),
            password: String::new(),
            from: "Castellan <castellan@localhost>".into(),
            poll_interval_ms: 1000,
            max_attempts: 8,
        }
    }
}

impl SmtpConfig {
    pub fn enabled(&self) -> bool {
        !self.host.is_empty()
    }
}
