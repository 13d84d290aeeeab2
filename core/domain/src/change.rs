//! The `changes` list of Directory Insights events: one entry per field that changed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub from: Value,
    pub to: Value,
}

impl Change {
    pub fn new(field: impl Into<String>, from: impl Into<Value>, to: impl Into<Value>) -> Self {
        Change {
            field: field.into(),
            from: from.into(),
            to: to.into(),
        }
    }
}

/// Appends a change for `field` when `from != to`.
pub fn diff(changes: &mut Vec<Change>, field: &str, from: Value, to: Value) {
    if from != to {
        changes.push(Change {
            field: field.to_string(),
            from,
            to,
        });
    }
}
