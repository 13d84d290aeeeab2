//! The insights benchmark: 10M generated events (50 organizations, 90 days) through the
//! materializer into Parquet; Directory Insights queries through Castellan's query path
//! beside DuckDB on the same files with the same predicates; one window exported as
//! gzipped JSON to an S3 server beside `aws s3 cp` of the same bytes.
//!
//! The 10M events come from a generator that serves as the log (each commit a pure
//! function of its position), so the rate is the materializer's own; a second run
//! materializes 1M of the same events from the embedded SQLite log, so the cost of
//! reading the log is shown too.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use castellan_app::ports::EventLog;
use castellan_insights::query::EventQuery;
use castellan_insights::{Insights, Materializer, MaterializerConfig, Storage};
use serde_json::{json, Value};

use crate::insights_gen::{GeneratedLog, Generator};
use crate::stats::{ms, quantile};

#[derive(clap::Args)]
pub struct Args {
    /// Events materialized from the generator.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    #[arg(long, default_value_t = 50)]
    orgs: usize,
    #[arg(long, default_value_t = 90)]
    days: i64,
    /// Events appended to and materialized from the SQLite log (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    sqlite_events: u64,
    /// Where the files go (default: a temporary directory, removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// With --dir: reuse files materialized there by an earlier run (queries only).
    #[arg(long)]
    reuse: bool,
    /// Timed repetitions of each query (after two warm-up runs).
    #[arg(long, default_value_t = 15)]
    reps: usize,
    /// A Python with duckdb (tests/run.sh installs one).
    #[arg(long, env = "CASTELLAN_TEST_PYTHON")]
    python: Option<String>,
    /// The `aws` command (PyPI awscli), for the export peer.
    #[arg(long, env = "CASTELLAN_BENCH_AWS")]
    aws: Option<String>,
}

/// The S3 server the test command starts (tests/garage.sh).
struct S3 {
    endpoint: String,
    bucket: String,
    key_id: String,
    secret: String,
    region: String,
}

fn s3_from_env() -> Option<S3> {
    let v = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
    Some(S3 {
        endpoint: v("CASTELLAN_TEST_S3_ENDPOINT")?,
        bucket: v("CASTELLAN_TEST_S3_BUCKET")?,
        key_id: v("CASTELLAN_TEST_S3_ACCESS_KEY_ID")?,
        secret: v("CASTELLAN_TEST_S3_SECRET_ACCESS_KEY")?,
        region: v("CASTELLAN_TEST_S3_REGION").unwrap_or_else(|| "garage".into()),
    })
}

fn dir_size(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                let (f, b) = dir_size(&p);
                files += f;
                bytes += b;
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files += 1;
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    (files, bytes)
}

