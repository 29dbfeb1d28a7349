//! Writes: the [`Change`] a caller asks for, and the [`ChangeRecord`] of one that was installed.
//!
//! A `Change` is the change log's record format: it serializes to JSON with a `kind` tag and is replayed
//! from the log exactly as it was first applied. Ids outside world-file documents are parsed newtypes;
//! the documents themselves (memberships, roles, delegations…) stay in the world-file form and are
//! validated by the directory like a loaded world.

use kisum_entitlements::doc::{OverrideDoc, SubscriptionDoc};
use kisum_entitlements::{CompanyId, OverrideId, PlanDoc, SubscriptionId, SubscriptionPatch, Timestamp};
use serde::{Deserialize, Serialize};

use crate::doc::{AgentDoc, CompanyDoc, DelegationDoc, MembershipDoc, RoleDoc, SupportSessionDoc};
use crate::error::AccessError;
use crate::ids::{AgentId, DelegationId, Principal, RoleId, ServiceId, UserId};

/// Who makes a write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Actor {
    /// The platform itself (a seed, a migration, Core's billing): bypasses the actor rules, never the
    /// model rules (last owner, seats, validation).
    Platform,
    /// A platform staff user, through the Admin API: a platform write, recorded with who made it.
    Staff(UserId),
    /// A registered service holding platform scopes (client credentials): a platform write, recorded
    /// with which service made it.
    Service(ServiceId),
    /// A user acting in the company the write touches: the actor rules apply.
    User(UserId),
    /// An agent acting for a user (a token with `act`): it never writes access, so the directory refuses
    /// every write it makes (DESIGN.md §4 "Writes").
    Agent {
        /// The agent.
        agent: AgentId,
        /// The user it acts for.
        user: UserId,
    },
}

impl Actor {
    /// Whether this is a platform write (anything but a user or an agent acting in a company).
    pub fn is_platform(&self) -> bool {
        !matches!(self, Actor::User(_) | Actor::Agent { .. })
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Platform => f.write_str("platform"),
            Actor::Staff(u) => write!(f, "staff:{u}"),
            Actor::Service(s) => write!(f, "service:{s}"),
            Actor::User(u) => write!(f, "user:{u}"),
            Actor::Agent { agent, user } => write!(f, "agent:{agent} for user:{user}"),
        }
    }
}

