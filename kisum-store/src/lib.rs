#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod auth;
mod engine;
mod error;
mod postgres;
mod sql;
mod sqlite;
mod store;

pub use auth::{AuthStore, LoginAttempt, RefreshRecord, RefreshUse, ServiceClient, Session, StoredKey};
pub use engine::{Engine, Installed};
pub use error::StoreError;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use store::{Checkpoint, Credential, LogEntry, SideWrite, Store, WriteTx, connect, redact};
