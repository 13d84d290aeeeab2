//! The Parquet table: the common Directory Insights fields as columns (searchable text
//! lowercased, as the hosted product stores it) plus the whole event as JSON.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
    UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::Value;

use crate::event::{at_path, search_text_cow};

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

/// One event ready for a file.
#[derive(Debug, Clone)]
pub struct Row {
    pub timestamp_ms: i64,
    pub position: u64,
    pub event: Value,
}

/// Builds a record batch of rows (in the order given).
pub fn to_batch(rows: &[Row]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = rows.len();
    let mut ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut texts: Vec<StringBuilder> = TEXT_COLUMNS
        .iter()
        .map(|_| StringBuilder::with_capacity(n, n * 16))
        .collect();
    let mut bools: Vec<BooleanBuilder> = BOOL_COLUMNS
        .iter()
        .map(|_| BooleanBuilder::with_capacity(n))
        .collect();
    let mut position = UInt64Builder::with_capacity(n);
    let mut event = StringBuilder::with_capacity(n, n * 512);
    let mut json = Vec::with_capacity(1024);
    for r in rows {
        ts.append_value(r.timestamp_ms);
        for ((_, path), b) in TEXT_COLUMNS.iter().zip(texts.iter_mut()) {
            match at_path(&r.event, path).and_then(search_text_cow) {
                Some(s) => b.append_value(s),
                None => b.append_null(),
            }
        }
        for ((_, path), b) in BOOL_COLUMNS.iter().zip(bools.iter_mut()) {
            b.append_option(at_path(&r.event, path).and_then(Value::as_bool));
        }
        position.append_value(r.position);
        json.clear();
        serde_json::to_writer(&mut json, &r.event).expect("a JSON value serializes");
        event.append_value(std::str::from_utf8(&json).expect("serde_json writes UTF-8"));
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(ts.finish())];
    columns.extend(
        texts
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef),
    );
    columns.extend(
        bools
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef),
    );
    columns.push(Arc::new(position.finish()));
    columns.push(Arc::new(event.finish()));
    RecordBatch::try_new(schema(), columns)
}
