#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod catalog;
mod company;
mod directory;
pub mod doc;
mod error;
mod eval;
mod ids;
pub mod scenario;
mod snapshot;
pub mod synth;
mod world;

pub use catalog::{AccessCatalog, PermissionDef, PermissionId, Role, RoleRef};
pub use company::{Company, CompanySource, MAX_DELEGATION_SECONDS};
pub use directory::{Actor, AuditRecord, AuditSink, Change, Directory, MemoryAudit, NoAudit, Receipt, SHARDS};
pub use error::AccessError;
pub use eval::{Allow, Chain, Decision, Explanation, Grant, MAX_CHAIN};
pub use ids::{AgentId, DelegationId, Principal, ResourceId, ResourceKind, ResourceRef, RoleId, UserId};
pub use kisum_entitlements::{CompanyId, Timestamp};
pub use kisum_errors::DenyReason;
pub use snapshot::{ScopedGrant, Snapshot};
pub use world::World;
