//! `[export]`: off unless `enabled`. Either `increment_type` × `increment_amount` or
//! `cron` (5 fields, or EventBridge's 6 with year) defines the windows.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    pub enabled: bool,
    /// minute, minutes, hour, hours, day or days.
    pub increment_type: String,
    pub increment_amount: u32,
    /// A cron expression instead of the increment; a window runs from one firing to
    /// the next.
    pub cron: String,
    /// `all`, or services separated by commas (directory, ldap, radius, sso, …).
    pub service: String,
    /// `MultiLine` (indented) or `SingleLine` (one event per line).
    pub json_format: String,
    /// `org_service` (the app's 3.x name, the default:
    /// `jc_directoryinsights_<org>_<service>_<start>_<end>.json.gz` with ':' written
    /// as '-', one object per service, or one `_all_` object with `service = all`)
    /// or `window` (the 1.x–2.x name, `jc_directoryinsights_<start>_<end>.json.gz`
    /// under `<org>/`).
    pub key_format: String,
    /// `dir` or `s3`.
    pub sink: String,
    /// For `dir`: the directory; empty: `data_dir/exports`.
    pub dir: String,
    pub s3_bucket: String,
    pub s3_prefix: String,
    pub s3_endpoint: String,
    pub s3_region: String,
    /// Empty: the usual AWS environment variables.
    pub s3_access_key_id: String,
    pub s3_secret_access_key: String,
    /// How long after a window's end its late events may still arrive.
    pub grace_ms: u64,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            enabled: false,
            increment_type: "day".into(),
            increment_amount: 1,
            cron: String::new(),
            service: "all".into(),
            json_format: "MultiLine".into(),
            key_format: "org_service".into(),
            sink: "dir".into(),
            dir: String::new(),
            s3_bucket: String::new(),
            s3_prefix: String::new(),
            s3_endpoint: String::new(),
            s3_region: String::new(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
            grace_ms: 2000,
        }
    }
}

impl ExportConfig {
    /// The services to export; empty means every service.
    pub fn services(&self) -> Result<Vec<String>, crate::ExportError> {
        let list: Vec<String> = self
            .service
            .split(',')
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if list.iter().any(|s| s == "all") {
            if list.len() > 1 {
                return Err(crate::ExportError::Config(
                    "service",
                    "\"all\" cannot be combined with other services".into(),
                ));
            }
            return Ok(Vec::new());
        }
        if let Some(bad) = list
            .iter()
            .find(|s| !castellan_insights::query::SERVICES.contains(&s.as_str()))
        {
            return Err(crate::ExportError::Config(
                "service",
                format!("unknown service {bad:?}"),
            ));
        }
        if list.is_empty() {
            return Err(crate::ExportError::Config(
                "service",
                "name at least one service, or all".into(),
            ));
        }
        Ok(list)
    }
}
