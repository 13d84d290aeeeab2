//! The environment layer of the configuration: `CASTELLAN_<SECTION>_<KEY>` (and
//! `…_FILE`) variables onto the settings table, each typed by its setting. Only
//! settings are read; the project's own tool variables are skipped, and any other
//! unknown variable is a warning naming the closest setting.

use std::collections::BTreeMap;

use super::{Config, ConfigError};

/// Applies the environment to the file's table; the warnings it gives.
pub(super) fn apply(
    table: &mut toml::Table,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, ConfigError> {
    let settings = known_settings();
    let mut warnings = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix("CASTELLAN_") else {
            continue;
        };
        if is_tool_variable(rest) {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let (name, from_file) = match lower.strip_suffix("_file") {
            Some(name) if settings.contains_key(name) => (name, true),
            _ => (lower.as_str(), false),
        };
        let Some(setting) = settings.get(name) else {
            warnings.push(unknown_variable(var, name, &settings));
            continue;
        };
        let value = if from_file {
            let secret = std::fs::read_to_string(raw)
                .map_err(|e| ConfigError::Env(var.clone(), format!("cannot read {raw}: {e}")))?;
            secret.trim_end_matches(['\n', '\r']).to_string()
        } else {
            raw.clone()
        };
        let value = setting
            .typed(&value)
            .map_err(|e| ConfigError::Env(var.clone(), format!("{}: {e}", setting.path())))?;
        match &setting.section {
            Some(s) => {
                let entry = table
                    .entry(s.clone())
                    .or_insert_with(|| toml::Value::Table(Default::default()));
                let toml::Value::Table(t) = entry else {
                    return Err(ConfigError::Env(
                        var.clone(),
                        format!("[{s}] is not a table in the file"),
                    ));
                };
                t.insert(setting.key.clone(), value);
            }
            None => {
                table.insert(setting.key.clone(), value);
            }
        }
    }
    Ok(warnings)
}

/// One setting an environment variable can set: where it lives and what its
/// default looks like, which says how to read the variable's text.
pub(super) struct Setting {
    pub(super) section: Option<String>,
    pub(super) key: String,
    default: toml::Value,
}

impl Setting {
    fn path(&self) -> String {
        match &self.section {
            Some(s) => format!("{s}.{}", self.key),
            None => self.key.clone(),
        }
    }

    /// The variable's text as the setting's type: digits stay a string where the
    /// setting is one, a list setting takes comma-separated items.
    fn typed(&self, raw: &str) -> Result<toml::Value, String> {
        Ok(match &self.default {
            toml::Value::Integer(_) => toml::Value::Integer(
                raw.trim()
                    .parse()
                    .map_err(|_| format!("{raw:?} is not a whole number"))?,
            ),
            toml::Value::Float(_) => toml::Value::Float(
                raw.trim()
                    .parse()
                    .map_err(|_| format!("{raw:?} is not a number"))?,
            ),
            toml::Value::Boolean(_) => match raw.trim() {
                "true" | "1" | "yes" => toml::Value::Boolean(true),
                "false" | "0" | "no" => toml::Value::Boolean(false),
                _ => return Err(format!("{raw:?} is not true or false")),
            },
            toml::Value::Array(_) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| toml::Value::String(item.to_string()))
                    .collect(),
            ),
            _ => toml::Value::String(raw.to_string()),
        })
    }
}

/// Every setting, by its environment spelling (`http_listen`, `data_dir`), read off
/// the defaults so that a new setting is settable from the environment at once.
pub(super) fn known_settings() -> BTreeMap<String, Setting> {
    let mut settings = BTreeMap::new();
    let Ok(toml::Value::Table(top)) = toml::Value::try_from(Config::default()) else {
        return settings;
    };
    for (key, value) in top {
        match value {
            toml::Value::Table(section) => {
                for (inner, default) in section {
                    let setting = Setting {
                        section: Some(key.clone()),
                        key: inner.clone(),
                        default,
                    };
                    settings.insert(format!("{key}_{inner}"), setting);
                }
            }
            default => {
                let setting = Setting {
                    section: None,
                    key: key.clone(),
                    default,
                };
                settings.insert(key, setting);
            }
        }
    }
    settings
}

/// `CASTELLAN_*` variables of the project's own tools (the test command's cache, the
/// test harness, the benchmarks, the config path): never settings, never warned of.
fn is_tool_variable(rest: &str) -> bool {
    ["TEST_", "BENCH_"].iter().any(|p| rest.starts_with(p))
        || ["CONFIG", "CACHE", "BINARY"].contains(&rest)
}

/// The warning for a variable that names no setting, with the closest one.
fn unknown_variable(var: &str, name: &str, settings: &BTreeMap<String, Setting>) -> String {
    let closest = settings
        .iter()
        .map(|(spelling, s)| (edit_distance(name, spelling), s))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= name.len().max(4) / 2);
    match closest {
        Some((_, s)) => format!(
            "environment variable {var} names no setting and is ignored (did you mean CASTELLAN_{}, the setting {}?)",
            s.path().replace('.', "_").to_ascii_uppercase(),
            s.path()
        ),
        None => format!("environment variable {var} names no setting and is ignored"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::super::tests::env;
    use super::*;

    #[test]
    fn tool_variables_are_no_settings_and_unknown_ones_only_warn() {
        let c = Config::load_with(
            None,
            &env(&[
                ("CASTELLAN_CACHE", "/some/dir"),
                ("CASTELLAN_BENCH_AWS", "1"),
                ("CASTELLAN_TEST_PYTHON", "python3"),
                ("CASTELLAN_HTTP_LISTN", "127.0.0.1:1"),
                ("CASTELLAN_BOGUS", "1"),
                ("CASTELLAN_HTTP_SESSION_SECRET", "12345"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.http.session_secret, "12345",
            "digits stay text for a text setting"
        );
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        let listn = c.warnings.iter().find(|w| w.contains("LISTN")).unwrap();
        assert!(
            listn.contains("CASTELLAN_HTTP_LISTEN") && listn.contains("http.listen"),
            "{listn}"
        );
        let bogus = c.warnings.iter().find(|w| w.contains("BOGUS")).unwrap();
        assert!(bogus.contains("ignored"), "{bogus}");
        // Every setting of the file can be set from the environment.
        let settings = known_settings();
        for name in [
            "data_dir",
            "http_listen",
            "read_store_url",
            "smtp_tls",
            "export_grace_ms",
        ] {
            assert!(settings.contains_key(name), "{name}");
        }
    }
}
