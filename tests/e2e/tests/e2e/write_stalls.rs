//! Writes never stall: many creates at once, with the mail relay writing the outbox
//! beside the projections, all answer 2xx within the read-your-writes wait, and no
//! event is set aside for what was only a busy store. On the embedded default and on
//! PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_e2e::node::{config, TestNode};
use castellan_e2e::smtp::SmtpServer;
use castellan_mail::TlsMode;
use serde_json::json;
use sqlx::Row;

const CLIENTS: usize = 16;
const CREATES: usize = 500;

async fn node(smtp_port: u16, read_store: Option<String>) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    // The shipped default, which the report measured against.
    c.projections.consistency_wait_ms = 5000;
    c.smtp.host = "127.0.0.1".into();
    c.smtp.port = smtp_port;
    c.smtp.tls = TlsMode::None;
    c.smtp.from = "Castellan <directory@acme.test>".into();
    c.smtp.poll_interval_ms = 50;
    if let Some(url) = read_store {
        c.read_store.url = url;
    }
    TestNode::start(c, dir).await
}

/// 60 sequential creates, then 500 from 16 clients (every other one with a
/// password, so half queue an activation email): every answer is 200.
async fn creates_all_answer_2xx(node: TestNode) {
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let key = acme.api_key.clone();

    let started = Instant::now();
    for i in 0..60 {
        let (s, body) = node
            .call(
                &key,
                "POST",
                "/api/systemusers",
                Some(json!({"username": format!("seq{i}"), "email": format!("seq{i}@acme.test")})),
            )
            .await;
        assert_eq!(s, 200, "sequential create {i}: {body}");
    }
    eprintln!("60 sequential creates: {:?}", started.elapsed());

    let node = Arc::new(node);
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (node, key) = (node.clone(), key.clone());
        clients.push(tokio::spawn(async move {
            let mut refused = Vec::new();
            for i in (client..CREATES).step_by(CLIENTS) {
                let mut body =
                    json!({"username": format!("u{i}"), "email": format!("u{i}@acme.test")});
                if i % 2 == 0 {
                    body["password"] = json!(format!("Corr3ct-horse-{i}!"));
                }
                let (s, answer) = node
                    .call(&key, "POST", "/api/systemusers", Some(body))
                    .await;
                if s != 200 {
                    refused.push(format!("u{i}: {s} {answer}"));
                }
            }
            refused
        }));
    }
    let mut refused = Vec::new();
    for c in clients {
        refused.extend(c.await.unwrap());
    }
    eprintln!(
        "{CREATES} creates from {CLIENTS} clients: {:?}",
        started.elapsed()
    );
    assert!(
        refused.is_empty(),
        "{} of {CREATES} creates were not 200: {:?}",
        refused.len(),
        &refused[..refused.len().min(5)]
    );

    let (s, list) = node
        .call(&key, "GET", "/api/systemusers?limit=1", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(list["totalCount"], 60 + CREATES, "{list}");
    let failed: i64 = sqlx::query("SELECT COUNT(*) FROM projection_failed_events")
        .fetch_one(&node.running.store.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 0, "no event was set aside");
    // The relay kept writing the outbox all along: every email was queued, once.
    let queued: i64 = sqlx::query("SELECT COUNT(*) FROM outbox")
        .fetch_one(&node.running.store.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued as usize, 60 + CREATES / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_stall_on_the_embedded_store() {
    let Some(mut smtp) = SmtpServer::new() else {
        return;
    };
    smtp.start();
    let node = node(smtp.port, None).await;
    tokio::time::timeout(Duration::from_secs(600), creates_all_answer_2xx(node))
        .await
        .expect("the creates finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_stall_on_postgres() {
    let Some(mut smtp) = SmtpServer::new() else {
        return;
    };
    let Some(pg) = castellan_e2e::postgres::fresh_database().await else {
        return;
    };
    smtp.start();
    let node = node(smtp.port, Some(pg)).await;
    tokio::time::timeout(Duration::from_secs(600), creates_all_answer_2xx(node))
        .await
        .expect("the creates finish");
}