/// One write. Documents are in the world-file form and are validated like a loaded world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// Creates a company and its first owner's active membership, atomically.
    CreateCompany {
        /// The company, with any custom roles, subscriptions and overrides.
        company: CompanyDoc,
        /// The first owner (a declared user).
        owner: UserId,
    },
    /// Removes a company with everything that belongs to it (platform only).
    RemoveCompany {
        /// The company id.
        company: CompanyId,
    },
    /// Declares a user (platform only).
    AddUser {
        /// The user id.
        user: UserId,
    },
    /// Creates or replaces a custom role.
    PutRole {
        /// The company id.
        company: CompanyId,
        /// The role.
        role: RoleDoc,
    },
    /// Removes a custom role (rejected while a membership or role still refers to it).
    RemoveRole {
        /// The company id.
        company: CompanyId,
        /// The role id.
        role: RoleId,
    },
    /// Creates or replaces the membership of `user` in `company`.
    PutMembership(MembershipDoc),
    /// Deletes a membership outright (prefer status `removed`, which keeps the record).
    RemoveMembership {
        /// The company id.
        company: CompanyId,
        /// The user id.
        user: UserId,
    },
    /// Ends a membership: its status becomes `removed` and the record stays (the audit trail keeps who
    /// it was). A user may end its own; ending another's needs `core:member:remove`.
    EndMembership {
        /// The company id.
        company: CompanyId,
        /// The user id.
        user: UserId,
    },
    /// Registers an agent; an agent id in use is a conflict (a new secret comes only from
    /// [`Change::RotateAgentSecret`]).
    PutAgent(AgentDoc),
    /// Records that an agent's client secret was replaced (the secret itself lives in the store's
    /// client table, written with the change, and never enters the log). Needs `core:agent:manage`.
    RotateAgentSecret {
        /// The company id.
        company: CompanyId,
        /// The agent id.
        agent: AgentId,
    },
    /// Unregisters an agent (rejected while a delegation still names it).
    RemoveAgent {
        /// The company id.
        company: CompanyId,
        /// The agent id.
        agent: AgentId,
    },
    /// Creates or replaces a delegation.
    PutDelegation(DelegationDoc),
    /// Creates a delegation; an id already in use (in any company) is a conflict, checked under the write
    /// lock, so two creates with one id never replace each other.
    AddDelegation(DelegationDoc),
    /// Revokes a delegation at the write's instant.
    RevokeDelegation {
        /// The company id.
        company: CompanyId,
        /// The delegation id.
        delegation: DelegationId,
    },
    /// Creates or replaces a subscription (platform only).
    PutSubscription {
        /// The company id.
        company: CompanyId,
        /// The subscription.
        subscription: SubscriptionDoc,
    },
    /// Removes a subscription (platform only).
    RemoveSubscription {
        /// The company id.
        company: CompanyId,
        /// The subscription id.
        subscription: SubscriptionId,
    },
    /// Replaces the company's overrides (platform only).
    SetOverrides {
        /// The company id.
        company: CompanyId,
        /// The overrides.
        overrides: Vec<OverrideDoc>,
    },
    /// Adds a subscription; one with the same id is a conflict (platform only).
    AddSubscription {
        /// The company id.
        company: CompanyId,
        /// The subscription.
        subscription: SubscriptionDoc,
    },
    /// Moves a subscription through its lifecycle (platform only): see [`SubscriptionPatch`].
    UpdateSubscription {
        /// The company id.
        company: CompanyId,
        /// The subscription id.
        subscription: SubscriptionId,
        /// What changes.
        patch: SubscriptionPatch,
    },
    /// Adds one override, which must carry an id unused in the company (platform only).
    AddOverride {
        /// The company id.
        company: CompanyId,
        /// The override.
        #[serde(rename = "override")]
        item: OverrideDoc,
    },
    /// Removes the override with this id (platform only).
    RemoveOverride {
        /// The company id.
        company: CompanyId,
        /// The override id.
        id: OverrideId,
    },
    /// Publishes a new, immutable `(id, version)` of a package or add-on into the catalog (platform only).
    PublishPlan {
        /// The plan.
        plan: PlanDoc,
    },
    /// Opens a support session: the staff user gets an active membership with the session's roles until
    /// it ends (platform only; the user may not already be a member).
    OpenSupportSession {
        /// The company id.
        company: CompanyId,
        /// The session.
        session: SupportSessionDoc,
    },
    /// Closes a support session at the write's instant and removes its membership (platform only).
    CloseSupportSession {
        /// The company id.
        company: CompanyId,
        /// The session id.
        id: String,
    },
    /// Records what a platform staff user did in a company under an open support session (a module's read
    /// or write, recorded by the module): the audit the company's owners list. Changes no access
    /// (platform only: the module's service).
    RecordSupportAccess {
        /// The company id.
        company: CompanyId,
        /// The support session.
        session: String,
        /// What was done: `METHOD /path`, or the permission decided.
        route: String,
        /// The record it touched (`COMPANY/KIND/ID`), if any.
        record: Option<String>,
    },
    /// Records that a user's password was set (platform only). The credential itself is not part of
    /// the model and never enters the log; the record is for the audit trail.
    SetPassword {
        /// The user.
        user: UserId,
        /// Whether every session of the user ends with it (a password change; not a first password):
        /// tokens issued until the write's instant are refused everywhere.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        end_sessions: bool,
    },
    /// Records that a user was disabled: it may no longer sign in, and its sessions end (platform only).
    DisableUser {
        /// The user.
        user: UserId,
    },
    /// Records that a sign-in session ended (logout, a refresh token reused): its access tokens must be
    /// refused until `until`, when the last of them has expired. The session itself lives in Auth's
    /// state, not in the model; the record is what tells every replica and module. The user may revoke
    /// its own sessions.
    RevokeSession {
        /// The session's user.
        user: UserId,
        /// The session id (`sid` in its tokens).
        session: String,
        /// When its last access token has expired.
        until: Timestamp,
    },
    /// Records that the signing key set changed (a key published, retired or removed), so that verifiers
    /// refetch it (platform only).
    RotateKeys {
        /// The key ids published after the change.
        kids: Vec<String>,
    },
    /// Records a platform service client registered with its scopes, or its secret rotated (the client
    /// and its secret's hash live in Auth's state; the record is the audit trail). Platform only.
    PutServiceClient {
        /// The client id.
        client_id: String,
        /// Its scopes (permission patterns).
        scopes: Vec<String>,
        /// `true` when a new secret replaced the old one (which stops working at once).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rotated: bool,
    },
    /// Records a platform service client deleted: its tokens are no longer issued. Platform only.
    RemoveServiceClient {
        /// The client id.
        client_id: String,
    },
}

