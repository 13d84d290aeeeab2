//! Admins of several organizations: a grant gives an admin of A a role in B; `x-org-id`
//! selects B; the role there is the granted one; B cannot touch the admin's
//! credentials; revoking the grant ends the access and nothing else.

use castellan_e2e::node::TestNode;
use serde_json::{json, Value};

async fn call_in(
    node: &TestNode,
    key: &str,
    org: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = node
        .http
        .request(method.parse().unwrap(), node.url(path))
        .header("x-api-key", key)
        .header("x-org-id", org);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_serves_a_second_org_through_a_grant_and_x_org_id() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let beta = node.bootstrap("Beta", "root@beta.test").await;
    let gamma = node.bootstrap("Gamma", "root@gamma.test").await;
    let (a_key, b_key) = (&acme.api_key, &beta.api_key);
    let b_org = beta.org_id.to_string();
    let (s, bob) = node
        .call(
            b_key,
            "POST",
            "/api/systemusers",
            Some(json!({"username": "bob", "email": "bob@beta.test"})),
        )
        .await;
    assert_eq!(s, 200, "{bob}");
    let bob_id = bob["id"].as_str().unwrap().to_string();

    // Before the grant, Acme's root cannot select Beta.
    let (s, e) = call_in(&node, a_key, &b_org, "GET", "/api/systemusers", None).await;
    assert_eq!((s, e["code"].as_str()), (403, Some("forbidden")));

    // Beta grants Acme's root the help desk role; the email is the identity.
    let (s, grant) = node
        .call(
            b_key,
            "POST",
            "/api/administrators",
            Some(json!({"email": "Root@Acme.test", "role": "help_desk"})),
        )
        .await;
    assert_eq!(s, 201, "{grant}");
    assert_eq!(grant["id"], acme.admin_id.to_string());
    let (_, outbox) = node.call(b_key, "GET", "/api/outbox", None).await;
    assert!(outbox
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["to"] == "root@acme.test"));
    let (_, admins) = node.call(b_key, "GET", "/api/administrators", None).await;
    let listed = admins
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "root@acme.test")
        .unwrap()
        .clone();
    assert_eq!(listed["homeOrganization"], acme.org_id.to_string());
    assert_eq!(listed["role"], "help_desk");

    // In Beta, Acme's root has help desk rights: read and unlock, not create.
    let (s, users) = call_in(&node, a_key, &b_org, "GET", "/api/systemusers", None).await;
    assert_eq!(s, 200);
    assert_eq!(users["results"][0]["username"], "bob");
    let (s, _) = call_in(
        &node,
        a_key,
        &b_org,
        "POST",
        &format!("/api/systemusers/{bob_id}/unlock"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, e) = call_in(
        &node,
        a_key,
        &b_org,
        "POST",
        "/api/systemusers",
        Some(json!({"username": "x", "email": "x@beta.test"})),
    )
    .await;
    assert_eq!(s, 403, "{e}");
    // At home it is still the administrator with billing; without x-org-id, Beta's
    // objects are not found.
    let (s, _) = node
        .call(
            a_key,
            "POST",
            "/api/systemusers",
            Some(json!({"username": "amy", "email": "amy@acme.test"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = node
        .call(a_key, "GET", &format!("/api/systemusers/{bob_id}"), None)
        .await;
    assert_eq!(s, 404);
    let (_, orgs) = node.call(a_key, "GET", "/api/organizations", None).await;
    assert_eq!(orgs["totalCount"], 2, "{orgs}");
    let (s, _) = call_in(
        &node,
        a_key,
        &gamma.org_id.to_string(),
        "GET",
        "/api/systemusers",
        None,
    )
    .await;
    assert_eq!(s, 403, "Gamma granted nothing");

    // Beta cannot mint credentials for Acme's admin, nor grant twice.
    let (s, e) = node
        .call(
            b_key,
            "POST",
            &format!("/api/administrators/{}/apikey", acme.admin_id),
            None,
        )
        .await;
    assert_eq!((s, e["code"].as_str()), (409, Some("invalid_state")), "{e}");
    let (s, e) = node
        .call(
            b_key,
            "DELETE",
            &format!("/api/administrators/{}/totp", acme.admin_id),
            None,
        )
        .await;
    assert_eq!(s, 409, "{e}");
    let (s, _) = node
        .call(
            b_key,
            "POST",
            "/api/administrators",
            Some(json!({"email": "root@acme.test", "role": "administrator"})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = node
        .call(b_key, "POST", "/api/administrators", Some(json!({"email": "root@acme.test", "role": "manager", "password": "a chosen passphrase"})))
        .await;
    // Beta already lists this admin, so the conflict reveals nothing; a password is
    // checked as for a new admin, then dropped (the admin keeps their own).
    assert_eq!(s, 409, "granted once");
    // The same email inside its own home organization is simply taken.
    let (s, _) = node
        .call(
            a_key,
            "POST",
            "/api/administrators",
            Some(json!({"email": "root@acme.test", "role": "manager"})),
        )
        .await;
    assert_eq!(s, 409);

    // Revoking the grant ends the access in Beta and nothing else.
    let (s, _) = node
        .call(
            b_key,
            "DELETE",
            &format!("/api/administrators/{}", acme.admin_id),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = call_in(&node, a_key, &b_org, "GET", "/api/systemusers", None).await;
    assert_eq!(s, 403);
    let (s, _) = node.call(a_key, "GET", "/api/systemusers", None).await;
    assert_eq!(s, 200, "the home key still works");
    let (s, _) = node
        .call(
            b_key,
            "POST",
            "/api/administrators",
            Some(json!({"email": "root@acme.test", "role": "read_only"})),
        )
        .await;
    assert_eq!(s, 201, "granted again");
    let (s, _) = call_in(
        &node,
        a_key,
        &b_org,
        "POST",
        &format!("/api/systemusers/{bob_id}/unlock"),
        None,
    )
    .await;
    assert_eq!(s, 403, "read only now");
}
