//! The attacks of the black-box probe, replayed: each test performs one as the probe
//! did and proves it refused.

use castellan_app::totp::code_at;
use castellan_domain::envelope::StreamId;
use castellan_domain::user::User;
use castellan_e2e::node::TestNode;
use serde_json::{json, Value};

const PASSWORD: &str = "a long passphrase";
const ADMIN_PASSWORD: &str = "an admin passphrase";

async fn post(node: &TestNode, path: &str, body: &Value) -> (u16, Value) {
    let r = node
        .http
        .post(node.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create_user(node: &TestNode, key: &str, username: &str) -> String {
    let (s, u) = node
        .call(
            key,
            "POST",
            "/api/systemusers",
            Some(json!({"username": username, "email": format!("{username}@acme.test"), "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    u["id"].as_str().unwrap().to_string()
}

async fn create_admin(node: &TestNode, key: &str, email: &str, role: &str) -> (u16, Value) {
    node.call(
        key,
        "POST",
        "/api/administrators",
        Some(json!({"email": email, "role": role, "password": ADMIN_PASSWORD})),
    )
    .await
}

fn unix_now() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp() as u64
}

/// The current TOTP step, once at least 12 s of it remain (codes of the steps
/// around it stay valid for the test's few requests).
async fn fresh_step() -> u64 {
    while unix_now() % 30 > 18 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    unix_now() / 30
}

async fn auth_events(node: &TestNode, org: castellan_domain::ObjectId, kind: &str) -> Vec<Value> {
    node.running
        .log
        .read_stream(org, &StreamId::auth("directory"))
        .await
        .unwrap()
        .iter()
        .flat_map(|c| c.envelopes())
        .filter(|e| e.event_type == kind)
        .map(|e| json!({"payload": e.payload, "actor": e.actor}))
        .collect()
}

/// Critical 1: `POST /userportal/totp/start` with the password alone no longer
/// drops an enrolled factor; with the current code it starts a new enrollment while
/// the old secret stays in force until the new one is confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_totp_is_not_replaced_with_the_password_alone() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let org = acme.org_id.to_string();
    let id: castellan_domain::ObjectId = create_user(&node, &acme.api_key, "ivan")
        .await
        .parse()
        .unwrap();
    let creds = json!({"orgId": org, "username": "ivan", "password": PASSWORD});
    let (s, e) = post(&node, "/userportal/totp/start", &creds).await;
    assert_eq!(s, 200, "{e}");
    let old = e["secret"].as_str().unwrap().to_string();
    let step = fresh_step().await;
    let mut finish = creds.clone();
    finish["code"] = json!(code_at(&old, (step - 1) * 30).unwrap());
    assert_eq!(post(&node, "/userportal/totp/finish", &finish).await.0, 200);

    // The probe's sequence: login → mfa_required; start with the same body; login.
    let (s, e) = post(&node, "/userportal/login", &creds).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("mfa_required")));
    let (s, e) = post(&node, "/userportal/totp/start", &creds).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("mfa_required")), "{e}");
    let (s, e) = post(&node, "/userportal/login", &creds).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (401, Some("mfa_required")),
        "still enrolled"
    );
    let mut wrong = creds.clone();
    wrong["totp"] = json!(if code_at(&old, step * 30).unwrap() == "000000" {
        "111111"
    } else {
        "000000"
    });
    let (s, _) = post(&node, "/userportal/totp/start", &wrong).await;
    assert_eq!(s, 403, "a wrong current code starts nothing");

    // With the current code: a new secret, and the old one still logs in meanwhile.
    let mut proven = creds.clone();
    proven["totp"] = json!(code_at(&old, step * 30).unwrap());
    let (s, e) = post(&node, "/userportal/totp/start", &proven).await;
    assert_eq!(s, 200, "{e}");
    let new = e["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let (s, _) = post(&node, "/userportal/totp/start", &proven).await;
    assert_eq!(s, 403, "the proving code was spent");
    let mut old_login = creds.clone();
    old_login["totp"] = json!(code_at(&old, (step + 1) * 30).unwrap());
    let (s, e) = post(&node, "/userportal/login", &old_login).await;
    assert_eq!(s, 200, "the old factor stays in force until confirmed: {e}");
    let mut confirm = creds.clone();
    confirm["code"] = json!(code_at(&new, (step + 1) * 30).unwrap());
    let (s, e) = post(&node, "/userportal/totp/finish", &confirm).await;
    assert_eq!(s, 200, "{e}");
    let user = castellan_app::execute::load::<User>(
        &*node.running.log,
        acme.org_id,
        &StreamId::aggregate("user", id),
    )
    .await
    .unwrap()
    .state;
    let sealed = user.totp.secret.unwrap();
    assert!(sealed.starts_with("enc1:test1:"), "{sealed}");
    let binding = castellan_app::sealing::Binding {
        purpose: "totp",
        org: &org,
        account: &format!("user/{id}"),
    };
    assert_eq!(
        castellan_e2e::node::test_keyring()
            .open(binding, &sealed)
            .unwrap(),
        new
    );
    assert!(user.totp.enrolled && user.totp.pending_secret.is_none());
}

