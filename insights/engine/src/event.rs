//! One log event as a Directory Insights event: the JSON object the hosted product's
//! API returns (`id`, `event_type`, `service`, `timestamp`, `organization`,
//! `initiated_by`, `resource`, `changes`, `success`, `auth_method`, `mfa`, …).
//!
//! Directory events keep only what an audit trail shows: their `changes` (and the
//! association of an `association_change`); secrets that travel beside the changes
//! (password hashes, TOTP secrets, token hashes, API key hashes) never leave the log.
//! Authentication events carry their payload's fields.

use castellan_domain::envelope::{ActorKind, Envelope, StreamId};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;

/// Payload keys that never reach insights or exports, whatever the event.
const SECRET_KEYS: &[&str] = &[
    "password_hash",
    "totp_secret",
    "invite_token_hash",
    "activation_token_hash",
    "api_key",
    "key_hash",
    "password",
    "token",
];

/// The service an event belongs to: `directory` for admin actions, the
/// authentication stream's service (`directory`, `ldap`, `radius`, `sso`) otherwise.
pub fn service_of(e: &Envelope) -> &str {
    match &e.stream {
        StreamId::Auth { service } => service.as_str(),
        StreamId::Aggregate { .. } => "directory",
    }
}

fn actor_type(kind: ActorKind) -> &'static str {
    match kind {
        ActorKind::Admin | ActorKind::ApiKey => "admin",
        ActorKind::User => "user",
        ActorKind::System => "system",
        ActorKind::Agent => "agent",
    }
}

/// Milliseconds since the epoch of the event's time.
pub fn timestamp_ms(e: &Envelope) -> i64 {
    (e.occurred_at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 UTC with milliseconds, as the hosted product writes timestamps.
pub fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| format_without_subseconds(ms))
}

fn format_without_subseconds(ms: i64) -> String {
    time::OffsetDateTime::UNIX_EPOCH
        .saturating_add(time::Duration::milliseconds(ms))
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The UTC date (`YYYY-MM-DD`) of a time in ms: the partition a row belongs to.
pub fn date_of_ms(ms: i64) -> String {
    let date = time::OffsetDateTime::UNIX_EPOCH
        .saturating_add(time::Duration::milliseconds(ms))
        .date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        date.month() as u8,
        date.day()
    )
}

/// The Directory Insights object of one event.
pub fn to_di_event(e: &Envelope) -> Value {
    into_di_event(e.clone())
}

/// [`to_di_event`], taking the envelope so that its payload moves instead of being
/// copied (the materializer's hot path).
pub fn into_di_event(e: Envelope) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(e.event_id.to_string()));
    out.insert("event_type".into(), json!(e.event_type));
    out.insert("service".into(), json!(service_of(&e)));
    out.insert("timestamp".into(), json!(format_ms(timestamp_ms(&e))));
    out.insert("organization".into(), json!(e.org_id.to_string()));
    out.insert("@version".into(), json!("1"));
    out.insert("client_ip".into(), json!(e.client_ip));
    let mut initiated_by = Map::new();
    initiated_by.insert("type".into(), json!(actor_type(e.actor.kind)));
    initiated_by.insert("id".into(), json!(e.actor.id));
    initiated_by.insert("email".into(), json!(e.actor.email));
    out.insert("initiated_by".into(), Value::Object(initiated_by));
    if let Some(ua) = &e.user_agent {
        out.insert("useragent".into(), json!({"name": ua}));
    }
    if let Some(c) = &e.correlation_id {
        out.insert("correlation".into(), json!({"id": c, "type": "request"}));
    }
    match &e.stream {
        StreamId::Aggregate { kind, id } => {
            out.insert(
                "auth_method".into(),
                json!(match e.actor.kind {
                    ActorKind::ApiKey => "api-key",
                    ActorKind::Admin => "session",
                    _ => "system",
                }),
            );
            out.insert("success".into(), json!(true));
            let mut resource = Map::new();
            resource.insert("type".into(), json!(kind));
            resource.insert("id".into(), json!(id));
            let mut payload = e.payload;
            let changes = payload
                .get_mut("changes")
                .map(Value::take)
                .unwrap_or(json!([]));
            // A created object's name fields are in its changes.
            for c in changes.as_array().into_iter().flatten() {
                let field = c.get("field").and_then(Value::as_str).unwrap_or("");
                if matches!(field, "username" | "email" | "name") && !c["to"].is_null() {
                    resource.insert(field.into(), c["to"].clone());
                }
            }
            out.insert("resource".into(), Value::Object(resource));
            out.insert("changes".into(), changes);
            if let Some(a) = payload.get_mut("association") {
                out.insert("association".into(), a.take());
            }
        }
        StreamId::Auth { .. } => {
            if let Value::Object(p) = e.payload {
                for (k, v) in p {
                    if SECRET_KEYS.contains(&k.as_str()) {
                        continue;
                    }
                    if k == "initiated_by" {
                        // The event's own account of who tried wins over the envelope's.
                        if let (Some(Value::Object(into)), Value::Object(from)) =
                            (out.get_mut("initiated_by"), v)
                        {
                            into.extend(from);
                        }
                        continue;
                    }
                    out.insert(k, v);
                }
            }
        }
    }
    Value::Object(out)
}

