//! The domain's error: every variant has a stable code for API clients, and
//! validation errors name the field they are about.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// One or more fields are invalid; every violated rule is listed.
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{kind} not found")]
    NotFound { kind: &'static str },
    #[error("{kind} already exists")]
    AlreadyExists { kind: &'static str },
    /// The request is valid but the object's state does not allow it now.
    #[error("{field}: {message}")]
    State { field: String, message: String },
    /// A unique value (a name, an email) is already taken in the organization.
    #[error("{field} {value:?} is already in use")]
    Taken { field: String, value: String },
}

impl DomainError {
    pub fn state(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::State {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Invalid(_) => "invalid_field",
            DomainError::NotFound { .. } => "not_found",
            DomainError::AlreadyExists { .. } => "already_exists",
            DomainError::Taken { .. } => "already_in_use",
            DomainError::State { .. } => "invalid_state",
        }
    }

    /// The first field the error names, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            DomainError::Invalid(errors) => errors.first().map(|e| e.field.as_str()),
            DomainError::Taken { field, .. } | DomainError::State { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Collects field errors so that a command reports every violated rule at once.
#[derive(Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }

    pub fn into_result(self) -> Result<(), DomainError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(self.0))
        }
    }
}