/// Runs the materializer over `log` to its head; the elapsed time.
async fn materialize(log: Arc<dyn EventLog>, root: &Path) -> anyhow::Result<Duration> {
    let head = log.head().await?;
    let m = Arc::new(Materializer::new(
        log,
        Storage::local(root)?,
        // The defaults of `castellan serve` (a flush a second or per 200k rows), but its
        // compaction after catching up is left to the timed step after this one.
        MaterializerConfig {
            compact_interval_ms: u64::MAX,
            ..Default::default()
        },
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(m.clone().run(stopped));
    let mut last_report = Instant::now();
    while m.status.checkpoint.load(Ordering::SeqCst) < head {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if last_report.elapsed() > Duration::from_secs(10) {
            let c = m.status.checkpoint.load(Ordering::SeqCst);
            eprintln!(
                "  … {c} of {head} ({:.0} events/s)",
                c as f64 / started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    let elapsed = started.elapsed();
    stop.send(true).ok();
    task.await?;
    let rows = m.status.rows_written.load(Ordering::SeqCst);
    if rows != head {
        bail!("materialized {rows} rows of {head} events");
    }
    Ok(elapsed)
}

fn iso(ms: i64) -> String {
    castellan_insights::event::format_ms(ms)
}

/// One benchmark query: the API body for Castellan, the SQL for DuckDB.
struct Query {
    name: &'static str,
    kind: &'static str,
    body: Value,
    sql: String,
}

fn queries(g: &Generator, root: &Path, org: &str) -> Vec<Query> {
    let day = 86_400_000;
    // The partitions (days, or months once compacted) with days in the range.
    let org_dir = root.join(format!("org={org}"));
    let files = |from: i64, to: i64| -> String {
        let (first, last) = (iso(from)[..10].to_string(), iso(to)[..10].to_string());
        let mut globs: Vec<String> = std::fs::read_dir(&org_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|d| {
                let date = d.file_name().to_str()?.strip_prefix("date=")?.to_string();
                let inside = match date.len() {
                    7 => date.as_str() >= &first[..7] && date.as_str() <= &last[..7],
                    _ => date >= first && date <= last,
                };
                // DuckDB refuses a pattern that matches nothing (a compacted day's
                // directory is left empty).
                let has_files = std::fs::read_dir(d.path()).ok()?.next().is_some();
                (inside && has_files).then(|| format!("'{}/*.parquet'", d.path().display()))
            })
            .collect();
        globs.sort();
        format!("read_parquet([{}])", globs.join(", "))
    };
    let range = |from: i64, to: i64| {
        format!(
            "\"timestamp\" >= TIMESTAMPTZ '{}' AND \"timestamp\" <= TIMESTAMPTZ '{}'",
            iso(from),
            iso(to)
        )
    };
    let (w7, w30, w90) = (
        (g.start_ms + 40 * day, g.start_ms + 47 * day),
        (g.start_ms + 30 * day, g.start_ms + 60 * day),
        (g.start_ms, g.start_ms + g.span_ms),
    );
    let user = Generator::username(17);
    vec![
        Query {
            name: "events: 7 days, ldap, success=false, DESC, limit 1000",
            kind: "events",
            body: json!({"service": ["ldap"], "start_time": iso(w7.0), "end_time": iso(w7.1),
                "search_term": {"and": [{"success": false}]}, "sort": "DESC", "limit": 1000}),
            sql: format!(
                "SELECT id, event FROM {} WHERE {} AND service IN ('ldap') AND success = false \
                 ORDER BY \"timestamp\" DESC, id DESC LIMIT 1000",
                files(w7.0, w7.1),
                range(w7.0, w7.1)
            ),
        },
        Query {
            name: "events: 90 days, all, username, ASC, limit 100",
            kind: "events",
            body: json!({"service": ["all"], "start_time": iso(w90.0), "end_time": iso(w90.1),
                "search_term": {"and": [{"username": user}]}, "sort": "ASC", "limit": 100}),
            sql: format!(
                "SELECT id, event FROM {} WHERE {} AND username = '{user}' \
                 ORDER BY \"timestamp\" ASC, id ASC LIMIT 100",
                files(w90.0, w90.1),
                range(w90.0, w90.1)
            ),
        },
        Query {
            name: "count: 30 days, radius+sso, success=false",
            kind: "count",
            body: json!({"service": ["radius", "sso"], "start_time": iso(w30.0), "end_time": iso(w30.1),
                "search_term": {"and": [{"success": false}]}}),
            sql: format!(
                "SELECT count(*) FROM {} WHERE {} AND service IN ('radius', 'sso') AND success = false",
                files(w30.0, w30.1),
                range(w30.0, w30.1)
            ),
        },
        Query {
            name: "distinct: 30 days, all, username (top 10)",
            kind: "distinct",
            body: json!({"service": ["all"], "start_time": iso(w30.0), "end_time": iso(w30.1),
                "field": "username", "limit": 10}),
            sql: format!(
                "SELECT username, count(*) AS n FROM {} WHERE {} AND username IS NOT NULL \
                 GROUP BY username ORDER BY n DESC, username ASC",
                files(w30.0, w30.1),
                range(w30.0, w30.1)
            ),
        },
        Query {
            name: "interval: 90 days, ldap, 1 day",
            kind: "interval",
            body: json!({"service": ["ldap"], "start_time": iso(w90.0), "end_time": iso(w90.1),
                "interval_unit": "d", "interval_value": 1}),
            sql: format!(
                "SELECT (epoch_ms(\"timestamp\") // 86400000) * 86400000 AS k, count(*) FROM {} \
                 WHERE {} AND service IN ('ldap') GROUP BY k ORDER BY k",
                files(w90.0, w90.1),
                range(w90.0, w90.1)
            ),
        },
    ]
}

/// Runs one query through Castellan's path: how long it took, and a fingerprint of
/// the answer to compare with DuckDB's (made after the clock stops, as DuckDB's is).
async fn run_castellan(
    insights: &Insights,
    org: &str,
    q: &Query,
) -> anyhow::Result<(Duration, Value)> {
    let parsed = EventQuery::parse(&q.body)?;
    let buckets = |v: Value| {
        json!(v["buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| json!([b["key"], b["doc_count"]]))
            .collect::<Vec<_>>())
    };
    let t = Instant::now();
    Ok(match q.kind {
        "events" => {
            let (events, _) = insights.events(org, &parsed).await?;
            let took = t.elapsed();
            let ids = events
                .iter()
                .map(|e| Ok(serde_json::from_str::<Value>(e)?["id"].clone()))
                .collect::<anyhow::Result<Vec<_>>>()?;
            (took, json!(ids))
        }
        "count" => {
            let n = insights.count(org, &parsed).await?;
            (t.elapsed(), json!(n))
        }
        "distinct" => {
            let v = insights.distinct(org, &parsed, "username").await?;
            (t.elapsed(), buckets(v))
        }
        _ => {
            let v = insights.interval(org, &parsed, "d", 1, 0).await?;
            (t.elapsed(), buckets(v))
        }
    })
}

const DUCKDB_SCRIPT: &str = r#"
import duckdb, json, statistics, sys, time
spec = json.load(sys.stdin)
con = duckdb.connect()
con.execute("SET threads TO 2")
out = []
for q in spec["queries"]:
    for _ in range(2):
        con.execute(q["sql"]).fetchall()
    times = []
    for _ in range(spec["reps"]):
        t = time.perf_counter()
        rows = con.execute(q["sql"]).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    if q["kind"] == "events":
        fp = [r[0] for r in rows]
    elif q["kind"] == "count":
        fp = rows[0][0]
    elif q["kind"] == "distinct":
        fp = [[r[0], r[1]] for r in rows[:10]]
    else:
        fp = [[r[0], r[1]] for r in rows]
    out.append({"median_ms": statistics.median(times), "fingerprint": fp})
print(json.dumps(out))
"#;

fn duckdb(python: &str, queries: &[Query], reps: usize) -> anyhow::Result<Vec<Value>> {
    let spec = json!({"reps": reps, "queries": queries.iter()
        .map(|q| json!({"sql": q.sql, "kind": q.kind})).collect::<Vec<_>>()});
    let mut child = std::process::Command::new(python)
        .args(["-c", DUCKDB_SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("run {python}"))?;
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        spec.to_string().as_bytes(),
    )?;
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("duckdb script failed");
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let base = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&base)?;
    let start_ms = 1_788_134_400_000; // 2026-08-31T00:00:00Z
    println!(
        "# Insights benchmark: {} events, {} organizations, {} days ({} cores)",
        args.events,
        args.orgs,
        args.days,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // The generator alone, so its share of the materialization time is known.
    let sample = args.events.min(1_000_000);
    let gen_log = GeneratedLog(Generator::new(sample, args.orgs, args.days, start_ms));
    let t = Instant::now();
    let mut p = 0;
    while p < sample {
        p += gen_log.read_after(p, 5000).await?.len() as u64;
    }
    let gen_rate = sample as f64 / t.elapsed().as_secs_f64();

    // Where an event's time goes, on one thread: to columns (the Directory Insights
    // object, its column values and JSON), then to Parquet.
    {
        let g = Generator::new(200_000, args.orgs, args.days, start_ms);
        let events: Vec<_> = (1..=200_000)
            .flat_map(|p| g.commit(p).into_envelopes())
            .collect();
        let t = Instant::now();
        let batch = castellan_insights::schema::to_batch(&events)?;
        let columns = t.elapsed();
        let t = Instant::now();
        let bytes = castellan_insights::parquet_file::encode(std::slice::from_ref(&batch))?;
        let parquet = t.elapsed();
        let per = |d: Duration| d.as_secs_f64() * 1e6 / 200_000.0;
        println!(
            "\nOne thread, per event: to columns (Directory Insights object, column values, JSON) {:.2} µs, to Parquet (zstd) {:.2} µs ({} rows, {} bytes)",
            per(columns),
            per(parquet),
            batch.num_rows(),
            bytes.len()
        );
    }

    // 1. Materialization of the whole set from the generator.
    let root = base.join("insights");
    let g = Generator::new(args.events, args.orgs, args.days, start_ms);
    let log: Arc<dyn EventLog> = Arc::new(GeneratedLog(g.clone()));
    let done_before = std::fs::read_to_string(root.join("_checkpoint")).ok();
    let took = if args.reuse && done_before.as_deref() == Some(&args.events.to_string()) {
        eprintln!("reusing the files in {}", root.display());
        Duration::ZERO
    } else {
        eprintln!("materializing {} events …", args.events);
        materialize(log.clone(), &root).await?
    };
    // The background compaction, which waits until the log is caught up: every
    // finished day's files merged into one, timed apart from the materialization.
    let (files_before, _) = dir_size(&root);
    let t = Instant::now();
    let compactor = Materializer::new(log, Storage::local(&root)?, MaterializerConfig::default());
    compactor.recover().await?;
    compactor.compact().await?;
    let compaction = t.elapsed();
    let (files, bytes) = dir_size(&root);
    let rate = args.events as f64 / took.as_secs_f64();
    println!("\n## Materialization (log → durable Parquet files, checkpoint moved)");
    println!("| source | events | time | events/s | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| generator as the log ({} events/s alone) | {} | {:.1} s | **{:.0}** | ≥ 200,000 |",
        gen_rate as u64,
        args.events,
        took.as_secs_f64(),
        rate
    );

    // 2. The same events from the embedded SQLite log.
    if args.sqlite_events > 0 {
        let db = base.join("sqlite");
        std::fs::create_dir_all(&db)?;
        let sqlite: Arc<dyn EventLog> = Arc::new(
            castellan_log_sqlite::SqliteLog::open(&db.join("events.db"))
                .await
                .context("open the SQLite log")?,
        );
        let sg = Generator::new(args.sqlite_events, args.orgs, args.days, start_ms);
        let t = Instant::now();
        let mut pos = 0;
        while pos < args.sqlite_events {
            let n = (args.sqlite_events - pos).min(1000);
            let batch: Vec<_> = (pos + 1..=pos + n).map(|p| sg.commit(p).commit).collect();
            for r in sqlite.append_batch(batch).await {
                r?;
            }
            pos += n;
        }
        let append_rate = args.sqlite_events as f64 / t.elapsed().as_secs_f64();
        let took = materialize(sqlite, &db.join("insights")).await?;
        println!(
            "| embedded SQLite log (appended at {:.0} events/s in batches of 1000) | {} | {:.1} s | {:.0} | |",
            append_rate,
            args.sqlite_events,
            took.as_secs_f64(),
            args.sqlite_events as f64 / took.as_secs_f64()
        );
    }
    println!(
        "\nCompaction (each month's finished days into one file, after catching up): {files_before} files → {files} in {:.1} s.",
        compaction.as_secs_f64()
    );
    println!(
        "\nFiles: {files} Parquet files, {:.1} MiB ({:.1} bytes/event, zstd, the whole event as JSON included).",
        bytes as f64 / 1048576.0,
        bytes as f64 / args.events as f64
    );

    // 3. Queries: Castellan's path against DuckDB on the same files.
    let insights = Insights::new(Storage::local(&root)?);
    let org = g.orgs[7].to_string();
    let root_abs = root.canonicalize()?;
    let qs = queries(&g, &root_abs, &org);
    let mut ours = Vec::new();
    for q in &qs {
        for _ in 0..2 {
            run_castellan(&insights, &org, q).await?;
        }
        let mut times = Vec::new();
        let mut fp = Value::Null;
        for _ in 0..args.reps {
            let (took, answer) = run_castellan(&insights, &org, q).await?;
            times.push(took);
            fp = answer;
        }
        times.sort();
        ours.push((ms(quantile(&times, 0.5)), fp));
    }
    println!(
        "\n## Directory Insights queries (one organization of {}, ~{} events; hot medians of {} runs)",
        args.orgs,
        args.events / args.orgs as u64,
        args.reps
    );
    match args.python.as_deref() {
        Some(python) => {
            let theirs = duckdb(python, &qs, args.reps)?;
            println!("| query | Castellan ms | DuckDB ms | ratio | same answer |");
            println!("|---|---|---|---|---|");
            let mut log_sum = 0.0;
            for (i, q) in qs.iter().enumerate() {
                let (c, fp) = &ours[i];
                let d = theirs[i]["median_ms"].as_f64().unwrap_or(f64::NAN);
                let same = &theirs[i]["fingerprint"] == fp;
                log_sum += (c / d).ln();
                println!(
                    "| {} | {c:.2} | {d:.2} | {:.2} | {} |",
                    q.name,
                    c / d,
                    if same { "yes" } else { "NO" }
                );
                if !same {
                    eprintln!(
                        "  answers differ: castellan {fp}\n  duckdb {}",
                        theirs[i]["fingerprint"]
                    );
                }
            }
            println!(
                "\nGeometric mean of Castellan/DuckDB: **{:.2}** (target ≤ 1.0)",
                (log_sum / qs.len() as f64).exp()
            );
        }
        None => {
            println!("(no CASTELLAN_TEST_PYTHON with duckdb: DuckDB column skipped)");
            for (i, q) in qs.iter().enumerate() {
                println!("| {} | {:.2} ms |", q.name, ours[i].0);
            }
        }
    }

    // 4. Export of one window to S3.
    match s3_from_env() {
        Some(s3) => export(&args, &insights, &g, &org, &s3).await?,
        None => println!("\n(no CASTELLAN_TEST_S3_*: the export figures need tests/garage.sh)"),
    }
    Ok(())
}

async fn export(
    args: &Args,
    insights: &Insights,
    g: &Generator,
    org: &str,
    s3: &S3,
) -> anyhow::Result<()> {
    use castellan_export::sink::Sink;
    let config = castellan_export::ExportConfig {
        sink: "s3".into(),
        s3_bucket: s3.bucket.clone(),
        s3_endpoint: s3.endpoint.clone(),
        s3_region: s3.region.clone(),
        s3_access_key_id: s3.key_id.clone(),
        s3_secret_access_key: s3.secret.clone(),
        ..Default::default()
    };
    let sink = castellan_export::sink::S3Sink::new(&config).await?;
    let (start, end) = (g.start_ms, g.start_ms + g.span_ms);
    let mut rounds = Vec::new();
    let mut body = Vec::new();
    let mut events = 0;
    for i in 0..3 {
        let t = Instant::now();
        let list = insights.window(org, start, end, &[]).await?;
        let queried = t.elapsed();
        let texts: Vec<&str> = list.iter().map(|e| e.json.as_str()).collect();
        body = castellan_export::render::gzip_json(&texts, false)?;
        let rendered = t.elapsed();
        sink.put(&format!("bench/castellan-{i}.json.gz"), body.clone())
            .await?;
        let total = t.elapsed();
        events = list.len();
        rounds.push((queried, rendered - queried, total - rendered, total));
    }
    rounds.sort_by_key(|r| r.3);
    let (q, r, put, total) = rounds[1];
    let mb = body.len() as f64 / 1_048_576.0;
    println!(
        "\n## Export of one window (one organization, {} days: {events} events, {mb:.1} MiB gzipped, MultiLine, gzip level 6; median of 3)",
        args.days
    );
    println!("| step | time | MiB/s of gzipped JSON |");
    println!("|---|---|---|");
    println!("| query (Parquet → events) | {:.0} ms | |", ms(q));
    println!(
        "| render (JSON re-spaced + gzip -6, chunks on every core) | {:.0} ms | |",
        ms(r)
    );
    println!(
        "| PUT to S3 (aws-sdk-s3, multipart over 8 MiB) | {:.0} ms | {:.1} |",
        ms(put),
        mb / put.as_secs_f64()
    );
    println!(
        "| whole window | {:.0} ms | **{:.1}** |",
        ms(total),
        mb / total.as_secs_f64()
    );
    match args.aws.as_deref() {
        Some(aws) => {
            let file = tempfile::NamedTempFile::new()?;
            std::fs::write(file.path(), &body)?;
            let mut times = Vec::new();
            for i in 0..3 {
                let t = Instant::now();
                let status = std::process::Command::new(aws)
                    .args([
                        "s3",
                        "cp",
                        "--quiet",
                        &file.path().to_string_lossy(),
                        &format!("s3://{}/bench/aws-{i}.json.gz", s3.bucket),
                        "--endpoint-url",
                        &s3.endpoint,
                    ])
                    .env("AWS_ACCESS_KEY_ID", &s3.key_id)
                    .env("AWS_SECRET_ACCESS_KEY", &s3.secret)
                    .env("AWS_DEFAULT_REGION", &s3.region)
                    .status()?;
                if !status.success() {
                    bail!("aws s3 cp failed");
                }
                times.push(t.elapsed());
            }
            times.sort();
            let d = times[1];
            println!(
                "| peer: `aws s3 cp` of the same file (process start included) | {:.0} ms | {:.1} |",
                ms(d),
                mb / d.as_secs_f64()
            );
        }
        None => println!("(no CASTELLAN_BENCH_AWS: the aws s3 cp peer skipped)"),
    }
    Ok(())
}
