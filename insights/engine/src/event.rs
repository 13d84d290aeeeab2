//! One log event as a Directory Insights event: the JSON object the hosted product's
//! API returns (`id`, `event_type`, `service`, `timestamp`, `organization`,
//! `initiated_by`, `resource`, `changes`, `success`, `auth_method`, `mfa`, …).
//!
//! Directory events keep only what an audit trail shows: their `changes` (and the
//! association of an `association_change`); secrets that travel beside the changes
//! (password hashes, TOTP secrets, token hashes, API key hashes) never leave the log.
//! Authentication events carry their payload's fields.

use castellan_domain::envelope::{ActorKind, Envelope, StreamId};
use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

/// Payload keys that never reach insights or exports, whatever the event.
pub(crate) const SECRET_KEYS: &[&str] = &[
    "password_hash",
    "totp_secret",
    "totp_resealed",
    "invite_token_hash",
    "activation_token_hash",
    "api_key",
    "key_hash",
    "password",
    "token",
];

/// Events of the log's own bookkeeping: uniqueness keys, unix id counters, the TOTP
/// step a login spent and secrets sealed anew. They keep the log consistent and mean
/// nothing in an audit trail, so Directory Insights and the export leave them out.
pub const BOOKKEEPING_EVENT_TYPES: &[&str] = &[
    castellan_app::unique::CLAIM,
    castellan_app::unique::RELEASE,
    "unix_id_allocated",
    "totp_step_used",
    "totp_resealed",
];

/// Whether an event reaches Directory Insights (and so the export): not bookkeeping,
/// not an `admin_update` that changed nothing an admin sees (a TOTP step spent, a
/// secret resealed), and not of the installation's own organization, which holds the
/// installation-wide keys (admin emails) and no customer's data
/// ([`castellan_app::admins::INSTALLATION_ORG`], all zeros).
pub fn reaches_insights(e: &Envelope) -> bool {
    if BOOKKEEPING_EVENT_TYPES.contains(&e.event_type.as_str()) {
        return false;
    }
    if e.event_type == "admin_update"
        && e.payload
            .get("changes")
            .and_then(Value::as_array)
            .is_none_or(|c| c.is_empty())
    {
        return false;
    }
    e.org_id.as_bytes() != &[0u8; 12]
}

/// The service an event belongs to: `directory` for admin actions, the
/// authentication stream's service (`directory`, `ldap`, `radius`, `sso`) otherwise.
pub fn service_of(e: &Envelope) -> &str {
    match &e.stream {
        StreamId::Auth { service } => service.as_str(),
        StreamId::Aggregate { .. } => "directory",
    }
}

pub(crate) fn actor_type(kind: ActorKind) -> &'static str {
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
    format_ms_into(ms, &mut [0u8; 24]).into_owned()
}

/// [`format_ms`] into `buf`: once per event materialized, so the digits are written
/// directly, not through a format description (years 0 to 9999; others through
/// `time`'s formatter, into a String).
pub fn format_ms_into(ms: i64, buf: &mut [u8; 24]) -> Cow<'_, str> {
    if let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000) {
        if (0..=9999).contains(&t.year()) {
            let (h, m, s, milli) = t.to_hms_milli();
            let mut at = 0;
            let mut digits = |n: u32, width: u32| {
                for p in (0..width).rev() {
                    buf[at] = b'0' + (n / 10u32.pow(p) % 10) as u8;
                    at += 1;
                }
            };
            digits(t.year() as u32, 4);
            digits(t.month() as u32 + 100, 3);
            digits(t.day() as u32 + 100, 3);
            digits(h as u32 + 100, 3);
            digits(m as u32 + 100, 3);
            digits(s as u32 + 100, 3);
            digits(milli as u32 + 1000, 4);
            // The +100/+1000 put a 1 where the separator goes.
            for (i, sep) in [
                (4, b'-'),
                (7, b'-'),
                (10, b'T'),
                (13, b':'),
                (16, b':'),
                (19, b'.'),
                (23, b'Z'),
            ] {
                buf[i] = sep;
            }
            return Cow::Borrowed(std::str::from_utf8(&buf[..]).expect("ASCII digits"));
        }
    }
    Cow::Owned(
        time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                ))
                .ok()
            })
            .unwrap_or_else(|| format_without_subseconds(ms)),
    )
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

