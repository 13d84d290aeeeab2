//! The S3-compatible server (Garage) the test command starts (tests/garage.sh): its
//! endpoint, region, bucket and key, from `CASTELLAN_TEST_S3_*`. Each test works under
//! a prefix of its own.

#[derive(Debug, Clone)]
pub struct S3Server {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The server, or `None` outside CI when none was started (in CI: a panic).
pub fn server() -> Option<S3Server> {
    let v = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
    let found = (|| {
        Some(S3Server {
            endpoint: v("CASTELLAN_TEST_S3_ENDPOINT")?,
            region: v("CASTELLAN_TEST_S3_REGION").unwrap_or_else(|| "garage".into()),
            bucket: v("CASTELLAN_TEST_S3_BUCKET")?,
            access_key_id: v("CASTELLAN_TEST_S3_ACCESS_KEY_ID")?,
            secret_access_key: v("CASTELLAN_TEST_S3_SECRET_ACCESS_KEY")?,
        })
    })();
    if found.is_none() {
        if crate::in_ci() {
            panic!("CASTELLAN_TEST_S3_* are not set: the test command must start Garage");
        }
        eprintln!("skipping: CASTELLAN_TEST_S3_ENDPOINT is not set (run tests/run.sh)");
    }
    found
}

impl S3Server {
    /// A fresh key prefix, so that tests sharing the bucket never see each other.
    pub fn fresh_prefix(&self, what: &str) -> String {
        format!("{what}-{}", uuid::Uuid::new_v4().simple())
    }

    pub fn insights_config(&self, prefix: &str) -> castellan_insights::S3Config {
        castellan_insights::S3Config {
            bucket: self.bucket.clone(),
            prefix: prefix.into(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        }
    }

    /// An `[export]` section writing to this server under `prefix`.
    pub fn export_config(&self, prefix: &str) -> castellan_export::ExportConfig {
        castellan_export::ExportConfig {
            sink: "s3".into(),
            s3_bucket: self.bucket.clone(),
            s3_prefix: prefix.into(),
            s3_endpoint: self.endpoint.clone(),
            s3_region: self.region.clone(),
            s3_access_key_id: self.access_key_id.clone(),
            s3_secret_access_key: self.secret_access_key.clone(),
            ..Default::default()
        }
    }

    /// A plain S3 client, to look at what Castellan wrote.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                self.access_key_id.clone(),
                self.secret_access_key.clone(),
                None,
                None,
                "castellan-tests",
            ))
            .load()
            .await;
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Every key under `prefix`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let client = self.client().await;
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list objects");
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }
}
