//! One Castellan node: backends, projections, the HTTP API and the management
//! listener, started together and stopped in order (listeners first, so in-flight
//! requests and their appends finish; then projections, which finish the batch they
//! are applying, checkpoint included).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use castellan_app::ports::{EventLog, SystemClock};
use castellan_http::ApiState;
use castellan_projections::admin_index::{self, AdminIndex};
use castellan_projections::memory::MemoryProjection;
use castellan_projections::portal::PORTAL;
use castellan_projections::runtime::Runner;
use castellan_projections::{Progress, ReadStore};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backends::{self, Backends};
use crate::config::Config;
use crate::management::{self, Management, ProjectionHandle};

pub struct Running {
    /// What the insights materializer has done (None when another process runs it).
    pub insights: Option<Arc<castellan_insights::Status>>,
    pub http_addr: SocketAddr,
    pub management_addr: SocketAddr,
    pub log: Arc<dyn EventLog>,
    pub store: ReadStore,
    pub portal: Progress,
    pub admins: Arc<MemoryProjection<AdminIndex>>,
    stop_listeners: watch::Sender<bool>,
    stop_projections: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    projections: Vec<JoinHandle<()>>,
    /// Held while the node runs on the embedded log (see [`crate::data_dir`]).
    _data_dir: Option<crate::data_dir::DataDirLock>,
}

/// Starts a node on the configured listeners (port 0 picks a free port).
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    // Locked before anything opens the files of a node that may be running.
    let data_dir = data_dir_lock(config)?;
    let backends = backends::open(config).await?;
    run(config, backends, data_dir).await
}

pub async fn start_with(config: &Config, backends: Backends) -> anyhow::Result<Running> {
    let data_dir = data_dir_lock(config)?;
    run(config, backends, data_dir).await
}

/// The data directory's lock, on the embedded log (see [`crate::data_dir`]).
fn data_dir_lock(config: &Config) -> anyhow::Result<Option<crate::data_dir::DataDirLock>> {
    if config.is_cluster() {
        return Ok(None);
    }
    crate::data_dir::prepare(&config.data_dir)?;
    crate::data_dir::lock(&config.data_dir).map(Some)
}

async fn run(
    config: &Config,
    backends: Backends,
    data_dir: Option<crate::data_dir::DataDirLock>,
) -> anyhow::Result<Running> {
    let Backends {
        log,
        log_metrics,
        store,
        log_kind,
    } = backends;
    let keys = Arc::new(config.keyring()?);
    let (stop_projections, projections_rx) = watch::channel(false);
    let (stop_listeners, listeners_rx) = watch::channel(false);

    let portal_runner = Runner::new(store.clone(), log.clone(), &PORTAL);
    let portal = portal_runner.progress();
    let portal_metrics = portal_runner.metrics.clone();
    let admins = admin_index::projection();
    let mut projections = vec![tokio::spawn(portal_runner.run(projections_rx.clone()))];
    projections.push(tokio::spawn(
        admins.clone().run(log.clone(), projections_rx.clone()),
    ));
    let security = castellan_projections::security::projection();
    projections.push(tokio::spawn(
        security.clone().run(log.clone(), projections_rx.clone()),
    ));

    let http = TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("http.listen {}", config.http.listen))?;
    let mgmt = TcpListener::bind(config.management.listen)
        .await
        .with_context(|| format!("management.listen {}", config.management.listen))?;
    let http_addr = http.local_addr()?;
    let management_addr = mgmt.local_addr()?;
    let insights_storage = config
        .insights_storage()
        .context("insights storage (insights.dir or insights.s3_*)")?;
    let insights_status = if config.insights.materialize {
        let m = Arc::new(
            castellan_insights::Materializer::new(
                log.clone(),
                insights_storage.clone(),
                config.materializer_config(),
            )
            .with_geoip(config.geoip()?),
        );
        let status = m.status.clone();
        projections.push(tokio::spawn(m.run(projections_rx.clone())));
        Some(status)
    } else {
        None
    };
    let insights =
        castellan_insights::Insights::with_limits(insights_storage, config.query_limits());
    let export = match (&insights_status, config.export.enabled) {
        (Some(status), true) => {
            let sink = config.export_sink().await.context("export")?;
            let e = Arc::new(
                castellan_export::Exporter::new(
                    config.export.clone(),
                    insights.clone(),
                    sink,
                    status.clone(),
                )
                .context("export")?,
            );
            let metrics = e.metrics.clone();
            projections.push(tokio::spawn(e.run(projections_rx.clone())));
            Some(metrics)
        }
        (None, true) => anyhow::bail!(
            "export.enabled needs the materializer in this process (insights.materialize = true)"
        ),
        _ => None,
    };
    let api = ApiState {
        log: log.clone(),
        store: store.clone(),
        portal: portal.clone(),
        admins: admins.clone(),
        clock: Arc::new(SystemClock),
        failures: Arc::new(castellan_projections::security::Counter::new(
            security.clone(),
            castellan_projections::security::Throttle {
                max_failures: config.security.login_ip_max_failures,
                window: Duration::from_secs(config.security.login_ip_window_seconds),
            },
        )),
        keys,
        consistency_wait: Duration::from_millis(config.projections.consistency_wait_ms),
        session_key: castellan_http::session::SessionKey::from_secret(&config.http.session_secret),
        public_url: if config.http.public_url.is_empty() {
            format!("http://{http_addr}")
        } else {
            config.http.public_url.trim_end_matches('/').to_string()
        },
        trusted_proxies: config.trusted_proxies()?.into(),
        insights: Some(insights),
    };

    if config.smtp.enabled() {
        let relay = castellan_mail::Relay::new(store.clone(), &config.smtp)
            .with_context(|| format!("smtp.host {}", config.smtp.host))?;
        projections.push(tokio::spawn(relay.run(projections_rx.clone())));
    }

    let management = Management {
        log: log.clone(),
        log_kind,
        log_metrics,
        store: store.clone(),
        ready_max_lag: config.projections.ready_max_lag,
        insights: insights_status.clone(),
        export,
        projections: vec![
            ProjectionHandle {
                name: "portal",
                metrics: portal_metrics,
            },
            ProjectionHandle {
                name: admins.name(),
                metrics: admins.metrics.clone(),
            },
            ProjectionHandle {
                name: security.name(),
                metrics: security.metrics.clone(),
            },
        ],
    };
    let listeners = vec![
        tokio::spawn(serve(
            http,
            castellan_http::router(api),
            listeners_rx.clone(),
        )),
        tokio::spawn(serve(mgmt, management::router(management), listeners_rx)),
    ];
    tracing::info!(%http_addr, %management_addr, log = log_kind, "castellan is serving");
    Ok(Running {
        insights: insights_status,
        http_addr,
        management_addr,
        log,
        store,
        portal,
        admins,
        stop_listeners,
        stop_projections,
        listeners,
        projections,
        _data_dir: data_dir,
    })
}

async fn serve(listener: TcpListener, router: axum::Router, mut stop: watch::Receiver<bool>) {
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "listener failed");
    }
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, then stops projections.
    pub async fn shutdown(self) {
        let _ = self.stop_listeners.send(true);
        for l in self.listeners {
            let _ = tokio::time::timeout(Duration::from_secs(30), l).await;
        }
        let _ = self.stop_projections.send(true);
        for p in self.projections {
            let _ = tokio::time::timeout(Duration::from_secs(30), p).await;
        }
        tracing::info!("castellan stopped");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
