//! Emails through a real SMTP server (aiosmtpd): activation links and invitations are
//! queued in the outbox and delivered by the relay; a relay that cannot reach the
//! server loses nothing and delivers once it can. Activation links work once, expire,
//! and apply the password policy.

use std::time::Duration;

use castellan_e2e::node::{config, TestNode};
use castellan_e2e::smtp::SmtpServer;
use castellan_mail::TlsMode;
use serde_json::{json, Value};

async fn node_with_smtp(port: u16) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.smtp.host = "127.0.0.1".into();
    c.smtp.port = port;
    c.smtp.tls = TlsMode::None;
    c.smtp.from = "Castellan <directory@acme.test>".into();
    c.smtp.poll_interval_ms = 100;
    TestNode::start(c, dir).await
}

/// The value of `name=` in the first link of an email body.
fn link_param(body: &str, name: &str) -> String {
    body.split(&format!("{name}="))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name}= in {body}"))
        .split(|c: char| c == '&' || c.is_whitespace())
        .next()
        .unwrap()
        .to_string()
}

async fn activate(
    node: &TestNode,
    org: &str,
    user: &str,
    token: &str,
    password: &str,
) -> (u16, Value) {
    let r = node
        .http
        .post(node.url("/userportal/activate"))
        .json(&json!({"orgId": org, "userId": user, "token": token, "password": password}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_links_are_emailed_and_work_once() {
    let Some(mut smtp) = SmtpServer::new() else {
        return;
    };
    smtp.start();
    let node = node_with_smtp(smtp.port).await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let (key, org) = (&acme.api_key, acme.org_id.to_string());

    let (s, alice) = node
        .call(
            key,
            "POST",
            "/api/systemusers",
            Some(json!({"username": "alice", "email": "Alice@Acme.test"})),
        )
        .await;
    assert_eq!(s, 200, "{alice}");
    assert_eq!(alice["state"], "STAGED");
    let id = alice["id"].as_str().unwrap().to_string();

    let mail = smtp
        .wait_for("alice@acme.test", Duration::from_secs(20))
        .await;
    assert!(
        mail.contains("From: Castellan <directory@acme.test>"),
        "{mail}"
    );
    assert!(mail.contains("Subject: Activate your account"), "{mail}");
    assert!(
        mail.contains(&format!(
            "{}/userportal/activate?orgId={org}&userId={id}&token=",
            node.base
        )),
        "{mail}"
    );
    let token = link_param(&mail, "token");
    // The token is in the email only: the event log holds its hash.
    let (_, outbox) = node.call(key, "GET", "/api/outbox", None).await;
    let row = outbox
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["to"] == "alice@acme.test")
        .unwrap()
        .clone();
    assert!(row["sent"].is_string(), "the relay marked it sent: {row}");
    assert_eq!(row["attempts"], 0);

    // The policy applies; a wrong token and a wrong user answer alike.
    let (s, e) = activate(&node, &org, &id, &token, "short").await;
    assert_eq!((s, e["field"].as_str()), (400, Some("password")), "{e}");
    assert_eq!(
        activate(&node, &org, &id, "forged", "a fine passphrase")
            .await
            .0,
        401
    );
    assert_eq!(
        activate(
            &node,
            &org,
            &acme.admin_id.to_string(),
            &token,
            "a fine passphrase"
        )
        .await
        .0,
        401
    );
    let (s, e) = activate(&node, &org, &id, &token, "a fine passphrase").await;
    assert_eq!(s, 200, "{e}");
    let (_, user) = node
        .call(key, "GET", &format!("/api/systemusers/{id}"), None)
        .await;
    assert_eq!(user["state"], "ACTIVATED");
    assert_eq!(user["password_status"], "active");
    let (s, e) = activate(&node, &org, &id, &token, "another passphrase").await;
    assert_eq!(s, 401, "the link works once: {e}");
    let login = node
        .http
        .post(node.url("/userportal/login"))
        .json(&json!({"orgId": org, "username": "alice", "password": "a fine passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    // An active user gets no new link.
    let (s, e) = node
        .call(
            key,
            "POST",
            &format!("/api/systemusers/{id}/activation"),
            None,
        )
        .await;
    assert_eq!(s, 409, "{e}");

    // A resent link replaces the first; two concurrent uses of it: exactly one wins.
    let (_, bob) = node
        .call(
            key,
            "POST",
            "/api/systemusers",
            Some(json!({"username": "bob", "email": "bob@acme.test"})),
        )
        .await;
    let bob_id = bob["id"].as_str().unwrap().to_string();
    let first = link_param(
        &smtp
            .wait_for("bob@acme.test", Duration::from_secs(20))
            .await,
        "token",
    );
    let (s, _) = node
        .call(
            key,
            "POST",
            &format!("/api/systemusers/{bob_id}/activation"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let second = loop {
        let tokens: Vec<String> = smtp
            .messages()
            .iter()
            .filter(|m| m.contains("To: bob@acme.test"))
            .map(|m| link_param(&castellan_e2e::smtp::decode_quoted_printable(m), "token"))
            .filter(|t| *t != first)
            .collect();
        if let Some(t) = tokens.into_iter().next() {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        activate(&node, &org, &bob_id, &first, "bob's passphrase")
            .await
            .0,
        401,
        "the old link died"
    );
    let (a, b) = tokio::join!(
        activate(&node, &org, &bob_id, &second, "a river of stones 1"),
        activate(&node, &org, &bob_id, &second, "a river of stones 2"),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "{a:?} {b:?}");

    // Invitations go the same way.
    let (s, _) = node
        .call(
            key,
            "POST",
            "/api/administrators",
            Some(json!({"email": "help@acme.test", "role": "help_desk"})),
        )
        .await;
    assert_eq!(s, 201);
    let invite = smtp
        .wait_for("help@acme.test", Duration::from_secs(20))
        .await;
    assert!(
        invite.contains("/api/administrators/invitations/accept?orgId="),
        "{invite}"
    );

    // A CSV import sends nothing.
    let r = node
        .http
        .post(node.url("/api/systemusers/import"))
        .header("x-api-key", key.as_str())
        .header("content-type", "text/csv")
        .body("firstname,lastname,username,email,password\nCarol,C,carol,carol@acme.test,\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!smtp
        .messages()
        .iter()
        .any(|m| m.contains("carol@acme.test")));
    node.running.shutdown().await;
}

/// The outbox row of the email to `to`, read until `ready` holds of it (the test
/// fails with the row if it does not within `within`).
async fn outbox_row_when(
    node: &TestNode,
    key: &str,
    to: &str,
    within: Duration,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let (_, outbox) = node.call(key, "GET", "/api/outbox", None).await;
        let row = outbox
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["to"] == to)
            .cloned()
            .unwrap();
        if ready(&row) {
            return row;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the outbox row never got there: {row}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_cannot_connect_keeps_the_email_and_delivers_later() {
    let Some(mut smtp) = SmtpServer::new() else {
        return;
    };
    // Nothing listens on the port yet.
    let node = node_with_smtp(smtp.port).await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let key = &acme.api_key;
    let (s, _) = node
        .call(
            key,
            "POST",
            "/api/systemusers",
            Some(json!({"username": "dave", "email": "dave@acme.test"})),
        )
        .await;
    assert_eq!(s, 200);
    let row = outbox_row_when(
        &node,
        key,
        "dave@acme.test",
        Duration::from_secs(20),
        |row| row["attempts"].as_i64() >= Some(1),
    )
    .await;
    assert!(row["sent"].is_null());
    assert!(
        row["lastError"].as_str().is_some_and(|e| !e.is_empty()),
        "{row}"
    );

    smtp.start();
    let mail = smtp
        .wait_for("dave@acme.test", Duration::from_secs(30))
        .await;
    assert!(mail.contains("token="));
    // The relay has the message before the outbox records it as sent (that is
    // written once the SMTP exchange ends), so the row is read until it does.
    outbox_row_when(
        &node,
        key,
        "dave@acme.test",
        Duration::from_secs(10),
        |row| row["sent"].is_string(),
    )
    .await;
    assert_eq!(
        smtp.messages()
            .iter()
            .filter(|m| m.contains("dave@acme.test"))
            .count(),
        1,
        "sent once"
    );
    node.running.shutdown().await;
}
