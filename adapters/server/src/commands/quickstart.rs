//! `castellan quickstart`: a demo organization and admin on an empty data dir, then serve.

use castellan_app::admins;
use rand::distributions::{Alphanumeric, DistString};

use crate::backends;
use crate::config::Config;
use crate::node;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let b = backends::open(config).await?;
    let fresh = b.log.head().await? == 0;
    let created = if fresh {
        let password = format!(
            "Cs-{}",
            Alphanumeric.sample_string(&mut rand::thread_rng(), 20)
        );
        let done = admins::bootstrap(
            &*b.log,
            time::OffsetDateTime::now_utc(),
            "Demo Organization",
            "admin@example.com",
            Some(password.clone()),
        )
        .await?;
        Some((done, password))
    } else {
        None
    };
    let running = node::start_with(config, b).await?;
    let api = format!("http://{}", running.http_addr);
    match created {
        Some((done, password)) => {
            // Reads wait for the new key to reach the index before we print it.
            running
                .admins
                .progress()
                .wait_for(done.position, std::time::Duration::from_secs(10))
                .await;
            println!("Castellan is running with a demo organization.\n");
            println!("  API:            {api}");
            println!(
                "  Management:     http://{}/readyz, /metrics",
                running.management_addr
            );
            println!("  Organization:   {} (Demo Organization)", done.org_id);
            println!("  Admin:          admin@example.com / {password}");
            println!("  API key:        {}\n", done.api_key);
            println!(
                "Try:  curl -H 'x-api-key: {}' {api}/api/organizations/{}\n",
                done.api_key, done.org_id
            );
            println!(
                "These credentials are shown once. Data lives in {}.",
                config.data_dir.display()
            );
        }
        None => println!(
            "Castellan is running on existing data in {} (API {api}); quickstart created nothing.",
            config.data_dir.display()
        ),
    }
    node::signal().await;
    running.shutdown().await;
    Ok(())
}
