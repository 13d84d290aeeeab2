//! `castellan insights run`: the materializer alone, with the exporter when
//! `export.enabled` (cluster mode: one such process, writing to S3; `serve` nodes then
//! set `insights.materialize = false`).
//! `castellan insights sql "SELECT …" --org ID [--format json|csv]`: read-only SQL over
//! one organization's events.

use std::sync::Arc;

use anyhow::Context;
use castellan_insights::{Insights, Materializer};
use tokio::sync::watch;

use crate::config::Config;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let b = crate::backends::open(config).await?;
    let storage = config
        .insights_storage()
        .context("insights storage (insights.dir or insights.s3_*)")?;
    let m = Arc::new(
        Materializer::new(b.log.clone(), storage.clone(), config.materializer_config())
            .with_geoip(config.geoip()?),
    );
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(m.clone().run(stopped.clone()));
    let export = if config.export.enabled {
        let sink = config.export_sink().await.context("export")?;
        let e = Arc::new(
            castellan_export::Exporter::new(
                config.export.clone(),
                Insights::new(storage),
                sink,
                m.status.clone(),
            )
            .context("export")?,
        );
        Some(tokio::spawn(e.run(stopped)))
    } else {
        None
    };
    eprintln!("castellan: materializing insights (Ctrl-C to stop)");
    crate::node::signal().await;
    let _ = stop.send(true);
    task.await.context("materializer")?;
    if let Some(e) = export {
        e.await.context("exporter")?;
    }
    Ok(())
}

pub async fn sql(config: &Config, query: &str, org: &str, csv: bool) -> anyhow::Result<()> {
    let org: castellan_domain::ObjectId = org
        .parse()
        .map_err(|_| anyhow::anyhow!("--org {org:?} is not an organization id"))?;
    let storage = config
        .insights_storage()
        .context("insights storage (insights.dir or insights.s3_*)")?;
    let batches = Insights::with_limits(storage, config.query_limits())
        .sql(&org.to_string(), query)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if csv {
        print!("{}", castellan_insights::sql::to_csv(&batches)?);
    } else {
        for row in castellan_insights::sql::to_json_rows(&batches)? {
            println!("{row}");
        }
    }
    Ok(())
}
