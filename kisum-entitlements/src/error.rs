//! The crate's one error type.

use kisum_errors::{ErrorCode, FieldError, KisumError, summarize};

use crate::LimitValue;

/// Everything that can go wrong in the commercial model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntitlementsError {
    /// The input breaks one or more rules; every problem found is listed.
    #[error("{} problem(s) found: {}", .0.len(), summarize(.0))]
    Validation(Vec<FieldError>),
    /// A write would make two package subscriptions effective at once, or reuse an id.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Using `requested` more units of `key` on top of `used` would exceed the entitled limit.
    #[error("limit `{key}` exceeded: {used} used + {requested} requested > {limit}")]
    LimitExceeded {
        /// The limit key.
        key: String,
        /// The entitled capacity (absent limits have capacity 0).
        limit: LimitValue,
        /// Units already in use.
        used: u64,
        /// Units asked for.
        requested: u64,
    },
    /// The limit key is not declared in the catalog.
    #[error("unknown limit `{0}`")]
    UnknownLimit(String),
}

impl KisumError for EntitlementsError {
    fn code(&self) -> ErrorCode {
        match self {
            EntitlementsError::Validation(_) | EntitlementsError::UnknownLimit(_) => ErrorCode::ValidationFailed,
            EntitlementsError::Conflict(_) => ErrorCode::Conflict,
            EntitlementsError::LimitExceeded { .. } => ErrorCode::LimitExceeded,
        }
    }

    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            EntitlementsError::Validation(errors) => errors.clone(),
            _ => Vec::new(),
        }
    }

    fn required(&self) -> Option<String> {
        match self {
            EntitlementsError::LimitExceeded { key, .. } => Some(key.clone()),
            _ => None,
        }
    }
}

/// Collects every problem found while validating, each with the path of the offending item.
#[derive(Debug, Default)]
pub struct Issues {
    list: Vec<FieldError>,
    conflict: bool,
}

impl Issues {
    /// An empty collector.
    pub fn new() -> Self {
        Issues::default()
    }

    /// Records a broken rule at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(FieldError::new(path, message));
    }

    /// Records a conflict (an overlap or a duplicate id) at `path`: the whole result becomes `CONFLICT`
    /// for writes, while loaders report it with the other problems.
    pub fn push_conflict(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.conflict = true;
        self.push(path, message);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether a conflict was recorded.
    pub fn has_conflict(&self) -> bool {
        self.conflict
    }

    /// The recorded problems.
    pub fn into_vec(self) -> Vec<FieldError> {
        self.list
    }

    /// `Ok(value)` when nothing was recorded, else a `Validation` error listing everything.
    pub fn finish<T>(self, value: T) -> Result<T, EntitlementsError> {
        if self.list.is_empty() { Ok(value) } else { Err(EntitlementsError::Validation(self.list)) }
    }
}