/// The value at a dot path (`initiated_by.email`).
pub fn at_path<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(event, |v, key| v.get(key))
}

/// A value as searches compare it: strings lowercased, anything else as JSON text.
pub fn search_text(v: &Value) -> Option<String> {
    search_text_cow(v).map(|c| c.into_owned())
}

/// [`search_text`] without an allocation when the string is already lowercase (the
/// common case, and the materializer's hot path).
pub fn search_text_cow(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    match v {
        Value::Null => None,
        // ASCII without capitals is the common case, and quick to tell.
        Value::String(s) if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()) => {
            Some(Cow::Borrowed(s))
        }
        Value::String(s) if !s.chars().any(char::is_uppercase) => Some(Cow::Borrowed(s)),
        Value::String(s) => Some(Cow::Owned(s.to_lowercase())),
        other => Some(Cow::Owned(other.to_string().to_lowercase())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_domain::envelope::Actor;
    use castellan_domain::ObjectId;

    fn envelope(stream: StreamId, event_type: &str, payload: Value) -> Envelope {
        Envelope {
            event_id: castellan_domain::ids::new_event_id(),
            org_id: ObjectId::generate(1),
            stream,
            stream_version: 1,
            position: 7,
            event_type: event_type.into(),
            schema_version: 1,
            occurred_at: time::macros::datetime!(2026-11-28 12:00:00.123 UTC),
            actor: Actor {
                kind: ActorKind::ApiKey,
                id: Some("a1".into()),
                email: Some("root@acme.test".into()),
            },
            client_ip: Some("10.1.2.3".into()),
            user_agent: Some("curl/8".into()),
            correlation_id: None,
            commit_id: uuid::Uuid::now_v7(),
            payload,
        }
    }

    #[test]
    fn directory_events_keep_changes_and_drop_secrets() {
        let e = envelope(
            StreamId::aggregate("user", "u1"),
            "user_create",
            json!({"changes": [{"field": "username", "from": null, "to": "alice"}], "password_hash": "$argon2id$..."}),
        );
        let di = to_di_event(&e);
        assert_eq!(di["service"], "directory");
        assert_eq!(di["timestamp"], "2026-11-28T12:00:00.123Z");
        assert_eq!(
            di["resource"],
            json!({"type": "user", "id": "u1", "username": "alice"})
        );
        assert_eq!(di["initiated_by"]["email"], "root@acme.test");
        assert_eq!(di["auth_method"], "api-key");
        assert!(!di.to_string().contains("argon2"), "{di}");
    }

    #[test]
    fn auth_events_carry_their_payload() {
        let e = envelope(
            StreamId::auth("ldap"),
            "ldap_bind",
            json!({"success": false, "username": "bob", "error_message": "invalid credentials", "initiated_by": {"type": "user", "username": "bob"}}),
        );
        let di = to_di_event(&e);
        assert_eq!(di["service"], "ldap");
        assert_eq!(di["success"], false);
        assert_eq!(di["initiated_by"]["username"], "bob");
        assert_eq!(at_path(&di, "initiated_by.username"), Some(&json!("bob")));
    }

    #[test]
    fn dates_and_search_text() {
        assert_eq!(date_of_ms(0), "1970-01-01");
        assert_eq!(date_of_ms(1_788_134_399_999), "2026-08-30");
        assert_eq!(date_of_ms(1_788_134_400_000), "2026-08-31");
        assert_eq!(date_of_ms(-1), "1969-12-31");
        assert_eq!(search_text(&json!("ÄbC")).as_deref(), Some("äbc"));
        assert_eq!(search_text(&json!("abc")).as_deref(), Some("abc"));
        assert_eq!(search_text(&json!(true)).as_deref(), Some("true"));
        assert_eq!(search_text(&json!(null)), None);
    }
}
