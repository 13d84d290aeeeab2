//! Schema-version upcasting: a stored payload of an older schema version is rewritten,
//! one version step at a time, into the current shape before it is decoded. Stored
//! events are never rewritten; golden files under `tests/golden` pin every version.

use serde_json::{json, Value};

use crate::aggregate::DecodeError;

/// Brings `payload` of `event_type` at `schema_version` up to `current`.
pub fn upcast(
    event_type: &str,
    mut schema_version: u32,
    mut payload: Value,
    current: u32,
) -> Result<Value, DecodeError> {
    if schema_version > current {
        return Err(DecodeError::new(
            event_type,
            schema_version,
            format!("written by a newer Castellan (this one reads up to v{current})"),
        ));
    }
    while schema_version < current {
        payload = step(event_type, schema_version, payload)?;
        schema_version += 1;
    }
    Ok(payload)
}

fn step(event_type: &str, from: u32, payload: Value) -> Result<Value, DecodeError> {
    match (event_type, from) {
        // v1 (first drafts) named the organization `displayName` and had a single
        // `email` for the contact; v2 splits contact name and email and carries
        // the settings bag and the `changes` list.
        ("organization_create", 1) => {
            let obj = payload
                .as_object()
                .ok_or_else(|| DecodeError::new(event_type, from, "payload is not an object"))?;
            let name = obj.get("displayName").cloned().unwrap_or(Value::Null);
            let email = obj.get("email").cloned().unwrap_or(Value::Null);
            let mut changes = vec![json!({"field": "name", "from": null, "to": name})];
            if !email.is_null() {
                changes.push(json!({"field": "contact_email", "from": null, "to": email}));
            }
            Ok(json!({
                "name": name,
                "contact_name": null,
                "contact_email": email,
                "settings": {},
                "changes": changes,
            }))
        }
        // v1 updates carried `{field: new value}` pairs without the old value.
        ("organization_update", 1) => {
            let obj = payload
                .as_object()
                .ok_or_else(|| DecodeError::new(event_type, from, "payload is not an object"))?;
            let changes: Vec<Value> = obj
                .iter()
                .map(|(field, to)| {
                    let field = if field == "displayName" {
                        "name"
                    } else {
                        field
                    };
                    json!({"field": field, "from": null, "to": to})
                })
                .collect();
            Ok(json!({ "changes": changes }))
        }
        _ => Err(DecodeError::new(
            event_type,
            from,
            "no upcaster for this version",
        )),
    }
}
