//! Cluster mode: the same node on NATS JetStream and PostgreSQL, and what happens
//! when nats-server goes away and comes back while the node runs.

use std::time::{Duration, Instant};

use castellan_e2e::nats::NatsServer;
use castellan_e2e::node::{config, TestNode};
use serde_json::{json, Value};

async fn cluster_node(nats: &NatsServer) -> Option<TestNode> {
    let pg = castellan_e2e::postgres::fresh_database().await?;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.log.url = nats.url();
    c.read_store.url = pg;
    Some(TestNode::start(c, dir).await)
}

#[tokio::test]
async fn cluster_mode_serves_organizations_from_jetstream_and_postgres() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let Some(node) = cluster_node(&nats).await else {
        return;
    };
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let url = node.url(&format!("/api/organizations/{}", acme.org_id));
    let r = node
        .http
        .put(&url)
        .header("x-api-key", &acme.api_key)
        .json(&json!({"displayName": "Acme on NATS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["displayName"],
        "Acme on NATS"
    );
    let ready: Value = node
        .http
        .get(format!("{}/readyz", node.management))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["log"], "nats");
}

#[tokio::test]
async fn a_nats_outage_answers_503_and_the_node_recovers_by_itself() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let Some(node) = cluster_node(&nats).await else {
        return;
    };
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let url = node.url(&format!("/api/organizations/{}", acme.org_id));
    let put = |name: String| {
        node.http
            .put(&url)
            .header("x-api-key", &acme.api_key)
            .json(&json!({"displayName": name}))
            .send()
    };
    assert_eq!(put("before".into()).await.unwrap().status(), 200);

    nats.kill();
    let r = put("during".into()).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "log_unavailable", "{body}");
    assert!(body["message"].as_str().unwrap().contains("NATS"), "{body}");
    let r = node
        .http
        .get(format!("{}/readyz", node.management))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let ready: Value = r.json().await.unwrap();
    assert!(
        ready["problems"][0].as_str().unwrap().starts_with("log:"),
        "{ready}"
    );

    nats.start_again();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut i = 0;
    loop {
        i += 1;
        let r = put(format!("after {i}")).await.unwrap();
        if r.status() == 200 {
            assert_eq!(
                r.json::<Value>().await.unwrap()["displayName"],
                format!("after {i}")
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery; last status {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let r = node
        .http
        .get(format!("{}/readyz", node.management))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Nothing acknowledged before the outage was lost.
    let events = node
        .running
        .log
        .read_stream(
            acme.org_id,
            &castellan_domain::envelope::StreamId::aggregate("organization", acme.org_id),
        )
        .await
        .unwrap();
    let names: Vec<Value> = events
        .iter()
        .flat_map(|c| c.commit.events.iter())
        .flat_map(|e| e.payload["changes"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["field"] == "name")
        .map(|c| c["to"].clone())
        .collect();
    assert!(names.contains(&json!("before")), "{names:?}");
    assert!(!names.contains(&json!("during")), "{names:?}");
}
