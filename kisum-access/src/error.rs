//! The crate's one error type. Authorization itself never errors: a check returns a
//! [`Decision`](crate::Decision); these are for loading, writes and undeclared permissions.

use std::fmt;

use kisum_entitlements::{CompanyId, EntitlementsError, LimitValue};
use kisum_errors::{ErrorCode, FieldError, KisumError, summarize};

use crate::change::Actor;
use crate::ids::{DelegationId, RoleId, UserId};

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
    /// The actor may not make this write: it breaks one of the rules the directory enforces on users
    /// (DESIGN.md §4 "Writes").
    #[error("forbidden: `{actor}` {rule}")]
    Forbidden {
        /// Who tried the write ([`Actor::Platform`] is never refused this way).
        actor: Actor,
        /// The rule the write breaks.
        rule: ForbiddenRule,
    },
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
    #[error("not found: {kind} `{id}`")]
    NotFound {
        /// What kind of thing.
        kind: ItemKind,
        /// Its id as the write gave it (at most 80 characters of it).
        id: String,
    },
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

/// A rule of DESIGN.md §4 "Writes" that a write broke. Each displays as what follows the actor in
/// [`AccessError::Forbidden`]'s message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForbiddenRule {
    /// The actor has no active, unexpired membership in the company written to.
    NoActiveMembership {
        /// The company written to.
        company: CompanyId,
    },
    /// A token acting for a user (an agent, through `act`) never writes access.
    ActsForAnother,
    /// The write needs a management permission the actor's granted set lacks (or the catalog does not
    /// declare, which refuses it to everyone but the platform).
    MissingPermission {
        /// The permission key (`core:member:invite`, `core:member:remove`, `core:role:manage`,
        /// `core:agent:manage`).
        permission: &'static str,
    },
    /// The write widens the actor's own membership.
    WidensOwnMembership,
    /// The write gives a permission that is not in the actor's granted set.
    Escalates {
        /// The first such permission, in catalog order.
        permission: String,
        /// How the write gives it.
        by: Escalation,
    },
    /// A delegation is written on behalf of another delegator.
    DelegatesForAnother {
        /// The delegation written.
        delegation: DelegationId,
    },
    /// A delegation grants a currently entitled permission the actor may not pass on.
    NotPassable {
        /// The delegation written.
        delegation: DelegationId,
    },
    /// A delegation is revoked by someone other than its delegator.
    RevokesForAnother {
        /// The delegation to revoke.
        delegation: DelegationId,
    },
    /// A company is created with another user as its first owner.
    CreatesForAnother {
        /// The owner the write named.
        owner: UserId,
    },
    /// The kind of change is for the platform only (users, subscriptions, overrides, company removal).
    PlatformOnly {
        /// The kind of change ([`Change::kind`](crate::Change::kind)).
        change: &'static str,
    },
    /// A support session is opened by a platform staff user, for itself.
    StaffOnly,
}

/// How a write would give a permission the actor does not hold ([`ForbiddenRule::Escalates`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Escalation {
    /// The membership of this user grants it after the write.
    Membership {
        /// Whose membership.
        user: UserId,
    },
    /// A restriction of this user's membership that matched it is lifted.
    LiftedRestriction {
        /// Whose membership.
        user: UserId,
    },
    /// The custom role's new closure holds it (its holders receive it).
    Role {
        /// The role.
        role: RoleId,
    },
}

/// The kind of thing an [`AccessError::NotFound`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ItemKind {
    /// A company.
    Company,
    /// A custom role.
    Role,
    /// A membership, by user.
    Membership,
    /// An agent.
    Agent,
    /// A delegation.
    Delegation,
    /// A subscription.
    Subscription,
    /// An override.
    Override,
    /// A user.
    User,
    /// A support session.
    SupportSession,
}

impl fmt::Display for ForbiddenRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForbiddenRule::NoActiveMembership { company } => write!(f, "has no active membership in `{company}`"),
            ForbiddenRule::ActsForAnother => f.write_str("acts for another user and may not manage access"),
            ForbiddenRule::MissingPermission { permission } => write!(f, "needs `{permission}` for this write"),
            ForbiddenRule::WidensOwnMembership => f.write_str("may not widen its own membership"),
            ForbiddenRule::Escalates { permission, by } => {
                write!(f, "may not give `{permission}`, which it does not hold itself ({by})")
            }
            ForbiddenRule::DelegatesForAnother { delegation } => {
                write!(f, "may only delegate its own access (delegation `{delegation}`)")
            }
            ForbiddenRule::NotPassable { delegation } => {
                write!(f, "may not pass on everything delegation `{delegation}` grants")
            }
            ForbiddenRule::RevokesForAnother { delegation } => {
                write!(f, "may only revoke its own delegations (delegation `{delegation}`)")
            }
            ForbiddenRule::CreatesForAnother { owner } => {
                write!(f, "may only create a company it owns, not one owned by `{owner}`")
            }
            ForbiddenRule::PlatformOnly { change } => {
                write!(f, "may not make a `{change}` change: it is for the platform")
            }
            ForbiddenRule::StaffOnly => {
                f.write_str("may not open a support session: only a staff user opens one, for itself")
            }
        }
    }
}

impl fmt::Display for Escalation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Escalation::Membership { user } => write!(f, "the membership of `{user}` would grant it"),
            Escalation::LiftedRestriction { user } => write!(f, "a restriction of `{user}` that denies it is lifted"),
            Escalation::Role { role } => write!(f, "role `{role}` would grant it"),
        }
    }
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemKind::Company => "company",
            ItemKind::Role => "role",
            ItemKind::Membership => "membership",
            ItemKind::Agent => "agent",
            ItemKind::Delegation => "delegation",
            ItemKind::Subscription => "subscription",
            ItemKind::Override => "override",
            ItemKind::User => "user",
            ItemKind::SupportSession => "support session",
        })
    }
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
            AccessError::Forbidden { .. } => ErrorCode::Forbidden,
            AccessError::LimitExceeded { .. } => ErrorCode::LimitExceeded,
            AccessError::NotFound { .. } => ErrorCode::NotFound,
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
            AccessError::Forbidden { rule: ForbiddenRule::MissingPermission { permission }, .. } => {
                Some((*permission).to_owned())
            }
            AccessError::Forbidden { rule: ForbiddenRule::Escalates { permission, .. }, .. } => {
                Some(permission.clone())
            }
            _ => None,
        }
    }
}
