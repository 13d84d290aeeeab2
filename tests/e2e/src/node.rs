//! A Castellan node started in-process on port 0 with a private data directory,
//! and an HTTP client for it.

use std::time::Duration;

use castellan_app::admins::{self, Bootstrapped};
use castellan_server::config::Config;
use castellan_server::node::{self, Running};

pub struct TestNode {
    pub running: Running,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub base: String,
    pub management: String,
}

/// The key the test nodes seal TOTP secrets with: the same on every node, as a
/// cluster needs (fixed, so a test can open what the log holds).
pub const TEST_ENCRYPTION_KEYS: &str = "test1:Y2FzdGVsbGFuLXRlc3Qta2V5LTAxMjM0NTY3ODlhYmM=";

/// The keyring of [`TEST_ENCRYPTION_KEYS`].
pub fn test_keyring() -> castellan_app::sealing::Keyring {
    castellan_app::sealing::Keyring::parse(TEST_ENCRYPTION_KEYS).expect("the test key parses")
}

/// A configuration on loopback port 0 with everything under `dir`.
pub fn config(dir: &std::path::Path) -> Config {
    let mut c = Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    c.security.encryption_keys = TEST_ENCRYPTION_KEYS.into();
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.management.listen = "127.0.0.1:0".parse().unwrap();
    c.projections.consistency_wait_ms = 1500;
    c
}

impl TestNode {
    /// The embedded default: SQLite log and read store.
    pub async fn embedded() -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        Self::start(c, dir).await
    }

    pub async fn start(config: Config, dir: tempfile::TempDir) -> TestNode {
        let running = node::start(&config).await.expect("node starts");
        let base = format!("http://{}", running.http_addr);
        let management = format!("http://{}", running.management_addr);
        TestNode {
            running,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base,
            management,
        }
    }

    /// A new organization with an admin and API key, usable at once.
    pub async fn bootstrap(&self, org_name: &str, email: &str) -> Bootstrapped {
        let done = admins::bootstrap(
            &*self.running.log,
            time::OffsetDateTime::now_utc(),
            org_name,
            email,
            None,
        )
        .await
        .expect("bootstrap");
        assert!(
            self.running
                .admins
                .progress()
                .wait_for(done.position, Duration::from_secs(10))
                .await,
            "admin index reached the bootstrap"
        );
        // The read models answer GETs (the organization itself among them): under
        // load they can trail the admin index.
        assert!(
            self.running
                .portal
                .wait_for(done.position, Duration::from_secs(10))
                .await,
            "read models reached the bootstrap"
        );
        done
    }

    /// Sends `method path` with the API key (and a JSON body); the status and JSON answer.
    pub async fn call(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let method: reqwest::Method = method.parse().expect("an HTTP method");
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("x-api-key", key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("the node answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The API key an admin makes for themselves: a portal login with `email` and
    /// `password`, then a rotation of their own key (nobody else is shown it).
    pub async fn own_key(&self, email: &str, password: &str) -> String {
        let r = self
            .http
            .post(self.url("/api/admin/session"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .expect("the node answers");
        assert_eq!(r.status(), 200, "admin login of {email}");
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_string();
        let session: serde_json::Value = r.json().await.expect("JSON");
        let id = session["adminId"].as_str().expect("adminId");
        let r = self
            .http
            .post(self.url(&format!("/api/administrators/{id}/apikey")))
            .header("cookie", &cookie)
            .header("x-csrf-token", session["csrfToken"].as_str().expect("csrf"))
            .send()
            .await
            .expect("the node answers");
        assert_eq!(r.status(), 200, "own key of {email}");
        let key: serde_json::Value = r.json().await.expect("JSON");
        key["apiKey"].as_str().expect("apiKey").to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
