//! The world file (`scenarios/README.md`): plain serde types that reject unknown fields. Ids stay text
//! here so that loading can name every problem at once; [`World::from_doc`](crate::World::from_doc)
//! parses them.

use kisum_entitlements::Timestamp;
use kisum_entitlements::doc::{
    AddonDoc, CatalogDoc, FeatureDoc, LimitDoc, ModuleDoc, OverrideDoc, PackageDoc, SubscriptionDoc, nullable,
};
use serde::{Deserialize, Serialize};

/// A whole state: catalog, companies, users, agents, memberships, delegations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorldDoc {
    /// The catalog.
    pub catalog: AccessCatalogDoc,
    /// Companies with their custom roles, subscriptions and overrides.
    #[serde(default, deserialize_with = "nullable")]
    pub companies: Vec<CompanyDoc>,
    /// Users.
    #[serde(default, deserialize_with = "nullable")]
    pub users: Vec<UserDoc>,
    /// Agents.
    #[serde(default, deserialize_with = "nullable")]
    pub agents: Vec<AgentDoc>,
    /// Memberships.
    #[serde(default, deserialize_with = "nullable")]
    pub memberships: Vec<MembershipDoc>,
    /// Delegations.
    #[serde(default, deserialize_with = "nullable")]
    pub delegations: Vec<DelegationDoc>,
    /// Ids of removed companies: retired, never given to a new company (DESIGN.md §4 "Writes"), so that
    /// nothing recorded under one reaches a new tenant. An extension of the world format; absent when
    /// empty.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub retired_companies: Vec<String>,
}

/// The catalog: the commercial part plus permissions and system roles.
///
/// The commercial fields repeat [`CatalogDoc`]'s rather than flattening it in: serde cannot combine
/// `flatten` with `deny_unknown_fields`, and refusing unknown fields matters more (a typo must never
/// silently change a decision).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessCatalogDoc {
    /// Modules.
    #[serde(default, deserialize_with = "nullable")]
    pub modules: Vec<ModuleDoc>,
    /// Features.
    #[serde(default, deserialize_with = "nullable")]
    pub features: Vec<FeatureDoc>,
    /// Limits.
    #[serde(default, deserialize_with = "nullable")]
    pub limits: Vec<LimitDoc>,
    /// Permissions.
    #[serde(default, deserialize_with = "nullable")]
    pub permissions: Vec<PermissionDoc>,
    /// Packages.
    #[serde(default, deserialize_with = "nullable")]
    pub packages: Vec<PackageDoc>,
    /// Add-ons.
    #[serde(default, deserialize_with = "nullable")]
    pub addons: Vec<AddonDoc>,
    /// System roles, present in every company.
    #[serde(default, deserialize_with = "nullable")]
    pub roles: Vec<RoleDoc>,
}

impl AccessCatalogDoc {
    /// The commercial part, for kisum-entitlements.
    pub fn commercial(&self) -> CatalogDoc {
        CatalogDoc {
            modules: self.modules.clone(),
            features: self.features.clone(),
            limits: self.limits.clone(),
            packages: self.packages.clone(),
            addons: self.addons.clone(),
        }
    }
}

/// A permission declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PermissionDoc {
    /// `module:resource:action`.
    pub key: String,
    /// A feature the permission requires, of the same module.
    #[serde(default)]
    pub feature: Option<String>,
    /// Whether the permission can be delegated; default true.
    #[serde(default)]
    pub delegable: Option<bool>,
}

/// A role: grants (patterns) and inherited roles.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleDoc {
    /// The role id.
    pub id: String,
    /// Patterns granted.
    #[serde(default, deserialize_with = "nullable")]
    pub grants: Vec<String>,
    /// Roles inherited.
    #[serde(default, deserialize_with = "nullable")]
    pub inherits: Vec<String>,
}

/// A company.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompanyDoc {
    /// The company id.
    pub id: String,
    /// Custom roles.
    #[serde(default, deserialize_with = "nullable")]
    pub roles: Vec<RoleDoc>,
    /// Subscriptions.
    #[serde(default, deserialize_with = "nullable")]
    pub subscriptions: Vec<SubscriptionDoc>,
    /// Overrides.
    #[serde(default, deserialize_with = "nullable")]
    pub overrides: Vec<OverrideDoc>,
    /// Support sessions: platform staff acting inside the company (the record; the access itself is a
    /// membership of the staff user that ends with the session).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub support_sessions: Vec<SupportSessionDoc>,
}

/// A support session: a platform staff user acting inside a company, for a reason, for at most 4 hours.
/// While it is open the user holds an active membership with `roles` that expires with the session;
/// such a membership takes no seat and never counts as the company's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SupportSessionDoc {
    /// The session id, unique across the world.
    pub id: String,
    /// The staff user.
    pub user: String,
    /// Why; shown to the company's owners.
    pub reason: String,
    /// The roles the user holds in the company meanwhile.
    pub roles: Vec<String>,
    /// When it was opened.
    pub opened_at: Timestamp,
    /// When it ends (exclusive): at most 4 hours after `opened_at`.
    pub expires_at: Timestamp,
    /// When it was closed early, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
}

impl SupportSessionDoc {
    /// The longest a support session lasts: 4 hours.
    pub const MAX_SECONDS: i64 = 4 * 3600;

    /// Whether the session is open at `t`.
    pub fn is_open_at(&self, t: Timestamp) -> bool {
        self.opened_at <= t && t < self.expires_at && self.closed_at.is_none_or(|c| t < c)
    }
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserDoc {
    /// The user id.
    pub id: String,
}

/// An agent, registered to one company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentDoc {
    /// The agent id.
    pub id: String,
    /// Its company.
    pub company: String,
}

/// Membership status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MembershipStatus {
    /// Invited, not yet accepted: confers nothing.
    Invited,
    /// Active: confers its roles.
    Active,
    /// Suspended: confers nothing.
    Suspended,
    /// Removed: confers nothing.
    Removed,
}

/// A membership of a user in a company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MembershipDoc {
    /// The user.
    pub user: String,
    /// The company.
    pub company: String,
    /// Status.
    pub status: MembershipStatus,
    /// Roles, custom or system.
    #[serde(default, deserialize_with = "nullable")]
    pub roles: Vec<String>,
    /// Expiry (exclusive).
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// Patterns denied whatever else grants them.
    #[serde(default, deserialize_with = "nullable")]
    pub restrictions: Vec<String>,
}

/// A principal reference: `{ "user": id }` or `{ "agent": id }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PrincipalDoc {
    /// A user.
    User(String),
    /// An agent.
    Agent(String),
}

/// A resource reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceDoc {
    /// The owning company.
    pub company: String,
    /// The kind.
    pub kind: String,
    /// The id.
    pub id: String,
}

/// A delegation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DelegationDoc {
    /// Unique across the world.
    pub id: String,
    /// The company it acts in.
    pub company: String,
    /// The delegator: a user.
    pub from: PrincipalDoc,
    /// The delegate: a user or an agent of the company.
    pub to: PrincipalDoc,
    /// Patterns delegated.
    #[serde(default, deserialize_with = "nullable")]
    pub grants: Vec<String>,
    /// Resource scope; absent means unscoped, present means non-empty.
    #[serde(default)]
    pub resources: Option<Vec<ResourceDoc>>,
    /// Start (inclusive).
    pub not_before: Timestamp,
    /// End (exclusive), at most 90 days after `not_before`.
    pub expires_at: Timestamp,
    /// Whether the delegate may pass on what this confers.
    pub redelegable: bool,
    /// Revocation instant (exclusive end of validity).
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
}
