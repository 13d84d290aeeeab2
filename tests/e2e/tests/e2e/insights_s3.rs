//! Insights and export on a real S3-compatible server (Garage, started by the test
//! command): the materializer writes its files and checkpoint to the bucket through
//! object_store, the Directory Insights API and admin SQL read them back, each
//! organization only its own; the exporter puts windows with aws-sdk-s3 under
//! deterministic keys, keeps its state beside them, and uploads a large window in parts.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use castellan_e2e::node::{config, TestNode};
use castellan_export::sink::{S3Sink, Sink, MULTIPART_BYTES};
use castellan_export::Exporter;
use castellan_insights::{Insights, Storage};
use serde_json::{json, Value};

fn gunzip(bytes: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// POST with an API key; the status and the JSON body.
async fn post(node: &TestNode, key: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = super::insights_http::post(node, key, path, body).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_and_export_work_on_a_real_s3_server() {
    let Some(s3) = castellan_e2e::s3::server() else {
        return;
    };
    let prefix = s3.fresh_prefix("node");
    let insights_prefix = format!("{prefix}/insights");
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.insights.flush_interval_ms = 50;
    c.insights.s3_bucket = s3.bucket.clone();
    c.insights.s3_prefix = insights_prefix.clone();
    c.insights.s3_endpoint = s3.endpoint.clone();
    c.insights.s3_region = s3.region.clone();
    c.insights.s3_access_key_id = s3.access_key_id.clone();
    c.insights.s3_secret_access_key = s3.secret_access_key.clone();
    let node = TestNode::start(c, dir).await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let beta = node.bootstrap("Beta", "root@beta.test").await;
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

    // What the materializer wrote: the checkpoint and partitioned Parquet files.
    let keys = s3.keys(&format!("{insights_prefix}/")).await;
    assert!(
        keys.contains(&format!("{insights_prefix}/_checkpoint")),
        "{keys:?}"
    );
    let acme_files: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with(&format!("{insights_prefix}/org={}/date=", acme.org_id)))
        .collect();
    assert!(!acme_files.is_empty(), "{keys:?}");
    assert!(acme_files.iter().all(|k| k.ends_with(".parquet")));
    let client = s3.client().await;
    let first = client
        .get_object()
        .bucket(&s3.bucket)
        .key(acme_files[0].as_str())
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(&first[..4], b"PAR1", "a Parquet file");

    // The API reads them back from the bucket, each organization its own.
    let start = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (s, events) = post(
        &node,
        &acme.api_key,
        "/insights/directory/v1/events",
        json!({"service": ["directory"], "start_time": start, "sort": "ASC"}),
    )
    .await;
    assert_eq!(s, 200, "{events}");
    let events = events.as_array().unwrap().clone();
    let created: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "user_create")
        .collect();
    assert_eq!(created.len(), 2, "{events:?}");
    assert!(events
        .iter()
        .all(|e| e["organization"] == acme.org_id.to_string()));
    let (s, n) = post(
        &node,
        &acme.api_key,
        "/insights/directory/v1/events/count",
        json!({"service": ["all"], "start_time": start}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(n["count"].as_u64(), Some(events.len() as u64), "{n}");
    let (s, r) = post(
        &node,
        &beta.api_key,
        "/api/insights/sql",
        json!({"sql": "SELECT count(*) AS n FROM events WHERE event_type = 'user_create'"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["rows"][0]["n"], 0, "Beta sees none of Acme's users");

    // Export to the bucket with aws-sdk-s3, as the node's [export] would.
    let export_prefix = format!("{prefix}/exports");
    let mut export_config = s3.export_config(&export_prefix);
    export_config.enabled = true;
    export_config.increment_type = "minute".into();
    export_config.increment_amount = 1;
    export_config.service = "directory".into();
    let sink = Arc::new(S3Sink::new(&export_config).await.unwrap());
    let held = Arc::new(castellan_insights::Status::default());
    let exporter = Exporter::new(
        export_config,
        Insights::new(Storage::s3(&s3.insights_config(&insights_prefix)).unwrap()),
        sink.clone(),
        held.clone(),
    )
    .unwrap();
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let this_minute = now - now.rem_euclid(60_000);
    let mut state = json!({"first_window_start": this_minute - 120_000, "next_window_start": {}});
    held.complete_until_ms
        .store(this_minute + 62_500, Ordering::SeqCst);
    let done = exporter.round(&mut state).await.unwrap();
    assert!(
        done >= 4,
        "three windows for each of the two organizations with events: {done}"
    );
    let keys = s3.keys(&format!("{export_prefix}/")).await;
    assert!(
        keys.contains(&format!("{export_prefix}/_castellan/export_state.json")),
        "the state lives beside the exports: {keys:?}"
    );
    let acme_keys: Vec<&String> = keys
        .iter()
        .filter(|k| {
            k.starts_with(&format!(
                "{export_prefix}/jc_directoryinsights_{}_directory_",
                acme.org_id
            ))
        })
        .collect();
    assert!(
        !acme_keys.is_empty() && acme_keys.len() <= 2,
        "{acme_keys:?}"
    );
    let mut exported = Vec::new();
    for k in &acme_keys {
        let name = k.rsplit('/').next().unwrap();
        assert!(
            name.starts_with("jc_directoryinsights_") && name.ends_with("Z.json.gz"),
            "{name}"
        );
        let body = sink.get(k).await.unwrap().unwrap();
        let list: Vec<Value> = serde_json::from_str(&gunzip(&body)).unwrap();
        let stamps: Vec<&str> = list
            .iter()
            .map(|e| e["timestamp"].as_str().unwrap())
            .collect();
        assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "newest first");
        exported.extend(list);
    }
    assert_eq!(
        exported
            .iter()
            .filter(|e| e["event_type"] == "user_create")
            .count(),
        2
    );
    assert!(!exported.iter().any(|e| e.to_string().contains("argon2")));

    // Re-running a window overwrites the same object.
    let before = s3.keys(&format!("{export_prefix}/")).await;
    exporter
        .export_window(&acme.org_id.to_string(), this_minute, this_minute + 60_000)
        .await
        .unwrap();
    assert_eq!(s3.keys(&format!("{export_prefix}/")).await, before);
    node.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_window_goes_up_in_parts_and_comes_back_whole() {
    let Some(s3) = castellan_e2e::s3::server() else {
        return;
    };
    let prefix = s3.fresh_prefix("multipart");
    let sink = S3Sink::new(&s3.export_config(&prefix)).await.unwrap();
    // Incompressible, 2.5 parts long.
    let mut body = vec![0u8; MULTIPART_BYTES * 5 / 2];
    rand::Rng::fill(&mut rand::thread_rng(), &mut body[..]);
    let key = format!("{prefix}/big.json.gz");
    sink.put(&key, body.clone()).await.unwrap();
    let head = s3
        .client()
        .await
        .head_object()
        .bucket(&s3.bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(body.len() as i64));
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    assert!(etag.ends_with("-3"), "a three-part upload: {etag}");
    assert!(
        sink.get(&key).await.unwrap().unwrap() == body,
        "same bytes back"
    );
    let uploads = s3
        .client()
        .await
        .list_multipart_uploads()
        .bucket(&s3.bucket)
        .prefix(&prefix)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "no upload left open");
    // A missing key reads as none, not as an error.
    assert!(sink
        .get(&format!("{prefix}/missing"))
        .await
        .unwrap()
        .is_none());
}
