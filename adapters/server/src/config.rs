//! Configuration: a TOML file, overridden by `CASTELLAN_SECTION_KEY` environment
//! variables, with `CASTELLAN_SECTION_KEY_FILE` reading a secret from a file.
//! Every error names the setting (or the variable, or the file) it is about. The
//! environment layer is [`env`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use castellan_app::sealing::Keyring;
use serde::{Deserialize, Serialize};

mod env;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded default keeps its files.
    pub data_dir: PathBuf,
    pub log: LogConfig,
    pub read_store: ReadStoreConfig,
    pub http: HttpConfig,
    pub management: ListenConfig,
    pub logging: LoggingConfig,
    pub projections: ProjectionsConfig,
    /// The SMTP relay that delivers the outbox; empty `host`: emails stay in the outbox.
    pub smtp: castellan_mail::SmtpConfig,
    /// Parquet files of every event, and the queries over them.
    pub insights: InsightsConfig,
    /// Each time window of events as gzipped JSON to S3 or a directory.
    pub export: castellan_export::ExportConfig,
    /// Login throttling and the limits of query work.
    pub security: SecurityConfig,
    /// What loading found worth telling the operator (unknown variables); logged at
    /// start.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Failed logins one client address may make within the window before its
    /// attempts (users' and admins', every protocol) are refused; 0: no throttle.
    pub login_ip_max_failures: u32,
    pub login_ip_window_seconds: u64,
    /// Keys that seal TOTP secrets before they reach the log: `id:base64(32 bytes)`
    /// entries separated by commas or new lines, the first sealing, all opening
    /// (`castellan keys new` makes one). Empty on the embedded log: a key generated
    /// in `data_dir/encryption.keys`. A cluster needs the same keys on every node.
    pub encryption_keys: String,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            login_ip_max_failures: 30,
            login_ip_window_seconds: 300,
            encryption_keys: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InsightsConfig {
    /// Run the materializer inside `castellan serve` (the embedded default). In a
    /// cluster, run `castellan insights run` once instead and set this to false.
    pub materialize: bool,
    /// The local directory of the files; empty: `data_dir/insights`.
    pub dir: String,
    /// An S3 bucket instead of the directory (cluster mode).
    pub s3_bucket: String,
    pub s3_prefix: String,
    /// e.g. `http://127.0.0.1:3900`; empty: AWS.
    pub s3_endpoint: String,
    pub s3_region: String,
    /// Empty: the usual AWS environment variables.
    pub s3_access_key_id: String,
    pub s3_secret_access_key: String,
    /// The longest an event waits before it is written (and queryable).
    pub flush_interval_ms: u64,
    pub max_buffered_rows: usize,
    /// Merge a partition (org × day) once it has this many files.
    pub compact_min_files: usize,
    /// The most bytes merged into one month file (larger months keep day files).
    pub compact_month_max_bytes: u64,
    /// How often partitions are checked for merging.
    pub compact_interval_ms: u64,
    /// The durable consumer the materializer reads JetStream with (cluster mode).
    pub consumer: String,
    /// A MaxMind DB file (GeoLite2/GeoIP2 City or Country): events then carry
    /// `geoip` of their client address. Empty: no `geoip`.
    pub geoip_db: String,
    /// Bounds on Directory Insights and admin SQL queries (see README, Security).
    pub query_timeout_seconds: u64,
    pub query_memory_mb: usize,
    pub max_concurrent_queries: usize,
    pub max_result_rows: usize,
    pub max_result_mb: usize,
}

impl Default for InsightsConfig {
    fn default() -> Self {
        let m = castellan_insights::MaterializerConfig::default();
        let q = castellan_insights::QueryLimits::default();
        InsightsConfig {
            materialize: true,
            dir: String::new(),
            s3_bucket: String::new(),
            s3_prefix: String::new(),
            s3_endpoint: String::new(),
            s3_region: String::new(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
            geoip_db: String::new(),
            flush_interval_ms: m.flush_interval_ms,
            max_buffered_rows: m.max_buffered_rows,
            compact_min_files: m.compact_min_files,
            compact_month_max_bytes: m.compact_month_max_bytes,
            compact_interval_ms: m.compact_interval_ms,
            consumer: m.consumer,
            query_timeout_seconds: q.timeout.as_secs(),
            query_memory_mb: q.memory_bytes >> 20,
            max_concurrent_queries: q.max_concurrent,
            max_result_rows: q.max_result_rows,
            max_result_mb: q.max_result_bytes >> 20,
        }
    }
}

impl Config {
    /// Where the insights files live.
    pub fn insights_storage(
        &self,
    ) -> Result<castellan_insights::Storage, castellan_insights::InsightsError> {
        let i = &self.insights;
        if !i.s3_bucket.is_empty() {
            return castellan_insights::Storage::s3(&castellan_insights::S3Config {
                bucket: i.s3_bucket.clone(),
                prefix: i.s3_prefix.clone(),
                endpoint: i.s3_endpoint.clone(),
                region: i.s3_region.clone(),
                access_key_id: i.s3_access_key_id.clone(),
                secret_access_key: i.s3_secret_access_key.clone(),
            });
        }
        let dir = if i.dir.is_empty() {
            self.data_dir.join("insights")
        } else {
            PathBuf::from(&i.dir)
        };
        castellan_insights::Storage::local(&dir)
    }

