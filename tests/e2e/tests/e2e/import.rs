//! CSV user import over the API and the CLI.

use std::process::Command;

use castellan_e2e::node::TestNode;
use serde_json::{json, Value};

const HEADER: &str = "firstname,lastname,username,email,password\n";

async fn import(node: &TestNode, key: &str, csv: &str, query: &str) -> (u16, Value) {
    let r = node
        .http
        .post(node.url(&format!("/api/systemusers/import{query}")))
        .header("x-api-key", key)
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn user_count(node: &TestNode, key: &str) -> u64 {
    let r = node
        .http
        .get(node.url("/api/systemusers"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["totalCount"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_imports_row_by_row_with_reasons_and_a_dry_run_changes_nothing() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let key = &acme.api_key;
    let r = node
        .http
        .post(node.url("/api/systemusers"))
        .header("x-api-key", key)
        .json(&json!({"username": "taken", "email": "taken@acme.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csv = format!(
        "{HEADER}Ada,Lovelace,ada,ADA@acme.test,a long passphrase\n\
         Bob,,bob,bob@acme.test,\n\
         Bob,Again,BOB,bob2@acme.test,\n\
         Tak,En,taken,t2@acme.test,\n\
         Bad,Mail,badmail,not-an-email,\n\
         Short,Pw,shorty,shorty@acme.test,abc\n\
         \"Quoted, Name\",X,quoted,quoted@acme.test,\n"
    );
    let (s, dry) = import(&node, key, &csv, "?dryRun=true").await;
    assert_eq!(s, 200, "{dry}");
    assert_eq!(
        dry["summary"],
        json!({"rows": 7, "imported": 0, "valid": 3, "skipped": 4})
    );
    assert_eq!(user_count(&node, key).await, 1, "a dry run creates nothing");

    let (s, done) = import(&node, key, &csv, "").await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(
        done["summary"],
        json!({"rows": 7, "imported": 3, "valid": 0, "skipped": 4})
    );
    let results = done["results"].as_array().unwrap();
    let by_user = |u: &str| results.iter().find(|r| r["username"] == u).unwrap().clone();
    assert_eq!(by_user("ada")["status"], "imported");
    assert_eq!(by_user("ada")["line"], 2);
    assert_eq!(by_user("ada")["email"], "ada@acme.test");
    assert_eq!(by_user("BOB")["status"], "skipped");
    assert!(by_user("BOB")["reason"]
        .as_str()
        .unwrap()
        .contains("repeats an earlier row"));
    assert!(by_user("taken")["reason"]
        .as_str()
        .unwrap()
        .contains("already in use"));
    assert!(by_user("badmail")["reason"]
        .as_str()
        .unwrap()
        .contains("email"));
    assert!(by_user("shorty")["reason"]
        .as_str()
        .unwrap()
        .contains("at least 8"));
    assert_eq!(user_count(&node, key).await, 4);

    let get = |id: String| {
        let (http, url, key) = (
            node.http.clone(),
            node.url(&format!("/api/systemusers/{id}")),
            key.clone(),
        );
        async move {
            http.get(url)
                .header("x-api-key", key)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let ada = get(by_user("ada")["user_id"].as_str().unwrap().to_string()).await;
    assert_eq!(ada["state"], "ACTIVATED");
    let bob = get(by_user("bob")["user_id"].as_str().unwrap().to_string()).await;
    assert_eq!(bob["state"], "STAGED");
    let quoted = get(by_user("quoted")["user_id"].as_str().unwrap().to_string()).await;
    assert_eq!(quoted["firstname"], "Quoted, Name");

    // The result CSV.
    let r = node
        .http
        .post(node.url("/api/systemusers/import?dryRun=true"))
        .header("x-api-key", key)
        .header("accept", "text/csv")
        .body(format!("{HEADER}Zed,Z,zed,zed@acme.test,\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        r.text().await.unwrap(),
        "line,username,email,status,reason,user_id\n2,zed,zed@acme.test,valid,,\n"
    );
}

#[tokio::test]
async fn malformed_files_are_refused_whole_with_the_line() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let key = &acme.api_key;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"FirstName,LastName,Username,Email,Password\na,b,c,c@x.test,\n".to_vec(), "line 1: the header is \"FirstName,LastName,Username,Email,Password\"; it must be exactly \"firstname,lastname,username,email,password\""),
        (b"firstname,lastname,username,email\n".to_vec(), "line 1"),
        (format!("{HEADER}a,b,ok1,ok1@x.test,\na,b,c\n").into_bytes(), "line 3: 3 columns where the header has 5"),
        ([HEADER.as_bytes(), b"a,b,ok2,ok2@x.test,\n\xff\xfe,b,c,d,e\n"].concat(), "line 3: the file is not UTF-8 text"),
        (format!("{HEADER}a,b,ok3,ok3@x.test,\n\"unclosed,b,c,d,e\n").into_bytes(), "line 3"),
        (Vec::new(), "the file is empty"),
    ];
    for (body, expected) in cases {
        let r = node
            .http
            .post(node.url("/api/systemusers/import"))
            .header("x-api-key", key)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["code"], "invalid_csv");
        assert!(e["message"].as_str().unwrap().contains(expected), "{e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("nothing was imported"),
            "{e}"
        );
    }
    assert_eq!(user_count(&node, key).await, 0, "nothing half-imported");
}

#[test]
fn the_cli_imports_with_a_result_file_beside_the_input() {
    let bin = env!("CARGO_BIN_EXE_castellan-e2e-server");
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .env("CASTELLAN_DATA_DIR", dir.path())
            .env("CASTELLAN_LOGGING_LEVEL", "error")
            .output()
            .unwrap()
    };
    let out = run(&[
        "bootstrap",
        "--org-name",
        "Acme",
        "--admin-email",
        "root@acme.test",
    ]);
    assert!(out.status.success());
    let csv = dir.path().join("people.csv");
    let mut text = String::from(HEADER);
    for i in 0..40 {
        let pw = if i % 2 == 0 {
            format!("passphrase number {i}")
        } else {
            String::new()
        };
        text.push_str(&format!("F{i},L{i},user{i},user{i}@acme.test,{pw}\n"));
    }
    text.push_str("Dup,Row,user1,dup@acme.test,\n");
    std::fs::write(&csv, text).unwrap();

    let out = run(&["users", "import", csv.to_str().unwrap(), "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["summary"],
        json!({"rows": 41, "imported": 0, "valid": 40, "skipped": 1})
    );

    let out = run(&["users", "import", csv.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["summary"],
        json!({"rows": 41, "imported": 40, "valid": 0, "skipped": 1})
    );
    let result = std::fs::read_to_string(dir.path().join("people.result.csv")).unwrap();
    let lines: Vec<&str> = result.lines().collect();
    assert_eq!(lines[0], "line,username,email,status,reason,user_id");
    assert_eq!(lines.len(), 42);
    assert!(
        lines
            .iter()
            .any(|l| l
                .starts_with("42,user1,dup@acme.test,skipped,the username repeats an earlier row")),
        "{result}"
    );

    // A second run skips every row: they exist now.
    let out = run(&["users", "import", csv.to_str().unwrap()]);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["summary"]["skipped"], 41);

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "firstname,lastname,username,email\n").unwrap();
    let out = run(&["users", "import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.csv") && err.contains("line 1") && err.contains("nothing was imported"),
        "{err}"
    );
}

#[tokio::test]
async fn imports_take_uids_in_blocks_and_step_around_hand_set_ones() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let key = &acme.api_key;
    // A uid set by hand where the next block will land.
    let (s, _) = node
        .call(
            key,
            "POST",
            "/api/systemusers",
            Some(json!({"username": "manual", "email": "manual@acme.test", "unix_uid": 5002})),
        )
        .await;
    assert_eq!(s, 200);
    let mut csv = String::from(HEADER);
    for i in 0..6 {
        csv.push_str(&format!("F,L,bulk{i},bulk{i}@acme.test,\n"));
    }
    let (s, done) = import(&node, key, &csv, "").await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["summary"]["imported"], 6);
    let (_, list) = node
        .call(key, "GET", "/api/systemusers?limit=100&sort=unix_uid", None)
        .await;
    let uids: Vec<u64> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["unix_uid"].as_u64().unwrap())
        .collect();
    let mut distinct = uids.clone();
    distinct.dedup();
    assert_eq!(uids.len(), 7);
    assert_eq!(distinct, uids, "every uid once: {uids:?}");
    assert!(uids.contains(&5002));
}
