//! The directory benchmark of the directory issue.
//!
//! 1. CSV import of N rows with passwords through `castellan_app::import`, against
//!    the ideal `N × one argon2id hash ÷ cores` (the hash time measured in this run).
//! 2. Over HTTP on an in-process node (embedded default): `POST /api/systemusers`
//!    latency, then a directory grown to `--users` users (bulk import without
//!    passwords) listed page by page (`limit=100`), with p50/p99 per page and RSS.
//! 3. Writes that never stall: `--stall-creates` creates sequentially, then from 16
//!    clients at once (every other one with a password, so it queues an activation
//!    email), on the embedded SQLite store and on PostgreSQL (`--postgres URL`, or
//!    `CASTELLAN_TEST_POSTGRES_URL`): p50/p99 and how many did not answer 200.

use std::time::{Duration, Instant};

use castellan_app::import;
use castellan_domain::envelope::{Actor, EventMeta};
use castellan_e2e::node::TestNode;
use serde_json::{json, Value};

use crate::stats::{ms, quantile};

#[derive(clap::Args)]
pub struct Args {
    /// CSV rows with passwords to import.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// Users in the directory for the list benchmark.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Users created one by one over HTTP.
    #[arg(long, default_value_t = 1_000)]
    creates: usize,
    /// Users created in each phase of the write-stall benchmark (0: skip it).
    #[arg(long, default_value_t = 500)]
    stall_creates: usize,
    /// A PostgreSQL server URL for the write-stall benchmark's PostgreSQL rows
    /// (a database is created on it); default `CASTELLAN_TEST_POSTGRES_URL`.
    #[arg(long)]
    postgres: Option<String>,
    /// Only the write-stall benchmark.
    #[arg(long)]
    stalls_only: bool,
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn csv(rows: std::ops::Range<usize>, with_password: bool) -> String {
    let mut out = String::from("firstname,lastname,username,email,password\n");
    for i in rows {
        let pw = if with_password {
            format!("bench passphrase {i}")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "First{i},Last{i},user{i},user{i}@bench.test,{pw}\n"
        ));
    }
    out
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.stall_creates > 0 {
        stalls(&args).await?;
    }
    if args.stalls_only {
        return Ok(());
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "# castellan-bench directory — {} CSV rows with passwords, {} users listed, {cores} cores",
        args.rows, args.users
    );
    println!();

    // One argon2id hash (m=19456 KiB, t=2, p=1), measured here.
    let samples = 8;
    let started = Instant::now();
    for i in 0..samples {
        castellan_app::password::hash_blocking(&format!("sample passphrase {i}"))?;
    }
    let hash = started.elapsed() / samples;
    let ideal = Duration::from_secs_f64(hash.as_secs_f64() * args.rows as f64 / cores as f64);