/// A field of a Directory Insights event as it is built: borrowed from the envelope
/// where it can be, so that the materializer writes the JSON and the columns straight
/// from the envelope without building a `serde_json::Value` tree per event.
#[derive(Debug, Clone)]
pub enum Field<'a> {
    Null,
    Bool(bool),
    Str(Cow<'a, str>),
    Value(&'a Value),
    Number(serde_json::Number),
    /// Keys sorted and unique (as a JSON object serializes).
    Object(Vec<(Cow<'a, str>, Field<'a>)>),
}

impl Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Null => s.serialize_unit(),
            Field::Bool(b) => s.serialize_bool(*b),
            Field::Str(v) => s.serialize_str(v),
            Field::Value(v) => v.serialize(s),
            Field::Number(n) => n.serialize(s),
            Field::Object(entries) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k.as_ref(), v)?;
                }
                m.end()
            }
        }
    }
}

impl Field<'_> {
    /// Appends the field as compact JSON, byte for byte as serde_json writes it, but
    /// without going through serde: the materializer writes every event this way, and
    /// most strings need no escaping, which is checked for a whole string at once.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Field::Null => out.extend_from_slice(b"null"),
            Field::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Field::Str(s) => write_json_str(s, out),
            Field::Value(v) => write_json_value(v, out),
            Field::Number(n) => {
                serde_json::to_writer(&mut *out, n).expect("a number serializes into memory")
            }
            Field::Object(entries) => write_json_object(
                entries.iter().map(|(k, v)| (k.as_ref(), v)),
                out,
                |v, out| v.write_json(out),
            ),
        }
    }
}

/// `{"key":value,…}`, each value written by `write`.
fn write_json_object<'v, V: 'v>(
    entries: impl Iterator<Item = (&'v str, &'v V)>,
    out: &mut Vec<u8>,
    write: impl Fn(&V, &mut Vec<u8>),
) {
    out.push(b'{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(k, out);
        out.push(b':');
        write(v, out);
    }
    out.push(b'}');
}

pub(crate) fn write_json_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            serde_json::to_writer(&mut *out, n).expect("a number serializes into memory")
        }
        Value::String(s) => write_json_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_json_object(
            map.iter().map(|(k, v)| (k.as_str(), v)),
            out,
            write_json_value,
        ),
    }
}

/// A JSON string, escaped as serde_json escapes (quote, backslash, control
/// characters; nothing else).
pub(crate) fn write_json_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.push(b'"');
    // No early exit, so the compiler checks many bytes per instruction.
    let plain = bytes
        .iter()
        .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        out.extend_from_slice(bytes);
    } else {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let short: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0x00..=0x1f => b"",
                _ => continue,
            };
            out.extend_from_slice(&bytes[start..i]);
            if short.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
            } else {
                out.extend_from_slice(short);
            }
            start = i + 1;
        }
        out.extend_from_slice(&bytes[start..]);
    }
    out.push(b'"');
}

fn opt_str(v: &Option<String>) -> Field<'_> {
    match v {
        Some(s) => Field::Str(Cow::Borrowed(s)),
        None => Field::Null,
    }
}

/// Sets `key` in a sorted object (a later value replaces an earlier one, as a map
/// insert does).
fn set<'a>(object: &mut Vec<(Cow<'a, str>, Field<'a>)>, key: Cow<'a, str>, value: Field<'a>) {
    match object.binary_search_by(|(k, _)| k.as_ref().cmp(key.as_ref())) {
        Ok(i) => object[i].1 = value,
        Err(i) => object.insert(i, (key, value)),
    }
}