    /// The export sink: the S3 bucket or the directory (`data_dir/exports` by default).
    pub async fn export_sink(
        &self,
    ) -> Result<std::sync::Arc<dyn castellan_export::sink::Sink>, castellan_export::ExportError>
    {
        let e = &self.export;
        match e.sink.as_str() {
            "s3" => Ok(std::sync::Arc::new(
                castellan_export::sink::S3Sink::new(e).await?,
            )),
            "dir" => {
                let dir = if e.dir.is_empty() {
                    self.data_dir.join("exports")
                } else {
                    PathBuf::from(&e.dir)
                };
                Ok(std::sync::Arc::new(castellan_export::sink::DirSink::new(
                    dir,
                )?))
            }
            other => Err(castellan_export::ExportError::Config(
                "sink",
                format!("{other:?}: dir or s3"),
            )),
        }
    }

    /// The query limits, as the engine takes them.
    pub fn query_limits(&self) -> castellan_insights::QueryLimits {
        let i = &self.insights;
        castellan_insights::QueryLimits {
            timeout: Duration::from_secs(i.query_timeout_seconds.max(1)),
            memory_bytes: i.query_memory_mb.max(1) << 20,
            max_concurrent: i.max_concurrent_queries.max(1),
            max_result_rows: i.max_result_rows.max(1),
            max_result_bytes: i.max_result_mb.max(1) << 20,
        }
    }

