//! One event straight into the table's columns, in one pass: its Directory Insights
//! object is written as JSON key by key (the envelope's fields and the payload's, two
//! sorted lists, merged as they are written) and each field that has a column is
//! appended to it on the way. No tree of the object is built, and the id, the
//! organization and the time are formatted on the stack.
//!
//! It writes exactly the object [`crate::event::di_fields`] describes (a test holds
//! the two together byte for byte); a payload whose keys do not come sorted (a JSON
//! map that keeps insertion order) takes that general way instead.

use std::sync::OnceLock;

use arrow::array::{BooleanBuilder, StringBuilder};
use castellan_domain::envelope::{ActorKind, Envelope, StreamId};
use serde_json::{Map, Value};

use crate::event::{
    actor_type, format_ms_into, lowercase, search_text_cow, service_of, timestamp_ms,
    write_json_str, write_json_value, Extras, SECRET_KEYS,
};
use crate::schema::{column_of, Column, BOOL_COLUMN_COUNT, TEXT_COLUMN_COUNT};

/// Whether JSON maps iterate in key order (serde_json without `preserve_order`).
fn maps_are_sorted() -> bool {
    static SORTED: OnceLock<bool> = OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut m = Map::new();
        m.insert("b".into(), Value::Null);
        m.insert("a".into(), Value::Null);
        m.keys().next().is_some_and(|k| k == "a")
    })
}

/// Whether [`write_row`] takes this event (else the general way does).
pub fn writes_directly(e: &Envelope) -> bool {
    maps_are_sorted() || matches!(e.stream, StreamId::Aggregate { .. })
}

/// The columns of one row as it is written: every column is appended to at most once,
/// and [`Row::finish`] appends a null to the others.
pub struct Row<'b> {
    texts: &'b mut [StringBuilder],
    bools: &'b mut [BooleanBuilder],
    pub(crate) json: &'b mut Vec<u8>,
    texts_set: [bool; TEXT_COLUMN_COUNT],
    bools_set: [bool; BOOL_COLUMN_COUNT],
}

impl<'b> Row<'b> {
    pub fn new(
        texts: &'b mut [StringBuilder],
        bools: &'b mut [BooleanBuilder],
        json: &'b mut Vec<u8>,
    ) -> Self {
        Row {
            texts,
            bools,
            json,
            texts_set: [false; TEXT_COLUMN_COUNT],
            bools_set: [false; BOOL_COLUMN_COUNT],
        }
    }

    /// A text column's value, lowercased as searches compare it.
    pub(crate) fn text(&mut self, column: usize, value: Option<&str>) {
        match value.and_then(lowercase) {
            Some(v) => self.texts[column].append_value(v),
            None => self.texts[column].append_null(),
        }
        self.texts_set[column] = true;
    }

    pub(crate) fn boolean(&mut self, column: usize, value: Option<bool>) {
        self.bools[column].append_option(value);
        self.bools_set[column] = true;
    }

    /// A string field's column value, if the field has a column.
    fn str(&mut self, column: Option<Column>, value: Option<&str>) {
        match column {
            Some(Column::Text(i)) => self.text(i, value),
            Some(Column::Bool(i)) => self.boolean(i, None),
            None => {}
        }
    }

    /// A JSON value's column value, if its field has a column.
    fn value(&mut self, column: Option<Column>, v: &Value) {
        match column {
            Some(Column::Text(i)) => {
                match search_text_cow(v) {
                    Some(s) => self.texts[i].append_value(s),
                    None => self.texts[i].append_null(),
                }
                self.texts_set[i] = true;
            }
            Some(Column::Bool(i)) => self.boolean(i, v.as_bool()),
            None => {}
        }
    }

    /// Nulls for the columns the event had no field for.
    pub fn finish(self) {
        for (b, set) in self.texts.iter_mut().zip(self.texts_set) {
            if !set {
                b.append_null();
            }
        }
        for (b, set) in self.bools.iter_mut().zip(self.bools_set) {
            if !set {
                b.append_null();
            }
        }
    }
}

/// A JSON object being written: its keys must come in order.
struct Object {
    first: bool,
}

impl Object {
    fn open(out: &mut Vec<u8>) -> Object {
        out.push(b'{');
        Object { first: true }
    }

    fn key(&mut self, out: &mut Vec<u8>, key: &str) {
        if !self.first {
            out.push(b',');
        }
        self.first = false;
        write_json_str(key, out);
        out.push(b':');
    }

    fn close(self, out: &mut Vec<u8>) {
        out.push(b'}');
    }
}

