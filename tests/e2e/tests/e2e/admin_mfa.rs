//! Admin TOTP over HTTP: optional enrollment, codes used once, an organization that
//! requires MFA confines a fresh session to enrollment, and a reset sends the admin
//! back to enrollment.

use castellan_e2e::node::TestNode;
use serde_json::{json, Value};

/// A portal session: its cookie and CSRF token.
struct Portal {
    cookie: String,
    csrf: String,
}

async fn login(node: &TestNode, email: &str, totp: Option<String>) -> (u16, Value, Option<Portal>) {
    let mut body = json!({"email": email, "password": "an admin passphrase"});
    if let Some(code) = totp {
        body["totp"] = json!(code);
    }
    let r = node
        .http
        .post(node.url("/api/admin/session"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string());
    let answer: Value = r.json().await.unwrap();
    let portal = cookie.map(|cookie| Portal {
        cookie,
        csrf: answer["csrfToken"].as_str().unwrap_or_default().to_string(),
    });
    (status, answer, portal)
}

async fn send(
    node: &TestNode,
    p: &Portal,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let mut req = node
        .http
        .request(method.parse().unwrap(), node.url(path))
        .header("cookie", &p.cookie)
        .header("x-csrf-token", &p.csrf);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string());
    (status, r.json().await.unwrap_or(Value::Null), cookie)
}

fn now() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp() as u64
}

async fn enroll(node: &TestNode, p: &Portal) -> (String, u16, Value, Option<String>) {
    let (s, e, _) = send(node, p, "POST", "/api/admin/totp/start", None).await;
    assert_eq!(s, 200, "{e}");
    assert!(e["otpauthUri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    assert!(!e["qrPngBase64"].as_str().unwrap().is_empty());
    let secret = e["secret"].as_str().unwrap().to_string();
    let code = castellan_app::totp::code_at(&secret, now()).unwrap();
    let (s, answer, cookie) = send(
        node,
        p,
        "POST",
        "/api/admin/totp/finish",
        Some(json!({"code": code})),
    )
    .await;
    (secret, s, answer, cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_totp_is_optional_or_required_and_codes_work_once() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let root = &acme.api_key;
    for email in ["ops@acme.test", "new@acme.test"] {
        let (s, e) = node
            .call(root, "POST", "/api/administrators", Some(json!({"email": email, "role": "administrator", "password": "an admin passphrase"})))
            .await;
        assert_eq!(s, 201, "{e}");
    }

    // Optional: ops enrolls from a normal session.
    let (s, answer, portal) = login(&node, "ops@acme.test", None).await;
    assert_eq!((s, &answer["mfaEnrollmentRequired"]), (200, &json!(false)));
    let portal = portal.unwrap();
    let (secret, s, answer, _) = enroll(&node, &portal).await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(answer["totpEnrolled"], true);

    // From now on a code is needed, and each code works once.
    let (s, answer, _) = login(&node, "ops@acme.test", None).await;
    assert_eq!((s, answer["code"].as_str()), (401, Some("mfa_required")));
    let (s, answer, _) = login(&node, "ops@acme.test", Some("000000".into())).await;
    assert_eq!(
        (s, answer["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    // The enrollment spent the current step; the next one is within the ±1 window.
    let next = castellan_app::totp::code_at(&secret, now() + 30).unwrap();
    let (s, answer, _) = login(&node, "ops@acme.test", Some(next.clone())).await;
    assert_eq!(s, 200, "{answer}");
    let (s, _, _) = login(&node, "ops@acme.test", Some(next)).await;
    assert_eq!(s, 401, "a code is used once");

    // Required by the organization: new has no TOTP, so its session may only enroll.
    let (s, e) = node
        .call(
            root,
            "PUT",
            &format!("/api/organizations/{}", acme.org_id),
            Some(json!({"settings": {"requireAdminMfa": true}})),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    let (s, answer, portal) = login(&node, "new@acme.test", None).await;
    assert_eq!((s, &answer["mfaEnrollmentRequired"]), (200, &json!(true)));
    let portal = portal.unwrap();
    let (s, e, _) = send(&node, &portal, "GET", "/api/systemusers", None).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (403, Some("mfa_enrollment_required"))
    );
    let (_, s, answer, cookie) = enroll(&node, &portal).await;
    assert_eq!(s, 200, "{answer}");
    let upgraded = Portal {
        cookie: cookie.expect("a full session cookie"),
        csrf: answer["csrfToken"].as_str().unwrap().to_string(),
    };
    let (s, _, _) = send(&node, &upgraded, "GET", "/api/systemusers", None).await;
    assert_eq!(s, 200);
    let (s, _, _) = send(&node, &portal, "GET", "/api/systemusers", None).await;
    assert_eq!(s, 403, "the enrollment-only cookie stays confined");

    // A reset (by a manager of admins) sends ops back to enrollment.
    let ops_id = node
        .call(root, "GET", "/api/administrators", None)
        .await
        .1
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "ops@acme.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = node
        .call(
            root,
            "DELETE",
            &format!("/api/administrators/{ops_id}/totp"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, answer, _) = login(&node, "ops@acme.test", None).await;
    assert_eq!((s, &answer["mfaEnrollmentRequired"]), (200, &json!(true)));

    // Every attempt is an event; the successful TOTP logins say mfa.
    let attempts: Vec<(bool, bool)> = node
        .running
        .log
        .read_stream(
            acme.org_id,
            &castellan_domain::envelope::StreamId::auth("directory"),
        )
        .await
        .unwrap()
        .iter()
        .flat_map(|c| c.envelopes())
        .filter(|e| e.event_type == "admin_login_attempt")
        .map(|e| {
            (
                e.payload["success"].as_bool().unwrap(),
                e.payload["mfa"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(attempts.contains(&(true, true)), "{attempts:?}");
    assert_eq!(
        attempts.iter().filter(|(ok, _)| !ok).count(),
        3,
        "{attempts:?}"
    );
    // A bad settings value is refused.
    let (s, e) = node
        .call(
            root,
            "PUT",
            &format!("/api/organizations/{}", acme.org_id),
            Some(json!({"settings": {"requireAdminMfa": "yes"}})),
        )
        .await;
    assert_eq!(
        (s, e["field"].as_str()),
        (400, Some("settings.requireAdminMfa")),
        "{e}"
    );
}
