//! The Parquet table: the common Directory Insights fields as columns (searchable text
//! lowercased, as the hosted product stores it) plus the whole event as JSON.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, RecordBatch, StringArray, StringBuilder, UInt64Array,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use castellan_domain::envelope::Envelope;

use crate::enrich::GeoIp;
use crate::event::{di_fields_with, timestamp_ms, Extras};
use crate::row_writer::{write_row, writes_directly, Row};

/// Text columns and the dot path of the event field each one holds.
pub const TEXT_COLUMNS: &[(&str, &str)] = &[
    ("id", "id"),
    ("org", "organization"),
    ("service", "service"),
    ("event_type", "event_type"),
    ("client_ip", "client_ip"),
    ("initiated_by_id", "initiated_by.id"),
    ("initiated_by_type", "initiated_by.type"),
    ("initiated_by_email", "initiated_by.email"),
    ("initiated_by_username", "initiated_by.username"),
    ("resource_type", "resource.type"),
    ("resource_id", "resource.id"),
    ("resource_name", "resource.name"),
    ("resource_username", "resource.username"),
    ("resource_email", "resource.email"),
    ("username", "username"),
    ("auth_method", "auth_method"),
    ("error_message", "error_message"),
];

/// Boolean columns.
pub const BOOL_COLUMNS: &[(&str, &str)] = &[("success", "success"), ("mfa", "mfa")];

/// The column holding a dot path, if it has one.
pub fn column_for(path: &str) -> Option<&'static str> {
    TEXT_COLUMNS
        .iter()
        .chain(BOOL_COLUMNS)
        .find(|(_, p)| *p == path)
        .map(|(c, _)| *c)
}

pub fn is_bool_column(column: &str) -> bool {
    BOOL_COLUMNS.iter().any(|(c, _)| *c == column)
}

pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut fields = vec![Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            )];
            for (c, _) in TEXT_COLUMNS {
                fields.push(Field::new(*c, DataType::Utf8, *c != "id"));
            }
            for (c, _) in BOOL_COLUMNS {
                fields.push(Field::new(*c, DataType::Boolean, true));
            }
            fields.push(Field::new("position", DataType::UInt64, false));
            fields.push(Field::new("event", DataType::Utf8, false));
            Arc::new(Schema::new(fields))
        })
        .clone()
}

/// Text columns of a handful of values. Files declare them dictionary-typed (as Parquet
/// stores them) in their Arrow schema, so readers get the dictionary and its indices
/// instead of a copy of the text for every row: a filter or grouping on them compares
/// a few values, not every row's. (Not `username`: grouping by it as a dictionary
/// measured slower, 7.5 ms against 4.9 for a 30-day distinct.)
pub const DICTIONARY_COLUMNS: &[&str] = &[
    "org",
    "service",
    "event_type",
    "initiated_by_type",
    "resource_type",
    "auth_method",
];

/// Text columns read as plain strings; the other text columns that are not
/// dictionaries (user names, IPs, resource names…) are read as string views, which
/// point into the decoded pages instead of copying each value (a 30-day distinct of
/// user names: 4.0–4.5 ms as plain strings, 3.4–3.7 as views, alternated runs).
const PLAIN_COLUMNS: &[&str] = &["id", "event"];

/// The table as files declare it and readers see it: [`schema`], with
/// [`DICTIONARY_COLUMNS`] as dictionaries and the other text columns but
/// [`PLAIN_COLUMNS`] as string views.
pub fn read_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let fields: Vec<Field> = schema()
                .fields()
                .iter()
                .map(|f| {
                    if DICTIONARY_COLUMNS.contains(&f.name().as_str()) {
                        Field::new(
                            f.name(),
                            DataType::Dictionary(
                                Box::new(DataType::Int32),
                                Box::new(DataType::Utf8),
                            ),
                            f.is_nullable(),
                        )
                    } else if f.data_type() == &DataType::Utf8
                        && !PLAIN_COLUMNS.contains(&f.name().as_str())
                    {
                        Field::new(f.name(), DataType::Utf8View, f.is_nullable())
                    } else {
                        f.as_ref().clone()
                    }
                })
                .collect();
            Arc::new(Schema::new(fields))
        })
        .clone()
}

