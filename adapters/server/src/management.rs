//! The management listener: `/healthz` (the process answers), `/readyz` (log and
//! read store reachable, projections caught up within a bound) and Prometheus
//! `/metrics`.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use castellan_app::ports::EventLog;
use castellan_projections::{ProjectionMetrics, ReadStore};
use serde_json::json;

use crate::metered::LogMetrics;

pub struct ProjectionHandle {
    pub name: &'static str,
    pub metrics: Arc<ProjectionMetrics>,
}

pub struct Management {
    pub log: Arc<dyn EventLog>,
    pub log_kind: &'static str,
    pub log_metrics: Arc<LogMetrics>,
    pub store: ReadStore,
    pub ready_max_lag: u64,
    pub projections: Vec<ProjectionHandle>,
    /// The insights materializer of this process, if it runs one.
    pub insights: Option<Arc<castellan_insights::Status>>,
    /// The exporter of this process, if it runs one.
    pub export: Option<Arc<castellan_export::ExportMetrics>>,
}

pub fn router(m: Management) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(m))
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

async fn head(m: &Management) -> Result<u64, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, m.log.head()).await {
        Ok(Ok(h)) => Ok(h),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the event log did not answer within 3 s".into()),
    }
}

async fn readyz(State(m): State<Arc<Management>>) -> impl IntoResponse {
    let mut problems = Vec::new();
    let head = match head(&m).await {
        Ok(h) => Some(h),
        Err(e) => {
            problems.push(format!("log: {e}"));
            None
        }
    };
    match tokio::time::timeout(CHECK_TIMEOUT, m.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("read store: {e}")),
        Err(_) => problems.push("read store: no answer within 3 s".into()),
    }
    let mut projections = serde_json::Map::new();
    for p in &m.projections {
        let position = p.metrics.position.load(Ordering::Relaxed);
        let lag = head.map(|h| h.saturating_sub(position));
        if let Some(lag) = lag.filter(|l| *l > m.ready_max_lag) {
            problems.push(format!(
                "projection {}: {lag} positions behind the log",
                p.name
            ));
        }
        projections.insert(p.name.into(), json!({"position": position, "lag": lag}));
    }
    let ready = problems.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "log": m.log_kind,
        "head": head,
        "projections": projections,
        "problems": problems,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn metrics(State(m): State<Arc<Management>>) -> impl IntoResponse {
    let mut out = String::new();
    let l = &m.log_metrics;
    let head = head(&m).await.ok();
    let _ = writeln!(
        out,
        "# HELP castellan_log_up 1 when the event log answered this scrape."
    );
    let _ = writeln!(out, "# TYPE castellan_log_up gauge");
    let _ = writeln!(
        out,
        "castellan_log_up{{log=\"{}\"}} {}",
        m.log_kind,
        head.is_some() as u8
    );
    if let Some(h) = head {
        let _ = writeln!(
            out,
            "# HELP castellan_log_head_position Position of the newest commit."
        );
        let _ = writeln!(out, "# TYPE castellan_log_head_position gauge");
        let _ = writeln!(out, "castellan_log_head_position {h}");
    }
    let _ = writeln!(
        out,
        "# HELP castellan_log_appends_total Commits appended by this process, by result."
    );
    let _ = writeln!(out, "# TYPE castellan_log_appends_total counter");
    for (result, v) in [
        ("ok", &l.commits_ok),
        ("conflict", &l.conflicts),
        ("error", &l.failures),
    ] {
        let _ = writeln!(
            out,
            "castellan_log_appends_total{{result=\"{result}\"}} {}",
            v.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP castellan_log_events_appended_total Events appended by this process."
    );
    let _ = writeln!(out, "# TYPE castellan_log_events_appended_total counter");
    let _ = writeln!(
        out,
        "castellan_log_events_appended_total {}",
        l.events_ok.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP castellan_log_append_seconds_total Time spent in appends."
    );
    let _ = writeln!(out, "# TYPE castellan_log_append_seconds_total counter");
    let _ = writeln!(
        out,
        "castellan_log_append_seconds_total {:.6}",
        l.append_micros.load(Ordering::Relaxed) as f64 / 1e6
    );
    let gauges: [(&str, &str, &str); 5] = [
        (
            "castellan_projection_position",
            "gauge",
            "Last log position a projection applied.",
        ),
        (
            "castellan_projection_lag_positions",
            "gauge",
            "Log head minus the projection's position.",
        ),
        (
            "castellan_projection_lag_seconds",
            "gauge",
            "Age of the last event applied when it was applied.",
        ),
        (
            "castellan_projection_events_applied_total",
            "counter",
            "Events applied.",
        ),
        (
            "castellan_projection_events_failed_total",
            "counter",
            "Events sent to the failed-events table.",
        ),
    ];
    for (name, kind, help) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for p in &m.projections {
            let pm = &p.metrics;
            let position = pm.position.load(Ordering::Relaxed);
            let value = match name {
                "castellan_projection_position" => position.to_string(),
                "castellan_projection_lag_positions" => match head {
                    Some(h) => h.saturating_sub(position).to_string(),
                    None => continue,
                },
                "castellan_projection_lag_seconds" => {
                    format!(
                        "{:.6}",
                        pm.last_lag_micros.load(Ordering::Relaxed) as f64 / 1e6
                    )
                }
                "castellan_projection_events_applied_total" => {
                    pm.events_applied.load(Ordering::Relaxed).to_string()
                }
                _ => pm.events_failed.load(Ordering::Relaxed).to_string(),
            };
            let _ = writeln!(out, "{name}{{projection=\"{}\"}} {value}", p.name);
        }
    }
    if let Some(s) = &m.insights {
        let counters = [
            (
                "castellan_insights_checkpoint_position",
                "gauge",
                "Every event up to this log position is in a durable Parquet file.",
                s.checkpoint.load(Ordering::Relaxed) as i64,
            ),
            (
                "castellan_insights_rows_written_total",
                "counter",
                "Events written to Parquet.",
                s.rows_written.load(Ordering::Relaxed) as i64,
            ),
            (
                "castellan_insights_files_written_total",
                "counter",
                "Parquet files written by flushes.",
                s.files_written.load(Ordering::Relaxed) as i64,
            ),
            (
                "castellan_insights_files_compacted_total",
                "counter",
                "Small Parquet files merged away.",
                s.files_compacted.load(Ordering::Relaxed) as i64,
            ),
        ];
        for (name, kind, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    }
    if let Some(e) = &m.export {
        let name = "castellan_export_empty_windows_total";
        let _ = writeln!(out, "# HELP {name} Export windows without events (nothing uploaded), by service.\n# TYPE {name} counter");
        for (service, n) in e.empty_windows.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "{name}{{service=\"{service}\"}} {n}");
        }
        let name = "castellan_export_windows_total";
        let _ = writeln!(
            out,
            "# HELP {name} Export windows done.\n# TYPE {name} counter\n{name} {}",
            e.windows_exported.load(Ordering::Relaxed)
        );
        let name = "castellan_export_bytes_total";
        let _ = writeln!(
            out,
            "# HELP {name} Gzipped JSON bytes uploaded.\n# TYPE {name} counter\n{name} {}",
            e.bytes_written.load(Ordering::Relaxed)
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
