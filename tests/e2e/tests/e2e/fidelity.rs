//! Requests exactly as JumpCloud's own clients send them: the generated Python SDK
//! (jcapiv1 `SystemuserPutPost`/`SystemuserPut`, serialized by its attribute map with
//! unset fields left out), v1 and v2 list parameters, and the Directory Insights
//! pollers (the PowerShell module's `Get-JCEvent`, the serverless app, the guide's
//! `curl -d @query.txt`, Elastic's pipeline fields).

use castellan_e2e::node::{config, TestNode};
use serde_json::{json, Value};

async fn call(
    node: &TestNode,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    node.call(key, method, path, body).await
}

async fn login(node: &TestNode, org: &str, username: &str, password: &str) -> u16 {
    node.http
        .post(node.url("/userportal/login"))
        .json(&json!({"orgId": org, "username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A body as jcapiv1 4.0's `SystemuserPutPost` serializes it: every model field
/// set, in its wire spelling.
fn sdk_new_user(username: &str) -> Value {
    json!({
        "account_locked": false,
        "activated": true,
        "addresses": [{"country": "NL", "extendedAddress": "3rd floor", "locality": "Utrecht", "poBox": "", "postalCode": "3511", "region": "UT", "streetAddress": "Oudegracht 1", "type": "work"}],
        "allow_public_key": true,
        "attributes": [{"name": "badge", "value": "1234"}],
        "company": "Acme, Inc.",
        "costCenter": "CC-7",
        "department": "R&D",
        "description": "made by the SDK",
        "displayname": "Dana Doe",
        "email": format!("{username}@acme.test"),
        "employeeIdentifier": format!("E-{username}"),
        "employeeType": "contractor",
        "enable_managed_uid": true,
        "enable_user_portal_multifactor": false,
        "external_dn": "CN=Dana,OU=People,DC=acme,DC=test",
        "external_source_type": "ad",
        "externally_managed": false,
        "firstname": "Dana",
        "jobTitle": "Engineer",
        "lastname": "Doe",
        "ldap_binding_user": false,
        "location": "Utrecht",
        "mfa": {"configured": false, "exclusion": false},
        "middlename": "Q",
        "password": "a long passphrase",
        "password_never_expires": true,
        "passwordless_sudo": false,
        "phoneNumbers": [{"number": "+31 30 000 0000", "type": "work"}],
        "public_key": format!("ssh-ed25519 {} dana@laptop", "A".repeat(400)),
        "relationships": [{"type": "manager", "value": "root"}],
        "samba_service_user": false,
        "sudo": false,
        "suspended": false,
        "tags": ["engineering"],
        "unix_guid": 7001,
        "unix_uid": 7001,
        "username": username
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_user_models_are_stored_and_suspended_really_suspends() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let (key, org) = (&acme.api_key, acme.org_id.to_string());

    let sent = sdk_new_user("dana");
    let (s, dana) = call(&node, key, "POST", "/api/systemusers", Some(sent.clone())).await;
    assert_eq!(s, 200, "{dana}");
    let id = dana["_id"].as_str().unwrap().to_string();
    let (_, got) = call(&node, key, "GET", &format!("/api/systemusers/{id}"), None).await;
    for field in [
        "addresses",
        "allow_public_key",
        "attributes",
        "company",
        "costCenter",
        "department",
        "displayname",
        "employeeIdentifier",
        "employeeType",
        "enable_managed_uid",
        "external_dn",
        "external_source_type",
        "externally_managed",
        "jobTitle",
        "location",
        "middlename",
        "password_never_expires",
        "phoneNumbers",
        "public_key",
        "relationships",
        "tags",
        "unix_guid",
        "unix_uid",
    ] {
        assert_eq!(got[field], sent[field], "{field} stored and returned");
    }
    assert_eq!(got["state"], "ACTIVATED", "activated: true with a password");
    assert_eq!(got["suspended"], false);
    assert_eq!(got["enable_user_portal_multifactor"], false);
    assert!(got.get("password").is_none());
    assert_eq!(login(&node, &org, "dana", "a long passphrase").await, 200);

    // activated: false stages a user even with a password; contradictions are 400s.
    let mut staged = sdk_new_user("erin");
    staged["activated"] = json!(false);
    staged["unix_uid"] = json!(7002);
    staged["unix_guid"] = json!(7002);
    let (s, erin) = call(&node, key, "POST", "/api/systemusers", Some(staged)).await;
    assert_eq!((s, erin["state"].as_str()), (200, Some("STAGED")), "{erin}");
    let mut contradiction = sdk_new_user("fay");
    contradiction["state"] = json!("STAGED");
    contradiction["unix_uid"] = json!(7003);
    contradiction["unix_guid"] = json!(7003);
    let (s, e) = call(&node, key, "POST", "/api/systemusers", Some(contradiction)).await;
    assert_eq!((s, e["field"].as_str()), (400, Some("activated")), "{e}");

    // PUT as jcapiv1's SystemuserPut: suspended true suspends (login refused),
    // false unsuspends; the answer shows it at once.
    let (s, put) = call(
        &node,
        key,
        "PUT",
        &format!("/api/systemusers/{id}"),
        Some(json!({"email": "dana@acme.test", "username": "dana", "suspended": true})),
    )
    .await;
    assert_eq!(
        (s, put["state"].as_str(), put["suspended"].as_bool()),
        (200, Some("SUSPENDED"), Some(true)),
        "{put}"
    );
    assert_eq!(login(&node, &org, "dana", "a long passphrase").await, 403);
    let (s, put) = call(
        &node,
        key,
        "PUT",
        &format!("/api/systemusers/{id}"),
        Some(json!({"suspended": false})),
    )
    .await;
    assert_eq!(
        (s, put["state"].as_str()),
        (200, Some("ACTIVATED")),
        "{put}"
    );
    assert_eq!(login(&node, &org, "dana", "a long passphrase").await, 200);

    // A refused PUT changes nothing: a contradiction, or a password the policy
    // refuses, beside a profile change.
    for bad in [
        json!({"department": "Changed", "state": "ACTIVATED", "suspended": true}),
        json!({"department": "Changed", "password": "short"}),
        json!({"department": "Changed", "mfa": {"exclusion": true, "exclusionUntil": "2001-01-01"}}),
    ] {
        let (s, e) = call(
            &node,
            key,
            "PUT",
            &format!("/api/systemusers/{id}"),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(s, 400, "{bad} → {e}");
        let (_, now) = call(&node, key, "GET", &format!("/api/systemusers/{id}"), None).await;
        assert_eq!(now["department"], "R&D", "{bad} left the profile as it was");
    }

    // A password set through PUT activates a staged user.
    let erin_id = erin["_id"].as_str().unwrap();
    let (s, put) = call(
        &node,
        key,
        "PUT",
        &format!("/api/systemusers/{erin_id}"),
        Some(json!({"password": "another long passphrase"})),
    )
    .await;
    assert_eq!(
        (s, put["state"].as_str()),
        (200, Some("ACTIVATED")),
        "{put}"
    );
    assert_eq!(
        login(&node, &org, "erin", "another long passphrase").await,
        200
    );

    // MFA exclusion: stored, returned; resetmfa with an exclusion sets a window.
    let (s, put) = call(&node, key, "PUT", &format!("/api/systemusers/{id}"), Some(json!({"mfa": {"exclusion": true, "exclusionUntil": "2999-01-01T00:00:00Z"}, "enable_user_portal_multifactor": true}))).await;
    assert_eq!(s, 200, "{put}");
    assert_eq!(put["mfa"]["exclusion"], true);
    assert_eq!(put["mfa"]["exclusionUntil"], "2999-01-01T00:00:00Z");
    assert_eq!(put["enable_user_portal_multifactor"], true);
    let (s, reset) = call(
        &node,
        key,
        "POST",
        &format!("/api/systemusers/{id}/resetmfa"),
        Some(json!({"exclusion": true, "exclusionDays": 3})),
    )
    .await;
    assert_eq!(s, 200, "{reset}");
    assert_eq!(reset["mfa"]["exclusionDays"], 3);
    let until = time::OffsetDateTime::parse(
        reset["mfa"]["exclusionUntil"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let days = (until - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((71..=72).contains(&days), "three days from now: {reset}");
    let (s, e) = call(
        &node,
        key,
        "POST",
        &format!("/api/systemusers/{id}/resetmfa"),
        Some(json!({"exclusion": true, "exclusionUntil": "2001-01-01"})),
    )
    .await;
    assert_eq!(
        (s, e["field"].as_str()),
        (400, Some("mfa.exclusionUntil")),
        "{e}"
    );
    let (s, _) = call(
        &node,
        key,
        "POST",
        &format!("/api/systemusers/{id}/resetmfa"),
        None,
    )
    .await;
    assert_eq!(s, 200, "no body: a plain reset");

    // An exclusion waives the code at login while it holds: enroll TOTP, then exclude.
    let creds = json!({"orgId": org, "username": "erin", "password": "another long passphrase"});
    let r = node
        .http
        .post(node.url("/userportal/totp/start"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let step = time::OffsetDateTime::now_utc().unix_timestamp() as u64 / 30;
    let mut finish = creds.clone();
    finish["code"] = json!(castellan_app::totp::code_at(&secret, (step - 1) * 30).unwrap());
    let r = node
        .http
        .post(node.url("/userportal/totp/finish"))
        .json(&finish)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(
        login(&node, &org, "erin", "another long passphrase").await,
        401,
        "enrolled: a code is asked for"
    );
    let (s, _) = call(
        &node,
        key,
        "PUT",
        &format!("/api/systemusers/{erin_id}"),
        Some(json!({"mfa": {"exclusion": true, "exclusionDays": 1}})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        login(&node, &org, "erin", "another long passphrase").await,
        200,
        "excluded: no code"
    );
    let (s, _) = call(
        &node,
        key,
        "PUT",
        &format!("/api/systemusers/{erin_id}"),
        Some(json!({"mfa": {"exclusion": false}})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        login(&node, &org, "erin", "another long passphrase").await,
        401,
        "lifted: the code again"
    );

    // A field that is not the SDK's is still refused, naming it.
    let (s, e) = call(
        &node,
        key,
        "PUT",
        &format!("/api/systemusers/{id}"),
        Some(json!({"colour": "red"})),
    )
    .await;
    assert_eq!((s, e["field"].as_str()), (400, Some("colour")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_filters_fields_and_v2_pages_as_the_clients_send_them() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let key = &acme.api_key;
    let mut ids = Vec::new();
    for (name, department, uid) in [
        ("ann", "R&D", 7101),
        ("bob", "Sales", 7102),
        ("cid", "R&D", 7103),
        ("dee", "Ops", 7104),
    ] {
        let mut body = sdk_new_user(name);
        body["department"] = json!(department);
        body["unix_uid"] = json!(uid);
        body["unix_guid"] = json!(uid);
        body["jobTitle"] = json!(format!("{name} title"));
        let (s, u) = call(&node, key, "POST", "/api/systemusers", Some(body)).await;
        assert_eq!(s, 200, "{u}");
        ids.push(u["_id"].as_str().unwrap().to_string());
    }
    let names = |r: &Value| -> Vec<String> {
        let mut n: Vec<String> = r["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap_or("").to_string())
            .collect();
        n.sort();
        n
    };
    // v1's `$eq` and v2's `eq`, on fields with and without a column.
    for query in [
        "filter=department:$eq:R%26D",
        "filter=department:eq:R%26D",
        "filter=employeeIdentifier:$in:E-ann|E-cid",
        "filter=unix_uid:$gte:7101,unix_uid:$lte:7103,department:$ne:Sales",
        "filter=jobTitle:search:ANN%20TIT&filter=company:$eq:Acme,%20Inc.",
    ] {
        let (s, r) = call(
            &node,
            key,
            "GET",
            &format!("/api/systemusers?{query}"),
            None,
        )
        .await;
        assert_eq!(s, 200, "{query}: {r}");
        let want: Vec<String> = if query.contains("search") {
            vec!["ann".into()]
        } else {
            vec!["ann".into(), "cid".into()]
        };
        assert_eq!(names(&r), want, "{query}");
    }
    let (s, r) = call(
        &node,
        key,
        "GET",
        &format!("/api/systemusers?filter=_id:$eq:{}", ids[1]),
        None,
    )
    .await;
    assert_eq!((s, names(&r)), (200, vec!["bob".to_string()]));
    let (s, r) = call(
        &node,
        key,
        "GET",
        "/api/systemusers?filter=unix_uid:between:7102|7103",
        None,
    )
    .await;
    assert_eq!(
        (s, names(&r)),
        (200, vec!["bob".to_string(), "cid".to_string()]),
        "{r}"
    );
    // The SDK's `search` parameter: JSON text, or a bare term.
    let (s, r) = call(&node, key, "GET", "/api/systemusers?search=%7B%22searchTerm%22%3A%22de%22%2C%22fields%22%3A%5B%22username%22%5D%7D", None).await;
    assert_eq!((s, names(&r)), (200, vec!["dee".to_string()]), "{r}");
    let (s, r) = call(&node, key, "GET", "/api/systemusers?search=cid", None).await;
    assert_eq!((s, names(&r)), (200, vec!["cid".to_string()]), "{r}");
    let (s, e) = call(
        &node,
        key,
        "GET",
        "/api/systemusers?filter=password_hash:$eq:x",
        None,
    )
    .await;
    assert_eq!((s, e["field"].as_str()), (400, Some("filter")), "{e}");

    // The search body's filter as a list or as {and|or}; fields narrow.
    for (body, want) in [
        (
            json!({"filter": [{"department": "R&D"}]}),
            vec!["ann", "cid"],
        ),
        (
            json!({"filter": {"or": [{"department": "Sales"}, {"department": "Ops"}]}}),
            vec!["bob", "dee"],
        ),
        (
            json!({"filter": {"and": [{"department": "R&D"}, {"unix_uid": 7103}]}}),
            vec!["cid"],
        ),
        (
            json!({"searchFilter": {"searchTerm": "dee", "fields": ["username", "email"]}}),
            vec!["dee"],
        ),
    ] {
        let (s, r) = call(
            &node,
            key,
            "POST",
            "/api/search/systemusers",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 200, "{body}: {r}");
        assert_eq!(names(&r), want, "{body}");
    }
    let (s, r) = call(
        &node,
        key,
        "POST",
        "/api/search/systemusers",
        Some(json!({"filter": [{"department": "Ops"}], "fields": "username email"})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let mut keys: Vec<&String> = r["results"][0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["_id", "email", "id", "username"], "{r}");
    let (_, r) = call(
        &node,
        key,
        "GET",
        "/api/systemusers?fields=username%20department&limit=2",
        None,
    )
    .await;
    assert!(
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u.as_object().unwrap().keys().all(|k| [
                "_id",
                "id",
                "username",
                "department"
            ]
            .contains(&k.as_str()))),
        "{r}"
    );
    let (_, one) = call(
        &node,
        key,
        "GET",
        &format!("/api/systemusers/{}?fields=email", ids[0]),
        None,
    )
    .await;
    assert_eq!(one.as_object().unwrap().len(), 3, "{one}");

    // v2 lists page: limit (default 10, at most 100) and skip.
    let (s, g) = call(
        &node,
        key,
        "POST",
        "/api/v2/usergroups",
        Some(json!({"name": "Everyone"})),
    )
    .await;
    assert_eq!(s, 200, "{g}");
    let group = g["id"].as_str().unwrap().to_string();
    for id in &ids {
        let (s, e) = call(
            &node,
            key,
            "POST",
            &format!("/api/v2/usergroups/{group}/members"),
            Some(json!({"op": "add", "type": "user", "id": id})),
        )
        .await;
        assert_eq!(s, 204, "{e}");
    }
    for path in ["members", "membership"] {
        let mut seen = Vec::new();
        for skip in [0, 2, 4] {
            let (s, page) = call(
                &node,
                key,
                "GET",
                &format!("/api/v2/usergroups/{group}/{path}?limit=2&skip={skip}"),
                None,
            )
            .await;
            assert_eq!(s, 200, "{page}");
            let page = page.as_array().unwrap();
            assert_eq!(
                page.len(),
                if skip < 4 { 2 } else { 0 },
                "{path} skip {skip}"
            );
            seen.extend(page.iter().map(|m| {
                m["to"]["id"]
                    .as_str()
                    .or(m["id"].as_str())
                    .unwrap()
                    .to_string()
            }));
        }
        let mut all = ids.clone();
        all.sort();
        assert_eq!(seen, all, "{path}: every member once");
        let (s, _) = call(
            &node,
            key,
            "GET",
            &format!("/api/v2/usergroups/{group}/{path}?limit=101"),
            None,
        )
        .await;
        assert_eq!(s, 400);
    }
    let (s, of) = call(
        &node,
        key,
        "GET",
        &format!("/api/v2/users/{}/memberof?limit=1&skip=1", ids[0]),
        None,
    )
    .await;
    assert_eq!((s, of.as_array().unwrap().len()), (200, 0), "{of}");

    // v2's comma-separated fields narrow a group list.
    let (s, groups) = call(
        &node,
        key,
        "GET",
        "/api/v2/usergroups?fields=name,type",
        None,
    )
    .await;
    assert_eq!(s, 200, "{groups}");
    let mut keys: Vec<&String> = groups[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["id", "name", "type"], "{groups}");

    // A member that does not exist is refused with 404 naming it.
    let (s, e) = call(
        &node,
        key,
        "POST",
        &format!("/api/v2/usergroups/{group}/members"),
        Some(json!({"op": "add", "type": "user", "id": "5f0000000000000000000000"})),
    )
    .await;
    assert_eq!(s, 404, "{e}");
    assert!(e["message"].as_str().unwrap_or("").contains("user"), "{e}");
}

/// Waits until every event in the log is in a Parquet file.
async fn materialized(node: &TestNode) {
    crate::e2e::insights_http::materialized(node).await;
}

fn an_hour_ago() -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_insights_answers_the_pollers_request_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.insights.flush_interval_ms = 50;
    // The test's own client is the proxy: its forwarded address is believed.
    c.http.trusted_proxies = vec!["127.0.0.0/8".into()];
    // A small MaxMind DB made here (mmdb-writer): 203.0.113.0/24 is in Utrecht.
    let geoip = castellan_e2e::python_with("mmdb_writer").map(|python| {
        let path = dir.path().join("geo.mmdb");
        let script = format!(
            "from netaddr import IPSet\nfrom mmdb_writer import MMDBWriter\n\
             w = MMDBWriter(ip_version=4, database_type='GeoLite2-City')\n\
             w.insert_network(IPSet(['203.0.113.0/24']), {{'continent': {{'code': 'EU'}}, 'country': {{'iso_code': 'NL'}}, 'location': {{'latitude': 52.09, 'longitude': 5.12, 'time_zone': 'Europe/Amsterdam'}}, 'subdivisions': [{{'iso_code': 'UT', 'names': {{'en': 'Utrecht'}}}}]}})\n\
             w.to_db_file({:?})\n",
            path.display().to_string()
        );
        let out = std::process::Command::new(python).args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        path
    });
    if let Some(path) = &geoip {
        c.insights.geoip_db = path.display().to_string();
    }
    let node = TestNode::start(c, dir).await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let (key, org) = (&acme.api_key, acme.org_id.to_string());
    for name in ["ann", "bob"] {
        let (s, _) = call(&node, key, "POST", "/api/systemusers", Some(json!({"username": name, "email": format!("{name}@acme.test"), "password": "a long passphrase"}))).await;
        assert_eq!(s, 200);
    }
    let chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36";
    let r = node
        .http
        .post(node.url("/userportal/login"))
        .header("user-agent", chrome)
        .header("x-forwarded-for", "198.51.100.20, 203.0.113.7")
        .json(&json!({"orgId": org, "username": "ann", "password": "a long passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = node
        .http
        .post(node.url("/userportal/login"))
        .json(&json!({"orgId": org, "username": "bob@acme.test", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    materialized(&node).await;
    let post = |body: Value| {
        let (node, key) = (&node, key.clone());
        async move {
            crate::e2e::insights_http::post(node, &key, "/insights/directory/v1/events", body).await
        }
    };

    // Bookkeeping stays in the log: insights shows none of it.
    let (s, _, all) = post(json!({"service": ["all"], "start_time": an_hour_ago()})).await;
    assert_eq!(s, 200, "{all}");
    let all = all.as_array().unwrap().clone();
    for e in &all {
        let t = e["event_type"].as_str().unwrap();
        assert!(
            ![
                "unique_claim",
                "unique_release",
                "unix_id_allocated",
                "totp_step_used",
                "totp_resealed"
            ]
            .contains(&t),
            "{t}"
        );
        assert!(
            !(t == "admin_update" && e["changes"].as_array().is_none_or(|c| c.is_empty())),
            "{e}"
        );
    }
    let (_, _, d) = crate::e2e::insights_http::post(
        &node,
        key,
        "/insights/directory/v1/events/distinct",
        json!({"service": ["all"], "start_time": an_hour_ago(), "field": "event_type"}),
    )
    .await;
    let kinds: Vec<&str> = d["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["key"].as_str().unwrap())
        .collect();
    assert!(
        !kinds.contains(&"unique_claim") && kinds.contains(&"user_create"),
        "{kinds:?}"
    );
    // The installation's own organization is no customer: it has no partition.
    let installation = node
        .dir
        .path()
        .join("insights")
        .join("org=000000000000000000000000");
    assert!(!installation.exists(), "no files for the installation org");

    // user_login_attempt: who tried, as Elastic maps it.
    let logins: Vec<&Value> = all
        .iter()
        .filter(|e| e["event_type"] == "user_login_attempt")
        .collect();
    let ann = logins.iter().find(|e| e["success"] == true).unwrap();
    assert_eq!(ann["initiated_by"]["type"], "user");
    assert_eq!(ann["initiated_by"]["username"], "ann");
    assert!(
        ann["initiated_by"]["id"]
            .as_str()
            .is_some_and(|id| id.len() == 24),
        "{ann}"
    );
    assert!(
        ann["initiated_by"].get("email").is_none(),
        "a username is no email: {ann}"
    );
    let bob = logins.iter().find(|e| e["success"] == false).unwrap();
    assert_eq!(bob["initiated_by"]["email"], "bob@acme.test");
    // The client behind the trusted proxy, and its parsed user agent.
    assert_eq!(ann["client_ip"], "203.0.113.7", "{ann}");
    let ua = &ann["useragent"];
    assert_eq!(
        (
            ua["name"].as_str(),
            ua["major"].as_str(),
            ua["os"].as_str(),
            ua["os_full"].as_str(),
            ua["device"].as_str()
        ),
        (
            Some("Chrome"),
            Some("120"),
            Some("Mac OS X"),
            Some("Mac OS X 10.15.7"),
            Some("Mac")
        ),
        "{ua}"
    );

    // geoip of the client address, where the database knows it.
    if geoip.is_some() {
        let geo = &ann["geoip"];
        assert_eq!(
            (
                geo["country_code"].as_str(),
                geo["continent_code"].as_str(),
                geo["region_code"].as_str(),
                geo["region_name"].as_str(),
                geo["timezone"].as_str()
            ),
            (
                Some("NL"),
                Some("EU"),
                Some("UT"),
                Some("Utrecht"),
                Some("Europe/Amsterdam")
            ),
            "{ann}"
        );
        assert!(
            (geo["latitude"].as_f64().unwrap() - 52.09).abs() < 1e-9,
            "{geo}"
        );
        assert!(bob.get("geoip").is_none(), "loopback is nowhere: {bob}");
    }

    // search_after as the PowerShell SDK sends it: strings.
    let mut q = json!({"service": ["all"], "start_time": an_hour_ago(), "limit": 2});
    let mut paged = Vec::new();
    loop {
        let (s, h, page) = post(q.clone()).await;
        assert_eq!(s, 200, "{page}");
        let page = page.as_array().unwrap().clone();
        paged.extend(page.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        if page.len() < 2 {
            break;
        }
        let after: Vec<Value> =
            serde_json::from_str(h["x-search_after"].to_str().unwrap()).unwrap();
        q["search_after"] = json!([after[0].to_string(), after[1]]);
    }
    let ids: Vec<String> = all
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paged, ids, "string search_after pages like numbers");

    // search_term's object form, as Get-JCEvent builds it.
    let (s, _, hits) = post(json!({"service": ["all"], "start_time": an_hour_ago(), "search_term": {"and": {"event_type": "user_login_attempt"}}})).await;
    assert_eq!((s, hits.as_array().unwrap().len()), (200, 2), "{hits}");
    let (s, _, hits) = post(json!({"service": ["all"], "start_time": an_hour_ago(), "search_term": {"or": {"initiated_by.username": ["ann", "nobody"]}}})).await;
    assert_eq!((s, hits.as_array().unwrap().len()), (200, 1), "{hits}");

    // The guide's `curl -d @query.txt`: a form content type holding JSON.
    let r = node
        .http
        .post(node.url("/insights/directory/v1/events/count"))
        .header("x-api-key", key.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(json!({"service": ["all"], "start_time": an_hour_ago()}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let count: Value = r.json().await.unwrap();
    assert_eq!(count["count"], all.len());
}
