//! Crashes: kill -9 at random points while a client appends, then check that every
//! acknowledged write is in the log exactly once and that the projections converge
//! to what a rebuild from 0 produces.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_app::ports::EventLog;
use castellan_domain::envelope::StreamId;
use castellan_domain::ObjectId;
use castellan_e2e::nats::NatsServer;
use castellan_e2e::node::{config, TestNode};
use castellan_e2e::ports::free_port;
use castellan_log_sqlite::SqliteLog;
use castellan_projections::portal::PORTAL;
use castellan_projections::runtime::{self, Runner};
use castellan_projections::ReadStore;
use rand::Rng;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_castellan-e2e-server");

/// `settings.seq` values in the organization's stream: value → how many commits set it.
async fn seq_counts(log: &dyn EventLog, org: ObjectId) -> HashMap<i64, usize> {
    let mut counts = HashMap::new();
    for c in log
        .read_stream(org, &StreamId::aggregate("organization", org))
        .await
        .unwrap()
    {
        for e in &c.commit.events {
            for change in e.payload["changes"].as_array().into_iter().flatten() {
                if change["field"] == "settings.seq" {
                    *counts.entry(change["to"].as_i64().unwrap()).or_default() += 1;
                }
            }
        }
    }
    counts
}

/// The live read store caught up, compared with a rebuild from 0 in a fresh store.
async fn assert_projection_converges(log: Arc<dyn EventLog>, live: ReadStore, fresh: ReadStore) {
    Runner::new(live.clone(), log.clone(), &PORTAL)
        .catch_up()
        .await
        .unwrap();
    Runner::new(fresh.clone(), log.clone(), &PORTAL)
        .catch_up()
        .await
        .unwrap();
    assert_eq!(
        live.portal_dump().await.unwrap(),
        fresh.portal_dump().await.unwrap()
    );
    assert_eq!(
        runtime::checkpoint(&live, "portal").await.unwrap(),
        log.head().await.unwrap()
    );
}