/// Two objects' entries as one sorted object, `later`'s value winning for a key in
/// both (as `set` for each of them would, in one pass).
fn merge_sorted<'a>(
    earlier: Vec<(Cow<'a, str>, Field<'a>)>,
    mut later: Vec<(Cow<'a, str>, Field<'a>)>,
) -> Vec<(Cow<'a, str>, Field<'a>)> {
    // A JSON object's keys come sorted unless serde_json keeps insertion order.
    if !later.is_sorted_by(|a, b| a.0 <= b.0) {
        later.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let mut out = Vec::with_capacity(earlier.len() + later.len());
    let (mut a, mut b) = (earlier.into_iter().peekable(), later.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Greater => false,
                std::cmp::Ordering::Equal => {
                    a.next();
                    false
                }
            },
        };
        let next = if take_a { a.next() } else { b.next() };
        out.extend(next);
    }
    out
}

impl<'a> Field<'a> {
    /// Calls `f` with each top-level field (parent `""`) and each field of the objects
    /// `initiated_by` and `resource` (parent their name): the fields that have columns.
    pub fn for_each_field(&self, f: &mut dyn FnMut(&str, &str, FieldRef<'_, 'a>)) {
        let Field::Object(entries) = self else {
            return;
        };
        for (key, value) in entries {
            let key = key.as_ref();
            f("", key, FieldRef::Field(value));
            if key != "initiated_by" && key != "resource" {
                continue;
            }
            match value {
                Field::Object(inner) => {
                    for (k, v) in inner {
                        f(key, k, FieldRef::Field(v));
                    }
                }
                Field::Value(Value::Object(inner)) => {
                    for (k, v) in inner {
                        f(key, k, FieldRef::Value(v));
                    }
                }
                _ => {}
            }
        }
    }
}

/// A field as [`Field::for_each_field`] gives it: a field, or a value inside a
/// borrowed JSON value.
pub enum FieldRef<'f, 'a> {
    Field(&'f Field<'a>),
    Value(&'a Value),
}

impl FieldRef<'_, '_> {
    /// As [`search_text`] compares it.
    pub fn search_text(&self) -> Option<Cow<'_, str>> {
        match self {
            FieldRef::Value(v) | FieldRef::Field(Field::Value(v)) => search_text_cow(v),
            FieldRef::Field(Field::Null) => None,
            FieldRef::Field(Field::Bool(b)) => {
                Some(Cow::Borrowed(if *b { "true" } else { "false" }))
            }
            FieldRef::Field(Field::Str(s)) => lowercase(s),
            FieldRef::Field(Field::Number(n)) => Some(Cow::Owned(n.to_string())),
            FieldRef::Field(o @ Field::Object(_)) => Some(Cow::Owned(
                serde_json::to_string(o).unwrap_or_default().to_lowercase(),
            )),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            FieldRef::Value(v) | FieldRef::Field(Field::Value(v)) => v.as_bool(),
            FieldRef::Field(Field::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

/// A string as searches compare it; borrowed when it has no capitals (the common case).
pub(crate) fn lowercase(s: &str) -> Option<Cow<'_, str>> {
    // ASCII without capitals is quick to tell.
    if (s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()))
        || !s.chars().any(char::is_uppercase)
    {
        return Some(Cow::Borrowed(s));
    }
    Some(Cow::Owned(s.to_lowercase()))
}

/// The Directory Insights object of one event (without `geoip`).
pub fn to_di_event(e: &Envelope) -> Value {
    serde_json::to_value(di_fields(e)).expect("a Directory Insights event serializes")
}

/// What an event's request facts add to its Directory Insights object.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub useragent: Option<std::sync::Arc<crate::enrich::UserAgent>>,
    pub geoip: Option<crate::enrich::Geo>,
}

impl Extras {
    /// The parsed user agent, and the client address's place where `geoip` is given.
    pub fn of(e: &Envelope, geoip: Option<&crate::enrich::GeoIp>) -> Extras {
        Extras {
            useragent: e.user_agent.as_deref().map(crate::enrich::user_agent),
            geoip: geoip
                .zip(e.client_ip.as_deref())
                .and_then(|(g, ip)| g.lookup(ip)),
        }
    }

