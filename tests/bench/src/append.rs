//! The append benchmark of the spine issue.
//!
//! 1. Raw async-nats JetStream publish-with-ack (256 in flight, Nats-Msg-Id and
//!    Nats-Expected-Last-Subject-Sequence over 256 subjects, the same message size)
//!    versus Castellan's JetStream append path (the `NatsLog` adapter: commit encoding,
//!    headers, ack settling), on the same nats-server, alternating twice.
//! 2. The embedded SQLite log: sequential single commits (one fsync each), 256
//!    concurrent appenders (group commit), and `append_batch` of 1000 commits.
//! 3. Append → projection-visible latency (the SQL portal projection on a SQLite
//!    read store) at half the sustainable append rate, on both logs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::Publish, stream};
use castellan_app::ports::EventLog;
use castellan_domain::envelope::{Actor, Commit, EventMeta, ExpectedVersion, NewEvent, StreamId};
use castellan_domain::ids::new_event_id;
use castellan_domain::ObjectId;
use castellan_e2e::nats::NatsServer;
use castellan_log_nats::{NatsLog, StreamSettings};
use castellan_log_sqlite::SqliteLog;
use castellan_projections::portal::PORTAL;
use castellan_projections::runtime::Runner;
use castellan_projections::ReadStore;
use serde_json::json;
use tokio::sync::watch;

use crate::stats::{ms, quantile};

#[derive(clap::Args)]
pub struct Args {
    /// Messages per JetStream round and per concurrent SQLite run.
    #[arg(long, default_value_t = 40_000)]
    messages: usize,
    /// Publishes in flight (one per subject / stream).
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    /// nats-server fsync policy: `always` (sync_interval: always) or `default`.
    #[arg(long, default_value = "always")]
    nats_sync: String,
    /// Sequential single SQLite commits (each pays an fsync).
    #[arg(long, default_value_t = 2_000)]
    sqlite_single: usize,
    /// Seconds of paced load for the latency measurement.
    #[arg(long, default_value_t = 5)]
    latency_seconds: u64,
}

fn meta() -> EventMeta {
    let mut m = EventMeta::new(time::OffsetDateTime::now_utc(), Actor::system());
    m.client_ip = Some("127.0.0.1".into());
    m.user_agent = Some("castellan-bench".into());
    m
}

/// A realistic one-event commit: an organization settings change. Throughput runs
/// tag theirs `bench_append` (same size) so that the projection measured later
/// skips them instead of failing on organizations it never saw created.
fn commit(org: ObjectId, stream: &StreamId, expected: ExpectedVersion, n: u64) -> Commit {
    let mut c = org_update(org, stream, expected, n);
    c.events[0].event_type = "bench_append".into();
    c
}

