//! `castellan projections rebuild`: clear the SQL read model, replay the log from 0.

use std::sync::atomic::Ordering;

use castellan_projections::portal::PORTAL;
use castellan_projections::runtime::{self, Runner};
use serde_json::json;

use crate::config::Config;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let b = crate::backends::open(config).await?;
    let _serving_refused = if config.is_cluster() {
        None
    } else {
        Some(crate::data_dir::lock(&config.data_dir)?)
    };
    runtime::reset(&b.store, &PORTAL).await?;
    let runner = Runner::new(b.store.clone(), b.log.clone(), &PORTAL);
    let started = std::time::Instant::now();
    let position = runner.catch_up().await?;
    println!(
        "{}",
        json!({
            "projection": PORTAL.name,
            "position": position,
            "events_applied": runner.metrics.events_applied.load(Ordering::Relaxed),
            "events_failed": runner.metrics.events_failed.load(Ordering::Relaxed),
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}
