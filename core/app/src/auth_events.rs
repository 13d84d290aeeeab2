//! Authentication events (`user_login_attempt`, `admin_login_attempt`, and the
//! protocols' to come) are written through [`record`], which caps every text the
//! caller sent before it reaches the log: an unauthenticated request must not be able
//! to grow the log (and insights) by what it sends.

use castellan_domain::envelope::{Commit, EventMeta, ExpectedVersion, NewEvent, StreamId};
use castellan_domain::ids::new_event_id;
use castellan_domain::ObjectId;
use serde_json::Value;
use uuid::Uuid;

use crate::error::AppError;
use crate::ports::EventLog;

/// The longest text an authentication event records of one field, in characters.
pub const MAX_FIELD_CHARS: usize = 256;
/// What a cut text ends with.
pub const TRUNCATED: &str = "…[truncated]";

/// `text`, cut to [`MAX_FIELD_CHARS`] characters with [`TRUNCATED`] at its end when longer.
pub fn cap(text: &str) -> String {
    cap_to(text, MAX_FIELD_CHARS)
}

/// `text` cut to `max` characters (the marker included) when longer.
pub fn cap_to(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(TRUNCATED.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(TRUNCATED);
    out
}

fn cap_value(v: &mut Value) {
    match v {
        Value::String(s) if s.chars().count() > MAX_FIELD_CHARS => *s = cap(s),
        Value::Array(items) => items.iter_mut().for_each(cap_value),
        Value::Object(map) => map.values_mut().for_each(cap_value),
        _ => {}
    }
}

/// Caps the texts of a request's metadata (actor, user agent, correlation id).
pub fn cap_meta(meta: &mut EventMeta) {
    for text in [
        meta.actor.id.as_mut(),
        meta.actor.email.as_mut(),
        meta.user_agent.as_mut(),
        meta.correlation_id.as_mut(),
        meta.client_ip.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        if text.chars().count() > MAX_FIELD_CHARS {
            *text = cap(text);
        }
    }
}

/// Appends one authentication event to `service`'s stream; its position.
pub async fn record(
    log: &dyn EventLog,
    org: ObjectId,
    service: &str,
    meta: &EventMeta,
    event_type: &str,
    mut payload: Value,
) -> Result<u64, AppError> {
    cap_value(&mut payload);
    let mut meta = meta.clone();
    cap_meta(&mut meta);
    let commit = Commit {
        commit_id: Uuid::now_v7(),
        org_id: org,
        stream: StreamId::auth(service),
        expected: ExpectedVersion::Any,
        meta,
        events: vec![NewEvent {
            event_id: new_event_id(),
            event_type: event_type.into(),
            schema_version: 1,
            payload,
        }],
    };
    Ok(log.append(commit).await?.position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_with_a_marker_on_a_character_boundary() {
        assert_eq!(cap("short"), "short");
        let long = "é".repeat(10_000);
        let cut = cap(&long);
        assert_eq!(cut.chars().count(), MAX_FIELD_CHARS);
        assert!(cut.ends_with(TRUNCATED));
        let mut v = serde_json::json!({"a": [long.clone()], "b": {"c": long}, "n": 1});
        cap_value(&mut v);
        assert!(v["a"][0].as_str().unwrap().ends_with(TRUNCATED));
        assert!(v["b"]["c"].as_str().unwrap().ends_with(TRUNCATED));
        assert_eq!(v["n"], 1);
    }
}