/// The materializer was killed with the server, mid-flush or mid-compaction at times:
/// one more run from what it left brings every organization's files to the log head
/// with each event exactly once (no gap, no duplicate).
async fn assert_insights_exactly_once(
    log: Arc<dyn EventLog>,
    dir: &Path,
    all: &[castellan_domain::envelope::RecordedCommit],
) -> usize {
    use castellan_insights::{Insights, Materializer, MaterializerConfig, Storage};
    let storage = Storage::local(dir).unwrap();
    let m = Arc::new(Materializer::new(
        log.clone(),
        storage.clone(),
        MaterializerConfig {
            flush_interval_ms: 20,
            ..Default::default()
        },
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(m.clone().run(stopped));
    let head = log.head().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while m
        .status
        .checkpoint
        .load(std::sync::atomic::Ordering::SeqCst)
        < head
    {
        assert!(Instant::now() < deadline, "insights did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    let mut expected: HashMap<ObjectId, Vec<String>> = HashMap::new();
    for c in all {
        // Insights holds what reaches it: not the log's bookkeeping.
        for e in c
            .envelopes()
            .filter(castellan_insights::event::reaches_insights)
        {
            expected
                .entry(e.org_id)
                .or_default()
                .push(e.event_id.to_string());
        }
    }
    let insights = Insights::new(storage);
    let mut total = 0;
    for (org, ids) in &expected {
        let batches = insights
            .sql(&org.to_string(), "SELECT id FROM events ORDER BY id")
            .await
            .unwrap();
        let rows = castellan_insights::sql::to_json_rows(&batches).unwrap();
        let got: Vec<String> = rows
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let mut want: Vec<String> = ids.iter().map(|i| i.to_lowercase()).collect();
        want.sort();
        assert_eq!(got.len(), want.len(), "org {org}: every event once");
        assert_eq!(got, want, "org {org}: the same events");
        total += got.len();
    }
    total
}

struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    fn start(dir: &Path, http: u16, mgmt: u16) -> Self {
        let child = Command::new(BIN)
            .arg("serve")
            .env("CASTELLAN_DATA_DIR", dir)
            .env("CASTELLAN_HTTP_LISTEN", format!("127.0.0.1:{http}"))
            .env("CASTELLAN_MANAGEMENT_LISTEN", format!("127.0.0.1:{mgmt}"))
            .env("CASTELLAN_LOGGING_LEVEL", "warn")
            // Many small insights files and frequent compactions, so kills land in both.
            .env("CASTELLAN_INSIGHTS_FLUSH_INTERVAL_MS", "20")
            .env("CASTELLAN_INSIGHTS_COMPACT_MIN_FILES", "3")
            .env("CASTELLAN_INSIGHTS_COMPACT_INTERVAL_MS", "100")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server");
        ServerProcess { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn wait_ready(http: &reqwest::Client, mgmt: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{mgmt}/readyz"))
            .send()
            .await
        {
            if r.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loop_on_the_embedded_default_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "bootstrap",
            "--org-name",
            "Crashy",
            "--admin-email",
            "root@crashy.test",
        ])
        .env("CASTELLAN_DATA_DIR", dir.path())
        .env("CASTELLAN_LOGGING_LEVEL", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let boot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let org: ObjectId = boot["org_id"].as_str().unwrap().parse().unwrap();
    let key = boot["api_key"].as_str().unwrap().to_string();

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (hp, mp) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{hp}/api/organizations/{org}");
    let mut acked: Vec<(i64, u64)> = Vec::new();
    let mut seq = 0i64;
    let mut rng = rand::thread_rng();
    for _round in 0..8 {
        let mut server = ServerProcess::start(dir.path(), hp, mp);
        wait_ready(&http, mp).await;
        let kill_at = Instant::now() + Duration::from_millis(rng.gen_range(50..400));
        // Several writers at once, so the kill lands mid-group-commit too.
        while Instant::now() < kill_at {
            let batch: Vec<_> = (0..4)
                .map(|_| {
                    seq += 1;
                    let (http, url, key, s) = (http.clone(), url.clone(), key.clone(), seq);
                    tokio::spawn(async move {
                        let r = http
                            .put(&url)
                            .header("x-api-key", key)
                            .json(&json!({"settings": {"seq": s}}))
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status() == 200 => {
                                let p: u64 = r.headers()["x-castellan-position"]
                                    .to_str()
                                    .unwrap()
                                    .parse()
                                    .unwrap();
                                Some((s, p))
                            }
                            _ => None,
                        }
                    })
                })
                .collect();
            for t in batch {
                if let Some(a) = t.await.unwrap() {
                    acked.push(a);
                }
            }
        }
        server.kill();
    }
    assert!(acked.len() > 20, "only {} acknowledged writes", acked.len());

    let log: Arc<dyn EventLog> = Arc::new(
        SqliteLog::open(&dir.path().join("events.db"))
            .await
            .unwrap(),
    );
    let counts = seq_counts(&*log, org).await;
    for (s, position) in &acked {
        assert_eq!(
            counts.get(s),
            Some(&1),
            "acknowledged seq {s} (position {position}) is stored exactly once"
        );
    }
    assert!(counts.values().all(|n| *n == 1), "no value stored twice");
    let all = log.read_after(0, 1_000_000).await.unwrap();
    let mut ids: Vec<_> = all.iter().map(|c| c.commit.commit_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "no commit stored twice");

    let live = ReadStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("read.db").display()
    ))
    .await
    .unwrap();
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = ReadStore::connect(&format!(
        "sqlite://{}",
        fresh_dir.path().join("read.db").display()
    ))
    .await
    .unwrap();
    assert_projection_converges(log.clone(), live, fresh).await;
    let insights_rows = assert_insights_exactly_once(log, &dir.path().join("insights"), &all).await;
    eprintln!(
        "embedded kill loop: {} acknowledged writes over 8 kills, {} commits in the log, {} insights rows",
        acked.len(),
        all.len(),
        insights_rows
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loop_of_nats_server_loses_no_acknowledged_write() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    assert!(
        nats.supports_sync_always() || !castellan_e2e::in_ci(),
        "CI runs a nats-server with sync_interval: always ({})",
        nats.version
    );
    let Some(pg) = castellan_e2e::postgres::fresh_database().await else {
        return;
    };
    let Some(pg_fresh) = castellan_e2e::postgres::fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.log.url = nats.url();
    c.read_store.url = pg;
    let node = TestNode::start(c, dir).await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let url = node.url(&format!("/api/organizations/{}", acme.org_id));
    let mut acked: Vec<(i64, u64)> = Vec::new();
    let mut seq = 0i64;
    let mut rng = rand::thread_rng();
    // Five kills at least; more (up to twelve) while a loaded machine has acknowledged
    // too few writes for the check to mean much.
    let mut kills = 0;
    while kills < 5 || (acked.len() <= 10 && kills < 12) {
        kills += 1;
        let kill_at = Instant::now() + Duration::from_millis(rng.gen_range(50..300));
        let mut writers = Vec::new();
        for _ in 0..4 {
            let (http, url, key) = (node.http.clone(), url.clone(), acme.api_key.clone());
            let first = seq;
            seq += 1000;
            writers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                let stop = Instant::now() + Duration::from_millis(600);
                let mut s = first;
                while Instant::now() < stop {
                    s += 1;
                    if let Ok(r) = http
                        .put(&url)
                        .header("x-api-key", &key)
                        .json(&json!({"settings": {"seq": s}}))
                        .send()
                        .await
                    {
                        if r.status() == 200 {
                            let p: u64 = r.headers()["x-castellan-position"]
                                .to_str()
                                .unwrap()
                                .parse()
                                .unwrap();
                            mine.push((s, p));
                        }
                    }
                }
                mine
            }));
        }
        tokio::time::sleep_until(kill_at.into()).await;
        nats.kill();
        tokio::time::sleep(Duration::from_millis(100)).await;
        nats.start_again();
        for w in writers {
            acked.extend(w.await.unwrap());
        }
    }
    assert!(acked.len() > 10, "only {} acknowledged writes", acked.len());
    // Let the node settle, then check the log through a fresh connection.
    let head_deadline = Instant::now() + Duration::from_secs(30);
    let log: Arc<dyn EventLog> = loop {
        match castellan_log_nats::NatsLog::connect(&nats.url(), Default::default()).await {
            Ok(l) => break Arc::new(l),
            Err(e) => {
                assert!(Instant::now() < head_deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let counts = seq_counts(&*log, acme.org_id).await;
    for (s, position) in &acked {
        assert_eq!(
            counts.get(s),
            Some(&1),
            "acknowledged seq {s} (position {position}) is stored exactly once"
        );
    }
    assert!(counts.values().all(|n| *n == 1), "no value stored twice");
    let head = log.head().await.unwrap();
    assert!(
        node.running
            .portal
            .wait_for(head, Duration::from_secs(30))
            .await,
        "live projection caught up after the kills"
    );
    let fresh = ReadStore::connect(&pg_fresh).await.unwrap();
    assert_projection_converges(log, node.running.store.clone(), fresh).await;
    eprintln!(
        "nats kill loop: {} acknowledged writes over {kills} kills of nats-server {}",
        acked.len(),
        nats.version
    );
}
