#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod clients;
pub mod feed;
mod guard;
pub mod keys;
mod problem;
mod service;
pub mod source;

pub use feed::{Revocations, follow};
pub use guard::{
    Access, Caller, Counters, Kisum, KisumLayer, KisumService, OwnerOf, Owners, Require, RequireService, require,
};
pub use keys::Keys;
pub use problem::Refusal;
pub use service::ServiceToken;
pub use source::{AccessSource, Granted, LocalSource, Origin, RemoteConfig, RemoteSource};
