use castellan_domain::aggregate::DecodeError;
use castellan_domain::DomainError;

use crate::ports::LogError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Log(#[from] LogError),
    /// A stored event that this version cannot read: never silently skipped.
    #[error("stored event unreadable: {0}")]
    Decode(#[from] DecodeError),
    /// Concurrent writers kept winning; the caller may retry later.
    #[error("too much contention on {0}; try again")]
    Contention(String),
    #[error("{0}")]
    Internal(String),
}