impl Change {
    /// A short name of the kind of change (the `kind` tag of its JSON form), for audit records.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::CreateCompany { .. } => "create_company",
            Change::RemoveCompany { .. } => "remove_company",
            Change::AddUser { .. } => "add_user",
            Change::PutRole { .. } => "put_role",
            Change::RemoveRole { .. } => "remove_role",
            Change::PutMembership(_) => "put_membership",
            Change::RemoveMembership { .. } => "remove_membership",
            Change::EndMembership { .. } => "end_membership",
            Change::PutAgent(_) => "put_agent",
            Change::RotateAgentSecret { .. } => "rotate_agent_secret",
            Change::RemoveAgent { .. } => "remove_agent",
            Change::PutDelegation(_) => "put_delegation",
            Change::AddDelegation(_) => "add_delegation",
            Change::RevokeDelegation { .. } => "revoke_delegation",
            Change::PutSubscription { .. } => "put_subscription",
            Change::RemoveSubscription { .. } => "remove_subscription",
            Change::SetOverrides { .. } => "set_overrides",
            Change::AddSubscription { .. } => "add_subscription",
            Change::UpdateSubscription { .. } => "update_subscription",
            Change::AddOverride { .. } => "add_override",
            Change::RemoveOverride { .. } => "remove_override",
            Change::PublishPlan { .. } => "publish_plan",
            Change::SetPassword { .. } => "set_password",
            Change::DisableUser { .. } => "disable_user",
            Change::RevokeSession { .. } => "revoke_session",
            Change::RotateKeys { .. } => "rotate_keys",
            Change::PutServiceClient { .. } => "put_service_client",
            Change::RemoveServiceClient { .. } => "remove_service_client",
            Change::OpenSupportSession { .. } => "open_support_session",
            Change::CloseSupportSession { .. } => "close_support_session",
            Change::RecordSupportAccess { .. } => "support_access",
        }
    }

    /// The company the change writes to (`None` for the platform-wide changes: users and plans). A
    /// document whose company id is malformed is refused with `VALIDATION_FAILED`.
    pub fn company(&self) -> Result<Option<CompanyId>, AccessError> {
        let parse = |path: &str, text: &str| {
            CompanyId::parse(text)
                .map(Some)
                .map_err(|e| AccessError::Validation(vec![kisum_errors::FieldError::new(path, e.to_string())]))
        };
        match self {
            Change::AddUser { .. }
            | Change::PublishPlan { .. }
            | Change::SetPassword { .. }
            | Change::DisableUser { .. }
            | Change::RevokeSession { .. }
            | Change::RotateKeys { .. }
            | Change::PutServiceClient { .. }
            | Change::RemoveServiceClient { .. } => Ok(None),
            Change::CreateCompany { company, .. } => parse("/company/id", &company.id),
            Change::PutMembership(m) => parse("/membership/company", &m.company),
            Change::PutAgent(a) => parse("/agent/company", &a.company),
            Change::PutDelegation(d) | Change::AddDelegation(d) => parse("/delegation/company", &d.company),
            Change::RemoveCompany { company }
            | Change::PutRole { company, .. }
            | Change::RemoveRole { company, .. }
            | Change::RemoveMembership { company, .. }
            | Change::EndMembership { company, .. }
            | Change::RotateAgentSecret { company, .. }
            | Change::RemoveAgent { company, .. }
            | Change::RevokeDelegation { company, .. }
            | Change::PutSubscription { company, .. }
            | Change::RemoveSubscription { company, .. }
            | Change::SetOverrides { company, .. }
            | Change::AddSubscription { company, .. }
            | Change::UpdateSubscription { company, .. }
            | Change::AddOverride { company, .. }
            | Change::RemoveOverride { company, .. }
            | Change::OpenSupportSession { company, .. }
            | Change::CloseSupportSession { company, .. }
            | Change::RecordSupportAccess { company, .. } => Ok(Some(company.clone())),
        }
    }
}

/// What one installed write did: the change log's and the audit log's record, and what caches need to
/// know. Every principal listed (or, when `company_wide`, every principal of the company) has the
/// version `seq` after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeRecord {
    /// The change's sequence number: the directory's (and the store's) version after it.
    pub seq: u64,
    /// Who wrote.
    pub actor: Actor,
    /// The write's instant.
    pub at: Timestamp,
    /// The kind of change ([`Change::kind`]).
    pub kind: String,
    /// The company written to, if any.
    pub company: Option<CompanyId>,
    /// `true` when the write may change every principal's access in the company.
    pub company_wide: bool,
    /// Otherwise, the principals whose access may have changed, sorted.
    pub principals: Vec<Principal>,
    /// The item as it was, as world-file JSON (`None` if created).
    pub before: Option<String>,
    /// The item as it is, as world-file JSON (`None` if removed).
    pub after: Option<String>,
}
