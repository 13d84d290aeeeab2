//! The directory benchmark of the directory issue.
//!
//! 1. CSV import of N rows with passwords through `castellan_app::import`, against
//!    the ideal `N × one argon2id hash ÷ cores` (the hash time measured in this run).
//! 2. Over HTTP on an in-process node (embedded default): `POST /api/systemusers`
//!    latency, then a directory grown to `--users` users (bulk import without
//!    passwords) listed page by page (`limit=100`), with p50/p99 per page and RSS.

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
