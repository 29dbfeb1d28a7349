#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "cli")]
mod args;
pub mod clients;
pub mod feed;
mod guard;
pub mod keys;
mod problem;
mod secret;
#[cfg(feature = "server")]
pub mod server;
mod service;
pub mod source;
pub mod sse;
pub mod trace;

/// How long any request of the SDK to Auth or Core may take (the feed's stream aside).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The access model (ids, documents, decisions, the catalog), for a module server that imports only the SDK.
pub use kisum_access as access;
/// Plans, entitlements and clocks.
pub use kisum_entitlements as entitlements;
/// The error codes and problem bodies of DESIGN.md §6.
pub use kisum_errors as errors;

#[cfg(feature = "cli")]
pub use args::{RemoteArgs, VerifyArgs};
pub use feed::{FeedReader, FeedSink, Revocations, follow, follow_with, load_revocations};
pub use guard::{
    Access, Caller, Counters, Kisum, KisumLayer, KisumService, OwnerLookup, Owners, Require, RequireService,
    bearer_token,
};
pub use keys::Keys;
pub use problem::Refusal;
pub use secret::{Secret, http_client};
pub use service::ServiceToken;
pub use source::{AccessSource, Granted, LocalSource, Origin, RemoteConfig, RemoteSource};
