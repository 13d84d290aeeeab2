//! Opening the event log and the read store that the configuration names.

use std::sync::Arc;

use anyhow::Context;
use castellan_app::ports::EventLog;
use castellan_log_nats::{NatsLog, StreamSettings};
use castellan_log_sqlite::SqliteLog;
use castellan_projections::ReadStore;

use crate::config::Config;
use crate::metered::{LogMetrics, MeteredLog};

pub struct Backends {
    pub log: Arc<dyn EventLog>,
    pub log_metrics: Arc<LogMetrics>,
    pub store: ReadStore,
    /// `sqlite` or `nats`, for logs and metrics.
    pub log_kind: &'static str,
}

pub async fn open(config: &Config) -> anyhow::Result<Backends> {
    crate::data_dir::prepare(&config.data_dir)?;
    let (log, log_kind): (Arc<dyn EventLog>, _) = if config.is_cluster() {
        let settings = StreamSettings {
            name: config.log.stream.clone(),
            replicas: config.log.replicas,
            ..Default::default()
        };
        let nats = tokio::time::timeout(
            std::time::Duration::from_secs(15),
            NatsLog::connect(&config.log.url, settings),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "log.url {}: no answer from NATS within 15 s",
                config.log.url
            )
        })?
        .with_context(|| format!("log.url {}", config.log.url))?;
        (Arc::new(nats), "nats")
    } else {
        (
            Arc::new(SqliteLog::open(&config.log_path()).await?),
            "sqlite",
        )
    };
    let metered = MeteredLog::new(log);
    let log_metrics = metered.metrics.clone();
    let store = ReadStore::connect(&config.read_store_url())
        .await
        .context("read_store.url")?;
    Ok(Backends {
        log: Arc::new(metered),
        log_metrics,
        store,
        log_kind,
    })
}
