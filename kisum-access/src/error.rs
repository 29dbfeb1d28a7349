//! The crate's one error type. Authorization itself never errors: a check returns a
//! [`Decision`](crate::Decision); these are for loading, writes and undeclared permissions.

use kisum_entitlements::{EntitlementsError, LimitValue};
use kisum_errors::{ErrorCode, FieldError, KisumError, summarize};

/// Everything that can go wrong outside a decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The input breaks one or more rules; every problem found is listed.
    #[error("{} problem(s) found: {}", .0.len(), summarize(.0))]
    Validation(Vec<FieldError>),
    /// The input is not well-formed JSON of the expected shape.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// A write overlaps a package subscription, reuses an id, or would leave a company without an owner.
    #[error("conflict: {}", summarize(.0))]
    Conflict(Vec<FieldError>),
    /// A permission key the catalog does not declare: a programming error, not a deny.
    #[error("unknown permission `{0}`")]
    UnknownPermission(String),
    /// The actor may not make this write.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Activating a membership would exceed the company's seats.
    #[error("limit `{key}` exceeded: {used} used + {requested} requested > {limit}")]
    LimitExceeded {
        /// The limit key.
        key: String,
        /// The entitled capacity.
        limit: LimitValue,
        /// Units in use.
        used: u64,
        /// Units asked for.
        requested: u64,
    },
    /// The write names something that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A prepared write no longer fits the directory: another change was installed since it was
    /// prepared, or the sequence number given is not after the directory's.
    #[error("the directory is at version {current}, the write expected {expected}")]
    Stale {
        /// The version the write expected the directory to be at.
        expected: u64,
        /// The directory's version.
        current: u64,
    },
    /// A snapshot's wire form was built against another catalog.
    #[error("the snapshot was built against catalog `{found}`, not `{expected}`")]
    CatalogMismatch {
        /// This catalog's fingerprint.
        expected: String,
        /// The snapshot's.
        found: String,
    },
}

impl From<EntitlementsError> for AccessError {
    fn from(e: EntitlementsError) -> Self {
        match e {
            EntitlementsError::Validation(errors) => AccessError::Validation(errors),
            EntitlementsError::Conflict(text) => AccessError::Conflict(vec![FieldError::new("", text)]),
            EntitlementsError::LimitExceeded { key, limit, used, requested } => {
                AccessError::LimitExceeded { key, limit, used, requested }
            }
            EntitlementsError::UnknownLimit(key) => {
                AccessError::Validation(vec![FieldError::new("", format!("unknown limit `{key}`"))])
            }
        }
    }
}

impl KisumError for AccessError {
    fn code(&self) -> ErrorCode {
        match self {
            AccessError::Validation(_) | AccessError::Malformed(_) => ErrorCode::ValidationFailed,
            AccessError::Conflict(_) | AccessError::Stale { .. } => ErrorCode::Conflict,
            AccessError::CatalogMismatch { .. } => ErrorCode::ValidationFailed,
            AccessError::UnknownPermission(_) => ErrorCode::UnknownPermission,
            AccessError::Forbidden(_) => ErrorCode::Forbidden,
            AccessError::LimitExceeded { .. } => ErrorCode::LimitExceeded,
            AccessError::NotFound(_) => ErrorCode::NotFound,
        }
    }

    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            AccessError::Validation(errors) | AccessError::Conflict(errors) => errors.clone(),
            _ => Vec::new(),
        }
    }

    fn required(&self) -> Option<String> {
        match self {
            AccessError::UnknownPermission(key) => Some(key.clone()),
            AccessError::LimitExceeded { key, .. } => Some(key.clone()),
            _ => None,
        }
    }
}
