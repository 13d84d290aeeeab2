//! Publishing a commit as one message.

use async_nats::jetstream::context::{Publish, PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self};
use castellan_app::ports::{Appended, LogError};
use castellan_domain::envelope::Commit;

use crate::subjects::subject;

/// Sends the commit; the returned future resolves to the server's ack.
pub async fn publish(
    js: &jetstream::Context,
    commit: &Commit,
) -> Result<PublishAckFuture, LogError> {
    commit.stream.validate().map_err(LogError::Invalid)?;
    if commit.events.is_empty() {
        return Err(LogError::Invalid(
            "a commit needs at least one event".into(),
        ));
    }
    let body = serde_json::to_vec(commit).map_err(|e| LogError::Invalid(e.to_string()))?;
    if body.len() > 1024 * 1024 {
        return Err(LogError::Invalid(format!(
            "commit is {} bytes; one commit is at most 1 MiB",
            body.len()
        )));
    }
    let mut msg = Publish::build()
        .payload(body.into())
        .message_id(commit.commit_id.to_string());
    if !commit.stream.is_auth() {
        if let Some(v) = commit.expected.as_version() {
            msg = msg.expected_last_subject_sequence(v);
        }
    }
    js.send_publish(subject(commit.org_id, &commit.stream), msg)
        .await
        .map_err(|e| unavailable(&e))
}

/// Turns the server's answer into the port's result.
pub fn settle(
    commit: &Commit,
    ack: Result<PublishAck, PublishError>,
) -> Result<Appended, LogError> {
    match ack {
        Ok(ack) => Ok(Appended {
            position: ack.sequence,
            stream_version: ack.sequence,
            duplicate: ack.duplicate,
        }),
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(LogError::Conflict {
            stream: commit.stream.to_string(),
            expected: commit.expected,
            actual: None,
        }),
        Err(e) => Err(unavailable(&e)),
    }
}

fn unavailable(e: &PublishError) -> LogError {
    let detail = match e.kind() {
        PublishErrorKind::TimedOut => "no acknowledgement in time (is nats-server up?)".to_string(),
        PublishErrorKind::StreamNotFound => "the CASTELLAN stream does not exist".to_string(),
        PublishErrorKind::BrokenPipe => "connection lost before the acknowledgement".to_string(),
        _ => e.to_string(),
    };
    LogError::Unavailable(format!("NATS: {detail}"))
}
