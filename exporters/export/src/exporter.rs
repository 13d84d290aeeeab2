//! The export loop. Each organization has a next window; a window is exported once the
//! materializer has every event of it (`complete_until_ms` past its end plus a grace
//! period for appends in flight), and only after its PUT succeeds does the next window
//! become due, so a failure or a restart repeats the window (deterministic keys: the
//! same object is overwritten). After downtime every missed window goes out in order.
//! A window without events uploads nothing and counts in
//! `castellan_export_empty_windows_total{service}`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use castellan_insights::{Insights, Status};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::render::{gzip_json, key};
use crate::schedule::Schedule;
use crate::sink::Sink;
use crate::{ExportConfig, ExportError};

/// Where the exporter keeps its progress, inside the sink itself (under the prefix).
pub const STATE_KEY: &str = "_castellan/export_state.json";

#[derive(Debug, Default)]
pub struct ExportMetrics {
    /// Windows without events, by service (`all` when every service is exported).
    pub empty_windows: Mutex<BTreeMap<String, u64>>,
    pub windows_exported: AtomicU64,
    pub objects_written: AtomicU64,
    pub bytes_written: AtomicU64,
}

impl ExportMetrics {
    fn empty(&self, service: &str) {
        *self
            .empty_windows
            .lock()
            .expect("metrics lock")
            .entry(service.to_string())
            .or_default() += 1;
    }
}

pub struct Exporter {
    insights: Insights,
    sink: Arc<dyn Sink>,
    schedule: Schedule,
    services: Vec<String>,
    config: ExportConfig,
    status: Arc<Status>,
    pub metrics: Arc<ExportMetrics>,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Exporter {
    pub fn new(
        config: ExportConfig,
        insights: Insights,
        sink: Arc<dyn Sink>,
        status: Arc<Status>,
    ) -> Result<Exporter, ExportError> {
        if !matches!(config.json_format.as_str(), "MultiLine" | "SingleLine") {
            return Err(ExportError::Config(
                "json_format",
                "MultiLine or SingleLine".into(),
            ));
        }
        if !matches!(config.key_format.as_str(), "window" | "org_service") {
            return Err(ExportError::Config(
                "key_format",
                "window or org_service".into(),
            ));
        }
        Ok(Exporter {
            schedule: Schedule::from_config(&config)?,
            services: config.services()?,
            insights,
            sink,
            config,
            status,
            metrics: Arc::new(ExportMetrics::default()),
        })
    }

    /// The state's key: beside the exported objects, so two exporters that share a
    /// bucket under different prefixes keep separate progress.
    pub fn state_key(&self) -> String {
        match self.config.s3_prefix.trim_matches('/') {
            "" => STATE_KEY.to_string(),
            p => format!("{p}/{STATE_KEY}"),
        }
    }

    async fn load_state(&self) -> Result<Value, ExportError> {
        let key = self.state_key();
        Ok(match self.sink.get(&key).await? {
            Some(b) => {
                serde_json::from_slice(&b).map_err(|e| ExportError::Sink(format!("{key}: {e}")))?
            }
            None => {
                // The first window is the one running now.
                let start = self
                    .schedule
                    .boundary_at_or_before(now_ms())
                    .ok_or_else(|| ExportError::Config("cron", "never fires".into()))?;
                json!({"first_window_start": start, "next_window_start": {}})
            }
        })
    }

    async fn save_state(&self, state: &Value) -> Result<(), ExportError> {
        self.sink
            .put(
                &self.state_key(),
                serde_json::to_vec_pretty(state).expect("json"),
            )
            .await
    }

    /// Exports one organization's window; returns the objects written.
    pub async fn export_window(
        &self,
        org: &str,
        start: i64,
        end: i64,
    ) -> Result<usize, ExportError> {
        let events = self
            .insights
            .window(org, start, end, &self.services)
            .await
            .map_err(|e| ExportError::Query(e.to_string()))?;
        let single = self.config.json_format == "SingleLine";
        let wanted: Vec<String> = if self.services.is_empty() {
            vec!["all".into()]
        } else {
            self.services.clone()
        };
        let mut written = 0;
        if self.config.key_format == "org_service" {
            // As the app's 3.x workers write them: one object per service asked
            // for, and with `all`, one `_all_` object of every service's events.
            let mut by_service: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for e in events {
                let service = if self.services.is_empty() {
                    "all".to_string()
                } else {
                    e.service
                };
                by_service.entry(service).or_default().push(e.json);
            }
            if self.services.is_empty() && by_service.is_empty() {
                self.metrics.empty("all");
            }
            for s in &self.services {
                if !by_service.contains_key(s) {
                    self.metrics.empty(s);
                }
            }
            for (service, list) in by_service {
                let body = compress_window(list, single).await?;
                let k = key(
                    &self.config.s3_prefix,
                    "org_service",
                    org,
                    Some(&service),
                    start,
                    end,
                );
                self.metrics
                    .bytes_written
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                self.sink.put(&k, body).await?;
                written += 1;
            }
        } else {
            for s in &wanted {
                if (s == "all" && events.is_empty())
                    || (s != "all" && !events.iter().any(|e| &e.service == s))
                {
                    self.metrics.empty(s);
                }
            }
            if !events.is_empty() {
                let list = events.into_iter().map(|e| e.json).collect();
                let body = compress_window(list, single).await?;
                let k = key(&self.config.s3_prefix, "window", org, None, start, end);
                self.metrics
                    .bytes_written
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                self.sink.put(&k, body).await?;
                written += 1;
            }
        }
        self.metrics
            .objects_written
            .fetch_add(written as u64, Ordering::Relaxed);
        self.metrics
            .windows_exported
            .fetch_add(1, Ordering::Relaxed);
        Ok(written)
    }

    /// Exports every window that is due; returns how many windows went out.
    pub async fn round(&self, state: &mut Value) -> Result<usize, ExportError> {
        let complete = self.status.complete_until_ms.load(Ordering::SeqCst);
        let grace = self.config.grace_ms as i64;
        let first = state["first_window_start"].as_i64().unwrap_or(0);
        let mut orgs = self
            .insights
            .organizations()
            .await
            .map_err(|e| ExportError::Query(e.to_string()))?;
        if let Some(known) = state["next_window_start"].as_object() {
            orgs.extend(known.keys().cloned());
        }
        orgs.sort();
        orgs.dedup();
        let mut done = 0;
        for org in orgs {
            loop {
                let start = state["next_window_start"][&org].as_i64().unwrap_or(first);
                let Some((start, end)) = self.schedule.window_from(start) else {
                    break;
                };
                if end + grace > complete {
                    break;
                }
                self.export_window(&org, start, end).await?;
                state["next_window_start"][&org] = json!(end);
                self.save_state(state).await?;
                done += 1;
            }
        }
        Ok(done)
    }

    /// Exports until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut state = loop {
            match self.load_state().await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!(error = %e, "export: cannot read its state; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
        };
        loop {
            if let Err(e) = self.round(&mut state).await {
                // The window stays due; it is tried again next round.
                tracing::warn!(error = %e, "export: window not exported; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        tracing::info!("exporter stopped");
    }
}

/// Renders and compresses a window off the async threads (it takes every core).
async fn compress_window(events: Vec<String>, single_line: bool) -> Result<Vec<u8>, ExportError> {
    tokio::task::spawn_blocking(move || gzip_json(&events, single_line))
        .await
        .map_err(|e| ExportError::Sink(e.to_string()))?
        .map_err(|e| ExportError::Sink(e.to_string()))
}
