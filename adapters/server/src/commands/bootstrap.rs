//! `castellan bootstrap`: a new organization with its first admin and an API key,
//! printed as one JSON object.

use std::path::Path;

use anyhow::Context;
use castellan_app::admins;

use crate::backends;
use crate::config::Config;

pub fn read_password(file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("--admin-password-file {}", file.display()))?;
    let password = text.lines().next().unwrap_or("").to_string();
    anyhow::ensure!(
        !password.is_empty(),
        "--admin-password-file {}: the file is empty",
        file.display()
    );
    Ok(password)
}

pub async fn run(
    config: &Config,
    org_name: &str,
    admin_email: &str,
    password_file: Option<&Path>,
) -> anyhow::Result<()> {
    let password = password_file.map(read_password).transpose()?;
    let b = backends::open(config).await?;
    let done = admins::bootstrap(
        &*b.log,
        time::OffsetDateTime::now_utc(),
        org_name,
        admin_email,
        password,
    )
    .await?;
    println!("{}", serde_json::to_string(&done)?);
    Ok(())
}