/// Critical 1, admins: an API key alone cannot restart the enrollment of an admin
/// with TOTP, so a password-only portal login stays impossible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_totp_is_not_dropped_with_an_api_key() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let (s, e) = create_admin(&node, &acme.api_key, "ops@acme.test", "administrator").await;
    assert_eq!(s, 201, "{e}");
    let key = node.own_key("ops@acme.test", ADMIN_PASSWORD).await;
    let (s, e) = node.call(&key, "POST", "/api/admin/totp/start", None).await;
    assert_eq!(s, 200, "{e}");
    let secret = e["secret"].as_str().unwrap().to_string();
    let step = fresh_step().await;
    let (s, e) = node
        .call(
            &key,
            "POST",
            "/api/admin/totp/finish",
            Some(json!({"code": code_at(&secret, (step - 1) * 30).unwrap()})),
        )
        .await;
    assert_eq!(s, 200, "{e}");

    let (s, e) = node.call(&key, "POST", "/api/admin/totp/start", None).await;
    assert_eq!((s, e["field"].as_str()), (400, Some("code")), "{e}");
    let login = json!({"email": "ops@acme.test", "password": ADMIN_PASSWORD});
    let (s, e) = post(&node, "/api/admin/session", &login).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("mfa_required")), "{e}");
    // With the current code the factor can be replaced; the old one works meanwhile.
    let (s, e) = node
        .call(
            &key,
            "POST",
            "/api/admin/totp/start",
            Some(json!({"code": code_at(&secret, step * 30).unwrap()})),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    let mut with_code = login.clone();
    with_code["totp"] = json!(code_at(&secret, (step + 1) * 30).unwrap());
    let (s, e) = post(&node, "/api/admin/session", &with_code).await;
    assert_eq!(s, 200, "{e}");
}