    let node = TestNode::embedded().await;
    let org = node.bootstrap("Bench", "root@bench.test").await;
    let meta = || EventMeta::new(time::OffsetDateTime::now_utc(), Actor::system());
    let data = csv(0..args.rows, true);
    let started = Instant::now();
    let summary = import::import(
        &*node.running.log,
        org.org_id,
        meta(),
        data.as_bytes(),
        false,
        cores * 2,
        |_, _| {},
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let took = started.elapsed();
    anyhow::ensure!(
        summary.imported as usize == args.rows,
        "imported {summary:?}"
    );
    let rate = args.rows as f64 / took.as_secs_f64();
    let ideal_rate = args.rows as f64 / ideal.as_secs_f64();
    println!("| CSV import with passwords | figure | target |");
    println!("|---|---|---|");
    println!(
        "| one argon2id hash (m=19456, t=2, p=1) | {:.1} ms | |",
        ms(hash)
    );
    println!(
        "| ideal: {} rows × hash ÷ {cores} cores | {:.1} s = {ideal_rate:.0} rows/s | peer |",
        args.rows,
        ideal.as_secs_f64()
    );
    println!(
        "| Castellan import | {:.1} s = {rate:.0} rows/s = **{:.2}× ideal** | ≥ 0.8× |",
        took.as_secs_f64(),
        rate / ideal_rate
    );
    println!();

    // API creates, one at a time.
    let key = org.api_key.clone();
    let mut latencies = Vec::with_capacity(args.creates);
    for i in 0..args.creates {
        let started = Instant::now();
        let r = node
            .http
            .post(node.url("/api/systemusers"))
            .header("x-api-key", &key)
            .json(&json!({"username": format!("api{i}"), "email": format!("api{i}@bench.test")}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "create {i}: {}", r.status());
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!("| HTTP | p50 | p99 | note |");
    println!("|---|---|---|---|");
    println!("| POST /api/systemusers ({} sequential) | {:.2} ms | {:.2} ms | answered after the read model has the user |", args.creates, ms(quantile(&latencies, 0.5)), ms(quantile(&latencies, 0.99)));

    // Grow the directory without passwords, then list it page by page.
    let have = args.rows + args.creates;
    if args.users > have {
        let data = csv(have..args.users, false);
        let started = Instant::now();
        import::import(
            &*node.running.log,
            org.org_id,
            meta(),
            data.as_bytes(),
            false,
            cores * 4,
            |_, _| {},
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let took = started.elapsed();
        let head = node.running.log.head().await?;
        node.running
            .portal
            .wait_for(head, Duration::from_secs(600))
            .await;
        println!(
            "| bulk import without passwords ({} users) | {:.0} rows/s | | until readable: {:.1} s |",
            args.users - have,
            (args.users - have) as f64 / took.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    let mut pages = Vec::new();
    let mut seen = 0usize;
    let mut skip = 0;
    loop {
        let started = Instant::now();
        let r = node
            .http
            .get(node.url(&format!(
                "/api/systemusers?limit=100&skip={skip}&sort=username"
            )))
            .header("x-api-key", &key)
            .send()
            .await?;
        let body: Value = r.json().await?;
        pages.push(started.elapsed());
        let n = body["results"].as_array().map(Vec::len).unwrap_or(0);
        seen += n;
        skip += 100;
        if n < 100 {
            break;
        }
    }
    anyhow::ensure!(seen >= args.users, "listed {seen} of {}", args.users);
    pages.sort();
    println!(
        "| GET /api/systemusers?limit=100 over {seen} users ({} pages) | {:.2} ms | {:.2} ms | RSS {:.0} MiB |",
        pages.len(),
        ms(quantile(&pages, 0.5)),
        ms(quantile(&pages, 0.99)),
        rss_mib()
    );
    Ok(())
}

/// Creates `n` users from `clients` clients at once (ids from `first`); each create's
/// latency, and the answers that were not 200.
async fn creates(
    node: &std::sync::Arc<TestNode>,
    key: &str,
    first: usize,
    n: usize,
    clients: usize,
) -> (Vec<Duration>, Vec<String>) {
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (node, key) = (node.clone(), key.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut refused = Vec::new();
            for i in (first + client..first + n).step_by(clients) {
                let mut body =
                    json!({"username": format!("w{i}"), "email": format!("w{i}@bench.test")});
                if i % 2 == 0 {
                    body["password"] = json!(format!("Bench-passphrase-{i}"));
                }
                let started = Instant::now();
                let (status, answer) = node
                    .call(&key, "POST", "/api/systemusers", Some(body))
                    .await;
                latencies.push(started.elapsed());
                if status != 200 {
                    refused.push(format!("w{i}: {status} {answer}"));
                }
            }
            (latencies, refused)
        }));
    }
    let (mut latencies, mut refused) = (Vec::new(), Vec::new());
    for t in tasks {
        let (l, r) = t.await.expect("a client task");
        latencies.extend(l);
        refused.extend(r);
    }
    latencies.sort();
    (latencies, refused)
}

/// Part 3: sequential and 16-way creates on both read stores.
async fn stalls(args: &Args) -> anyhow::Result<()> {
    let postgres = args
        .postgres
        .clone()
        .or_else(|| std::env::var("CASTELLAN_TEST_POSTGRES_URL").ok())
        .filter(|u| !u.is_empty());
    println!(
        "| creates ({} a phase; every other with a password) | store | p50 | p99 | not 200 | wall |",
        args.stall_creates
    );
    println!("|---|---|---|---|---|---|");
    let mut stores = vec![("SQLite (embedded)", None)];
    match &postgres {
        Some(url) => stores.push(("PostgreSQL", Some(url.clone()))),
        None => println!(
            "| (PostgreSQL skipped: no --postgres or CASTELLAN_TEST_POSTGRES_URL) | | | | | |"
        ),
    }
    for (name, url) in stores {
        let dir = tempfile::tempdir()?;
        let mut c = castellan_e2e::node::config(dir.path());
        c.projections.consistency_wait_ms = 5000;
        if let Some(server) = url {
            c.read_store.url = fresh_database(&server).await?;
        }
        let node = std::sync::Arc::new(TestNode::start(c, dir).await);
        let org = node.bootstrap("Bench", "root@bench.test").await;
        for (mode, clients, first) in [("sequential", 1, 0), ("16 clients", 16, args.stall_creates)]
        {
            let started = Instant::now();
            let (latencies, refused) =
                creates(&node, &org.api_key, first, args.stall_creates, clients).await;
            println!(
                "| {mode} | {name} | {:.1} ms | {:.1} ms | {} | {:.1} s |",
                ms(quantile(&latencies, 0.5)),
                ms(quantile(&latencies, 0.99)),
                refused.len(),
                started.elapsed().as_secs_f64()
            );
            if let Some(first) = refused.first() {
                println!("|   first refusal: {first} | | | | | |");
            }
        }
    }
    println!();
    Ok(())
}

/// A new database on the PostgreSQL server at `server`; its URL.
async fn fresh_database(server: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("castellan_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(server).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let (prefix, _) = server
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("{server}: a URL with a database"))?;
    Ok(format!("{prefix}/{name}"))
}
