//! Golden events: every stored schema version keeps decoding to the current shape.

use std::collections::BTreeSet;
use std::path::PathBuf;

use castellan_domain::admin::AdminEvent;
use castellan_domain::aggregate::EventCodec;
use castellan_domain::organization::OrganizationEvent;
use castellan_domain::Envelope;
use serde_json::Value;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../golden")
}

/// Decodes with the codec of the event's family and encodes at the current version.
fn decode_to_current(e: &Envelope) -> (u32, Value) {
    let p = e.payload.clone();
    if e.event_type.starts_with("organization_") {
        let ev = OrganizationEvent::decode(&e.event_type, e.schema_version, p).unwrap();
        (ev.schema_version(), ev.encode())
    } else if e.event_type.starts_with("user_") || e.event_type.starts_with("totp_") {
        let ev =
            castellan_domain::user::UserEvent::decode(&e.event_type, e.schema_version, p).unwrap();
        (ev.schema_version(), ev.encode())
    } else if e.event_type.starts_with("group_") || e.event_type == "association_change" {
        let ev = castellan_domain::user_group::UserGroupEvent::decode(
            &e.event_type,
            e.schema_version,
            p,
        )
        .unwrap();
        (ev.schema_version(), ev.encode())
    } else if e.event_type.starts_with("admin_") {
        let ev = AdminEvent::decode(&e.event_type, e.schema_version, p).unwrap();
        (ev.schema_version(), ev.encode())
    } else {
        panic!("no codec for {}", e.event_type)
    }
}

#[test]
fn every_golden_event_decodes_to_its_expected_current_form() {
    let mut covered = BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        files += 1;
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let envelope: Envelope = serde_json::from_value(doc["envelope"].clone())
            .unwrap_or_else(|e| panic!("{}: envelope does not decode: {e}", path.display()));
        let (current, payload) = decode_to_current(&envelope);
        assert_eq!(payload, doc["expect"], "{}", path.display());
        if envelope.schema_version == current {
            covered.insert(envelope.event_type.clone());
        }
    }
    assert!(files >= 6, "golden files found: {files}");
    // Each event type has a golden file at its current version.
    for t in [
        "organization_create",
        "organization_update",
        "admin_create",
        "admin_update",
    ] {
        assert!(
            covered.contains(t),
            "no golden file for the current version of {t}"
        );
    }
}

#[test]
fn a_newer_schema_version_is_refused_not_guessed() {
    let err =
        OrganizationEvent::decode("organization_update", 99, serde_json::json!({})).unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}
