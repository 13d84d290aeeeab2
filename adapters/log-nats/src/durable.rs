//! A durable pull consumer for one long-running reader (the insights materializer).
//!
//! The reader's own checkpoint says where it starts, so the consumer is recreated at
//! `after + 1` each time a reader opens (a consumer's start cannot be moved, and one
//! left by an earlier run may be behind or ahead of the checkpoint). While it runs the
//! server tracks its progress: `processed` acknowledges (ack-all) up to a position, so
//! `nats consumer info` shows the reader's lag, and unacknowledged messages are
//! redelivered after `ack_wait`; redeliveries of positions already returned are skipped.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::stream::{ConsumerErrorKind, Stream};
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::Message;
use async_trait::async_trait;
use castellan_app::ports::{DurableReader, LogError};
use castellan_domain::envelope::{Position, RecordedCommit};
use futures::StreamExt;

use crate::read::decode;
use crate::subjects::ALL;

/// How long a fetch waits for messages at the head before it returns what it has.
const FETCH_WAIT: Duration = Duration::from_millis(250);

pub struct JetStreamReader {
    consumer: Consumer<pull::Config>,
    /// The last position returned.
    position: Position,
    /// The last message of each batch returned and not yet acknowledged.
    unacked: VecDeque<(Position, Message)>,
}

fn unavailable(e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("NATS: {e}"))
}

pub async fn open(
    stream: &Stream,
    name: &str,
    after: Position,
) -> Result<JetStreamReader, LogError> {
    // A consumer of an earlier run starts wherever that run's consumer was: replace it.
    match stream.delete_consumer(name).await {
        Ok(_) => {}
        Err(e)
            if matches!(e.kind(), ConsumerErrorKind::JetStream(ref j)
                if j.error_code() == ErrorCode::CONSUMER_NOT_FOUND) => {}
        Err(e) => return Err(unavailable(e)),
    }
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(name.to_string()),
            description: Some("castellan: a durable reader of the whole log".into()),
            filter_subject: ALL.to_string(),
            deliver_policy: if after == 0 {
                DeliverPolicy::All
            } else {
                DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                }
            },
            ack_policy: AckPolicy::All,
            // Acknowledged only once the files are durable, which can take a while.
            ack_wait: Duration::from_secs(600),
            // The reader holds many messages before it acknowledges: no cap.
            max_ack_pending: -1,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(format!("cannot create consumer {name}: {e}")))?;
    Ok(JetStreamReader {
        consumer,
        position: after,
        unacked: VecDeque::new(),
    })
}

#[async_trait]
impl DurableReader for JetStreamReader {
    async fn next_batch(&mut self, limit: usize) -> Result<Vec<RecordedCommit>, LogError> {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(limit)
            .expires(FETCH_WAIT)
            .messages()
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        let mut last = None;
        while let Some(m) = batch.next().await {
            let m = m.map_err(unavailable)?;
            let seq = m
                .info()
                .map_err(|e| LogError::Corrupt(format!("message without metadata: {e}")))?
                .stream_sequence;
            if seq <= self.position {
                continue; // a redelivery of what was returned already
            }
            out.push(decode(seq, &m.payload)?);
            self.position = seq;
            last = Some((seq, m));
        }
        if let Some(l) = last {
            self.unacked.push_back(l);
        }
        Ok(out)
    }

    async fn processed(&mut self, position: Position) -> Result<(), LogError> {
        let mut newest = None;
        while self.unacked.front().is_some_and(|(p, _)| *p <= position) {
            newest = self.unacked.pop_front();
        }
        if let Some((_, m)) = newest {
            // Ack-all: every message up to this one.
            m.ack().await.map_err(unavailable)?;
        }
        Ok(())
    }
}
