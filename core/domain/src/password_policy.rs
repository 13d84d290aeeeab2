//! The organization's password policy and the one function that judges a password
//! against it, answering every violated rule at once. Every path that sets a
//! password (admin set, CSV import, activation link, self-service change, LDAP
//! password modify) calls [`PasswordPolicy::check`]; the history rule needs the
//! stored hashes and is applied by the application layer with the same policy.

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Violations};

/// Field names follow the hosted product's `organizationsettings.passwordPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub needs_lowercase: bool,
    pub needs_uppercase: bool,
    pub needs_numeric: bool,
    pub needs_symbolic: bool,
    /// When false, a password may not contain the username (case-insensitive).
    pub allow_username_substring: bool,
    /// The N most recent passwords cannot be reused (0 = off, else 1–24).
    pub max_history: u32,
    /// Days until a password expires (0 = never).
    pub password_expiration_in_days: u32,
    /// Failed attempts before lockout (0 = never lock).
    pub max_login_attempts: u32,
    /// How long a lockout lasts (300–5400 s; 0 = until an admin unlocks).
    pub lockout_time_in_seconds: u32,
    /// Failed attempts older than this are forgotten.
    pub reset_lockout_counter_minutes: u32,
}

impl Default for PasswordPolicy {
    /// NIST SP 800-63B-leaning defaults: length over composition, no forced rotation,
    /// lockout after 10 failures for 10 minutes.
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            needs_lowercase: false,
            needs_uppercase: false,
            needs_numeric: false,
            needs_symbolic: false,
            allow_username_substring: false,
            max_history: 0,
            password_expiration_in_days: 0,
            max_login_attempts: 10,
            lockout_time_in_seconds: 600,
            reset_lockout_counter_minutes: 10,
        }
    }
}

/// Passwords longer than this are refused (hashing megabytes is a denial of service).
pub const MAX_PASSWORD_BYTES: usize = 4096;
/// Longest password accepted, in characters (what the OpenAPI document says).
pub const MAX_PASSWORD_CHARS: usize = 1024;

impl PasswordPolicy {
    /// Checks the policy's own settings.
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Violations::default();
        if !(1..=256).contains(&self.min_length) {
            v.add("passwordPolicy.minLength", "must be between 1 and 256");
        }
        if self.max_history > 24 {
            v.add(
                "passwordPolicy.maxHistory",
                "must be between 0 (off) and 24",
            );
        }
        if self.lockout_time_in_seconds != 0
            && !(300..=5400).contains(&self.lockout_time_in_seconds)
        {
            v.add(
                "passwordPolicy.lockoutTimeInSeconds",
                "must be 0 (until unlocked) or between 300 and 5400",
            );
        }
        if self.password_expiration_in_days > 3650 {
            v.add(
                "passwordPolicy.passwordExpirationInDays",
                "must be at most 3650",
            );
        }
        v.into_result()
    }

    /// Every rule `password` breaks, for the field `field` (the history rule excepted).
    pub fn check(
        &self,
        field: &str,
        password: &str,
        username: Option<&str>,
    ) -> Result<(), DomainError> {
        let mut v = Violations::default();
        if password.len() > MAX_PASSWORD_BYTES {
            v.add(field, "is longer than 4 KiB");
            return v.into_result();
        }
        let chars = password.chars().count();
        if chars > MAX_PASSWORD_CHARS {
            v.add(
                field,
                format!("must be at most {MAX_PASSWORD_CHARS} characters"),
            );
        }
        if chars < self.min_length {
            v.add(
                field,
                format!("must be at least {} characters", self.min_length),
            );
        }
        if self.needs_lowercase && !password.chars().any(char::is_lowercase) {
            v.add(field, "must include a lowercase letter");
        }
        if self.needs_uppercase && !password.chars().any(char::is_uppercase) {
            v.add(field, "must include an uppercase letter");
        }
        if self.needs_numeric && !password.chars().any(|c| c.is_numeric()) {
            v.add(field, "must include a number");
        }
        if self.needs_symbolic
            && !password
                .chars()
                .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
        {
            v.add(field, "must include a special character");
        }
        if let Some(user) = username.filter(|u| !u.is_empty()) {
            if !self.allow_username_substring
                && password.to_lowercase().contains(&user.to_lowercase())
            {
                v.add(field, "may not contain the username");
            }
        }
        v.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 12,
            needs_lowercase: true,
            needs_uppercase: true,
            needs_numeric: true,
            needs_symbolic: true,
            ..PasswordPolicy::default()
        }
    }

    fn messages(r: Result<(), DomainError>) -> Vec<String> {
        match r {
            Ok(()) => vec![],
            Err(DomainError::Invalid(list)) => list.into_iter().map(|e| e.message).collect(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn every_violated_rule_is_reported_at_once() {
        let m = messages(strict().check("password", "alice", Some("Alice")));
        assert_eq!(
            m,
            [
                "must be at least 12 characters",
                "must include an uppercase letter",
                "must include a number",
                "must include a special character",
                "may not contain the username",
            ]
        );
    }

    #[test]
    fn long_and_unicode_passwords_are_fine() {
        assert!(messages(strict().check(
            "password",
            &format!("Aa1!{}", "x".repeat(60)),
            Some("bob")
        ))
        .is_empty());
        assert!(
            messages(PasswordPolicy::default().check("password", "🦀🦀🦀🦀🦀🦀🦀🦀", None))
                .is_empty()
        );
        assert_eq!(
            messages(PasswordPolicy::default().check("password", "🦀🦀🦀🦀🦀🦀🦀", None)),
            ["must be at least 8 characters"]
        );
        assert_eq!(
            messages(PasswordPolicy::default().check("password", &"x".repeat(5000), None)),
            ["is longer than 4 KiB"]
        );
    }

    #[test]
    fn policy_settings_are_validated() {
        let bad = PasswordPolicy {
            max_history: 30,
            lockout_time_in_seconds: 10,
            ..PasswordPolicy::default()
        };
        let err = bad.validate().unwrap_err();
        assert_eq!(err.field(), Some("passwordPolicy.maxHistory"));
        assert!(err.to_string().contains("lockoutTimeInSeconds"));
    }
}
