//! The crate's one error type.

use kisum_access::AccessError;
use kisum_errors::{ErrorCode, FieldError, KisumError};

/// Everything that can go wrong opening, reading or writing a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write broke a rule of the model or of the actor; nothing was stored.
    #[error(transparent)]
    Rejected(#[from] AccessError),
    /// The database URL is not one this crate opens.
    #[error("unsupported database url `{0}`: expected sqlite://FILE or postgres://…")]
    UnsupportedUrl(String),
    /// The file is not a SQLite database (or is damaged beyond SQLite's own recovery).
    #[error("`{0}` is not a database")]
    NotADatabase(String),
    /// The database holds tables of another application.
    #[error("the database holds tables of another application ({tables}), not a Kisum store")]
    Foreign {
        /// Some of the tables found.
        tables: String,
    },
    /// The database was written by a newer version of this crate.
    #[error("the store's schema is newer than this build (migration {version} is unknown here)")]
    NewerSchema {
        /// The unknown migration.
        version: i64,
    },
    /// The store holds no state yet and none was given to start from.
    #[error("the store is empty: seed it with a world first")]
    Empty,
    /// A stored record does not decode.
    #[error("stored {what} at sequence {seq} is corrupt: {detail}")]
    Corrupt {
        /// `change` or `checkpoint`.
        what: &'static str,
        /// Its sequence.
        seq: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// A stored checkpoint or change no longer validates against the model: the store is refused
    /// rather than repaired.
    #[error("stored {what} at sequence {seq} no longer validates: {source}")]
    Invalid {
        /// `change` or `checkpoint`.
        what: &'static str,
        /// Its sequence.
        seq: u64,
        /// Why.
        source: AccessError,
    },
    /// The log has a gap: a change other processes committed is missing.
    #[error("the change log jumps from sequence {after} to {found}")]
    Gap {
        /// The last sequence applied.
        after: u64,
        /// The next sequence found.
        found: u64,
    },
    /// A cursor older than the log's retention: reload everything, then follow from `from`.
    #[error("changes after sequence {after} are no longer kept; resync from checkpoint {from}")]
    ResyncRequired {
        /// The cursor asked for.
        after: u64,
        /// The sequence of the state to reload (the oldest checkpoint the log continues from).
        from: u64,
    },
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    pub(crate) fn db(e: sqlx::Error) -> StoreError {
        StoreError::Database(e.to_string())
    }
}

impl KisumError for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            StoreError::Rejected(e) => e.code(),
            StoreError::ResyncRequired { .. } => ErrorCode::ResyncRequired,
            StoreError::Database(_) => ErrorCode::UpstreamUnavailable,
            StoreError::UnsupportedUrl(_)
            | StoreError::NotADatabase(_)
            | StoreError::Foreign { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::Empty
            | StoreError::Corrupt { .. }
            | StoreError::Invalid { .. }
            | StoreError::Gap { .. } => ErrorCode::Internal,
        }
    }

    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            StoreError::Rejected(e) => e.field_errors(),
            _ => Vec::new(),
        }
    }

    fn required(&self) -> Option<String> {
        match self {
            StoreError::Rejected(e) => e.required(),
            _ => None,
        }
    }
}
