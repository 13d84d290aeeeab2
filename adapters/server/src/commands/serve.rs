use crate::config::Config;
use crate::node;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let running = node::start(config).await?;
    eprintln!(
        "castellan: serving the API on http://{} and management on http://{} (log: {})",
        running.http_addr,
        running.management_addr,
        if config.is_cluster() {
            config.log.url.clone()
        } else {
            config.log_path().display().to_string()
        }
    );
    node::signal().await;
    running.shutdown().await;
    Ok(())
}
