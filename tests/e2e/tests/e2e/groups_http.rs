//! User groups over the v2 API: fields and their rules, unique name/GID/Linux name,
//! members both ways, associations, isolation, deletion.

use castellan_e2e::node::TestNode;
use serde_json::{json, Value};

#[tokio::test]
async fn groups_members_and_associations_work_both_ways() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let other = node.bootstrap("Other", "root@other.test").await;
    let key = &acme.api_key;

    let (s, eng) = node.call(key, "POST", "/api/v2/usergroups", Some(json!({
        "name": "Engineering",
        "description": "builders",
        "attributes": {
            "posixGroups": [{"name": "engineers", "id": 7000}],
            "sambaEnabled": true,
            "sudo": {"enabled": true, "withoutPassword": false},
            "radius": {"reply": [{"name": "Tunnel-Type", "value": "VLAN"}, {"name": "Tunnel-Medium-Type", "value": "IEEE-802"}, {"name": "Tunnel-Private-Group-Id", "value": "42"}]}
        }
    }))).await;
    assert_eq!(s, 200, "{eng}");
    assert_eq!(eng["type"], "user_group");
    assert_eq!(eng["attributes"]["radius"]["reply"][2]["value"], "42");
    let gid = eng["id"].as_str().unwrap().to_string();

    // Uniqueness: name (any case), GID, Linux name (case-sensitive).
    let (s, e) = node
        .call(
            key,
            "POST",
            "/api/v2/usergroups",
            Some(json!({"name": "ENGINEERING"})),
        )
        .await;
    assert_eq!((s, e["field"].as_str()), (409, Some("group_name")), "{e}");
    let (s, _) = node.call(key,
        "POST",
        "/api/v2/usergroups",
        Some(json!({"name": "Ops", "attributes": {"posixGroups": [{"name": "ops", "id": 7000}]}})),
    )
    .await;
    assert_eq!(s, 409);
    let (s, ops) = node.call(key, "POST", "/api/v2/usergroups", Some(json!({"name": "Ops", "attributes": {"posixGroups": [{"name": "Engineers", "id": 7001}]}}))).await;
    assert_eq!(s, 200, "Linux names are case-sensitive: {ops}");
    let (s, e) = node.call(key, "POST", "/api/v2/usergroups", Some(json!({"name": "Bad", "attributes": {"radius": {"reply": [{"name": "Not-An-Attribute", "value": "1"}]}, "posixGroups": [{"name": "Bad", "id": 1}]}}))).await;
    assert_eq!(s, 400);
    assert_eq!(e["errors"].as_array().unwrap().len(), 2, "{e}");

    let (_, alice) = node
        .call(
            key,
            "POST",
            "/api/systemusers",
            Some(json!({"username": "alice", "email": "alice@acme.test"})),
        )
        .await;
    let alice_id = alice["id"].as_str().unwrap().to_string();
    let members = format!("/api/v2/usergroups/{gid}/members");
    let r = node
        .http
        .post(node.url(&members))
        .header("x-api-key", key)
        .json(&json!({"op": "add", "type": "user", "id": alice_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, list) = node.call(key, "GET", &members, None).await;
    assert_eq!(
        list,
        json!([{"to": {"type": "user", "id": alice_id, "attributes": null}, "attributes": null}])
    );
    let (_, groups) = node
        .call(
            key,
            "GET",
            &format!("/api/v2/users/{alice_id}/memberof"),
            None,
        )
        .await;
    assert_eq!(groups[0]["id"], gid.as_str());
    let (_, membership) = node
        .call(
            key,
            "GET",
            &format!("/api/v2/usergroups/{gid}/membership"),
            None,
        )
        .await;
    assert_eq!(membership[0]["paths"][0][0]["to"]["id"], alice_id.as_str());

    // A user of another org cannot be added; another org's key sees nothing.
    let (_, stranger) = node
        .call(
            &other.api_key,
            "POST",
            "/api/systemusers",
            Some(json!({"username": "zed", "email": "zed@other.test"})),
        )
        .await;
    let r = node
        .http
        .post(node.url(&members))
        .header("x-api-key", key)
        .json(&json!({"op": "add", "type": "user", "id": stranger["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no such user in this organization");
    for path in [
        format!("/api/v2/usergroups/{gid}"),
        members.clone(),
        format!("/api/v2/usergroups/{gid}/associations?targets=radius_server"),
    ] {
        let (s, _) = node.call(&other.api_key, "GET", &path, None).await;
        assert_eq!(s, 404, "{path}");
    }

    // Associations.
    let assoc = format!("/api/v2/usergroups/{gid}/associations");
    let r = node
        .http
        .post(node.url(&assoc))
        .header("x-api-key", key)
        .json(&json!({"op": "add", "type": "radius_server", "id": "5f0c1a2b3c4d5e6f70819299"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, edges) = node
        .call(key, "GET", &format!("{assoc}?targets=radius_server"), None)
        .await;
    assert_eq!(edges[0]["to"]["id"], "5f0c1a2b3c4d5e6f70819299");
    let (s, _) = node.call(key, "GET", &assoc, None).await;
    assert_eq!(s, 400, "targets is required");

    // Lists are arrays with x-total-count; sorted by name.
    let r = node
        .http
        .get(node.url("/api/v2/usergroups?sort=-name"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-total-count"], "2");
    let names: Vec<String> = r
        .json::<Vec<Value>>()
        .await
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Ops", "Engineering"]);

    // Deleting the user removes it from the group; deleting the group frees its name.
    let (s, _) = node
        .call(key, "DELETE", &format!("/api/systemusers/{alice_id}"), None)
        .await;
    assert_eq!(s, 200);
    let (_, list) = node.call(key, "GET", &members, None).await;
    assert_eq!(list, json!([]));
    let (s, _) = node
        .call(key, "DELETE", &format!("/api/v2/usergroups/{gid}"), None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = node.call(key, "POST", "/api/v2/usergroups", Some(json!({"name": "engineering", "attributes": {"posixGroups": [{"name": "engineers", "id": 7000}]}}))).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_users_own_custom_attribute_overrides_the_groups() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let key = &acme.api_key;
    let (s, user) = node
        .call(
            key,
            "POST",
            "/api/systemusers",
            Some(
                json!({"username": "ann", "email": "ann@acme.test", "password": "a fine passphrase",
            "attributes": [{"name": "shell", "value": "zsh"}]}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{user}");
    let uid = user["id"].as_str().unwrap().to_string();
    for (name, custom) in [
        (
            "ops",
            json!([{"name": "shell", "value": "sh"}, {"name": "team", "value": "ops"}]),
        ),
        (
            "eng",
            json!([{"name": "team", "value": "eng"}, {"name": "floor", "value": "3"}]),
        ),
    ] {
        let (s, g) = node
            .call(
                key,
                "POST",
                "/api/v2/usergroups",
                Some(json!({"name": name, "attributes": {"custom": custom}})),
            )
            .await;
        assert_eq!(s, 200, "{g}");
        let (s, e) = node
            .call(
                key,
                "POST",
                &format!("/api/v2/usergroups/{}/members", g["id"].as_str().unwrap()),
                Some(json!({"op": "add", "type": "user", "id": uid})),
            )
            .await;
        assert_eq!(s, 204, "{e}");
    }
    let (s, attrs) = node
        .call(key, "GET", &format!("/api/v2/users/{uid}/attributes"), None)
        .await;
    assert_eq!(s, 200, "{attrs}");
    let got: Vec<(String, String, String)> = attrs
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().into(),
                a["value"].as_str().unwrap().into(),
                a["source"]["name"].as_str().unwrap_or("user").into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("floor".into(), "3".into(), "eng".into()),
            ("shell".into(), "zsh".into(), "user".into()),
            ("team".into(), "eng".into(), "eng".into()),
        ]
    );
    let other = node.bootstrap("Other", "root@other.test").await;
    let (s, _) = node
        .call(
            &other.api_key,
            "GET",
            &format!("/api/v2/users/{uid}/attributes"),
            None,
        )
        .await;
    assert_eq!(s, 404, "another org sees nothing");
}
