//! Exports to a local directory: each window of an organization's events as one
//! gzipped JSON array, newest first, under a deterministic key; empty windows upload
//! nothing and count; after downtime the missed windows go out in order; a window is
//! due only once the materializer has all of it.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use castellan_e2e::node::{config, TestNode};
use castellan_export::sink::DirSink;
use castellan_export::{ExportConfig, Exporter};
use serde_json::{json, Value};

fn gunzip(bytes: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut s)
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_are_exported_once_complete_in_order_with_deterministic_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.insights.flush_interval_ms = 50;
    let node = TestNode::start(c, dir).await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    for name in ["ann", "bob"] {
        let (s, _) = node
            .call(
                &acme.api_key,
                "POST",
                "/api/systemusers",
                Some(json!({"username": name, "email": format!("{name}@acme.test")})),
            )
            .await;
        assert_eq!(s, 200);
    }
    super::insights_http::materialized(&node).await;
    let status = node.running.insights.clone().unwrap();

    let out = tempfile::tempdir().unwrap();
    let export_config = ExportConfig {
        enabled: true,
        increment_type: "minute".into(),
        increment_amount: 1,
        service: "directory,ldap".into(),
        json_format: "SingleLine".into(),
        ..Default::default()
    };
    // The exporter's clock is the materializer's: hold it back, then let it run ahead.
    let held = Arc::new(castellan_insights::Status::default());
    let exporter = Exporter::new(
        export_config,
        castellan_insights::Insights::new(
            castellan_insights::Storage::local(&node.dir.path().join("insights")).unwrap(),
        ),
        Arc::new(DirSink::new(out.path().to_path_buf()).unwrap()),
        held.clone(),
    )
    .unwrap();
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let this_minute = now - now.rem_euclid(60_000);
    // As if exporting had started ten minutes ago and the process had been down since.
    let mut state = json!({"first_window_start": this_minute - 600_000, "next_window_start": {}});
    held.complete_until_ms
        .store(this_minute - 240_000, Ordering::SeqCst);
    let done = exporter.round(&mut state).await.unwrap();
    // Five windows of Acme, the one organization with events: the installation's own
    // (where admin emails are reserved) is no customer and is not exported.
    assert_eq!(
        done, 5,
        "only windows the materializer has completely: {state}"
    );
    assert!(state["next_window_start"]
        .get("000000000000000000000000")
        .is_none());
    assert_eq!(
        state["next_window_start"][acme.org_id.to_string()],
        this_minute - 300_000
    );
    let empties = exporter.metrics.empty_windows.lock().unwrap().clone();
    assert_eq!(empties.get("directory"), Some(&5));
    assert_eq!(empties.get("ldap"), Some(&5));
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        1,
        "only the state: nothing uploaded for empty windows"
    );

    // Catch up to now (the window holding the events included).
    held.complete_until_ms.store(
        status
            .complete_until_ms
            .load(Ordering::SeqCst)
            .max(this_minute + 62_500),
        Ordering::SeqCst,
    );
    exporter.round(&mut state).await.unwrap();
    // The app's 3.x name, at the root: one object per service with events.
    let files: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    let start = castellan_export::render::iso(this_minute).replace(':', "-");
    let end = castellan_export::render::iso(this_minute + 60_000).replace(':', "-");
    let org = acme.org_id.to_string();
    assert_eq!(
        name,
        format!("jc_directoryinsights_{org}_directory_{start}_{end}.json.gz")
    );
    let text = gunzip(&std::fs::read(&files[0]).unwrap());
    let events: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(
        text.lines().count(),
        events.len(),
        "SingleLine: one event a line"
    );
    let stamps: Vec<&str> = events
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "newest first");
    // Within one millisecond, ids ascending (the app's stable sort of ascending pages).
    for w in events.windows(2) {
        if w[0]["timestamp"] == w[1]["timestamp"] {
            assert!(w[0]["id"].as_str() < w[1]["id"].as_str(), "{w:?}");
        }
    }
    assert!(events
        .iter()
        .all(|e| e["service"] == "directory" && e["organization"] == acme.org_id.to_string()));
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event_type"] == "user_create")
            .count(),
        2
    );
    assert!(!text.contains("argon2"));

    // Re-running a window overwrites the same object with the same content.
    let before = std::fs::read(&files[0]).unwrap();
    exporter
        .export_window(&acme.org_id.to_string(), this_minute, this_minute + 60_000)
        .await
        .unwrap();
    assert_eq!(gunzip(&std::fs::read(&files[0]).unwrap()), gunzip(&before));
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        2,
        "the object and the state"
    );

    // service = all: one `_all_` object a window; the 1.x–2.x name stays selectable.
    for (key_format, want) in [
        (
            "org_service",
            format!("jc_directoryinsights_{org}_all_{start}_{end}.json.gz"),
        ),
        (
            "window",
            format!(
                "{org}/jc_directoryinsights_{}_{}.json.gz",
                castellan_export::render::iso(this_minute),
                castellan_export::render::iso(this_minute + 60_000)
            ),
        ),
    ] {
        let out = tempfile::tempdir().unwrap();
        let all = Exporter::new(
            ExportConfig {
                enabled: true,
                increment_type: "minute".into(),
                key_format: key_format.into(),
                ..Default::default()
            },
            castellan_insights::Insights::new(
                castellan_insights::Storage::local(&node.dir.path().join("insights")).unwrap(),
            ),
            Arc::new(DirSink::new(out.path().to_path_buf()).unwrap()),
            held.clone(),
        )
        .unwrap();
        assert_eq!(
            all.export_window(&org, this_minute, this_minute + 60_000)
                .await
                .unwrap(),
            1
        );
        assert!(out.path().join(&want).is_file(), "{key_format}: {want}");
    }
    // The state survives in the sink.
    let saved: Value = serde_json::from_slice(
        &std::fs::read(out.path().join("_castellan/export_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["next_window_start"], state["next_window_start"]);
    node.running.shutdown().await;
}
