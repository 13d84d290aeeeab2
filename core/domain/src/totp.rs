//! TOTP enrollment as a value object shared by users and administrators: the
//! enrolled secret, a pending one while a (re-)enrollment waits for its first code,
//! and the newest time step accepted (a code of that step or older is refused).
//!
//! An enrolled factor stays in force until a new enrollment is confirmed, and a new
//! enrollment of an enrolled account starts only once the current factor was proven:
//! whoever holds just the password (or just an API key) cannot swap the factor.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::change::Change;
use crate::error::DomainError;

/// The TOTP state of an account. Secrets are never serialized (read models keep
/// only whether TOTP is enrolled and the last step).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totp {
    /// Set by the `totp_status` change (read models see it without the secret).
    pub enrolled: bool,
    #[serde(skip)]
    pub secret: Option<String>,
    #[serde(skip)]
    pub pending_secret: Option<String>,
    /// The newest time step accepted.
    pub last_step: u64,
}

/// A login code checked against a secret: the time steps (±1) whose code matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSteps {
    pub secret: String,
    pub steps: Vec<u64>,
}

/// The stored (sealed) secrets of an account, enrolled and pending: what a reseal
/// read and what it writes in their place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

/// What a start of enrollment decides: the status change (none when an enrolled
/// factor stays in force meanwhile) and the step of the current code it spent.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub changes: Vec<Change>,
    pub spent_step: Option<u64>,
}

impl Totp {
    /// `enrolled`, `pending` or null, as `totp_status` changes record it.
    pub fn status(&self) -> Value {
        if self.enrolled {
            "enrolled".into()
        } else if self.pending_secret.is_some() {
            "pending".into()
        } else {
            Value::Null
        }
    }

    /// The oldest matching step newer than the last accepted one, for the enrolled secret.
    pub fn accept(&self, code: &CodeSteps) -> Result<u64, DomainError> {
        if !self.enrolled || self.secret.as_deref() != Some(code.secret.as_str()) {
            return Err(DomainError::state(
                "totp",
                "TOTP is not enrolled (or was reset meanwhile)",
            ));
        }
        code.steps
            .iter()
            .copied()
            .filter(|s| *s > self.last_step)
            .min()
            .ok_or_else(|| DomainError::invalid("totp", "the code was already used"))
    }

    /// Starts (or restarts) an enrollment. An enrolled account must prove its
    /// current factor with `current`, whose step is spent.
    pub fn start(&self, current: Option<&CodeSteps>) -> Result<Started, DomainError> {
        if !self.enrolled {
            return Ok(Started {
                changes: vec![Change::new("totp_status", self.status(), "pending")],
                spent_step: None,
            });
        }
        let Some(code) = current else {
            return Err(DomainError::invalid(
                "totp",
                "TOTP is enrolled: send the current code to replace it (or ask an administrator to reset it)",
            ));
        };
        Ok(Started {
            changes: vec![],
            spent_step: Some(self.accept(code)?),
        })
    }

    /// Confirms the pending enrollment: its status change.
    pub fn finish(&self) -> Result<Vec<Change>, DomainError> {
        if self.pending_secret.is_none() {
            return Err(DomainError::state("totp", "no enrollment was started"));
        }
        let from = if self.enrolled { "enrolled" } else { "pending" };
        Ok(vec![Change::new("totp_status", from, "enrolled")])
    }

    /// Removes the factor and any pending enrollment (an admin's reset); `None` when
    /// there is nothing to remove.
    pub fn reset(&self) -> Option<Vec<Change>> {
        let status = self.status();
        (!status.is_null()).then(|| vec![Change::new("totp_status", status, Value::Null)])
    }

    /// The secrets as stored now.
    pub fn stored(&self) -> StoredSecrets {
        StoredSecrets {
            enrolled: self.secret.clone(),
            pending: self.pending_secret.clone(),
        }
    }

    /// Checks a reseal: `read` must still be what is stored (an enrollment that
    /// started or finished meanwhile makes it stale), and `sealed` must replace
    /// exactly the secrets there are. `None` when there is nothing to reseal.
    pub fn reseal(
        &self,
        read: &StoredSecrets,
        sealed: &StoredSecrets,
    ) -> Result<Option<StoredSecrets>, DomainError> {
        if *read != self.stored() {
            return Err(DomainError::state(
                "totp",
                "the TOTP secrets changed meanwhile; read them again",
            ));
        }
        if read.enrolled.is_some() != sealed.enrolled.is_some()
            || read.pending.is_some() != sealed.pending.is_some()
        {
            return Err(DomainError::invalid(
                "totp",
                "a reseal replaces exactly the secrets that are stored",
            ));
        }
        Ok((read != sealed && *sealed != StoredSecrets::default()).then(|| sealed.clone()))
    }

