//! Users over the JumpCloud-compatible v1 API: create, uniqueness under concurrency,
//! password policy, lists, lifecycle, isolation.

use castellan_domain::envelope::StreamId;
use castellan_e2e::node::TestNode;
use serde_json::{json, Value};

async fn post(node: &TestNode, key: &str, path: &str, body: Value) -> (u16, Value) {
    node.call(key, "POST", path, Some(body)).await
}

async fn get(node: &TestNode, key: &str, path: &str) -> (u16, Value) {
    node.call(key, "GET", path, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_staged_or_active_with_unique_names_and_uids() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let key = &acme.api_key;

    let (s, staged) = post(
        &node,
        key,
        "/api/systemusers",
        json!({"username": "alice", "email": "Alice@Acme.test", "firstname": "Alice"}),
    )
    .await;
    assert_eq!(s, 200, "{staged}");
    assert_eq!(staged["state"], "STAGED");
    assert_eq!(staged["password_status"], "pending");
    assert_eq!(staged["email"], "alice@acme.test");
    assert_eq!(staged["unix_uid"], 5000);
    assert_eq!(staged["unix_guid"], 5000);

    let (s, active) = post(
        &node,
        key,
        "/api/systemusers",
        json!({"username": "bob", "email": "bob@acme.test", "password": "a long passphrase"}),
    )
    .await;
    assert_eq!(s, 200, "{active}");
    assert_eq!(active["state"], "ACTIVATED");
    assert_eq!(active["unix_uid"], 5001);

    // Taken username (any case) and email answer 409 naming the field.
    let (s, e) = post(
        &node,
        key,
        "/api/systemusers",
        json!({"username": "ALICE", "email": "other@acme.test"}),
    )
    .await;
    assert_eq!((s, e["field"].as_str()), (409, Some("username")), "{e}");
    let (s, e) = post(
        &node,
        key,
        "/api/systemusers",
        json!({"username": "carol", "email": "alice@ACME.test"}),
    )
    .await;
    assert_eq!((s, e["field"].as_str()), (409, Some("email")), "{e}");
    // The failed attempts released what they claimed: carol can still be created.
    let (s, _) = post(
        &node,
        key,
        "/api/systemusers",
        json!({"username": "carol", "email": "carol@acme.test", "unix_uid": 7000}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, e) = post(
        &node,
        key,
        "/api/systemusers",
        json!({"username": "dave", "email": "dave@acme.test", "unix_uid": 7000}),
    )
    .await;
    assert_eq!((s, e["field"].as_str()), (409, Some("unix_uid")), "{e}");

    // Two concurrent creates of one username: exactly one wins.
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let (http, url, key) = (node.http.clone(), node.url("/api/systemusers"), key.clone());
            tokio::spawn(async move {
                http.post(url)
                    .header("x-api-key", key)
                    .json(&json!({"username": "eve", "email": format!("eve{i}@acme.test")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409]);

    // Every user has its own uid.
    let (_, list) = get(&node, key, "/api/systemusers?limit=100&sort=unix_uid").await;
    let uids: Vec<u64> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["unix_uid"].as_u64().unwrap())
        .collect();
    let mut unique = uids.clone();
    unique.dedup();
    assert_eq!(uids, unique, "{uids:?}");
    assert_eq!(list["totalCount"], 4);
}

#[tokio::test]
async fn bad_users_get_every_problem_named_and_nothing_is_kept() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let key = &acme.api_key;
    // The organization's policy: 12 characters, upper, number, symbol, no username, history 2.
    let r = node
        .http
        .put(node.url(&format!("/api/organizations/{}", acme.org_id)))
        .header("x-api-key", key)
        .json(&json!({"settings": {"passwordPolicy": {"minLength": 12, "needsUppercase": true, "needsNumeric": true, "needsSymbolic": true, "maxHistory": 2}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = node
        .http
        .put(node.url(&format!("/api/organizations/{}", acme.org_id)))
        .header("x-api-key", key)
        .json(&json!({"settings": {"passwordPolicy": {"maxHistory": 99, "colour": 1}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let (s, e) = post(
        &node,
        key,
        "/api/systemusers",
        json!({"username": "frank", "email": "frank@acme.test", "password": "frank"}),
    )
    .await;
    assert_eq!(s, 400);
    let messages: Vec<&str> = e["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 5, "{messages:?}");
    assert!(messages.contains(&"may not contain the username"));

    let (s, e) = post(
        &node,
        key,
        "/api/systemusers",
        json!({"username": "-x", "email": "nope", "sudo": "yes"}),
    )
    .await;
    assert_eq!(s, 400);
    let mut fields: Vec<&str> = e["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["email", "sudo", "username"]);
    let (s, _) = post(
        &node,
        key,
        "/api/systemusers",
        json!({"username": "x", "email": "x@acme.test", "state": "ACTIVATED"}),
    )
    .await;
    assert_eq!(s, 400, "ACTIVATED without a password");

    // Nothing above created a user or kept a name.
    let (_, list) = get(&node, key, "/api/systemusers").await;
    assert_eq!(list["totalCount"], 0);
    let (s, user) = post(
        &node,
        key,
        "/api/systemusers",
        json!({"username": "frank", "email": "frank@acme.test", "password": "Correct-Horse-42"}),
    )
    .await;
    assert_eq!(s, 200, "{user}");
    let id = user["id"].as_str().unwrap().to_string();

    // History: the current password cannot be set again.
    let put = |body: Value| {
        node.http
            .put(node.url(&format!("/api/systemusers/{id}")))
            .header("x-api-key", key)
            .json(&body)
            .send()
    };
    let r = put(json!({"password": "Correct-Horse-42"})).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("most recent"));
    let r = put(json!({"password": "Battery-Staple-43"})).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn lists_page_sort_filter_and_search() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let key = &acme.api_key;
    for i in 0..25 {
        let (s, _) = post(&node, key, "/api/systemusers", json!({"username": format!("user{i:02}"), "email": format!("u{i:02}@acme.test"), "department": if i % 2 == 0 { "even" } else { "odd" }})).await;
        assert_eq!(s, 200);
    }
    let (_, page) = get(&node, key, "/api/systemusers").await;
    assert_eq!(
        page["results"].as_array().unwrap().len(),
        10,
        "default limit 10"
    );
    assert_eq!(page["totalCount"], 25);
    let (_, page) = get(
        &node,
        key,
        "/api/systemusers?limit=5&skip=20&sort=-username",
    )
    .await;
    let names: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["user04", "user03", "user02", "user01", "user00"]);
    let (_, page) = get(
        &node,
        key,
        "/api/systemusers?filter=username:search:USER1&limit=100",
    )
    .await;
    assert_eq!(page["totalCount"], 10);
    let (_, page) = get(&node, key, "/api/systemusers?filter=unix_uid:ge:5020").await;
    assert_eq!(page["totalCount"], 5);
    let (s, e) = get(&node, key, "/api/systemusers?limit=1000").await;
    assert_eq!((s, e["field"].as_str()), (400, Some("limit")));
    let (s, _) = get(&node, key, "/api/systemusers?filter=username:drop:x").await;
    assert_eq!(s, 400);
    // An injection attempt is a value like any other.
    let (s, page) = get(
        &node,
        key,
        "/api/systemusers?filter=username:eq:x'%20OR%201=1--",
    )
    .await;
    assert_eq!((s, page["totalCount"].as_u64()), (200, Some(0)));

    let (s, found) = post(
        &node,
        key,
        "/api/search/systemusers?limit=100",
        json!({"searchFilter": {"searchTerm": "u2", "fields": ["email"]}}),
    )
    .await;
    assert_eq!(s, 200, "{found}");
    assert_eq!(found["totalCount"], 5);
    let (_, found) = post(
        &node,
        key,
        "/api/search/systemusers",
        json!({"filter": [{"username": "user07"}]}),
    )
    .await;
    assert_eq!(found["results"][0]["email"], "u07@acme.test");
}

#[tokio::test]
async fn lifecycle_actions_record_their_events_and_orgs_stay_apart() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let other = node.bootstrap("Other", "root@other.test").await;
    let key = &acme.api_key;
    let (_, user) = post(
        &node,
        key,
        "/api/systemusers",
        json!({"username": "gina", "email": "gina@acme.test", "password": "a long passphrase"}),
    )
    .await;
    let id = user["id"].as_str().unwrap().to_string();
    let path = format!("/api/systemusers/{id}");

    let r = node
        .http
        .put(node.url(&path))
        .header("x-api-key", key)
        .json(&json!({"state": "SUSPENDED", "jobTitle": "Engineer"}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["state"], "SUSPENDED");
    assert_eq!(body["jobTitle"], "Engineer");
    let r = node
        .http
        .put(node.url(&path))
        .header("x-api-key", key)
        .json(&json!({"state": "ACTIVATED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "ACTIVATED");
    let (s, body) = post(&node, key, &format!("{path}/expire"), json!({})).await;
    assert_eq!((s, body["password_expired"].as_bool()), (200, Some(true)));
    let (s, _) = post(&node, key, &format!("{path}/unlock"), json!({})).await;
    assert_eq!(s, 200);
    let (s, _) = post(&node, key, &format!("{path}/resetmfa"), json!({})).await;
    assert_eq!(s, 200);

    // Another org's key sees nothing of this user.
    for (method, p) in [
        ("GET", path.clone()),
        ("PUT", path.clone()),
        ("DELETE", path.clone()),
        ("POST", format!("{path}/unlock")),
    ] {
        let req = match method {
            "GET" => node.http.get(node.url(&p)),
            "PUT" => node.http.put(node.url(&p)).json(&json!({"jobTitle": "x"})),
            "DELETE" => node.http.delete(node.url(&p)),
            _ => node.http.post(node.url(&p)).json(&json!({})),
        };
        let r = req
            .header("x-api-key", &other.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {p}");
    }
    let (_, list) = get(&node, &other.api_key, "/api/systemusers").await;
    assert_eq!(list["totalCount"], 0);

    let r = node
        .http
        .delete(node.url(&path))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, _) = get(&node, key, &path).await;
    assert_eq!(s, 404);
    // The username is free again; the history stays in the log.
    let (s, _) = post(
        &node,
        key,
        "/api/systemusers",
        json!({"username": "gina", "email": "gina@acme.test"}),
    )
    .await;
    assert_eq!(s, 200);
    let commits = node
        .running
        .log
        .read_stream(
            acme.org_id,
            &StreamId::aggregate("user", id.parse::<castellan_domain::ObjectId>().unwrap()),
        )
        .await
        .unwrap();
    let types: Vec<String> = commits
        .iter()
        .flat_map(|c| c.commit.events.iter().map(|e| e.event_type.clone()))
        .collect();
    assert_eq!(
        types,
        [
            "user_create",
            "user_update",
            "user_suspended",
            "user_unsuspended",
            "user_password_expired",
            "user_delete"
        ],
        "unlock and resetmfa on an unlocked user without MFA change nothing"
    );
}

#[tokio::test]
async fn activation_needs_a_password_first() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let key = &acme.api_key;
    let (_, staged) = node
        .call(
            key,
            "POST",
            "/api/systemusers",
            Some(json!({"username": "lena", "email": "lena@acme.test"})),
        )
        .await;
    let id = staged["id"].as_str().unwrap();
    let (s, e) = node
        .call(
            key,
            "POST",
            &format!("/api/systemusers/{id}/state/activate"),
            None,
        )
        .await;
    assert_eq!((s, e["code"].as_str()), (409, Some("invalid_state")), "{e}");
    let (s, _) = node
        .call(
            key,
            "PUT",
            &format!("/api/systemusers/{id}"),
            Some(json!({"password": "a long passphrase"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, user) = node
        .call(
            key,
            "POST",
            &format!("/api/systemusers/{id}/state/activate"),
            None,
        )
        .await;
    assert_eq!(
        (s, user["state"].as_str()),
        (200, Some("ACTIVATED")),
        "{user}"
    );
}
