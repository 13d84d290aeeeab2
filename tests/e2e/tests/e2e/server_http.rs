//! The organization, end to end on the embedded default: command → events → portal
//! projection → `GET /api/organizations/{id}`, over real HTTP.

use std::io::Cursor;

use castellan_domain::envelope::StreamId;
use castellan_e2e::node::TestNode;
use image::{ImageBuffer, ImageFormat, Rgba};
use serde_json::{json, Value};

fn png(w: u32, h: u32, background: [u8; 4]) -> Vec<u8> {
    let img = ImageBuffer::from_fn(w, h, |x, y| {
        if x > w / 3 && x < 2 * w / 3 && y > h / 3 && y < 2 * h / 3 {
            Rgba([10, 80, 200, 255])
        } else {
            Rgba(background)
        }
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

#[tokio::test]
async fn an_organization_flows_from_command_to_read_model() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let org_url = node.url(&format!("/api/organizations/{}", acme.org_id));

    let r = node
        .http
        .get(&org_url)
        .header("x-api-key", &acme.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["_id"], json!(acme.org_id.to_string()));
    assert_eq!(body["displayName"], "Acme");
    assert_eq!(body["contactEmail"], "root@acme.test");

    // An update answers with its position and the state after it (read-your-writes).
    let r = node
        .http
        .put(&org_url)
        .header("x-api-key", &acme.api_key)
        .header("user-agent", "e2e-test/1")
        .header("x-request-id", "req-42")
        .json(&json!({"displayName": "Acme Corp", "contactName": "Ada", "settings": {"theme": "dark"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let position: u64 = r.headers()["x-castellan-position"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["displayName"], "Acme Corp");
    assert_eq!(body["contactName"], "Ada");
    assert_eq!(body["settings"]["theme"], "dark");

    // The event in the log: organization_update with its changes and request metadata.
    let commits = node
        .running
        .log
        .read_stream(
            acme.org_id,
            &StreamId::aggregate("organization", acme.org_id),
        )
        .await
        .unwrap();
    let last = commits.last().unwrap();
    assert_eq!(last.position, position);
    let e = last.envelopes().next().unwrap();
    assert_eq!(e.event_type, "organization_update");
    assert_eq!(
        e.payload["changes"],
        json!([
            {"field": "name", "from": "Acme", "to": "Acme Corp"},
            {"field": "contact_name", "from": null, "to": "Ada"},
            {"field": "settings.theme", "from": null, "to": "dark"},
        ])
    );
    assert_eq!(
        e.actor.id.as_deref(),
        Some(acme.admin_id.to_string().as_str())
    );
    assert_eq!(e.user_agent.as_deref(), Some("e2e-test/1"));
    assert_eq!(e.correlation_id.as_deref(), Some("req-42"));
    assert_eq!(e.client_ip.as_deref(), Some("127.0.0.1"));
    let first = commits[0].envelopes().next().unwrap();
    assert_eq!(first.event_type, "organization_create");

    // A read may wait for a position it was given.
    let r = node
        .http
        .get(&org_url)
        .header("x-api-key", &acme.api_key)
        .header("x-castellan-min-position", position.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let far = node
        .http
        .get(format!("{org_url}?minPosition={}", position + 1_000_000))
        .header("x-api-key", &acme.api_key)
        .send()
        .await;
    // Bounded: answers 503 not_caught_up after the configured wait.
    let far = far.unwrap();
    assert_eq!(far.status(), 503);
    assert_eq!(far.json::<Value>().await.unwrap()["code"], "not_caught_up");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let org_url = node.url(&format!("/api/organizations/{}", acme.org_id));
    let put = |body: &'static str| {
        node.http
            .put(&org_url)
            .header("x-api-key", &acme.api_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = put(r#"{"displayName": "", "contactEmail": "nope"}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "invalid_field");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "contact_email"]);

    let r = put(r#"{"displayName": "x""#).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_json");
    let r = put(r#"{"colour": "red"}"#).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("colour"));
    let r = put(r#"{"settings": {"bad key": 1}}"#).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["field"],
        "settings.bad key"
    );

    // Nothing was appended by any of them: the stream holds only the create.
    let commits = node
        .running
        .log
        .read_stream(
            acme.org_id,
            &StreamId::aggregate("organization", acme.org_id),
        )
        .await
        .unwrap();
    assert_eq!(commits.len(), 1);

    // An oversized body is refused before it is read whole.
    let big = vec![b'a'; 2 * 1024 * 1024];
    let r = node
        .http
        .put(format!("{org_url}/logo"))
        .header("x-api-key", &acme.api_key)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn logo_upload_checks_every_rule_and_serves_the_image() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let logo_url = node.url(&format!("/api/organizations/{}/logo", acme.org_id));

    let bad = png(200, 100, [0, 0, 0, 255]);
    let r = node
        .http
        .put(&logo_url)
        .header("x-api-key", &acme.api_key)
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    let messages: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("400×400"));
    assert!(messages[1].contains("white or transparent"));

    let r = node
        .http
        .put(&logo_url)
        .header("x-api-key", &acme.api_key)
        .body("GIF89a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let good = png(400, 400, [0, 0, 0, 0]);
    let r = node
        .http
        .put(&logo_url)
        .header("x-api-key", &acme.api_key)
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["logo"]["width"], 400);
    assert_eq!(
        body["logoUrl"],
        format!("/api/organizations/{}/logo", acme.org_id)
    );

    let r = node.http.get(&logo_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().to_vec(), good);

    let r = node
        .http
        .delete(&logo_url)
        .header("x-api-key", &acme.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(node.http.get(&logo_url).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn organizations_are_isolated_and_keys_are_required() {
    let node = TestNode::embedded().await;
    let a = node.bootstrap("Org A", "a@a.test").await;
    let b = node.bootstrap("Org B", "b@b.test").await;
    let b_url = node.url(&format!("/api/organizations/{}", b.org_id));

    for req in [
        node.http.get(&b_url),
        node.http.put(&b_url).json(&json!({"displayName": "pwned"})),
        node.http.put(format!("{b_url}/logo")).body(vec![1, 2, 3]),
    ] {
        let r = req.header("x-api-key", &a.api_key).send().await.unwrap();
        assert_eq!(r.status(), 404, "A's key must not reach B");
    }
    let r = node
        .http
        .get(&b_url)
        .header("x-api-key", &b.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["displayName"], "Org B");

    let r = node.http.get(&b_url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = node
        .http
        .get(&b_url)
        .header("x-api-key", "x".repeat(40))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = node
        .http
        .get(&b_url)
        .header("x-api-key", &b.api_key)
        .header("x-org-id", a.org_id.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let list: Value = node
        .http
        .get(node.url("/api/organizations"))
        .header("x-api-key", &a.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["totalCount"], 1);
    assert_eq!(list["results"][0]["displayName"], "Org A");

    // Rotating the key revokes the old one.
    let (new_key, position) = castellan_app::admins::rotate_api_key(
        &*node.running.log,
        a.org_id,
        a.admin_id,
        castellan_domain::envelope::EventMeta::new(
            time::OffsetDateTime::now_utc(),
            castellan_domain::Actor::system(),
        ),
    )
    .await
    .unwrap();
    node.running
        .admins
        .progress()
        .wait_for(position, std::time::Duration::from_secs(5))
        .await;
    let a_url = node.url(&format!("/api/organizations/{}", a.org_id));
    assert_eq!(
        node.http
            .get(&a_url)
            .header("x-api-key", &a.api_key)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        node.http
            .get(&a_url)
            .header("x-api-key", &new_key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn management_reports_health_readiness_and_metrics() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let r = node
        .http
        .get(format!("{}/healthz", node.management))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    node.running
        .portal
        .wait_for(acme.position, std::time::Duration::from_secs(5))
        .await;
    let r = node
        .http
        .get(format!("{}/readyz", node.management))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ready: Value = r.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["projections"]["portal"]["lag"], 0);
    let text = node
        .http
        .get(format!("{}/metrics", node.management))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("castellan_log_appends_total{result=\"ok\"}"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "castellan_projection_position{{projection=\"portal\"}} {}",
            acme.position
        )),
        "{text}"
    );
    assert!(
        text.contains("castellan_projection_lag_positions{projection=\"portal\"} 0"),
        "{text}"
    );

    // A graceful stop ends with every projection checkpointed at the head.
    let head = node.running.log.head().await.unwrap();
    let store = node.running.store.clone();
    node.running.shutdown().await;
    let cp = castellan_projections::runtime::checkpoint(&store, "portal")
        .await
        .unwrap();
    assert_eq!(cp, head);
}
