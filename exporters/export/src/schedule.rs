//! Windows. An increment gives windows aligned to the epoch in UTC (hourly windows
//! start on the hour); a cron expression gives windows from one firing to the next
//! (as the app's 2.x versions compute them).

use std::str::FromStr;

use chrono::{TimeZone, Utc};
use croner::Cron;

use crate::ExportError;

#[derive(Debug, Clone)]
pub enum Schedule {
    Every { step_ms: i64 },
    Cron(Box<Cron>),
}

impl Schedule {
    pub fn from_config(c: &crate::ExportConfig) -> Result<Schedule, ExportError> {
        if !c.cron.trim().is_empty() {
            return Self::cron(&c.cron);
        }
        let unit: i64 = match c.increment_type.as_str() {
            "minute" | "minutes" => 60_000,
            "hour" | "hours" => 3_600_000,
            "day" | "days" => 86_400_000,
            other => {
                return Err(ExportError::Config(
                    "increment_type",
                    format!("{other:?}: minute(s), hour(s) or day(s)"),
                ))
            }
        };
        if c.increment_amount == 0 {
            return Err(ExportError::Config("increment_amount", "at least 1".into()));
        }
        Ok(Schedule::Every {
            step_ms: unit * c.increment_amount as i64,
        })
    }

    /// A 5-field cron expression, or EventBridge's 6 fields (the last one, the year,
    /// must be `*`; `?` reads as `*`).
    pub fn cron(expr: &str) -> Result<Schedule, ExportError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let five = match fields.len() {
            5 => fields.join(" "),
            6 if fields[5] == "*" => fields[..5].join(" "),
            _ => {
                return Err(ExportError::Config(
                    "cron",
                    format!("{expr:?}: 5 fields (minute hour day month weekday), or EventBridge's 6 with year *"),
                ))
            }
        };
        let five = five.replace('?', "*");
        Cron::from_str(&five)
            .map(|c| Schedule::Cron(Box::new(c)))
            .map_err(|e| ExportError::Config("cron", format!("{expr:?}: {e}")))
    }

    /// The first window boundary after `t` (ms).
    fn next_boundary(&self, t: i64) -> Option<i64> {
        match self {
            Schedule::Every { step_ms } => Some((t.div_euclid(*step_ms) + 1) * step_ms),
            Schedule::Cron(c) => {
                let from = Utc.timestamp_millis_opt(t).single()?;
                c.find_next_occurrence(&from, false)
                    .ok()
                    .map(|d| d.timestamp_millis())
            }
        }
    }

    /// The last boundary at or before `t`.
    pub fn boundary_at_or_before(&self, t: i64) -> Option<i64> {
        match self {
            Schedule::Every { step_ms } => Some(t.div_euclid(*step_ms) * step_ms),
            Schedule::Cron(c) => {
                let at = Utc.timestamp_millis_opt(t).single()?;
                c.find_previous_occurrence(&at, true)
                    .ok()
                    .map(|d| d.timestamp_millis())
            }
        }
    }

    /// The window that starts at `start` (a boundary): `[start, next boundary)`.
    pub fn window_from(&self, start: i64) -> Option<(i64, i64)> {
        self.next_boundary(start).map(|end| (start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_align_to_the_epoch_and_cron_windows_run_between_firings() {
        let hourly = Schedule::Every { step_ms: 3_600_000 };
        let t = 1_764_331_234_000; // 2025-11-28T12:00:34Z
        let b = hourly.boundary_at_or_before(t).unwrap();
        assert_eq!(b % 3_600_000, 0);
        assert_eq!(hourly.window_from(b), Some((b, b + 3_600_000)));
        // Every day at midnight, EventBridge style.
        let daily = Schedule::cron("0 0 * * ? *").unwrap();
        let b = daily.boundary_at_or_before(t).unwrap();
        assert_eq!(b % 86_400_000, 0);
        assert!(b <= t && t - b < 86_400_000);
        assert_eq!(daily.window_from(b), Some((b, b + 86_400_000)));
        assert!(Schedule::cron("0 0 * * ? 2030").is_err());
        assert!(Schedule::cron("nonsense").is_err());
    }
}
