//! Administrators: invitations through the outbox, roles enforced on every route
//! family (a matrix over real HTTP), no self-deletion, key rotation.

use castellan_e2e::node::TestNode;
use serde_json::{json, Value};

/// An admin of `role` with a key, created through the API.
async fn admin_with_key(node: &TestNode, root: &str, email: &str, role: &str) -> (String, String) {
    let (s, created) = node
        .call(
            root,
            "POST",
            "/api/administrators",
            Some(json!({"email": email, "role": role, "password": "an admin passphrase"})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    (id, node.own_key(email, "an admin passphrase").await)
}

/// (family, method, path, body, allowed for [administrator, manager, help_desk, read_only])
type Case = (&'static str, &'static str, String, Option<Value>, [bool; 4]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_exactly_its_route_families() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let root = &acme.api_key;
    let org = acme.org_id.to_string();
    let (_, user) = node
        .call(
            root,
            "POST",
            "/api/systemusers",
            Some(json!({"username": "target", "email": "target@acme.test"})),
        )
        .await;
    let user_id = user["id"].as_str().unwrap().to_string();
    let (_, group) = node
        .call(
            root,
            "POST",
            "/api/v2/usergroups",
            Some(json!({"name": "g"})),
        )
        .await;
    let group_id = group["id"].as_str().unwrap().to_string();

    let roles = ["administrator", "manager", "help_desk", "read_only"];
    let mut keys = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        keys.push(
            admin_with_key(&node, root, &format!("a{i}@acme.test"), role)
                .await
                .1,
        );
    }
    // (family, method, path, body, allowed for [administrator, manager, help_desk, read_only])
    let n = std::sync::atomic::AtomicUsize::new(0);
    let fresh = || n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for (ri, key) in keys.iter().enumerate() {
        let k = fresh();
        let cases: Vec<Case> = vec![
            (
                "read users",
                "GET",
                "/api/systemusers".into(),
                None,
                [true, true, true, true],
            ),
            (
                "read groups",
                "GET",
                "/api/v2/usergroups".into(),
                None,
                [true, true, true, true],
            ),
            (
                "read org",
                "GET",
                format!("/api/organizations/{org}"),
                None,
                [true, true, true, true],
            ),
            (
                "create user",
                "POST",
                "/api/systemusers".into(),
                Some(json!({"username": format!("u{k}"), "email": format!("u{k}@acme.test")})),
                [true, true, false, false],
            ),
            (
                "unlock user",
                "POST",
                format!("/api/systemusers/{user_id}/unlock"),
                None,
                [true, true, true, false],
            ),
            (
                "edit group",
                "PATCH",
                format!("/api/v2/usergroups/{group_id}"),
                Some(json!({"description": format!("d{k}")})),
                [true, true, false, false],
            ),
            (
                "edit org",
                "PUT",
                format!("/api/organizations/{org}"),
                Some(json!({"settings": {"k": k}})),
                [true, false, false, false],
            ),
            (
                "invite admin",
                "POST",
                "/api/administrators".into(),
                Some(json!({"email": format!("inv{k}@acme.test"), "role": "read_only"})),
                [true, false, false, false],
            ),
            (
                "read outbox",
                "GET",
                "/api/outbox".into(),
                None,
                [true, false, false, false],
            ),
        ];
        for (family, method, path, body, allowed) in cases {
            let (s, answer) = node.call(key, method, &path, body).await;
            if allowed[ri] {
                assert!(
                    s < 400,
                    "{} must be allowed to {family}: {s} {answer}",
                    roles[ri]
                );
            } else {
                assert_eq!(
                    (s, answer["code"].as_str()),
                    (403, Some("forbidden")),
                    "{} must not {family}",
                    roles[ri]
                );
            }
        }
    }
}

#[tokio::test]
async fn invitations_set_a_password_once_and_nobody_deletes_themselves() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let root = &acme.api_key;
    let (s, invited) = node
        .call(
            root,
            "POST",
            "/api/administrators",
            Some(json!({"email": "New@Acme.test", "role": "manager"})),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(invited["invitationSent"], true);
    let (_, outbox) = node.call(root, "GET", "/api/outbox", None).await;
    let mail = outbox
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["to"] == "new@acme.test")
        .expect("invitation queued")
        .clone();
    let body = mail["body"].as_str().unwrap();
    let token = body
        .split("token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let accept = |token: String, password: &str| {
        node.http.post(node.url("/api/administrators/invitations/accept")).json(&json!({
            "orgId": acme.org_id.to_string(), "adminId": invited["id"], "token": token, "password": password
        })).send()
    };
    let wrong = accept("wrong".into(), "a fine passphrase").await.unwrap();
    assert_eq!(wrong.status(), 401, "{}", wrong.text().await.unwrap());
    assert_eq!(
        accept(token.clone(), "short").await.unwrap().status(),
        400,
        "policy applies"
    );
    assert_eq!(
        accept(token.clone(), "a fine passphrase")
            .await
            .unwrap()
            .status(),
        200
    );
    let again = accept(token, "another passphrase").await.unwrap();
    assert_eq!(
        again.status(),
        401,
        "the link works once: {}",
        again.text().await.unwrap()
    );

    // The same email cannot be invited twice.
    let (s, _) = node
        .call(
            root,
            "POST",
            "/api/administrators",
            Some(json!({"email": "new@acme.test", "role": "manager"})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, e) = node
        .call(
            root,
            "DELETE",
            &format!("/api/administrators/{}", acme.admin_id),
            None,
        )
        .await;
    assert_eq!(s, 409, "{e}");
    assert!(e["message"].as_str().unwrap().contains("own account"));
    let (s, _) = node
        .call(
            root,
            "DELETE",
            &format!("/api/administrators/{}", invited["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (_, admins) = node.call(root, "GET", "/api/administrators", None).await;
    assert_eq!(admins.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_deleted_admins_key_stops_working_and_keys_rotate() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let root = &acme.api_key;
    let (id, key) = admin_with_key(&node, root, "ro@acme.test", "read_only").await;
    let (s, _) = node.call(&key, "GET", "/api/systemusers", None).await;
    assert_eq!(s, 200);
    // A read-only admin may rotate their own key, not another's.
    let (s, _) = node
        .call(
            &key,
            "POST",
            &format!("/api/administrators/{}/apikey", acme.admin_id),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (s, rotated) = node
        .call(
            &key,
            "POST",
            &format!("/api/administrators/{id}/apikey"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let new_key = rotated["apiKey"].as_str().unwrap().to_string();
    assert_eq!(
        node.call(&key, "GET", "/api/systemusers", None).await.0,
        401
    );
    assert_eq!(
        node.call(&new_key, "GET", "/api/systemusers", None).await.0,
        200
    );
    let (s, _) = node
        .call(root, "DELETE", &format!("/api/administrators/{id}"), None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        node.call(&new_key, "GET", "/api/systemusers", None).await.0,
        401
    );
}

#[tokio::test]
async fn portal_sessions_use_a_cookie_and_a_csrf_token() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let root = &acme.api_key;
    let (s, _) = node
        .call(root, "POST", "/api/administrators", Some(json!({"email": "ro@acme.test", "role": "read_only", "password": "an admin passphrase"})))
        .await;
    assert_eq!(s, 201);
    let (s, _) = node
        .call(root, "POST", "/api/administrators", Some(json!({"email": "mgr@acme.test", "role": "manager", "password": "an admin passphrase"})))
        .await;
    assert_eq!(s, 201);
    let login = |email: &'static str, password: &'static str| {
        node.http
            .post(node.url("/api/admin/session"))
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    let wrong = login("mgr@acme.test", "nope").await.unwrap();
    let unknown = login("nobody@acme.test", "nope").await.unwrap();
    assert_eq!(
        (wrong.status().as_u16(), unknown.status().as_u16()),
        (401, 401)
    );
    assert_eq!(wrong.text().await.unwrap(), unknown.text().await.unwrap());

    let r = login("MGR@acme.test", "an admin passphrase").await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let csrf = r.json::<Value>().await.unwrap()["csrfToken"]
        .as_str()
        .unwrap()
        .to_string();

    let with_cookie = |method: reqwest::Method, path: &str| {
        node.http
            .request(method, node.url(path))
            .header("cookie", &session)
    };
    assert_eq!(
        with_cookie(reqwest::Method::GET, "/api/systemusers")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let body = json!({"username": "viaportal", "email": "viaportal@acme.test"});
    let r = with_cookie(reqwest::Method::POST, "/api/systemusers")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no CSRF token");
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "csrf");
    let r = with_cookie(reqwest::Method::POST, "/api/systemusers")
        .header("x-csrf-token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Roles hold for sessions too: a manager may not edit the organization.
    let r = with_cookie(
        reqwest::Method::PUT,
        &format!("/api/organizations/{}", acme.org_id),
    )
    .header("x-csrf-token", &csrf)
    .json(&json!({"displayName": "x"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let tampered = format!("{session}x");
    let r = node
        .http
        .get(node.url("/api/systemusers"))
        .header("cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let attempts: Vec<bool> = node
        .running
        .log
        .read_stream(
            castellan_app::admins::installation_org(),
            &castellan_domain::envelope::StreamId::auth("directory"),
        )
        .await
        .unwrap()
        .iter()
        .chain(
            node.running
                .log
                .read_stream(
                    acme.org_id,
                    &castellan_domain::envelope::StreamId::auth("directory"),
                )
                .await
                .unwrap()
                .iter(),
        )
        .flat_map(|c| c.envelopes())
        .filter(|e| e.event_type == "admin_login_attempt")
        .map(|e| e.payload["success"].as_bool().unwrap())
        .collect();
    assert_eq!(attempts.iter().filter(|s| **s).count(), 1);
    assert_eq!(attempts.len(), 3);
}