    pub fn materializer_config(&self) -> castellan_insights::MaterializerConfig {
        castellan_insights::MaterializerConfig {
            flush_interval_ms: self.insights.flush_interval_ms,
            max_buffered_rows: self.insights.max_buffered_rows,
            compact_min_files: self.insights.compact_min_files,
            compact_month_max_bytes: self.insights.compact_month_max_bytes,
            compact_interval_ms: self.insights.compact_interval_ms,
            consumer: self.insights.consumer.clone(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Empty: the embedded SQLite log in `data_dir/events.db`. `nats://…`: JetStream.
    pub url: String,
    /// The JetStream stream name.
    pub stream: String,
    /// JetStream replicas: 1 for one server, 3 for a cluster.
    pub replicas: usize,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadStoreConfig {
    /// Empty: SQLite in `data_dir/read.db`. `postgres://…`: PostgreSQL.
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Defaulted on its own, so that setting another `http` key (in the file or
    /// the environment) leaves the address as it was.
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
    /// Signs admin portal session cookies. Every node of a cluster needs the same one
    /// (use `CASTELLAN_HTTP_SESSION_SECRET_FILE`); empty: a random one per process, so
    /// sessions end with the process.
    #[serde(default)]
    pub session_secret: String,
    /// How users and admins reach the API, e.g. `https://directory.example.com`: the
    /// base of emailed links. Empty: `http://` + `listen`.
    #[serde(default)]
    pub public_url: String,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the
    /// client: its address then goes into events and the login throttle. From any
    /// other peer the header is ignored. Empty: the peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `castellan=debug` (RUST_LOG wins).
    pub level: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectionsConfig {
    /// `/readyz` fails while a projection is more than this many positions behind.
    pub ready_max_lag: u64,
    /// The longest a request waits for its own write to become readable.
    pub consistency_wait_ms: u64,
}

fn default_http_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("static address")
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./castellan-data"),
            log: LogConfig::default(),
            read_store: ReadStoreConfig::default(),
            http: HttpConfig {
                listen: default_http_listen(),
                session_secret: String::new(),
                public_url: String::new(),
                trusted_proxies: Vec::new(),
            },
            management: ListenConfig {
                listen: "127.0.0.1:9090".parse().expect("static address"),
            },
            logging: LoggingConfig::default(),
            projections: ProjectionsConfig::default(),
            smtp: castellan_mail::SmtpConfig::default(),
            insights: InsightsConfig::default(),
            export: castellan_export::ExportConfig::default(),
            security: SecurityConfig::default(),
            warnings: Vec::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            url: String::new(),
            stream: "CASTELLAN".into(),
            replicas: 1,
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Default for ProjectionsConfig {
    fn default() -> Self {
        ProjectionsConfig {
            ready_max_lag: 1000,
            consistency_wait_ms: 5000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0}: {1}")]
    File(String, String),
    #[error("environment variable {0}: {1}")]
    Env(String, String),
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads `file` (if given) and applies the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Self::load_with(file, &env)
    }

    pub fn load_with(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::File(name.clone(), e.to_string()))?;
                text.parse::<toml::Table>().map_err(|e| {
                    let line = e.span().map(|s| text[..s.start].lines().count().max(1));
                    let message = e.message().replace('\n', "; ");
                    match line {
                        Some(line) => ConfigError::File(name, format!("line {line}: {message}")),
                        None => ConfigError::File(name, message),
                    }
                })?
            }
            None => toml::Table::new(),
        };
        let warnings = env::apply(&mut table, env)?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().message().to_string();
                ConfigError::Invalid(format!("{path}: {message}"))
            })?;
        config.validate()?;
        config.warnings = warnings;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let log = &self.log.url;
        if !(log.is_empty()
            || log.starts_with("nats://")
            || log.starts_with("tls://")
            || log.starts_with("sqlite:"))
        {
            return Err(ConfigError::Invalid(format!(
                "log.url {log:?}: use nats://HOST:PORT for JetStream, sqlite:PATH, or leave it empty for the embedded log"
            )));
        }
        let rs = &self.read_store.url;
        if !(rs.is_empty()
            || rs.starts_with("postgres://")
            || rs.starts_with("postgresql://")
            || rs.starts_with("sqlite:"))
        {
            return Err(ConfigError::Invalid(format!(
                "read_store.url: use postgres://… or sqlite:PATH, or leave it empty for the embedded store (got {})",
                castellan_projections::store::redact(rs)
            )));
        }
        if !matches!(self.logging.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!(
                "logging.format {:?}: use text or json",
                self.logging.format
            )));
        }
        if self.log.replicas == 0 || self.log.replicas > 5 {
            return Err(ConfigError::Invalid("log.replicas: 1 to 5".into()));
        }
        if !self.security.encryption_keys.trim().is_empty() {
            Keyring::parse(&self.security.encryption_keys)
                .map_err(|e| ConfigError::Invalid(format!("security.encryption_keys: {e}")))?;
        }
        self.trusted_proxies()?;
        Ok(())
    }

    /// `http.trusted_proxies` as networks (a bare address is a network of one).
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.http
            .trusted_proxies
            .iter()
            .map(|p| {
                let p = p.trim();
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::Invalid(format!(
                            "http.trusted_proxies: {p:?} is neither an address nor a CIDR block (10.0.0.0/8)"
                        ))
                    })
            })
            .collect()
    }

    /// The MaxMind DB of `insights.geoip_db`, opened (None when unset).
    pub fn geoip(&self) -> anyhow::Result<Option<Arc<castellan_insights::enrich::GeoIp>>> {
        let path = self.insights.geoip_db.trim();
        if path.is_empty() {
            return Ok(None);
        }
        castellan_insights::enrich::GeoIp::open(Path::new(path))
            .map(|g| Some(Arc::new(g)))
            .map_err(|e| anyhow::anyhow!("insights.geoip_db: {e}"))
    }

    /// The keys TOTP secrets are sealed with: `security.encryption_keys`, else (on
    /// the embedded log) the key file in the data directory, made on first use.
    pub fn keyring(&self) -> anyhow::Result<Keyring> {
        if !self.security.encryption_keys.trim().is_empty() {
            return Keyring::parse(&self.security.encryption_keys)
                .map_err(|e| anyhow::anyhow!("security.encryption_keys: {e}"));
        }
        anyhow::ensure!(
            !self.is_cluster(),
            "security.encryption_keys: every node of a cluster needs the same key to seal \
             TOTP secrets; make one with `castellan keys new` and give it to each node \
             (CASTELLAN_SECURITY_ENCRYPTION_KEYS_FILE)"
        );
        let path = self.data_dir.join(KEY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("data_dir {}", self.data_dir.display()))?;
                let entry = Keyring::new_entry(&default_key_id());
                write_private(&path, &format!("{entry}\n"))
                    .with_context(|| format!("{}", path.display()))?;
                tracing::info!(
                    file = %path.display(),
                    "TOTP secrets are sealed with a key made in the data directory; \
                     set security.encryption_keys to keep the key apart from the data"
                );
                entry
            }
            Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
        };
        Keyring::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// The SQLite log file of the embedded default.
    pub fn log_path(&self) -> PathBuf {
        match self.log.url.strip_prefix("sqlite:") {
            Some(p) => PathBuf::from(p.trim_start_matches("//")),
            None => self.data_dir.join("events.db"),
        }
    }

    pub fn read_store_url(&self) -> String {
        if self.read_store.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("read.db").display())
        } else {
            self.read_store.url.clone()
        }
    }

    pub fn is_cluster(&self) -> bool {
        self.log.url.starts_with("nats://") || self.log.url.starts_with("tls://")
    }
}