/// The payload's entries that reach the event, in key order, written as the
/// envelope's keys are passed (a payload key wins over the envelope's of that name).
struct Payload<'a> {
    entries: std::iter::Peekable<serde_json::map::Iter<'a>>,
    /// The payload's own account of who tried, merged into `initiated_by`.
    initiated_by: Option<&'a Map<String, Value>>,
}

impl<'a> Payload<'a> {
    fn of(e: &'a Envelope) -> Payload<'a> {
        static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
        let map = match (&e.stream, &e.payload) {
            (StreamId::Auth { .. }, Value::Object(p)) => p,
            _ => EMPTY.get_or_init(Map::new),
        };
        Payload {
            entries: map.iter().peekable(),
            initiated_by: None,
        }
    }

    /// Writes the payload's entries up to `key`; true if the payload has `key`
    /// itself (written, so the envelope's is not).
    fn up_to(&mut self, row: &mut Row, object: &mut Object, key: &str) -> bool {
        let mut has_key = false;
        while let Some((k, v)) = self.entries.next_if(|(k, _)| k.as_str() <= key) {
            has_key |= self.entry(row, object, k, v) && k == key;
        }
        has_key
    }

    /// Writes what is left.
    fn rest(&mut self, row: &mut Row, object: &mut Object) {
        while let Some((k, v)) = self.entries.next() {
            self.entry(row, object, k, v);
        }
    }

    /// Writes one payload entry, with its columns; false for one that is not written
    /// (a secret, or `initiated_by`, which is merged into the envelope's).
    fn entry(&mut self, row: &mut Row, object: &mut Object, k: &str, v: &'a Value) -> bool {
        if SECRET_KEYS.contains(&k) {
            return false;
        }
        if k == "initiated_by" {
            if let Value::Object(from) = v {
                self.initiated_by = Some(from);
            }
            return false;
        }
        object.key(row.json, k);
        write_json_value(v, row.json);
        row.value(column_of("", k), v);
        if let ("resource", Value::Object(inner)) = (k, v) {
            for (ik, iv) in inner {
                row.value(column_of("resource", ik), iv);
            }
        }
        true
    }
}

/// Writes a top-level string field (null for None), and its column if it has one.
fn text_entry(row: &mut Row, object: &mut Object, key: &str, v: Option<&str>) {
    object.key(row.json, key);
    match v {
        Some(s) => write_json_str(s, row.json),
        None => row.json.extend_from_slice(b"null"),
    }
    row.str(column_of("", key), v);
}

/// Writes `key` as an object of string fields (none of which has a column).
fn string_object(row: &mut Row, object: &mut Object, key: &str, fields: &[(&str, &str)]) {
    object.key(row.json, key);
    let mut inner = Object::open(row.json);
    for (k, v) in fields {
        inner.key(row.json, k);
        write_json_str(v, row.json);
    }
    inner.close(row.json);
}

/// Writes one event as a row (see the module's documentation); the caller has checked
/// [`writes_directly`].
pub fn write_row(e: &Envelope, extras: &Extras, mut row: Row) {
    let mut payload = Payload::of(e);
    let mut obj = Object::open(row.json);
    let o = &mut obj;
    let r = &mut row;
    if !payload.up_to(r, o, "@version") {
        o.key(r.json, "@version");
        r.json.extend_from_slice(b"\"1\"");
    }
    let aggregate = match &e.stream {
        StreamId::Aggregate { kind, id } => Some((kind.as_str(), id.as_str())),
        StreamId::Auth { .. } => None,
    };
    // Directory events' own fields (the payload of one adds nothing but these).
    let changes = aggregate.and(e.payload.get("changes"));
    if let Some(a) = aggregate.and(e.payload.get("association")) {
        o.key(r.json, "association");
        write_json_value(a, r.json);
    }
    if aggregate.is_some() {
        let method = match e.actor.kind {
            ActorKind::ApiKey => "api-key",
            ActorKind::Admin => "session",
            _ => "system",
        };
        text_entry(r, o, "auth_method", Some(method));
        o.key(r.json, "changes");
        match changes {
            Some(c) => write_json_value(c, r.json),
            None => r.json.extend_from_slice(b"[]"),
        }
    }
    if !payload.up_to(r, o, "client_ip") {
        text_entry(r, o, "client_ip", e.client_ip.as_deref());
    }
    if !payload.up_to(r, o, "correlation") {
        if let Some(c) = &e.correlation_id {
            string_object(r, o, "correlation", &[("id", c), ("type", "request")]);
        }
    }
    if !payload.up_to(r, o, "event_type") {
        text_entry(r, o, "event_type", Some(&e.event_type));
    }
    if !payload.up_to(r, o, "geoip") {
        if let Some(geo) = extras.geoip_field() {
            o.key(r.json, "geoip");
            geo.write_json(r.json);
        }
    }
    if !payload.up_to(r, o, "id") {
        let mut buf = uuid::Uuid::encode_buffer();
        let id = e.event_id.hyphenated().encode_lower(&mut buf);
        text_entry(r, o, "id", Some(id));
    }
    // Always the envelope's, with the payload's own account merged in.
    payload.up_to(r, o, "initiated_by");
    o.key(r.json, "initiated_by");
    initiated_by(e, payload.initiated_by, r);
    if !payload.up_to(r, o, "organization") {
        let mut buf = [0u8; 24];
        text_entry(r, o, "organization", Some(e.org_id.encode_hex(&mut buf)));
    }
    if let Some((kind, id)) = aggregate {
        o.key(r.json, "resource");
        resource(kind, id, changes, r);
    }
    if !payload.up_to(r, o, "service") {
        text_entry(r, o, "service", Some(service_of(e)));
    }
    if aggregate.is_some() {
        o.key(r.json, "success");
        r.json.extend_from_slice(b"true");
        r.value(column_of("", "success"), &Value::Bool(true));
    }
    if !payload.up_to(r, o, "timestamp") {
        let mut buf = [0u8; 24];
        let time = format_ms_into(timestamp_ms(e), &mut buf);
        o.key(r.json, "timestamp");
        write_json_str(&time, r.json);
    }
    if !payload.up_to(r, o, "useragent") {
        if let Some(ua) = extras.useragent_field() {
            o.key(r.json, "useragent");
            ua.write_json(r.json);
        }
    }
    payload.rest(r, o);
    obj.close(row.json);
    row.finish();
}

/// `initiated_by`: the actor (email, id, type), each replaced by the payload's own
/// account where it has one, and the payload's other fields of it.
fn initiated_by(e: &Envelope, from: Option<&Map<String, Value>>, r: &mut Row) {
    let mut inner = Object::open(r.json);
    let mut theirs = from.into_iter().flatten().peekable();
    let own: [(&str, Option<&str>); 3] = [
        ("email", e.actor.email.as_deref()),
        ("id", e.actor.id.as_deref()),
        ("type", Some(actor_type(e.actor.kind))),
    ];
    for (key, value) in own {
        // No email written for an actor without one (as `di_fields` leaves it out).
        let absent = key == "email" && value.is_none();
        let mut replaced = false;
        while let Some((k, v)) = theirs.next_if(|(k, _)| k.as_str() <= key) {
            inner.key(r.json, k);
            write_json_value(v, r.json);
            r.value(column_of("initiated_by", k), v);
            replaced |= k == key;
        }
        if !replaced && !absent {
            inner.key(r.json, key);
            match value {
                Some(s) => write_json_str(s, r.json),
                None => r.json.extend_from_slice(b"null"),
            }
            r.str(column_of("initiated_by", key), value);
        }
    }
    for (k, v) in theirs {
        inner.key(r.json, k);
        write_json_value(v, r.json);
        r.value(column_of("initiated_by", k), v);
    }
    inner.close(r.json);
}

/// A directory event's `resource`: its kind and id, and the name fields its changes
/// set (the last change of a field wins).
fn resource(kind: &str, id: &str, changes: Option<&Value>, r: &mut Row) {
    let (mut email, mut name, mut username) = (None, None, None);
    for c in changes.and_then(Value::as_array).into_iter().flatten() {
        let to = &c["to"];
        if to.is_null() {
            continue;
        }
        match c.get("field").and_then(Value::as_str) {
            Some("email") => email = Some(to),
            Some("name") => name = Some(to),
            Some("username") => username = Some(to),
            _ => {}
        }
    }
    let mut inner = Object::open(r.json);
    let value_entry = |r: &mut Row, inner: &mut Object, key: &str, v: Option<&Value>| {
        if let Some(v) = v {
            inner.key(r.json, key);
            write_json_value(v, r.json);
            r.value(column_of("resource", key), v);
        }
    };
    value_entry(r, &mut inner, "email", email);
    inner.key(r.json, "id");
    write_json_str(id, r.json);
    r.str(column_of("resource", "id"), Some(id));
    value_entry(r, &mut inner, "name", name);
    inner.key(r.json, "type");
    write_json_str(kind, r.json);
    r.str(column_of("resource", "type"), Some(kind));
    value_entry(r, &mut inner, "username", username);
    inner.close(r.json);
}
