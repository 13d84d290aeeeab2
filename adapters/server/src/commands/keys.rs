//! `castellan keys`: the encryption keys that seal TOTP secrets.
//!
//! Rotation: `keys new` prints a key; put it first in `security.encryption_keys`
//! (keeping the old ones after it) on every node and restart them; `keys reseal`
//! seals every secret anew under it; then the old keys can be removed.

use castellan_app::reseal;
use castellan_app::sealing::Keyring;

use crate::backends;
use crate::config::{self, Config};

/// Prints a new key entry, `id:base64key`.
pub fn new(id: Option<&str>) -> anyhow::Result<()> {
    let id = id
        .map(str::to_string)
        .unwrap_or_else(config::default_key_id);
    let entry = Keyring::new_entry(&id);
    // Parsing it back checks the id.
    Keyring::parse(&entry).map_err(|e| anyhow::anyhow!("--id: {e}"))?;
    println!("{entry}");
    Ok(())
}

/// Seals every TOTP secret not under the current key anew; prints what it did as JSON.
pub async fn reseal(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    let b = backends::open(config).await?;
    let keys = config.keyring()?;
    let report = reseal::reseal_totp(&*b.log, &keys, dry_run).await?;
    println!(
        "{}",
        serde_json::json!({ "dry_run": dry_run, "report": report })
    );
    Ok(())
}