/// The embedded default's key file, in the data directory.
pub const KEY_FILE: &str = "encryption.keys";

/// A key id that says when the key was made, e.g. `k20261207`.
pub fn default_key_id() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("k{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Creates a file only its owner can read (never replacing one).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_overrides_the_file_and_file_secrets_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "data_dir = \"/x\"\n[http]\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let secret = dir.path().join("pg");
        std::fs::write(&secret, "postgres://u:p@h/db\n").unwrap();
        let c = Config::load_with(
            Some(&file),
            &env(&[
                ("CASTELLAN_HTTP_LISTEN", "127.0.0.1:2"),
                ("CASTELLAN_READ_STORE_URL_FILE", secret.to_str().unwrap()),
                ("CASTELLAN_PROJECTIONS_READY_MAX_LAG", "5"),
                ("CASTELLAN_TEST_POSTGRES_URL", "ignored"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/x"));
        assert_eq!(c.http.listen.port(), 2);
        assert_eq!(c.read_store.url, "postgres://u:p@h/db");
        assert_eq!(c.projections.ready_max_lag, 5);
    }

    #[test]
    fn errors_name_the_setting() {
        let e = Config::load_with(None, &env(&[("CASTELLAN_HTTP_LISTEN", "nowhere")])).unwrap_err();
        assert!(e.to_string().contains("listen"), "{e}");
        let e = Config::load_with(None, &env(&[("CASTELLAN_LOG_URL", "http://x")])).unwrap_err();
        assert!(e.to_string().contains("log.url"), "{e}");
        let e = Config::load_with(None, &env(&[("CASTELLAN_LOG_REPLICAS", "three")])).unwrap_err();
        assert!(e.to_string().contains("CASTELLAN_LOG_REPLICAS"), "{e}");
        assert!(e.to_string().contains("log.replicas"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "data_dir = [").unwrap();
        let e = Config::load_with(Some(&file), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("bad.toml"), "{e}");
    }

    #[test]
    fn the_example_file_loads_and_names_every_setting() {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/castellan.example.toml");
        Config::load_with(Some(&example), &env(&[])).unwrap();
        let text = std::fs::read_to_string(&example).unwrap();
        for (spelling, setting) in env::known_settings() {
            let key = format!("{} =", setting.key);
            assert!(text.contains(&key), "{spelling}: the example lists {key}");
        }
    }

    #[test]
    fn encryption_keys_come_from_the_setting_or_a_private_key_file() {
        use std::os::unix::fs::PermissionsExt;
        let e = Config::load_with(
            None,
            &env(&[("CASTELLAN_SECURITY_ENCRYPTION_KEYS", "k1:AAAA")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("security.encryption_keys"), "{e}");
        let entry = Keyring::new_entry("k1");
        let c = Config::load_with(
            None,
            &env(&[("CASTELLAN_SECURITY_ENCRYPTION_KEYS", entry.as_str())]),
        )
        .unwrap();
        assert_eq!(c.keyring().unwrap().current_id(), "k1");

        let dir = tempfile::tempdir().unwrap();
        let c = Config {
            data_dir: dir.path().join("data"),
            ..Default::default()
        };
        let first = c.keyring().unwrap();
        let file = dir.path().join("data").join(KEY_FILE);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        let binding = castellan_app::sealing::Binding {
            purpose: "totp",
            org: "o",
            account: "a",
        };
        let sealed = first.seal(binding, "S");
        assert_eq!(c.keyring().unwrap().open(binding, &sealed).unwrap(), "S");

        let mut cluster = c.clone();
        cluster.log.url = "nats://127.0.0.1:4222".into();
        let e = cluster.keyring().unwrap_err().to_string();
        assert!(e.contains("security.encryption_keys"), "{e}");
    }
}