    /// Folds a reseal: the same secrets, sealed anew.
    pub fn apply_resealed(&mut self, sealed: &StoredSecrets) {
        if sealed.enrolled.is_some() {
            self.secret = sealed.enrolled.clone();
        }
        if sealed.pending.is_some() {
            self.pending_secret = sealed.pending.clone();
        }
    }

    /// Folds what an event carries: a new pending secret, a spent step.
    pub fn apply_secrets(&mut self, pending: Option<&str>, step: Option<u64>) {
        if let Some(secret) = pending {
            self.pending_secret = Some(secret.to_string());
        }
        if let Some(step) = step {
            self.last_step = self.last_step.max(step);
        }
    }

    /// Folds a `totp_status` change: `enrolled` makes the pending secret the one in
    /// force; null removes both.
    pub fn apply_status(&mut self, to: &Value) {
        match to.as_str() {
            Some("enrolled") => {
                if let Some(secret) = self.pending_secret.take() {
                    self.secret = Some(secret);
                }
                self.enrolled = true;
            }
            Some(_) => {}
            None => {
                self.secret = None;
                self.pending_secret = None;
                self.enrolled = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrolled(secret: &str) -> Totp {
        let mut t = Totp::default();
        t.apply_secrets(Some(secret), None);
        t.apply_status(&"enrolled".into());
        t
    }

    fn code(secret: &str, steps: &[u64]) -> CodeSteps {
        CodeSteps {
            secret: secret.into(),
            steps: steps.to_vec(),
        }
    }

    #[test]
    fn an_enrolled_factor_is_replaced_only_with_its_current_code() {
        let mut t = enrolled("OLD");
        t.apply_secrets(None, Some(10));
        assert_eq!(t.start(None).unwrap_err().field(), Some("totp"));
        assert!(t.start(Some(&code("OTHER", &[11]))).is_err());
        assert!(t.start(Some(&code("OLD", &[9, 10]))).is_err(), "spent step");
        let started = t.start(Some(&code("OLD", &[11]))).unwrap();
        assert_eq!(started.spent_step, Some(11));
        assert!(started.changes.is_empty(), "still enrolled meanwhile");
        t.apply_secrets(Some("NEW"), started.spent_step);
        assert_eq!(
            t.secret.as_deref(),
            Some("OLD"),
            "the old one stays in force"
        );
        assert!(t.enrolled);
        let changes = t.finish().unwrap();
        t.apply_status(&changes[0].to);
        assert_eq!(t.secret.as_deref(), Some("NEW"));
        assert!(t.pending_secret.is_none());
    }

    #[test]
    fn a_first_enrollment_needs_no_code_and_a_reset_clears_everything() {
        let mut t = Totp::default();
        assert!(t.finish().is_err());
        let s = t.start(None).unwrap();
        assert_eq!(s.changes[0].to, "pending");
        t.apply_secrets(Some("S"), None);
        t.apply_status(&s.changes[0].to);
        assert!(!t.enrolled && t.secret.is_none());
        let reset = t.reset().unwrap();
        t.apply_status(&reset[0].to);
        assert_eq!(t, Totp::default());
        assert!(t.reset().is_none());
    }

    #[test]
    fn a_reseal_replaces_what_it_read_and_nothing_else() {
        let mut t = enrolled("OLD");
        t.apply_secrets(Some("PENDING"), None);
        let read = t.stored();
        let sealed = StoredSecrets {
            enrolled: Some("OLD'".into()),
            pending: Some("PENDING'".into()),
        };
        let stale = StoredSecrets {
            pending: None,
            ..read.clone()
        };
        assert!(t.reseal(&stale, &sealed).is_err(), "read before a change");
        let half = StoredSecrets {
            pending: None,
            ..sealed.clone()
        };
        assert!(t.reseal(&read, &half).is_err(), "drops the pending one");
        assert_eq!(t.reseal(&read, &read).unwrap(), None, "nothing new");
        let out = t.reseal(&read, &sealed).unwrap().unwrap();
        t.apply_resealed(&out);
        assert_eq!(t.stored(), sealed);
        assert!(t.enrolled && t.last_step == 0);
    }
}
