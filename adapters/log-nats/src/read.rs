//! Reads: one stream by direct get, positions onward by direct get, and
//! subscriptions by an ordered consumer (recreated by the client after failures).

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use castellan_app::ports::{CommitStream, LogError};
use castellan_domain::envelope::{Commit, Position, RecordedCommit};
use futures::StreamExt;

use crate::subjects::ALL;

pub(crate) fn decode(sequence: u64, payload: &[u8]) -> Result<RecordedCommit, LogError> {
    let commit: Commit = serde_json::from_slice(payload)
        .map_err(|e| LogError::Corrupt(format!("message {sequence}: {e}")))?;
    Ok(RecordedCommit {
        position: sequence,
        stream_version: sequence,
        commit,
    })
}

/// The next message on `subject` at or after `from`, if any.
pub(crate) async fn next(
    stream: &Stream,
    subject: &str,
    from: u64,
) -> Result<Option<RecordedCommit>, LogError> {
    match stream
        .direct_get_next_for_subject(subject, Some(from))
        .await
    {
        Ok(msg) => {
            let seq = msg
                .headers
                .as_ref()
                .and_then(|h| h.get_last(async_nats::header::NATS_SEQUENCE))
                .and_then(|v| v.as_str().parse::<u64>().ok())
                .ok_or_else(|| LogError::Corrupt("direct get without Nats-Sequence".into()))?;
            decode(seq, &msg.payload).map(Some)
        }
        Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::Unavailable(format!("NATS: {e}"))),
    }
}

pub async fn last(stream: &Stream, subject: &str) -> Result<Option<RecordedCommit>, LogError> {
    match stream.direct_get_last_for_subject(subject).await {
        Ok(msg) => decode(msg.sequence, &msg.payload).map(Some),
        Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::Unavailable(format!("NATS: {e}"))),
    }
}

pub async fn stream(stream: &Stream, subject: &str) -> Result<Vec<RecordedCommit>, LogError> {
    let mut out = Vec::new();
    let mut from = 1;
    while let Some(c) = next(stream, subject, from).await? {
        from = c.position + 1;
        out.push(c);
    }
    Ok(out)
}

pub async fn after(
    stream: &Stream,
    after: Position,
    limit: usize,
) -> Result<Vec<RecordedCommit>, LogError> {
    let mut out = Vec::new();
    let mut from = after + 1;
    while out.len() < limit {
        match next(stream, ALL, from).await? {
            Some(c) => {
                from = c.position + 1;
                out.push(c);
            }
            None => break,
        }
    }
    Ok(out)
}

pub async fn subscribe(stream: &Stream, after: Position) -> Result<CommitStream, LogError> {
    let deliver_policy = if after == 0 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: after + 1,
        }
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: ALL.to_string(),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| LogError::Unavailable(format!("NATS: cannot create consumer: {e}")))?;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| LogError::Unavailable(format!("NATS: {e}")))?;
    Ok(Box::pin(messages.map(|m| {
        let m = m.map_err(|e| LogError::Unavailable(format!("NATS: {e}")))?;
        let seq = m
            .info()
            .map_err(|e| LogError::Corrupt(format!("message without metadata: {e}")))?
            .stream_sequence;
        decode(seq, &m.payload)
    })))
}
