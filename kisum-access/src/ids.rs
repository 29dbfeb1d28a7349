//! Access-side identifiers, principals and resource references.

use std::fmt;

use kisum_entitlements::{CompanyId, define_id, is_id};
use serde::{Deserialize, Serialize};

define_id!(
    /// A user id, such as `alice`.
    UserId, "user id", kisum_entitlements::is_id, kisum_entitlements::ID_RULE
);
define_id!(
    /// An agent id (a service or AI principal registered to one company), such as `copilot`.
    AgentId, "agent id", kisum_entitlements::is_id, kisum_entitlements::ID_RULE
);
define_id!(
    /// A role id, system or custom, such as `owner`.
    RoleId, "role id", kisum_entitlements::is_id, kisum_entitlements::ID_RULE
);
define_id!(
    /// A delegation id, unique across the world.
    DelegationId, "delegation id", kisum_entitlements::is_id, kisum_entitlements::ID_RULE
);
define_id!(
    /// A registered service (an OAuth client of the platform), such as `billing`.
    ServiceId, "service id", kisum_entitlements::is_id, kisum_entitlements::ID_RULE
);
define_id!(
    /// The kind of a resource, such as `invoice`.
    ResourceKind, "resource kind", kisum_entitlements::is_id, kisum_entitlements::ID_RULE
);
define_id!(
    /// The id of a resource within its company and kind, such as `inv-7`.
    ResourceId, "resource id", kisum_entitlements::is_id, kisum_entitlements::ID_RULE
);

/// Who asks: a user, or an agent that acts only through delegations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Principal {
    /// A user, who holds memberships.
    User(UserId),
    /// An agent registered to one company.
    Agent(AgentId),
}

impl Principal {
    /// Parses `user:alice` or `agent:copilot`.
    pub fn parse(text: &str) -> Result<Principal, kisum_entitlements::IdError> {
        match text.split_once(':') {
            Some(("user", id)) => Ok(Principal::User(UserId::parse(id)?)),
            Some(("agent", id)) => Ok(Principal::Agent(AgentId::parse(id)?)),
            _ => Err(kisum_entitlements::IdError::new("principal", text, "expected user:ID or agent:ID")),
        }
    }

    /// The user, if this is one.
    pub fn user(&self) -> Option<&UserId> {
        match self {
            Principal::User(u) => Some(u),
            Principal::Agent(_) => None,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(u) => write!(f, "user:{u}"),
            Principal::Agent(a) => write!(f, "agent:{a}"),
        }
    }
}

/// Agents acting for a user: a token with `act` (RFC 8693; DESIGN.md §5). Its access is what `user`
/// delegated to each actor at the instant, intersected along the chain: never what another user
/// delegated to the same agent (no confused deputy).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acting {
    /// The user acted for (the token's `sub`).
    pub user: UserId,
    /// The current actor (the outermost `act.sub`).
    pub agent: AgentId,
    /// The prior actors (nested `act`), the one the current actor took over from first.
    pub prior: Vec<AgentId>,
}

impl Acting {
    /// `agent` acting for `user`, with no prior actor.
    pub fn new(user: UserId, agent: AgentId) -> Acting {
        Acting { user, agent, prior: Vec::new() }
    }

    /// Every actor, the current one first.
    pub fn actors(&self) -> impl Iterator<Item = &AgentId> {
        std::iter::once(&self.agent).chain(&self.prior)
    }

    /// The principal whose version and feed events an acting snapshot follows: the current actor.
    pub fn principal(&self) -> Principal {
        Principal::Agent(self.agent.clone())
    }
}

impl fmt::Display for Acting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "agent:{}", self.agent)?;
        for a in &self.prior {
            write!(f, " (after agent:{a})")?;
        }
        write!(f, " for user:{}", self.user)
    }
}

/// A resource: `{ company, kind, id }`. A check on a resource of another company is denied
/// (`CROSS_TENANT`); delegation scopes match resources exactly on all three parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceRef {
    /// The owning company.
    pub company: CompanyId,
    /// The resource kind (not compared with the permission's resource segment).
    pub kind: ResourceKind,
    /// The resource id.
    pub id: ResourceId,
}

impl ResourceRef {
    /// Parses `COMPANY/KIND/ID`.
    pub fn parse(text: &str) -> Result<ResourceRef, kisum_entitlements::IdError> {
        let mut parts = text.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(c), Some(k), Some(i)) if is_id(c) => Ok(ResourceRef {
                company: CompanyId::parse(c)?,
                kind: ResourceKind::parse(k)?,
                id: ResourceId::parse(i)?,
            }),
            _ => Err(kisum_entitlements::IdError::new("resource", text, "expected COMPANY/KIND/ID")),
        }
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.company, self.kind, self.id)
    }
}
