//! The actor rules of DESIGN.md §4 "Writes" for a company write by a user: who writes, the management
//! permissions, no escalation, no self-widening. The directory calls [`check_member_write`] for every
//! company write whose actor is a user, after the change has compiled and before anything is visible;
//! the model rules every actor obeys (last owner, seats, validation) stay in the directory.
//!
//! Everything here is judged on the actor's **granted set**: what its own roles' closure grants, minus its
//! own restrictions, over the catalog's keys. Entitlements and delegations do not count, so a lapsed plan
//! neither locks an owner out nor opens anything, and delegated access never manages access.

use kisum_entitlements::{BitSet, Timestamp};

use crate::catalog::AccessCatalog;
use crate::change::{Actor, Change};
use crate::company::{Company, Membership};
use crate::doc::{MembershipStatus, PrincipalDoc};
use crate::error::{AccessError, Escalation, ForbiddenRule};
use crate::ids::{DelegationId, UserId};

/// Adding a membership, or widening one.
pub const MEMBER_INVITE: &str = "core:member:invite";
/// Narrowing or removing another's membership.
pub const MEMBER_REMOVE: &str = "core:member:remove";
/// Defining, changing or deleting a custom role.
pub const ROLE_MANAGE: &str = "core:role:manage";
/// Registering an agent, rotating its secret, deleting it.
pub const AGENT_MANAGE: &str = "core:agent:manage";

/// The management permissions, each needed in the actor's granted set for its kind of write.
pub const MANAGEMENT_PERMISSIONS: [&str; 4] = [MEMBER_INVITE, MEMBER_REMOVE, ROLE_MANAGE, AGENT_MANAGE];

/// What a membership grants: its roles' closure minus its restrictions, over the catalog's keys.
fn grants(company: &Company, m: &Membership) -> BitSet {
    let mut bits = m.role_bits.clone();
    if let Some(r) = company.restrict_bits(m) {
        bits.difference_with(r);
    }
    bits
}

fn restrictions(company: &Company, m: &Membership, n: usize) -> BitSet {
    company.restrict_bits(m).cloned().unwrap_or_else(|| BitSet::new(n))
}

/// How a write changes one membership (DESIGN.md §4's table).
#[derive(Debug, Default)]
pub(crate) struct MembershipDelta {
    /// Adds it, or afterwards it grants a permission it did not, lifts a restriction, becomes active, or
    /// its `expires_at` is extended or dropped.
    pub widens: bool,
    /// Afterwards it grants less, gains a restriction, leaves `active` (suspended, invited, removed) or
    /// any status for `suspended` or `removed`, its `expires_at` is shortened, or it is deleted.
    pub narrows: bool,
    /// What must be in the actor's granted set: the permissions it grants afterwards and did not before,
    /// or all it grants afterwards when it is added, made active again, or its expiry extended or dropped.
    pub gives: Option<BitSet>,
    /// What the restrictions it loses matched.
    pub lifted: Option<BitSet>,
}

impl MembershipDelta {
    /// The change from `before` (in `old`) to `after` (in `new`); `None` is no membership.
    pub(crate) fn of(
        cat: &AccessCatalog,
        old: Option<(&Company, &Membership)>,
        new: Option<(&Company, &Membership)>,
    ) -> MembershipDelta {
        let n = cat.permission_count();
        match (old, new) {
            (None, None) => MembershipDelta::default(),
            (Some(_), None) => MembershipDelta { narrows: true, ..MembershipDelta::default() },
            (None, Some((nc, a))) => {
                MembershipDelta { widens: true, gives: Some(grants(nc, a)), ..MembershipDelta::default() }
            }
            (Some((oc, b)), Some((nc, a))) => {
                let (gb, ga) = (grants(oc, b), grants(nc, a));
                let (rb, ra) = (restrictions(oc, b, n), restrictions(nc, a, n));
                let mut added = ga.clone();
                added.difference_with(&gb);
                let mut lost = gb;
                lost.difference_with(&ga);
                let mut lifted = rb.clone();
                lifted.difference_with(&ra);
                let mut gained = ra;
                gained.difference_with(&rb);
                let active = MembershipStatus::Active;
                let reactivated = b.status != active && a.status == active;
                let deactivated = b.status != a.status && a.status != active;
                let (extended, shortened) = match (b.expires_at(), a.expires_at()) {
                    (Some(_), None) => (true, false),
                    (None, Some(_)) => (false, true),
                    (Some(x), Some(y)) => (y > x, y < x),
                    (None, None) => (false, false),
                };
                let widens = !added.is_empty() || !lifted.is_empty() || reactivated || extended;
                let narrows = !lost.is_empty() || !gained.is_empty() || deactivated || shortened;
                let gives = if reactivated || extended { ga } else { added };
                MembershipDelta { widens, narrows, gives: Some(gives), lifted: Some(lifted) }
            }
        }
    }
}