    pub(crate) fn useragent_field(&self) -> Option<Field<'static>> {
        let ua = self.useragent.as_ref()?;
        Some(Field::Object(
            ua.fields
                .iter()
                .map(|(k, v)| (Cow::Borrowed(*k), Field::Str(Cow::Owned(v.clone()))))
                .collect(),
        ))
    }

    pub(crate) fn geoip_field(&self) -> Option<Field<'static>> {
        let geo = self.geoip.as_ref()?;
        Some(Field::Object(
            geo.fields()
                .into_iter()
                .map(|(k, v)| {
                    let field = match v {
                        Value::Number(n) => Field::Number(n),
                        Value::String(s) => Field::Str(Cow::Owned(s)),
                        _ => Field::Null,
                    };
                    (Cow::Borrowed(k), field)
                })
                .collect(),
        ))
    }
}

/// The Directory Insights object of one event, as fields borrowed from the envelope
/// (the user agent parsed, no `geoip`).
pub fn di_fields(e: &Envelope) -> Field<'_> {
    di_fields_with(e, &Extras::of(e, None))
}

/// [`di_fields`] with the event's [`Extras`].
pub fn di_fields_with<'a>(e: &'a Envelope, extras: &Extras) -> Field<'a> {
    let b = |s: &'static str| Cow::Borrowed(s);
    // The email only when there is one: a user who logs in with a username has none.
    let mut initiated_by = Vec::with_capacity(4);
    if let Some(email) = &e.actor.email {
        initiated_by.push((b("email"), Field::Str(Cow::Borrowed(email))));
    }
    initiated_by.push((b("id"), opt_str(&e.actor.id)));
    initiated_by.push((b("type"), Field::Str(b(actor_type(e.actor.kind)))));
    let mut out: Vec<(Cow<str>, Field)> = Vec::with_capacity(24);
    for (k, v) in [
        (b("@version"), Field::Str(b("1"))),
        (b("client_ip"), opt_str(&e.client_ip)),
        (b("event_type"), Field::Str(Cow::Borrowed(&e.event_type))),
        (b("id"), Field::Str(Cow::Owned(e.event_id.to_string()))),
        (
            b("organization"),
            Field::Str(Cow::Owned(e.org_id.to_string())),
        ),
        (b("service"), Field::Str(Cow::Borrowed(service_of(e)))),
        (
            b("timestamp"),
            Field::Str(Cow::Owned(format_ms(timestamp_ms(e)))),
        ),
    ] {
        set(&mut out, k, v);
    }
    if let Some(ua) = extras.useragent_field() {
        set(&mut out, b("useragent"), ua);
    }
    if let Some(geo) = extras.geoip_field() {
        set(&mut out, b("geoip"), geo);
    }
    if let Some(c) = &e.correlation_id {
        set(
            &mut out,
            b("correlation"),
            Field::Object(vec![
                (b("id"), Field::Str(Cow::Borrowed(c))),
                (b("type"), Field::Str(b("request"))),
            ]),
        );
    }
    match &e.stream {
        StreamId::Aggregate { kind, id } => {
            let method = match e.actor.kind {
                ActorKind::ApiKey => "api-key",
                ActorKind::Admin => "session",
                _ => "system",
            };
            set(&mut out, b("auth_method"), Field::Str(b(method)));
            set(&mut out, b("success"), Field::Bool(true));
            let mut resource = vec![
                (b("id"), Field::Str(Cow::Borrowed(id))),
                (b("type"), Field::Str(Cow::Borrowed(kind))),
            ];
            let changes = e.payload.get("changes");
            // A created object's name fields are in its changes.
            for c in changes.and_then(Value::as_array).into_iter().flatten() {
                let field = c.get("field").and_then(Value::as_str).unwrap_or("");
                if matches!(field, "username" | "email" | "name") && !c["to"].is_null() {
                    set(&mut resource, Cow::Borrowed(field), Field::Value(&c["to"]));
                }
            }
            set(&mut out, b("resource"), Field::Object(resource));
            static EMPTY: Value = Value::Array(Vec::new());
            set(
                &mut out,
                b("changes"),
                Field::Value(changes.unwrap_or(&EMPTY)),
            );
            if let Some(a) = e.payload.get("association") {
                set(&mut out, b("association"), Field::Value(a));
            }
        }
        StreamId::Auth { .. } => {
            if let Value::Object(p) = &e.payload {
                let mut payload: Vec<(Cow<str>, Field)> = Vec::with_capacity(p.len());
                for (k, v) in p {
                    if SECRET_KEYS.contains(&k.as_str()) {
                        continue;
                    }
                    if k == "initiated_by" {
                        // The event's own account of who tried wins over the envelope's.
                        if let Value::Object(from) = v {
                            for (ik, iv) in from {
                                set(&mut initiated_by, Cow::Borrowed(ik), Field::Value(iv));
                            }
                        }
                        continue;
                    }
                    payload.push((Cow::Borrowed(k), Field::Value(v)));
                }
                out = merge_sorted(out, payload);
            }
        }
    }
    // Set last: a payload key named `initiated_by` merges into it, never replaces it.
    set(&mut out, b("initiated_by"), Field::Object(initiated_by));
    Field::Object(out)
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
pub fn search_text_cow(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Null => None,
        Value::String(s) => lowercase(s),
        other => Some(Cow::Owned(other.to_string().to_lowercase())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_domain::envelope::Actor;
    use castellan_domain::ObjectId;
    use serde_json::json;

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
    fn timestamps_are_formatted_as_the_format_description_does() {
        let described = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
                .unwrap()
                .format(&time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                ))
                .unwrap()
        };
        let mut ms = -62_135_596_800_000i64; // 0001-01-01
        while ms < 253_402_300_799_999 {
            assert_eq!(format_ms(ms), described(ms), "{ms}");
            ms += 790_000_000_001; // every field's digits vary across the steps
        }
        for ms in [0, 999, 1_000, 1_788_134_399_999, 253_402_300_799_999] {
            assert_eq!(format_ms(ms), described(ms), "{ms}");
        }
        assert_eq!(format_ms(1_788_134_400_123), "2026-08-31T00:00:00.123Z");
    }

    /// The direct JSON writer writes what serde_json writes, byte for byte.
    #[test]
    fn events_are_written_as_serde_json_writes_them() {
        let nasty = "q\"b\\s/\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f} é 日本 \u{1F600}";
        let payload = json!({
            "success": false, "username": nasty, "n": 128, "neg": -5, "f": 1.5e-7,
            "big": u64::MAX, "list": [1, "two", null, true, {"k": [nasty]}],
            "initiated_by": {"type": "user", "username": nasty}, "empty": {}, "none": [],
        });
        let mut events = vec![
            envelope(StreamId::auth("ldap"), "ldap_bind", payload.clone()),
            envelope(
                StreamId::aggregate("user", "u1"),
                "user_update",
                json!({"changes": [{"field": "name", "from": nasty, "to": 2.25}]}),
            ),
            envelope(StreamId::auth("sso"), "sso_auth", json!(nasty)),
        ];
        events[0].client_ip = Some(nasty.into());
        events[1].user_agent = None;
        for e in &events {
            let field = di_fields(e);
            let mut out = Vec::new();
            field.write_json(&mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&field).unwrap()
            );
        }
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