/// An `organization_update` the portal projection applies.
fn org_update(org: ObjectId, stream: &StreamId, expected: ExpectedVersion, n: u64) -> Commit {
    Commit {
        commit_id: uuid::Uuid::now_v7(),
        org_id: org,
        stream: stream.clone(),
        expected,
        meta: meta(),
        events: vec![NewEvent {
            event_id: new_event_id(),
            event_type: "organization_update".into(),
            schema_version: 2,
            payload: json!({"changes": [{"field": "settings.n", "from": n.saturating_sub(1), "to": n}]}),
        }],
    }
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let sync_always = args.nats_sync == "always";
    let nats = NatsServer::start_with(sync_always)
        .ok_or_else(|| anyhow::anyhow!("nats-server not found (set NATS_SERVER)"))?;
    let sync = if sync_always && nats.supports_sync_always() {
        "sync_interval: always"
    } else {
        "default sync (2 min)"
    };
    let sample = serde_json::to_vec(&commit(
        ObjectId::generate(0),
        &StreamId::aggregate("organization", ObjectId::generate(0)),
        ExpectedVersion::Exact(12345),
        12345,
    ))?;
    println!(
        "# castellan-bench append — {} ({sync}), {} messages of {} bytes, {} in flight, {} cores",
        nats.version,
        args.messages,
        sample.len(),
        args.in_flight,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!();

    let client = async_nats::connect(nats.url()).await?;
    let log = Arc::new(NatsLog::with_client(client.clone(), StreamSettings::default()).await?);
    let mut raw_rates = Vec::new();
    let mut ours_rates = Vec::new();
    for round in 1..=2 {
        let r = raw_jetstream(&client, args.messages, args.in_flight, sample.len(), round).await?;
        let o = castellan_append(log.clone(), args.messages, args.in_flight).await?;
        println!("round {round}: raw JetStream {r:>9.0} msg/s | Castellan JetStream adapter {o:>9.0} commits/s | ratio {:.2}", o / r);
        raw_rates.push(r);
        ours_rates.push(o);
    }
    let raw = raw_rates.iter().sum::<f64>() / 2.0;
    let ours = ours_rates.iter().sum::<f64>() / 2.0;

    let dir = tempfile::tempdir()?;
    let sqlite = Arc::new(SqliteLog::open(&dir.path().join("events.db")).await?);
    let single = sqlite_single(&sqlite, args.sqlite_single).await?;
    let concurrent = castellan_append(sqlite.clone(), args.messages, args.in_flight).await?;
    let batched = sqlite_batched(&sqlite, args.messages).await?;

    println!();
    println!("| path | throughput | target |");
    println!("|---|---|---|");
    println!("| raw async-nats JetStream publish+ack (Msg-Id + expected subject seq, {} in flight) | {raw:.0} msg/s | peer |", args.in_flight);
    println!(
        "| Castellan JetStream append (NatsLog) | {ours:.0} commits/s = {:.2}× raw | ≥ 0.8× |",
        ours / raw
    );
    println!(
        "| Castellan SQLite, sequential single commits (fsync each) | {single:.0} events/s | |"
    );
    println!(
        "| Castellan SQLite, {} concurrent appenders (group commit) | {concurrent:.0} events/s | |",
        args.in_flight
    );
    println!(
        "| Castellan SQLite, append_batch of 1000 commits | {batched:.0} events/s | ≥ 20,000 |"
    );

    println!();
    // The sustainable rate of append + projection is the lower of the two; the
    // latency is measured at half of it.
    for (name, log, append_rate) in [
        ("SQLite", sqlite.clone() as Arc<dyn EventLog>, concurrent),
        ("JetStream", log.clone() as Arc<dyn EventLog>, ours),
    ] {
        let projection_rate = projection_rate(log.clone(), 20_000).await?;
        let target = append_rate.min(projection_rate) / 2.0;
        let (p50, p99, n, achieved) = latency(log, target, args.latency_seconds).await?;
        println!("| portal projection catch-up on the {name} log (SQLite read store) | {projection_rate:.0} events/s | |");
        println!("| append → projection visible, {name} log, at {target:.0}/s = half of min(append, projection) (achieved {achieved:.0}/s, {n} commits) | p50 {:.2} ms, p99 {:.2} ms | p99 < 20 ms |", ms(p50), ms(p99));
    }
    Ok(())
}

/// 256 publishers, one subject each, each awaiting its ack before the next publish.
async fn raw_jetstream(
    client: &async_nats::Client,
    n: usize,
    in_flight: usize,
    size: usize,
    round: usize,
) -> anyhow::Result<f64> {
    let js = jetstream::new(client.clone());
    let name = format!("BENCH_RAW_{round}");
    let _ = js.delete_stream(&name).await;
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("bench.raw{round}.>")],
        storage: stream::StorageType::File,
        allow_direct: true,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let per = n / in_flight;
    let started = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|w| {
            let js = js.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let subject = format!("bench.raw{round}.{w}");
                let mut last = 0;
                for _ in 0..per {
                    let msg = Publish::build()
                        .payload(payload.clone())
                        .message_id(uuid::Uuid::now_v7().to_string())
                        .expected_last_subject_sequence(last);
                    let ack = js.send_publish(subject.clone(), msg).await?.await?;
                    last = ack.sequence;
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let took = started.elapsed();
    js.delete_stream(&name).await?;
    Ok(rate(per * in_flight, took))
}

/// `in_flight` writers, one aggregate stream each, appending with the version read.
async fn castellan_append(
    log: Arc<dyn EventLog>,
    n: usize,
    in_flight: usize,
) -> anyhow::Result<f64> {
    let per = n / in_flight;
    let started = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let log = log.clone();
            tokio::spawn(async move {
                let org = ObjectId::generate(0);
                let stream = StreamId::aggregate("organization", ObjectId::generate(0));
                let mut version = 0;
                for i in 0..per {
                    let a = log
                        .append(commit(
                            org,
                            &stream,
                            ExpectedVersion::from_version(version),
                            i as u64,
                        ))
                        .await?;
                    version = a.stream_version;
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(rate(per * in_flight, started.elapsed()))
}

async fn sqlite_single(log: &SqliteLog, n: usize) -> anyhow::Result<f64> {
    let org = ObjectId::generate(0);
    let stream = StreamId::aggregate("organization", ObjectId::generate(0));
    let mut version = 0;
    let started = Instant::now();
    for i in 0..n {
        version = log
            .append(commit(
                org,
                &stream,
                ExpectedVersion::from_version(version),
                i as u64,
            ))
            .await?
            .stream_version;
    }
    Ok(rate(n, started.elapsed()))
}

async fn sqlite_batched(log: &SqliteLog, n: usize) -> anyhow::Result<f64> {
    let org = ObjectId::generate(0);
    let streams: Vec<StreamId> = (0..1000)
        .map(|_| StreamId::aggregate("organization", ObjectId::generate(0)))
        .collect();
    let mut versions = vec![0u64; streams.len()];
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let batch: Vec<Commit> = streams
            .iter()
            .zip(&versions)
            .map(|(s, v)| commit(org, s, ExpectedVersion::from_version(*v), *v))
            .collect();
        for (v, r) in versions.iter_mut().zip(log.append_batch(batch).await) {
            *v = r?.stream_version;
        }
        done += streams.len();
    }
    Ok(rate(done, started.elapsed()))
}

/// How fast the portal projection applies organization updates, from a cold start.
async fn projection_rate(log: Arc<dyn EventLog>, n: usize) -> anyhow::Result<f64> {
    let mut orgs = Vec::new();
    for i in 0..64 {
        orgs.push(
            castellan_app::organizations::create(&*log, meta(), &format!("Rate {i}"), None, None)
                .await?
                .0,
        );
    }
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|i| {
                org_update(
                    orgs[i % orgs.len()],
                    &StreamId::aggregate("organization", orgs[i % orgs.len()]),
                    ExpectedVersion::Any,
                    *i as u64,
                )
            })
            .collect();
        for r in log.append_batch(batch).await {
            r?;
        }
    }
    let dir = tempfile::tempdir()?;
    let store = ReadStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("read.db").display()
    ))
    .await?;
    let runner = Runner::new(store, log.clone(), &PORTAL);
    let started = Instant::now();
    runner.catch_up().await?;
    let took = started.elapsed();
    let applied = runner
        .metrics
        .events_applied
        .load(std::sync::atomic::Ordering::Relaxed);
    Ok(applied as f64 / took.as_secs_f64())
}