/// A column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    Text(usize),
    Bool(usize),
}

/// The column of a top-level field (`parent` empty) or of a field of `initiated_by`
/// or `resource`: `TEXT_COLUMNS` and `BOOL_COLUMNS` as a match, which a test holds to
/// them.
pub(crate) fn column_of(parent: &str, key: &str) -> Option<Column> {
    use Column::{Bool, Text};
    Some(match (parent, key) {
        ("", "id") => Text(0),
        ("", "organization") => Text(1),
        ("", "service") => Text(2),
        ("", "event_type") => Text(3),
        ("", "client_ip") => Text(4),
        ("initiated_by", "id") => Text(5),
        ("initiated_by", "type") => Text(6),
        ("initiated_by", "email") => Text(7),
        ("initiated_by", "username") => Text(8),
        ("resource", "type") => Text(9),
        ("resource", "id") => Text(10),
        ("resource", "name") => Text(11),
        ("resource", "username") => Text(12),
        ("resource", "email") => Text(13),
        ("", "username") => Text(14),
        ("", "auth_method") => Text(15),
        ("", "error_message") => Text(16),
        ("", "success") => Bool(0),
        ("", "mfa") => Bool(1),
        _ => return None,
    })
}

pub const TEXT_COLUMN_COUNT: usize = 17;
pub const BOOL_COLUMN_COUNT: usize = 2;
const _: () = assert!(TEXT_COLUMNS.len() == TEXT_COLUMN_COUNT);
const _: () = assert!(BOOL_COLUMNS.len() == BOOL_COLUMN_COUNT);

/// Where `position` is in [`schema`]: after the timestamp, text and boolean columns.
pub const POSITION_COLUMN: usize = 1 + TEXT_COLUMN_COUNT + BOOL_COLUMN_COUNT;

/// Events as the table's columns, appended straight from their envelopes: each event's
/// values and JSON are written once, into the column buffers a file is made of (no
/// per-event row to copy from, nor its two allocations).
pub struct BatchBuilder {
    timestamps: Vec<i64>,
    positions: Vec<u64>,
    texts: Vec<StringBuilder>,
    bools: Vec<BooleanBuilder>,
    /// The event JSON column: each event is written into `json` directly
    /// ([`crate::event::Field::write_json`]), its end offset goes to `json_ends`.
    json: Vec<u8>,
    json_ends: Vec<i32>,
    /// Places client addresses (`geoip`), where a database is configured.
    geoip: Option<Arc<GeoIp>>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    pub fn new() -> BatchBuilder {
        BatchBuilder {
            timestamps: Vec::new(),
            positions: Vec::new(),
            // Small to start: a batch per partition per conversion chunk holds a few
            // dozen events (the builders' default of 1024 values each, for 22
            // columns, came to several times the events' own size).
            texts: (0..TEXT_COLUMN_COUNT)
                .map(|_| StringBuilder::with_capacity(64, 1024))
                .collect(),
            bools: (0..BOOL_COLUMN_COUNT)
                .map(|_| BooleanBuilder::with_capacity(64))
                .collect(),
            json: Vec::new(),
            json_ends: vec![0],
            geoip: None,
        }
    }

    /// A builder that adds `geoip` from `geoip` (None: no `geoip`).
    pub fn with_geoip(geoip: Option<Arc<GeoIp>>) -> BatchBuilder {
        BatchBuilder {
            geoip,
            ..BatchBuilder::new()
        }
    }

    /// Appends one event (its Directory Insights object, lowercased column values).
    pub fn push(&mut self, e: &Envelope) {
        let extras = Extras::of(e, self.geoip.as_deref());
        if writes_directly(e) {
            write_row(
                e,
                &extras,
                Row::new(&mut self.texts, &mut self.bools, &mut self.json),
            );
        } else {
            self.push_fields(e, &extras);
        }
        self.json_ends
            .push(i32::try_from(self.json.len()).expect("an event batch's JSON stays under 2 GiB"));
        self.timestamps.push(timestamp_ms(e));
        self.positions.push(e.position);
    }

