#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod catalog;
mod change;
mod company;
mod directory;
pub mod doc;
mod error;
mod eval;
mod feed;
mod ids;
mod pattern;
mod query;
mod rules;
#[cfg(feature = "scenario")]
pub mod scenario;
mod snapshot;
#[cfg(feature = "synth")]
pub mod synth;
mod users;
mod world;

pub use catalog::{AccessCatalog, PermissionDef, PermissionId, RoleRef};
pub use change::{Actor, Change, ChangeRecord};
pub use company::{Company, CompanySource, MAX_DELEGATION_SECONDS, MembershipSummary};
pub use directory::{Directory, Prepared, SHARDS};
pub use error::{AccessError, Escalation, ForbiddenRule, ItemKind};
pub use eval::{Allow, Chain, Decision, Explanation, Grant, GrantedBy, MAX_CHAIN};
pub use feed::{FeedEvent, RevocationList, RevokedSession};
pub use ids::{
    Acting, AgentId, DelegationId, Principal, ResourceId, ResourceKind, ResourceRef, RoleId, ServiceId, UserId,
};
pub use kisum_entitlements::{CompanyId, Timestamp};
pub use kisum_errors::DenyReason;
pub use pattern::{Pattern, PatternError};
pub use query::Access;
pub use rules::{AGENT_MANAGE, MANAGEMENT_PERMISSIONS, MEMBER_INVITE, MEMBER_REMOVE, ROLE_MANAGE};
pub use snapshot::{ScopedGrant, Snapshot, WireScoped, WireSnapshot};
pub use world::World;