/// Paced appends at `target` commits/s; the time from the append call to the portal
/// projection reaching the commit's position.
async fn latency(
    log: Arc<dyn EventLog>,
    target: f64,
    seconds: u64,
) -> anyhow::Result<(Duration, Duration, usize, f64)> {
    let dir = tempfile::tempdir()?;
    let store = ReadStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("read.db").display()
    ))
    .await?;
    let mut orgs = Vec::new();
    for i in 0..64 {
        let (org, _) =
            castellan_app::organizations::create(&*log, meta(), &format!("Bench {i}"), None, None)
                .await?;
        orgs.push(org);
    }
    let head = log.head().await?;
    let runner = Runner::new(store, log.clone(), &PORTAL);
    let progress = runner.progress();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(runner.run(stop_rx));
    progress.wait_for(head, Duration::from_secs(60)).await;

    let mut watcher = progress.clone();
    let reached = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(p) = watcher.changed().await {
            seen.push((Instant::now(), p));
        }
        seen
    });
    let started = Instant::now();
    let total = (target * seconds as f64) as usize;
    let mut sends = Vec::with_capacity(total);
    for i in 0..total {
        // Pace: the i-th append starts at i / target seconds.
        let due = started + Duration::from_secs_f64(i as f64 / target);
        tokio::time::sleep_until(due.into()).await;
        let log = log.clone();
        let org = orgs[i % orgs.len()];
        sends.push(tokio::spawn(async move {
            let at = Instant::now();
            let c = org_update(
                org,
                &StreamId::aggregate("organization", org),
                ExpectedVersion::Any,
                i as u64,
            );
            log.append(c).await.map(|a| (at, a.position))
        }));
    }
    let mut appended = Vec::with_capacity(total);
    for s in sends {
        appended.push(s.await??);
    }
    let achieved = rate(total, started.elapsed());
    let last = appended.iter().map(|(_, p)| *p).max().unwrap_or(0);
    progress.wait_for(last, Duration::from_secs(120)).await;
    stop.send(true)?;
    task.await?;
    let seen = reached.await?;
    let mut latencies: Vec<Duration> = appended
        .iter()
        .filter_map(|(at, p)| {
            let i = seen.partition_point(|(_, q)| q < p);
            seen.get(i)
                .map(|(when, _)| when.saturating_duration_since(*at))
        })
        .collect();
    latencies.sort();
    Ok((
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        latencies.len(),
        achieved,
    ))
}
