//! User login: every attempt an event, the shared lockout counter, TOTP enrollment and
//! replay protection, MFA enrollment periods (fake time through the event metadata).

use castellan_app::login::{user_login, LoginOutcome, LoginRequest};
use castellan_app::totp::code_at;
use castellan_domain::envelope::{Actor, EventMeta, StreamId};
use castellan_e2e::node::TestNode;
use serde_json::{json, Value};

async fn login(
    node: &TestNode,
    org: &str,
    username: &str,
    password: &str,
    totp: Option<String>,
) -> (u16, Value) {
    let r = node
        .http
        .post(node.url("/userportal/login"))
        .header("user-agent", "portal-test/1")
        .json(&json!({"orgId": org, "username": username, "password": password, "totp": totp}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create_user(node: &TestNode, key: &str, username: &str, body: Value) -> String {
    let mut body = body;
    body["username"] = json!(username);
    body["email"] = json!(format!("{username}@acme.test"));
    let r = node
        .http
        .post(node.url("/api/systemusers"))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_events_and_repeated_failures_lock_the_account() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let org = acme.org_id.to_string();
    let key = &acme.api_key;
    let r = node
        .http
        .put(node.url(&format!("/api/organizations/{org}")))
        .header("x-api-key", key)
        .json(&json!({"settings": {"passwordPolicy": {"maxLoginAttempts": 3, "lockoutTimeInSeconds": 0, "resetLockoutCounterMinutes": 10}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = create_user(&node, key, "hana", json!({"password": "a long passphrase"})).await;

    let (s, ok) = login(&node, &org, "hana", "a long passphrase", None).await;
    assert_eq!((s, ok["success"].as_bool()), (200, Some(true)));
    let (s1, unknown) = login(&node, &org, "nobody", "whatever123", None).await;
    let (s2, wrong) = login(&node, &org, "hana", "wrong password", None).await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(
        unknown, wrong,
        "unknown users and wrong passwords answer alike"
    );

    // Two more failures make three: locked. Then even the right password is refused.
    login(&node, &org, "hana", "wrong again", None).await;
    login(&node, &org, "hana", "and again", None).await;
    let head = node.running.log.head().await.unwrap();
    let user: Value = node
        .http
        .get(node.url(&format!("/api/systemusers/{id}")))
        .header("x-api-key", key)
        .header("x-castellan-min-position", head.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["account_locked"], true, "{user}");
    let (s, body) = login(&node, &org, "hana", "a long passphrase", None).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (401, Some("invalid_credentials"))
    );

    let r = node
        .http
        .post(node.url(&format!("/api/systemusers/{id}/unlock")))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, _) = login(&node, &org, "hana", "a long passphrase", None).await;
    assert_eq!(s, 200);

    // The log holds every attempt and the lockout.
    let attempts = node
        .running
        .log
        .read_stream(acme.org_id, &StreamId::auth("directory"))
        .await
        .unwrap();
    let outcomes: Vec<(bool, Option<String>)> = attempts
        .iter()
        .flat_map(|c| c.envelopes())
        .filter(|e| e.event_type == "user_login_attempt")
        .map(|e| {
            (
                e.payload["success"].as_bool().unwrap(),
                e.payload["error_message"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 7);
    assert_eq!(outcomes.iter().filter(|(ok, _)| *ok).count(), 2);
    assert_eq!(outcomes[5].1.as_deref(), Some("account locked"));
    let first = attempts[0].envelopes().next().unwrap();
    assert_eq!(first.user_agent.as_deref(), Some("portal-test/1"));
    assert_eq!(first.client_ip.as_deref(), Some("127.0.0.1"));
    let types: Vec<String> = node
        .running
        .log
        .read_stream(
            acme.org_id,
            &StreamId::aggregate("user", id.parse::<castellan_domain::ObjectId>().unwrap()),
        )
        .await
        .unwrap()
        .iter()
        .flat_map(|c| c.commit.events.iter().map(|e| e.event_type.clone()))
        .collect();
    assert!(
        types.contains(&"user_lockout".to_string()) && types.contains(&"user_unlocked".to_string()),
        "{types:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn totp_enrollment_and_codes_that_work_once() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let org = acme.org_id.to_string();
    create_user(
        &node,
        &acme.api_key,
        "ivan",
        json!({"password": "a long passphrase"}),
    )
    .await;
    let creds = json!({"orgId": org, "username": "ivan", "password": "a long passphrase"});
    let r = node
        .http
        .post(node.url("/userportal/totp/start"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let enrollment: Value = r.json().await.unwrap();
    let secret = enrollment["secret"].as_str().unwrap().to_string();
    assert!(
        enrollment["otpauthUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Acme:ivan?secret="),
        "{enrollment}"
    );
    assert!(!enrollment["qrPng"].as_str().unwrap().is_empty());
    let r = node
        .http
        .post(node.url("/userportal/totp/start"))
        .json(&json!({"orgId": org, "username": "ivan", "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    // Codes of the previous step: the step after it is what the next login may use.
    let step_now = now / 30;
    let enroll_code = code_at(&secret, (step_now - 1) * 30).unwrap();
    let mut finish = creds.clone();
    finish["code"] = json!("000000x");
    let r = node
        .http
        .post(node.url("/userportal/totp/finish"))
        .json(&finish)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a bad code does not enroll");
    finish["code"] = json!(enroll_code);
    let r = node
        .http
        .post(node.url("/userportal/totp/finish"))
        .json(&finish)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let (s, body) = login(&node, &org, "ivan", "a long passphrase", None).await;
    assert_eq!((s, body["code"].as_str()), (401, Some("mfa_required")));
    let (s, _) = login(
        &node,
        &org,
        "ivan",
        "a long passphrase",
        Some(enroll_code.clone()),
    )
    .await;
    assert_eq!(s, 403, "the enrollment code cannot log in");

    // Two concurrent logins with one fresh code: exactly one succeeds.
    let fresh = code_at(&secret, step_now * 30).unwrap();
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (http, url, org, code) = (node.http.clone(), node.url("/userportal/login"), org.clone(), fresh.clone());
            tokio::spawn(async move {
                http.post(url)
                    .json(&json!({"orgId": org, "username": "ivan", "password": "a long passphrase", "totp": code}))
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
    assert_eq!(statuses, [200, 403], "one code, one login");
    let (s, _) = login(&node, &org, "ivan", "a long passphrase", Some(fresh)).await;
    assert_eq!(s, 403, "replay refused");
}

#[tokio::test]
async fn an_unenrolled_user_is_shut_out_when_the_enrollment_period_ends() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let id = create_user(&node, &acme.api_key, "jo", json!({"password": "a long passphrase", "enable_user_portal_multifactor": true, "enrollmentDays": 7})).await;
    let user: Value = node
        .http
        .get(node.url(&format!("/api/systemusers/{id}")))
        .header("x-api-key", &acme.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["mfa"]["required"], true);
    let log = &*node.running.log;
    let counter = castellan_projections::security::Counter::new(
        castellan_projections::security::projection(),
        Default::default(),
    );
    let at = |days: i64| {
        EventMeta::new(
            time::OffsetDateTime::now_utc() + time::Duration::days(days),
            Actor::system(),
        )
    };
    let req = LoginRequest {
        username: "jo".into(),
        password: "a long passphrase".into(),
        totp: None,
        service: "directory",
    };
    let six = user_login(
        log,
        &counter,
        &castellan_e2e::node::test_keyring(),
        acme.org_id,
        at(6),
        req.clone(),
    )
    .await
    .unwrap();
    assert!(matches!(six, LoginOutcome::Success { .. }), "{six:?}");
    let eight = user_login(
        log,
        &counter,
        &castellan_e2e::node::test_keyring(),
        acme.org_id,
        at(8),
        req,
    )
    .await
    .unwrap();
    assert_eq!(
        eight,
        LoginOutcome::Failure {
            reason: "the MFA enrollment period has ended; ask an administrator"
        }
    );
}

/// `password_never_expires` (the SDK's field) exempts a user from the policy's
/// password age; the user without it is refused once the password is too old.
#[tokio::test]
async fn password_never_expires_exempts_a_user_from_the_expiry() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let r = node
        .http
        .put(node.url(&format!("/api/organizations/{}", acme.org_id)))
        .header("x-api-key", &acme.api_key)
        .json(&json!({"settings": {"passwordPolicy": {"passwordExpirationInDays": 2}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    create_user(
        &node,
        &acme.api_key,
        "kim",
        json!({"password": "a long passphrase", "password_never_expires": true}),
    )
    .await;
    create_user(
        &node,
        &acme.api_key,
        "lou",
        json!({"password": "a long passphrase"}),
    )
    .await;
    let counter = castellan_projections::security::Counter::new(
        castellan_projections::security::projection(),
        Default::default(),
    );
    let in_three_days = || {
        EventMeta::new(
            time::OffsetDateTime::now_utc() + time::Duration::days(3),
            Actor::system(),
        )
    };
    let attempt = |username: &str| LoginRequest {
        username: username.into(),
        password: "a long passphrase".into(),
        totp: None,
        service: "directory",
    };
    let keys = castellan_e2e::node::test_keyring();
    let log = &*node.running.log;
    let kim = user_login(
        log,
        &counter,
        &keys,
        acme.org_id,
        in_three_days(),
        attempt("kim"),
    )
    .await
    .unwrap();
    assert!(matches!(kim, LoginOutcome::Success { .. }), "{kim:?}");
    let lou = user_login(
        log,
        &counter,
        &keys,
        acme.org_id,
        in_three_days(),
        attempt("lou"),
    )
    .await
    .unwrap();
    assert_eq!(
        lou,
        LoginOutcome::Failure {
            reason: "the password has expired"
        }
    );
}

#[tokio::test]
async fn a_weak_stored_hash_is_replaced_at_the_next_login() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    // A user migrated with a cheap argon2id hash (m=4096, t=1).
    let weak = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(4096, 1, 1, None).unwrap(),
    )
    .hash_password(
        b"a long passphrase",
        &SaltString::generate(&mut rand::thread_rng()),
    )
    .unwrap()
    .to_string();
    let id = castellan_domain::ObjectId::generate(0);
    let mut profile = serde_json::Map::new();
    profile.insert("username".into(), json!("kim"));
    profile.insert("email".into(), json!("kim@acme.test"));
    castellan_app::unique::claim(
        &*node.running.log,
        acme.org_id,
        "username",
        "kim",
        &id.to_string(),
        &EventMeta::new(time::OffsetDateTime::now_utc(), Actor::system()),
    )
    .await
    .unwrap();
    castellan_app::execute::execute::<castellan_domain::user::User>(
        &*node.running.log,
        acme.org_id,
        &id.to_string(),
        EventMeta::new(time::OffsetDateTime::now_utc(), Actor::system()),
        castellan_domain::user::UserCommand::Create {
            profile,
            password_hash: Some(weak),
            state: castellan_domain::user::UserState::Activated,
        },
    )
    .await
    .unwrap();
    let (s, _) = login(
        &node,
        &acme.org_id.to_string(),
        "kim",
        "a long passphrase",
        None,
    )
    .await;
    assert_eq!(s, 200);
    let user = castellan_app::execute::load::<castellan_domain::user::User>(
        &*node.running.log,
        acme.org_id,
        &StreamId::aggregate("user", id),
    )
    .await
    .unwrap()
    .state;
    let stored = user.password_hash.unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    let (s, _) = login(
        &node,
        &acme.org_id.to_string(),
        "kim",
        "a long passphrase",
        None,
    )
    .await;
    assert_eq!(s, 200, "the new hash verifies");
}