/// High 2: wrong passwords sent to `/userportal/totp/start` are login attempts:
/// recorded, counted toward lockout, and an unknown user is recorded too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_passwords_count_toward_lockout() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let org = acme.org_id.to_string();
    let (s, e) = node
        .call(
            &acme.api_key,
            "PUT",
            &format!("/api/organizations/{org}"),
            Some(json!({"settings": {"passwordPolicy": {"maxLoginAttempts": 3, "lockoutTimeInSeconds": 0, "resetLockoutCounterMinutes": 10}}})),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    create_user(&node, &acme.api_key, "jo").await;
    for _ in 0..3 {
        let (s, _) = post(
            &node,
            "/userportal/totp/start",
            &json!({"orgId": org, "username": "jo", "password": "wrong guess"}),
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, _) = post(
        &node,
        "/userportal/totp/start",
        &json!({"orgId": org, "username": "jo", "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, 401, "locked after three wrong passwords");
    let (s, _) = post(
        &node,
        "/userportal/totp/start",
        &json!({"orgId": org, "username": "nobody", "password": "x"}),
    )
    .await;
    assert_eq!(s, 401);
    let attempts = auth_events(&node, acme.org_id, "user_login_attempt").await;
    let counted = attempts
        .iter()
        .filter(|a| a["payload"]["counts_toward_lockout"] == true)
        .count();
    assert_eq!(counted, 3, "{attempts:?}");
    assert!(
        attempts
            .iter()
            .any(|a| a["payload"]["username"] == "nobody"
                && a["payload"]["resource"]["id"].is_null()),
        "an unknown user is checked (against the dummy hash) and recorded"
    );
    let mut locked = Value::Null;
    for _ in 0..40 {
        let (_, users) = node
            .call(&acme.api_key, "GET", "/api/systemusers", None)
            .await;
        locked = users["results"][0]["account_locked"].clone();
        if locked == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(locked, true);
}

/// High 4 and Medium 7: 40 wrong admin passwords in a row lock the admin and then
/// throttle the address; the right password then gets no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_logins_lock_the_admin_and_throttle_the_address() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let (s, _) = create_admin(&node, &acme.api_key, "ops@acme.test", "administrator").await;
    assert_eq!(s, 201);
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let (s, _) = post(
            &node,
            "/api/admin/session",
            &json!({"email": "ops@acme.test", "password": "wrong guess"}),
        )
        .await;
        statuses.push(s);
    }
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[30..].iter().all(|s| *s == 429), "{statuses:?}");
    let r = node
        .http
        .post(node.url("/api/admin/session"))
        .json(&json!({"email": "ops@acme.test", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    assert!(r.headers().get("set-cookie").is_none());
    let types: Vec<String> = node
        .running
        .log
        .read_after(0, 100_000)
        .await
        .unwrap()
        .iter()
        .flat_map(|c| c.commit.events.iter().map(|e| e.event_type.clone()))
        .collect();
    assert_eq!(
        types.iter().filter(|t| *t == "admin_lockout").count(),
        1,
        "locked once, at the tenth failure"
    );
    assert_eq!(
        types.iter().filter(|t| *t == "admin_login_attempt").count(),
        30,
        "throttled attempts are not recorded"
    );
}

/// High 4: the lockout holds on its own (a fresh address is not throttled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_admin_gets_no_session_even_with_the_right_password() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let (s, _) = create_admin(&node, &acme.api_key, "ops@acme.test", "administrator").await;
    assert_eq!(s, 201);
    for _ in 0..10 {
        let (s, _) = post(
            &node,
            "/api/admin/session",
            &json!({"email": "ops@acme.test", "password": "wrong guess"}),
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, e) = post(
        &node,
        "/api/admin/session",
        &json!({"email": "ops@acme.test", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (401, Some("invalid_credentials")));
    // Another admin is not affected.
    let (s, _) = create_admin(&node, &acme.api_key, "dev@acme.test", "manager").await;
    assert_eq!(s, 201);
    node.own_key("dev@acme.test", ADMIN_PASSWORD).await;
}

/// Medium 7: a 900,000-character username is recorded cut to a few hundred.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_username_in_a_failed_login_is_recorded_cut() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let huge = "u".repeat(900_000);
    let (s, _) = post(
        &node,
        "/userportal/login",
        &json!({"orgId": acme.org_id.to_string(), "username": huge, "password": "x"}),
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = post(
        &node,
        "/api/admin/session",
        &json!({"email": huge, "password": "x"}),
    )
    .await;
    assert_eq!(s, 401);
    let all = node.running.log.read_after(0, 100_000).await.unwrap();
    let biggest = all
        .iter()
        .filter(|c| c.commit.stream.is_auth())
        .map(|c| serde_json::to_string(&c.commit).unwrap().len())
        .max()
        .unwrap();
    assert!(biggest < 4096, "an attempt takes {biggest} bytes");
    let user = auth_events(&node, acme.org_id, "user_login_attempt").await;
    let recorded = user[0]["payload"]["username"].as_str().unwrap();
    assert!(
        recorded.ends_with(castellan_app::auth_events::TRUNCATED),
        "{recorded}"
    );
}

/// Medium 8: with org A's key, org B's admin email and an unknown email answer alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_organizations_admins_are_not_revealed() {
    let node = TestNode::embedded().await;
    let a = node.bootstrap("Acme", "root@acme.test").await;
    node.bootstrap("Beta", "root@beta.test").await;
    for password in ["short", ADMIN_PASSWORD] {
        let body = |email: &str| json!({"email": email, "role": "read_only", "password": password});
        let (s1, known) = node
            .call(
                &a.api_key,
                "POST",
                "/api/administrators",
                Some(body("root@beta.test")),
            )
            .await;
        let (s2, unknown) = node
            .call(
                &a.api_key,
                "POST",
                "/api/administrators",
                Some(body(&format!("new-{}@x.test", password.len()))),
            )
            .await;
        assert_eq!(s1, s2, "{known} / {unknown}");
        let shape = |v: &Value| {
            let mut v = v.clone();
            for k in ["id", "email"] {
                v.as_object_mut().map(|o| o.remove(k));
            }
            v
        };
        assert_eq!(shape(&known), shape(&unknown));
    }
}

/// Medium 9: an administrator cannot make an administrator with billing, cannot take
/// over a higher admin's key, and revoking a lower admin's key hands nothing over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_cannot_be_escalated_and_keys_are_not_handed_over() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let root = &acme.api_key;
    let (s, _) = create_admin(&node, root, "ops@acme.test", "administrator").await;
    assert_eq!(s, 201);
    let ops = node.own_key("ops@acme.test", ADMIN_PASSWORD).await;
    let (s, e) = create_admin(&node, &ops, "boss@acme.test", "administrator_with_billing").await;
    assert_eq!((s, e["code"].as_str()), (403, Some("forbidden")), "{e}");
    let (s, _) = node
        .call(
            &ops,
            "POST",
            &format!("/api/administrators/{}/apikey", acme.admin_id),
            None,
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(
        node.call(root, "GET", "/api/systemusers", None).await.0,
        200
    );

    let (s, m) = create_admin(&node, &ops, "help@acme.test", "help_desk").await;
    assert_eq!(s, 201);
    let help = node.own_key("help@acme.test", ADMIN_PASSWORD).await;
    let (s, e) = node
        .call(
            &ops,
            "POST",
            &format!("/api/administrators/{}/apikey", m["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 200, "{e}");
    assert!(
        e.get("apiKey").is_none(),
        "no key is handed to the caller: {e}"
    );
    assert_eq!(
        node.call(&help, "GET", "/api/systemusers", None).await.0,
        401
    );
    let (_, admins) = node.call(root, "GET", "/api/administrators", None).await;
    let listed = serde_json::to_string(&admins).unwrap();
    assert!(
        !listed.contains(&ops[..8]),
        "no part of a key is listed: {listed}"
    );
}

/// Medium 10: logout ends the session on the server; a TOTP reset ends it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_a_totp_reset_end_the_session() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let (s, created) = create_admin(&node, &acme.api_key, "ops@acme.test", "administrator").await;
    assert_eq!(s, 201);
    let session = || async {
        let r = node
            .http
            .post(node.url("/api/admin/session"))
            .json(&json!({"email": "ops@acme.test", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let body: Value = r.json().await.unwrap();
        (cookie, body["csrfToken"].as_str().unwrap().to_string())
    };
    let node = &node;
    let get = |cookie: String| async move {
        node.http
            .get(node.url("/api/systemusers"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let (cookie, csrf) = session().await;
    assert_eq!(get(cookie.clone()).await, 200);
    let r = node
        .http
        .delete(node.url("/api/admin/session"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(cookie.clone()).await, 401, "the cookie no longer works");
    let write = node
        .http
        .post(node.url("/api/systemusers"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"username": "x", "email": "x@acme.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 401);

    // A new session works until an admin resets the TOTP of its owner.
    let (cookie, _) = session().await;
    assert_eq!(get(cookie.clone()).await, 200);
    let key = node.own_key("ops@acme.test", ADMIN_PASSWORD).await;
    let (s, e) = node.call(&key, "POST", "/api/admin/totp/start", None).await;
    assert_eq!(s, 200, "{e}");
    let (s, _) = node
        .call(
            &acme.api_key,
            "DELETE",
            &format!(
                "/api/administrators/{}/totp",
                created["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(get(cookie).await, 401, "a TOTP reset ends the sessions");
}

/// The probe's process-aborting queries, sent as it sent them with a read-only key:
/// a search term of 700 `or` conditions and admin SQL of 1,000 `OR` terms (12 KB).
/// Both answer, the node keeps serving, and the bounds are 400s that say the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_queries_answer_instead_of_aborting_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = castellan_e2e::node::config(dir.path());
    c.insights.flush_interval_ms = 50;
    let node = TestNode::start(c, dir).await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let root = &acme.api_key;
    create_user(&node, root, "ann").await;
    let (s, _) = create_admin(&node, root, "reader@acme.test", "read_only").await;
    assert_eq!(s, 201);
    let reader = node.own_key("reader@acme.test", ADMIN_PASSWORD).await;
    super::insights_http::materialized(&node).await;
    let start = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let ask = |path: &'static str, body: Value| {
        let (node, reader) = (&node, reader.clone());
        async move { super::insights_http::post(node, &reader, path, body).await }
    };

    let ors: Vec<Value> = (0..700)
        .map(|i| json!({"and": [{"resource.username": format!("u{i}")}]}))
        .collect();
    let body = json!({"service": ["all"], "start_time": start, "search_term": {"or": ors}});
    let (s, _, count) = ask("/insights/directory/v1/events/count", body).await;
    assert_eq!(s, 200, "{count}");

    let sql = format!(
        "SELECT count(*) AS n FROM events WHERE {}",
        (0..1000)
            .map(|i| format!("username = 'u{i}'"))
            .collect::<Vec<_>>()
            .join(" OR ")
    );
    assert!(sql.len() > 12_000);
    let (s, _, rows) = ask("/api/insights/sql", json!({"sql": sql})).await;
    assert_eq!(s, 200, "{rows}");

    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"and": [{"resource.username": format!("u{i}")}]}))
        .collect();
    let body = json!({"service": ["all"], "start_time": start, "search_term": {"or": too_many}});
    let (s, _, e) = ask("/insights/directory/v1/events/count", body).await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("at most 1000"),
        "{e}"
    );

    let body = json!({"service": ["all"], "start_time": start, "search_term": {"and": [{}]}});
    let (s, _, e) = ask("/insights/directory/v1/events", body).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["field"], "search_term");

    // EXPLAIN names the organization's files, never the data directory.
    let (s, _, plan) = ask(
        "/api/insights/sql",
        json!({"sql": "EXPLAIN SELECT * FROM events"}),
    )
    .await;
    assert_eq!(s, 200, "{plan}");
    let text = plan.to_string();
    let data_dir = node
        .dir
        .path()
        .to_string_lossy()
        .trim_start_matches('/')
        .to_string();
    assert!(text.contains("org="), "{text}");
    assert!(!text.contains(&data_dir), "{text}");

    let (s, _) = node.call(root, "GET", "/api/systemusers", None).await;
    assert_eq!(s, 200, "the node is still serving");
}

/// Bodies over the limit and wrong methods answer in the error shape, and a
/// searchFilter that names a field 20,000 times is refused before it costs 20,000
/// queries (a field named a few times is searched once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_answer_in_the_error_shape() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let key = &acme.api_key;
    create_user(&node, key, "ann").await;

    let r = node
        .http
        .post(node.url("/api/systemusers"))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.expect("a JSON error");
    assert_eq!(e["code"], "body_too_large", "{e}");

    let r = node
        .http
        .patch(node.url("/api/systemusers"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let e: Value = r.json().await.expect("a JSON error");
    assert_eq!(e["code"], "method_not_allowed", "{e}");

    let fields: Vec<&str> = vec!["username"; 20_000];
    let (s, e) = node
        .call(
            key,
            "POST",
            "/api/search/systemusers",
            Some(json!({"searchFilter": {"searchTerm": "ann", "fields": fields}})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["field"], "searchFilter.fields");
    let (s, found) = node
        .call(
            key,
            "POST",
            "/api/search/systemusers",
            Some(json!({"searchFilter": {"searchTerm": "ann", "fields": ["username", "username", "email"]}})),
        )
        .await;
    assert_eq!(s, 200, "{found}");
    assert_eq!(found["totalCount"], 1);
}

/// The data directory's files are the owner's only, and a second node on the same
/// directory is refused in one line naming it, while the first keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_is_private_and_served_by_one_node() {
    use std::os::unix::fs::PermissionsExt;
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    for name in ["events.db", "read.db"] {
        let mode = std::fs::metadata(node.dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{name} is {mode:o}");
    }
    let second = castellan_server::node::start(&castellan_e2e::node::config(node.dir.path())).await;
    let err = format!("{:#}", second.err().expect("a second node is refused"));
    assert!(err.contains("another castellan process"), "{err}");
    assert!(
        err.contains(&node.dir.path().display().to_string()),
        "{err}"
    );
    let (s, _) = node
        .call(&acme.api_key, "GET", "/api/systemusers", None)
        .await;
    assert_eq!(s, 200);
}

/// Low: TOTP secrets are sealed before they reach the log (AES-256-GCM under
/// `security.encryption_keys`). A rotation puts a new key first, `keys reseal` seals
/// every secret anew, and the old key can then be removed while logins go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_secrets_are_sealed_at_rest_and_survive_a_key_rotation() {
    use castellan_app::sealing::{Binding, Keyring};
    let (old, new) = (Keyring::new_entry("old"), Keyring::new_entry("new"));
    let dir = tempfile::tempdir().unwrap();
    let mut c = castellan_e2e::node::config(dir.path());
    c.security.encryption_keys = old.clone();
    let node = TestNode::start(c.clone(), dir).await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let org = acme.org_id.to_string();
    let ivan = create_user(&node, &acme.api_key, "ivan").await;
    create_user(&node, &acme.api_key, "pam").await;
    let (s, e) = create_admin(&node, &acme.api_key, "ops@acme.test", "administrator").await;
    assert_eq!(s, 201, "{e}");
    let ops_key = node.own_key("ops@acme.test", ADMIN_PASSWORD).await;

    let step = fresh_step().await;
    let ivan_creds = json!({"orgId": org, "username": "ivan", "password": PASSWORD});
    let (s, e) = post(&node, "/userportal/totp/start", &ivan_creds).await;
    assert_eq!(s, 200, "{e}");
    let ivan_secret = e["secret"].as_str().unwrap().to_string();
    let mut finish = ivan_creds.clone();
    finish["code"] = json!(code_at(&ivan_secret, (step - 1) * 30).unwrap());
    assert_eq!(post(&node, "/userportal/totp/finish", &finish).await.0, 200);
    // pam's enrollment stays pending across the rotation.
    let pam_creds = json!({"orgId": org, "username": "pam", "password": PASSWORD});
    let (s, e) = post(&node, "/userportal/totp/start", &pam_creds).await;
    assert_eq!(s, 200, "{e}");
    let pam_secret = e["secret"].as_str().unwrap().to_string();
    let (s, e) = node
        .call(&ops_key, "POST", "/api/admin/totp/start", None)
        .await;
    assert_eq!(s, 200, "{e}");
    let ops_secret = e["secret"].as_str().unwrap().to_string();
    let (s, e) = node
        .call(
            &ops_key,
            "POST",
            "/api/admin/totp/finish",
            Some(json!({"code": code_at(&ops_secret, (step - 1) * 30).unwrap()})),
        )
        .await;
    assert_eq!(s, 200, "{e}");

    // At rest: no event and no byte of the log's files holds a secret in the clear.
    let secrets = [&ivan_secret, &pam_secret, &ops_secret];
    let events = node.running.log.read_after(0, 100_000).await.unwrap();
    let mut sealed_fields = 0;
    for e in events.iter().flat_map(|c| c.envelopes()) {
        let text = e.payload.to_string();
        for s in secrets {
            assert!(!text.contains(s.as_str()), "{}: {text}", e.event_type);
        }
        if let Some(v) = e.payload.get("totp_secret") {
            assert!(v.as_str().unwrap().starts_with("enc1:old:"), "{v}");
            sealed_fields += 1;
        }
    }
    assert_eq!(sealed_fields, 3);
    for name in ["events.db", "events.db-wal"] {
        let bytes = std::fs::read(node.dir.path().join(name)).unwrap_or_default();
        for s in secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{name} holds a secret in the clear"
            );
        }
    }

    // Rotation, step 1: the new key first, the old one after it; old seals still open.
    let TestNode { running, dir, .. } = node;
    running.shutdown().await;
    c.security.encryption_keys = format!("{new},{old}");
    let node = TestNode::start(c.clone(), dir).await;
    let mut login = ivan_creds.clone();
    login["totp"] = json!(code_at(&ivan_secret, step * 30).unwrap());
    let (s, e) = post(&node, "/userportal/login", &login).await;
    assert_eq!(s, 200, "sealed under the old key: {e}");

    // Step 2: reseal. Everything moves to the new key once; a second run finds nothing.
    let both = Keyring::parse(&c.security.encryption_keys).unwrap();
    let report = castellan_app::reseal::reseal_totp(&*node.running.log, &both, true)
        .await
        .unwrap();
    assert_eq!((report.accounts_seen, report.resealed), (3, 3), "dry run");
    let report = castellan_app::reseal::reseal_totp(&*node.running.log, &both, false)
        .await
        .unwrap();
    assert_eq!(
        (report.resealed, report.current, report.key_id.as_str()),
        (3, 0, "new")
    );
    let again = castellan_app::reseal::reseal_totp(&*node.running.log, &both, false)
        .await
        .unwrap();
    assert_eq!((again.resealed, again.current), (0, 3));
    let user = castellan_app::execute::load::<User>(
        &*node.running.log,
        acme.org_id,
        &StreamId::aggregate("user", &ivan),
    )
    .await
    .unwrap()
    .state;
    let stored = user.totp.secret.unwrap();
    assert!(stored.starts_with("enc1:new:"), "{stored}");
    let ivan_binding = format!("user/{ivan}");
    let binding = Binding {
        purpose: "totp",
        org: &org,
        account: &ivan_binding,
    };
    assert!(
        Keyring::parse(&old)
            .unwrap()
            .open(binding, &stored)
            .is_err(),
        "the old key no longer opens it"
    );

    // Step 3: the old key removed; the enrolled, the pending and the admin's
    // factors all still work.
    let TestNode { running, dir, .. } = node;
    running.shutdown().await;
    c.security.encryption_keys = new.clone();
    let node = TestNode::start(c, dir).await;
    login["totp"] = json!(code_at(&ivan_secret, (step + 1) * 30).unwrap());
    let (s, e) = post(&node, "/userportal/login", &login).await;
    assert_eq!(s, 200, "{e}");
    let mut pam_finish = pam_creds.clone();
    pam_finish["code"] = json!(code_at(&pam_secret, step * 30).unwrap());
    let (s, e) = post(&node, "/userportal/totp/finish", &pam_finish).await;
    assert_eq!(s, 200, "the pending enrollment was resealed too: {e}");
    let admin_login = json!({
        "email": "ops@acme.test",
        "password": ADMIN_PASSWORD,
        "totp": code_at(&ops_secret, step * 30).unwrap(),
    });
    let (s, e) = post(&node, "/api/admin/session", &admin_login).await;
    assert_eq!(s, 200, "{e}");
}

/// The low findings: a key id shows no part of a key; the session cookie is
/// `Secure` behind an https public URL; rotating the key of an admin whose grant was
/// revoked is refused, not answered with a key that does not work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_ids_hide_keys_cookies_are_secure_and_revoked_grants_get_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = castellan_e2e::node::config(dir.path());
    c.http.public_url = "https://directory.acme.test".into();
    let node = TestNode::start(c, dir).await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let beta = node.bootstrap("Beta", "root@beta.test").await;

    // Every key id an admin list shows is no part of the key it names.
    let (s, list) = node
        .call(&acme.api_key, "GET", "/api/administrators", None)
        .await;
    assert_eq!(s, 200, "{list}");
    let ids: Vec<String> = list
        .as_array()
        .or(list["results"].as_array())
        .unwrap()
        .iter()
        .filter_map(|a| a["apiKeyId"].as_str().map(str::to_string))
        .collect();
    assert!(!ids.is_empty(), "{list}");
    for id in &ids {
        assert!(
            !acme.api_key.contains(id.as_str()),
            "{id} is part of the key"
        );
    }

    // The portal cookie behind https.
    let (s, _) = create_admin(&node, &acme.api_key, "ops@acme.test", "administrator").await;
    assert_eq!(s, 201);
    let r = node
        .http
        .post(node.url("/api/admin/session"))
        .json(&json!({"email": "ops@acme.test", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // Beta's admin is granted a role in Acme, the grant revoked: no key for them.
    let (s, granted) = create_admin(&node, &acme.api_key, "root@beta.test", "read_only").await;
    assert!(s == 200 || s == 201, "{granted}");
    let id = granted["id"].as_str().unwrap().to_string();
    let (s, _) = node
        .call(
            &acme.api_key,
            "DELETE",
            &format!("/api/administrators/{id}"),
            None,
        )
        .await;
    assert!(s == 200 || s == 204, "revoke: {s}");
    let (s, e) = node
        .call(
            &acme.api_key,
            "POST",
            &format!("/api/administrators/{id}/apikey"),
            None,
        )
        .await;
    assert_eq!(s, 404, "{e}");
    assert!(e.get("apiKey").is_none(), "{e}");
    // Their own key at home still works.
    let (s, _) = node
        .call(&beta.api_key, "GET", "/api/systemusers", None)
        .await;
    assert_eq!(s, 200);
}