/// The actor rules for `user`'s write `change` to a company that exists (`old`, as it is before the
/// write; `new`, as it would be after it), at `at`.
pub(crate) fn check_member_write(
    cat: &AccessCatalog,
    actor: &Actor,
    user: &UserId,
    at: Timestamp,
    change: &Change,
    old: &Company,
    new: &Company,
) -> Result<(), AccessError> {
    let forbidden = |rule| AccessError::Forbidden { actor: actor.clone(), rule };
    // Who writes: a member whose membership is active and unexpired, judged before the write.
    let me = old.member(user.as_str()).filter(|m| m.is_active_at(at));
    let Some(me) = me else {
        return Err(forbidden(ForbiddenRule::NoActiveMembership { company: old.id.clone() }));
    };
    let granted = grants(old, me);
    let need = |permission: &'static str| -> Result<(), AccessError> {
        match cat.permission(permission) {
            Ok(p) if granted.contains(p.index()) => Ok(()),
            _ => Err(forbidden(ForbiddenRule::MissingPermission { permission })),
        }
    };
    let within = |bits: &BitSet, by: Escalation| -> Result<(), AccessError> {
        let mut outside = bits.clone();
        outside.difference_with(&granted);
        match outside.iter().next() {
            None => Ok(()),
            Some(p) => {
                let permission = cat.permission_at(p).map(|id| cat.key(id).to_owned()).unwrap_or_default();
                Err(forbidden(ForbiddenRule::Escalates { permission, by }))
            }
        }
    };
    match change {
        Change::PutMembership(m) => {
            let target = UserId::parse(&m.user).map_err(|e| invalid("/membership/user", e.to_string()))?;
            let before = old.member(target.as_str()).map(|b| (old, b));
            let after = new.member(target.as_str()).map(|a| (new, a));
            let delta = MembershipDelta::of(cat, before, after);
            if &target == user {
                if delta.widens {
                    return Err(forbidden(ForbiddenRule::WidensOwnMembership));
                }
            } else {
                // A write to another's membership that changes nothing still needs the right to edit it.
                if delta.widens || !delta.narrows {
                    need(MEMBER_INVITE)?;
                }
                if delta.narrows {
                    need(MEMBER_REMOVE)?;
                }
            }
            if let Some(gives) = &delta.gives {
                within(gives, Escalation::Membership { user: target.clone() })?;
            }
            if let Some(lifted) = &delta.lifted {
                within(lifted, Escalation::LiftedRestriction { user: target })?;
            }
        }
        Change::EndMembership { user: target, .. } | Change::RemoveMembership { user: target, .. }
            if target != user =>
        {
            need(MEMBER_REMOVE)?;
        }
        Change::PutRole { role, .. } => {
            need(ROLE_MANAGE)?;
            let defined = new.custom_roles().iter().find(|r| r.id.as_str() == role.id);
            if let Some(r) = defined {
                within(&r.closure, Escalation::Role { role: r.id.clone() })?;
            }
        }
        Change::RemoveRole { .. } => need(ROLE_MANAGE)?,
        Change::PutAgent(_) | Change::RemoveAgent { .. } | Change::RotateAgentSecret { .. } => need(AGENT_MANAGE)?,
        Change::PutDelegation(d) | Change::AddDelegation(d) => {
            let id = delegation_id(&d.id)?;
            let replaced_another = old.delegations.iter().any(|x| x.id == id && &x.from != user);
            if d.from != PrincipalDoc::User(user.to_string()) || replaced_another {
                return Err(forbidden(ForbiddenRule::DelegatesForAnother { delegation: id }));
            }
            // What it confers is always cut to what the delegator may pass on at each instant; at the write,
            // every delegable, entitled permission its grants match must be passable already.
            let mut wanted = new
                .delegations
                .iter()
                .find(|x| x.id == id)
                .map_or_else(|| BitSet::new(cat.permission_count()), |x| x.grant_bits.clone());
            if let Some(segment) = old.segment(at) {
                wanted.intersect_with(&segment.entitled);
            } else {
                wanted.clear();
            }
            if !wanted.is_subset(&old.passable(cat, user, at)) {
                return Err(forbidden(ForbiddenRule::NotPassable { delegation: id }));
            }
        }
        Change::RevokeDelegation { delegation, .. } => {
            let own = old.delegations.iter().any(|d| &d.id == delegation && &d.from == user);
            if !own {
                return Err(forbidden(ForbiddenRule::RevokesForAnother { delegation: delegation.clone() }));
            }
        }
        // Platform-only changes are refused before they get here; creating a company is judged apart.
        _ => {}
    }
    Ok(())
}

/// The members who could give `permission` to another member at `at`, sorted: those whose own
/// membership is active and whose granted set holds both [`MEMBER_INVITE`] (widening another's
/// membership) and `permission` (nobody gives what they lack). What a frontend names after "ask".
pub(crate) fn grantors(cat: &AccessCatalog, company: &Company, permission: usize, at: Timestamp) -> Vec<UserId> {
    let Ok(invite) = cat.permission(MEMBER_INVITE) else { return Vec::new() };
    let mut users: Vec<UserId> = company
        .members
        .iter()
        .filter(|m| m.is_active_at(at))
        .filter(|m| {
            let granted = grants(company, m);
            granted.contains(invite.index()) && granted.contains(permission)
        })
        .filter_map(|m| UserId::parse(company.user_of(m)).ok())
        .collect();
    users.sort();
    users
}

/// Whether `user`'s active membership of `company` holds `permission` in its granted set at `at` (its
/// roles' closure minus its restrictions; entitlements and delegations do not count).
pub(crate) fn holds(company: &Company, user: &UserId, permission: usize, at: Timestamp) -> bool {
    company.member(user.as_str()).is_some_and(|m| m.is_active_at(at) && grants(company, m).contains(permission))
}

fn invalid(path: &str, message: String) -> AccessError {
    AccessError::Validation(vec![kisum_errors::FieldError::new(path, message)])
}

/// The id of a delegation document; one that compiled parses, so the error is only a fallback.
pub(crate) fn delegation_id(text: &str) -> Result<DelegationId, AccessError> {
    DelegationId::parse(text).map_err(|e| invalid("/delegation/id", e.to_string()))
}