    /// [`BatchBuilder::push`]'s JSON and columns the general way: from the event's
    /// field tree ([`di_fields`]).
    fn push_fields(&mut self, e: &Envelope, extras: &Extras) {
        let event = di_fields_with(e, extras);
        let mut row = Row::new(&mut self.texts, &mut self.bools, &mut self.json);
        // One pass over the event's fields (not a lookup per column).
        event.for_each_field(&mut |parent, key, field| match column_of(parent, key) {
            Some(Column::Text(i)) => row.text(i, field.search_text().as_deref()),
            Some(Column::Bool(i)) => row.boolean(i, field.as_bool()),
            None => {}
        });
        event.write_json(row.json);
        row.finish();
    }

    /// The events appended, in that order.
    pub fn finish(self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let timestamps =
            arrow::array::TimestampMillisecondArray::from(self.timestamps).with_timezone("UTC");
        let mut columns: Vec<ArrayRef> = vec![Arc::new(timestamps)];
        columns.extend(
            self.texts
                .into_iter()
                .map(|mut b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.extend(
            self.bools
                .into_iter()
                .map(|mut b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(UInt64Array::from(self.positions)));
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.json_ends));
        columns.push(Arc::new(StringArray::try_new(
            offsets,
            Buffer::from_vec(self.json),
            None,
        )?));
        RecordBatch::try_new(schema(), columns)
    }
}

/// The events as one record batch, in the order given.
pub fn to_batch<'a>(
    events: impl IntoIterator<Item = &'a Envelope>,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut b = BatchBuilder::new();
    for e in events {
        b.push(e);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::{at_path, search_text, to_di_event};
    use arrow::array::{Array, AsArray};
    use castellan_domain::envelope::{Actor, ActorKind, StreamId};
    use castellan_domain::ObjectId;
    use serde_json::{json, Value};

    fn envelope(stream: StreamId, actor: ActorKind, ip: Option<&str>, payload: Value) -> Envelope {
        Envelope {
            event_id: castellan_domain::ids::new_event_id(),
            org_id: ObjectId::generate(1),
            stream,
            stream_version: 1,
            position: 9,
            event_type: "some_Event".into(),
            schema_version: 1,
            occurred_at: time::macros::datetime!(2026-11-28 12:00:00.5 UTC),
            actor: Actor {
                kind: actor,
                id: Some("A1".into()),
                email: Some("Root@Acme.test".into()),
            },
            client_ip: ip.map(str::to_string),
            user_agent: Some("curl/8".into()),
            correlation_id: Some("req-1".into()),
            commit_id: uuid::Uuid::now_v7(),
            payload,
        }
    }

    /// The one-pass writer gives the very rows the field tree gives: the same JSON
    /// bytes, the same column values, over envelopes and payloads of every shape
    /// (payload keys that replace the envelope's or sort before and after them,
    /// secrets, an `initiated_by` to merge or to ignore, non-text values in text
    /// columns, capitals, escapes, directory changes and associations).
    #[test]
    fn the_direct_writer_writes_what_the_field_tree_describes() {
        let payloads = [
            json!({"success": true, "username": "Bob", "auth_method": 128, "mfa": false,
                "error_message": null, "dn": "uid=Bob,o=X"}),
            json!({"!first": 1, "@version": "9", "client_ip": "1.2.3.4", "correlation": "c",
                "event_type": "Other", "id": "ID-1", "organization": "Org", "service": "LDAP",
                "timestamp": "then", "useragent": {"name": "x"}, "zzz": [1, {"b": null}], "~": "last"}),
            json!({"password": "p", "token": "t", "totp_secret": "s", "key_hash": "k",
                "initiated_by": {"type": "USER", "username": "Al\"ice", "a": 1, "zz": true},
                "resource": {"type": "user", "id": 7, "name": "N", "email": "E@X", "other": "o"}}),
            json!({"initiated_by": {"email": null, "id": "i"}, "success": "yes", "mfa": 1}),
            json!({"initiated_by": "not an object", "association": {"op": "add"},
                "changes": [1], "auth_method": {"Kind": "Password"}, "success": false}),
            json!({"initiated_by": {}, "resource": "flat", "username": ["A", "b"], "mfa": true}),
            json!({"username": "tab\there \u{1} ünï", "error_message": "Bad \"quote\""}),
            json!("not an object"),
            json!(null),
            json!({}),
        ];
        let directory = [
            json!({"changes": [{"field": "username", "from": null, "to": "Älice"},
                {"field": "email", "from": null, "to": "ALICE@acme.test"},
                {"field": "name", "to": null}, {"field": "name", "to": "First"},
                {"field": "name", "to": "Second"}, "not a change", {"to": "no field"}],
                "password_hash": "$argon2id$x", "association": {"op": "add"}}),
            json!({"changes": null}),
            json!({"association": [1, 2]}),
            json!({"changes": [{"field": "email", "to": 5}]}),
            json!("not an object"),
        ];
        let kinds = [
            ActorKind::User,
            ActorKind::Admin,
            ActorKind::ApiKey,
            ActorKind::System,
            ActorKind::Agent,
        ];
        let mut cases = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            for service in ["ldap", "radius", "sso", "directory"] {
                let mut e = envelope(StreamId::auth(service), kinds[i % 5], None, p.clone());
                e.client_ip = (i % 2 == 0).then(|| "10.0.0.9".into());
                e.user_agent = (i % 3 != 0).then(|| "Mozilla \"5\"".into());
                e.correlation_id = (i % 4 != 0).then(|| "req-9".into());
                e.actor.email = (i % 3 != 1).then(|| "Root@Acme.test".into());
                e.actor.id = (i % 5 != 2).then(|| "A1".into());
                cases.push(e);
            }
        }
        for (i, p) in directory.iter().enumerate() {
            for kind in kinds {
                let stream = StreamId::aggregate(["user", "group", "Device"][i % 3], "Id-7");
                let mut e = envelope(stream, kind, Some("10.1.1.1"), p.clone());
                e.user_agent = (i % 2 == 0).then(|| "agent".into());
                e.correlation_id = None;
                cases.push(e);
            }
        }
        // A year the fast time formatter does not take.
        cases[0].occurred_at = time::macros::datetime!(-0001-01-01 00:00:00 UTC);
        let placed = Extras {
            useragent: None,
            geoip: Some(crate::enrich::Geo {
                country_code: Some("NL".into()),
                latitude: Some(52.5),
                timezone: Some("Europe/Amsterdam".into()),
                ..Default::default()
            }),
        };
        for (e, with_geoip) in cases.iter().flat_map(|e| [(e, false), (e, true)]) {
            assert!(crate::row_writer::writes_directly(e));
            let mut extras = Extras::of(e, None);
            if with_geoip {
                extras.geoip = placed.geoip.clone();
            }
            let mut direct = BatchBuilder::new();
            direct.timestamps.push(timestamp_ms(e));
            direct.positions.push(e.position);
            crate::row_writer::write_row(
                e,
                &extras,
                crate::row_writer::Row::new(&mut direct.texts, &mut direct.bools, &mut direct.json),
            );
            direct.json_ends.push(direct.json.len() as i32);
            let mut tree = BatchBuilder::new();
            tree.push_fields(e, &extras);
            tree.json_ends.push(tree.json.len() as i32);
            tree.timestamps.push(timestamp_ms(e));
            tree.positions.push(e.position);
            let (direct, tree) = (direct.finish().unwrap(), tree.finish().unwrap());
            let json = |b: &RecordBatch| {
                b.column(POSITION_COLUMN + 1)
                    .as_string::<i32>()
                    .value(0)
                    .to_string()
            };
            assert_eq!(json(&direct), json(&tree));
            assert_eq!(
                json(&direct),
                serde_json::to_string(&di_fields_with(e, &extras)).unwrap()
            );
            assert_eq!(json(&direct).contains("\"geoip\":{"), with_geoip);
            assert_eq!(direct, tree, "{}", json(&tree));
        }
    }

