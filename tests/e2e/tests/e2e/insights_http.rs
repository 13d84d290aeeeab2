//! Directory Insights over HTTP on the embedded default: events reach Parquet within
//! seconds; events/count/distinct/interval follow the hosted product's bodies, paging
//! headers and 400s; an organization reads only its own events; admin SQL is read-only;
//! DuckDB reads the files (they are standard Parquet).

use std::time::{Duration, Instant};

use castellan_e2e::node::{config, TestNode};
use serde_json::{json, Value};

async fn node() -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.insights.flush_interval_ms = 50;
    TestNode::start(c, dir).await
}

/// Waits until every event in the log is in a Parquet file.
pub async fn materialized(node: &TestNode) {
    let status = node
        .running
        .insights
        .clone()
        .expect("the node materializes");
    let head = node.running.log.head().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while status.checkpoint.load(std::sync::atomic::Ordering::SeqCst) < head {
        assert!(
            Instant::now() < deadline,
            "insights did not reach position {head}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn post(
    node: &TestNode,
    key: &str,
    path: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = node
        .http
        .post(node.url(path))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    (s, h, r.json().await.unwrap_or(Value::Null))
}

fn start() -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_insights_queries_match_the_hosted_api() {
    let node = node().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let beta = node.bootstrap("Beta", "root@beta.test").await;
    let (a, b) = (&acme.api_key, &beta.api_key);
    for name in ["ann", "bob", "cid"] {
        let (s, _) = node
            .call(a, "POST", "/api/systemusers", Some(json!({"username": name, "email": format!("{name}@acme.test"), "password": "a fine passphrase"})))
            .await;
        assert_eq!(s, 200);
    }
    let (s, _) = node
        .call(
            b,
            "POST",
            "/api/systemusers",
            Some(json!({"username": "zed", "email": "zed@beta.test"})),
        )
        .await;
    assert_eq!(s, 200);
    for (user, password) in [
        ("ann", "wrong one"),
        ("ann", "a fine passphrase"),
        ("bob", "nope nope"),
    ] {
        node.http
            .post(node.url("/userportal/login"))
            .json(
                &json!({"orgId": acme.org_id.to_string(), "username": user, "password": password}),
            )
            .send()
            .await
            .unwrap();
    }
    materialized(&node).await;
    let base = json!({"service": ["all"], "start_time": start()});

    // Everything of Acme, oldest first, with the paging headers.
    let (s, h, all) = post(&node, a, "/insights/directory/v1/events", base.clone()).await;
    assert_eq!(s, 200, "{all}");
    let all = all.as_array().unwrap().clone();
    assert_eq!(h["x-result-count"], all.len().to_string().as_str());
    assert_eq!(h["x-limit"], "1000");
    assert_eq!(h["x-sort"], "ASC");
    assert!(h.contains_key("x-request-id") && h.contains_key("x-search_after"));
    let types: Vec<&str> = all
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for t in [
        "organization_create",
        "admin_create",
        "user_create",
        "user_login_attempt",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    assert!(
        all.iter()
            .all(|e| e["organization"] == acme.org_id.to_string()),
        "only Acme's events"
    );
    assert!(
        !serde_json::to_string(&all).unwrap().contains("argon2"),
        "no password hashes"
    );
    let stamps: Vec<&str> = all
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "sorted by time");

    // A search term (and/or/not, dot notation, lists); values compare case-insensitively.
    let failed = |term: Value| {
        let mut q = base.clone();
        q["search_term"] = term;
        q
    };
    let (_, _, hits) = post(
        &node,
        a,
        "/insights/directory/v1/events",
        failed(json!({"and": [{"event_type": "user_login_attempt"}, {"success": false}]})),
    )
    .await;
    assert_eq!(hits.as_array().unwrap().len(), 2, "{hits}");
    let (_, _, hits) = post(&node, a, "/insights/directory/v1/events", failed(json!({"and": [{"resource.username": ["ANN", "cid"]}, {"not": [{"event_type": "user_login_attempt"}]}]}))).await;
    assert_eq!(
        hits.as_array().unwrap().len(),
        2,
        "ann's and cid's user_create: {hits}"
    );
    let (_, _, hits) = post(
        &node,
        a,
        "/insights/directory/v1/events",
        failed(json!({"or": [{"mfa_meta.type": "none"}]})),
    )
    .await;
    assert_eq!(
        hits.as_array().unwrap().len(),
        3,
        "a field without a column: {hits}"
    );

    // Paging with search_after partitions the result; DESC reverses it; fields project.
    let mut q = base.clone();
    q["limit"] = json!(2);
    let mut paged = Vec::new();
    loop {
        let (s, h, page) = post(&node, a, "/insights/directory/v1/events", q.clone()).await;
        assert_eq!(s, 200);
        let page = page.as_array().unwrap().clone();
        paged.extend(page.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        if page.len() < 2 {
            break;
        }
        q["search_after"] = serde_json::from_str(h["x-search_after"].to_str().unwrap()).unwrap();
    }
    let ids: Vec<String> = all
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paged, ids);
    let mut q = base.clone();
    q["sort"] = json!("desc");
    q["fields"] = json!(["event_type", "initiated_by.email"]);
    let (_, h, desc) = post(&node, a, "/insights/directory/v1/events", q).await;
    assert_eq!(h["x-sort"], "DESC");
    let desc = desc.as_array().unwrap();
    assert_eq!(desc.len(), all.len());
    assert_eq!(desc[0]["event_type"], all.last().unwrap()["event_type"]);
    assert!(desc.iter().all(|e| e
        .as_object()
        .unwrap()
        .keys()
        .all(|k| k == "event_type" || k == "initiated_by")));

    // count, distinct, interval.
    let (_, _, c) = post(
        &node,
        a,
        "/insights/directory/v1/events/count",
        base.clone(),
    )
    .await;
    assert_eq!(c["count"], all.len());
    let mut d = base.clone();
    d["field"] = json!("event_type");
    let (s, _, dist) = post(&node, a, "/insights/directory/v1/events/distinct", d).await;
    assert_eq!(s, 200, "{dist}");
    let buckets = dist["buckets"].as_array().unwrap();
    let logins = buckets
        .iter()
        .find(|b| b["key"] == "user_login_attempt")
        .unwrap();
    assert_eq!(logins["doc_count"], 3);
    assert_eq!(
        buckets
            .iter()
            .map(|b| b["doc_count"].as_i64().unwrap())
            .sum::<i64>(),
        all.len() as i64
    );
    let mut i = base.clone();
    i["interval_unit"] = json!("h");
    i["timezone"] = json!("-0500");
    let (s, _, iv) = post(&node, a, "/insights/directory/v1/events/interval", i).await;
    assert_eq!(s, 200, "{iv}");
    let total: i64 = iv["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["doc_count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, all.len() as i64);

    // The hosted product's 400s.
    for (body, field) in [
        (
            json!({"service": ["nope"], "start_time": start()}),
            "service",
        ),
        (json!({"service": ["all"]}), "start_time"),
        (
            json!({"service": ["all"], "start_time": start(), "end_time": "2000-01-01T00:00:00Z"}),
            "end_time",
        ),
        (
            json!({"service": ["all"], "start_time": start(), "fields": []}),
            "fields",
        ),
        (
            json!({"service": ["all"], "start_time": start(), "search_term": {"maybe": []}}),
            "search_term",
        ),
        (
            json!({"service": ["all"], "start_time": start(), "search_term": {"and": [{"a": 1}, {"a": 2}]}}),
            "search_term",
        ),
        (
            json!({"service": ["all"], "start_time": start(), "search_term": {"and": [{"changes": "x"}]}}),
            "search_term",
        ),
        // Past the schema's int64 (schemathesis found this one).
        (
            json!({"service": ["all"], "start_time": start(), "skip": 9_223_372_036_854_775_808u64}),
            "skip",
        ),
        (
            json!({"service": ["all"], "start_time": start(), "skip": "ten"}),
            "skip",
        ),
    ] {
        let (s, _, e) = post(&node, a, "/insights/directory/v1/events", body.clone()).await;
        assert_eq!((s, e["field"].as_str()), (400, Some(field)), "{body} → {e}");
    }
    // "Nonsense values fall back to the default" (the guide): a limit outside
    // 1–10000, below int64 (schemathesis found it), a fraction or text means 1000;
    // digits as text are their number.
    for (limit, want) in [
        (
            serde_json::from_str("-9223372036854775809").unwrap(),
            "1000",
        ),
        (json!(0), "1000"),
        (json!(10001), "1000"),
        (json!(1.5), "1000"),
        (json!("ten"), "1000"),
        (json!(true), "1000"),
        (json!("2"), "2"),
    ] {
        let body = json!({"service": ["all"], "start_time": start(), "limit": limit});
        let (s, h, e) = post(&node, a, "/insights/directory/v1/events", body.clone()).await;
        assert_eq!(
            (s, h["x-limit"].to_str().unwrap()),
            (200, want),
            "{body} → {e}"
        );
    }
    // A timezone that is not text is refused, not read as UTC (schemathesis found it).
    for tz in [json!(0), json!(-300), json!(["-0500"]), json!("5 hours")] {
        let body = json!({"service": ["all"], "start_time": start(), "interval_unit": "h", "timezone": tz});
        let (s, _, e) = post(
            &node,
            a,
            "/insights/directory/v1/events/interval",
            body.clone(),
        )
        .await;
        assert_eq!(
            (s, e["field"].as_str()),
            (400, Some("timezone")),
            "{body} → {e}"
        );
    }

    // Beta sees only Beta, whatever it searches for.
    let mut q = base.clone();
    q["search_term"] = json!({"or": [{"organization": acme.org_id.to_string()}]});
    let (_, _, none) = post(&node, b, "/insights/directory/v1/events", q).await;
    assert_eq!(none, json!([]));
    let (_, _, theirs) = post(&node, b, "/insights/directory/v1/events", base.clone()).await;
    assert!(theirs
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["organization"] == beta.org_id.to_string()));

    // Admin SQL: one table, this org's rows, read-only.
    let (s, _, r) = post(&node, a, "/api/insights/sql", json!({"sql": "SELECT event_type, count(*) AS n FROM events GROUP BY event_type ORDER BY n DESC, event_type"})).await;
    assert_eq!(s, 200, "{r}");
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(
        rows.iter().map(|r| r["n"].as_i64().unwrap()).sum::<i64>(),
        all.len() as i64
    );
    let (s, _, r) = post(
        &node,
        b,
        "/api/insights/sql",
        json!({"sql": "SELECT count(*) AS n FROM events WHERE org <> lower('x')"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(r["rows"][0]["n"], theirs.as_array().unwrap().len());
    for bad in [
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO events SELECT * FROM events",
        "SET datafusion.execution.batch_size = 1",
        "SELECT * FROM 'x.parquet'",
        "SELEKT",
    ] {
        let (s, _, e) = post(&node, a, "/api/insights/sql", json!({"sql": bad})).await;
        assert_eq!((s, e["field"].as_str()), (400, Some("sql")), "{bad}: {e}");
    }
    let r = node
        .http
        .post(node.url("/api/insights/sql"))
        .header("x-api-key", a.as_str())
        .json(&json!({"sql": "SELECT event_type FROM events WHERE event_type = 'user_create' ORDER BY timestamp", "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        r.text().await.unwrap(),
        "event_type\nuser_create\nuser_create\nuser_create\n"
    );

    // DuckDB reads the same files and finds the same rows.
    if let Some(python) = castellan_e2e::python_with("duckdb") {
        let dir = node.dir.path().join("insights");
        let script = format!(
            "import duckdb; print(duckdb.sql(\"SELECT count(*), count(DISTINCT id) FROM read_parquet('{}/org={}/*/*.parquet')\").fetchall()[0])",
            dir.display(),
            acme.org_id
        );
        let out = std::process::Command::new(python)
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let n = all.len();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("({n}, {n})")
        );
    }
}