    #[test]
    fn the_column_match_agrees_with_the_column_lists() {
        let split = |path: &'static str| path.rsplit_once('.').unwrap_or(("", path));
        for (i, (_, path)) in TEXT_COLUMNS.iter().enumerate() {
            let (parent, key) = split(path);
            assert_eq!(column_of(parent, key), Some(Column::Text(i)), "{path}");
        }
        for (i, (_, path)) in BOOL_COLUMNS.iter().enumerate() {
            let (parent, key) = split(path);
            assert_eq!(column_of(parent, key), Some(Column::Bool(i)), "{path}");
        }
        assert_eq!(column_of("", "resource"), None);
        assert_eq!(column_of("initiated_by", "name"), None);
    }

    /// The row's JSON is the event, and each column holds what a dot-path lookup in
    /// the event finds, lowercased: the fast path agrees with the plain reading.
    #[test]
    fn rows_hold_the_event_and_its_columns() {
        let cases = vec![
            envelope(
                StreamId::aggregate("user", "u1"),
                ActorKind::ApiKey,
                Some("10.0.0.1"),
                json!({"changes": [{"field": "username", "from": null, "to": "Älice"},
                    {"field": "email", "from": null, "to": "ALICE@acme.test"}],
                    "password_hash": "$argon2id$x", "association": {"op": "add"}}),
            ),
            envelope(
                StreamId::aggregate("group", "g1"),
                ActorKind::Admin,
                None,
                json!({"changes": null}),
            ),
            envelope(
                StreamId::auth("ldap"),
                ActorKind::User,
                Some("10.0.0.2"),
                json!({"success": false, "username": "Bob", "error_message": "Invalid credentials",
                    "initiated_by": {"type": "user", "username": "BOB", "id": null},
                    "resource": {"type": "user", "username": "bob", "email": "Bob@x.test"},
                    "mfa": true, "auth_method": 128, "totp_secret": "S", "service": "ldap"}),
            ),
            envelope(
                StreamId::auth("radius"),
                ActorKind::System,
                None,
                json!({"initiated_by": "not an object", "success": true, "mfa": "yes"}),
            ),
            envelope(
                StreamId::auth("sso"),
                ActorKind::User,
                None,
                json!("not an object"),
            ),
        ];
        // The payload's own initiator merges into the envelope's; a non-object one is
        // ignored; secrets never appear; `changes: null` stays null.
        let ldap = to_di_event(&cases[2]);
        assert_eq!(
            ldap["initiated_by"],
            json!({"type": "user", "username": "BOB", "id": null, "email": "Root@Acme.test"})
        );
        assert!(ldap.get("totp_secret").is_none());
        assert_eq!(to_di_event(&cases[3])["initiated_by"]["type"], "system");
        assert_eq!(to_di_event(&cases[1])["changes"], Value::Null);
        assert_eq!(to_di_event(&cases[1])["client_ip"], Value::Null);
        assert_eq!(
            to_di_event(&cases[0])["resource"],
            json!({"type": "user", "id": "u1", "username": "Älice", "email": "ALICE@acme.test"})
        );
        assert_eq!(
            to_di_event(&cases[0])["correlation"],
            json!({"id": "req-1", "type": "request"})
        );
        let batch = to_batch(&cases).unwrap();
        let json = batch.column(batch.num_columns() - 1).as_string::<i32>();
        for (row, e) in cases.iter().enumerate() {
            let event = to_di_event(e);
            let text = json.value(row);
            assert_eq!(serde_json::from_str::<Value>(text).unwrap(), event);
            assert!(!text.contains("argon2") && !text.contains("\"S\""));
            for (i, (column, path)) in TEXT_COLUMNS.iter().enumerate() {
                let values = batch.column(1 + i).as_string::<i32>();
                assert_eq!(
                    values.is_valid(row).then(|| values.value(row).to_string()),
                    at_path(&event, path).and_then(search_text),
                    "{column} of {event}"
                );
            }
            for (i, (column, path)) in BOOL_COLUMNS.iter().enumerate() {
                let values = batch.column(1 + TEXT_COLUMN_COUNT + i).as_boolean();
                assert_eq!(
                    values.is_valid(row).then(|| values.value(row)),
                    at_path(&event, path).and_then(Value::as_bool),
                    "{column} of {event}"
                );
            }
            assert_eq!(schema().field(POSITION_COLUMN).name(), "position");
            let positions = batch
                .column(POSITION_COLUMN)
                .as_primitive::<arrow::datatypes::UInt64Type>();
            assert_eq!(positions.value(row), e.position);
        }
    }
}
