//! Effective-access evaluation (DESIGN.md §4): decisions with exactly one deny reason, delegation chains
//! as attenuation, compiled snapshots, and explanations.

use kisum_entitlements::{BitSet, Item, Source, Timestamp};
use kisum_errors::DenyReason;
use serde::Serialize;

use crate::catalog::{AccessCatalog, PermissionId, RoleIx, RoleRef};
use crate::company::{Company, Membership};
use crate::doc::MembershipStatus;
use crate::ids::{Acting, DelegationId, Principal, ResourceRef, RoleId, UserId};
use crate::snapshot::{ScopedGrant, Snapshot};

/// The most delegations a chain may have: a fourth link confers nothing.
pub const MAX_CHAIN: usize = 3;

/// The outcome of a check. A decision is never an error: evaluation problems deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, with what granted and what entitled it.
    Allow(Allow),
    /// Denied, with the first reason that applies (DESIGN.md §4 order).
    Deny(DenyReason),
}

impl Decision {
    /// Whether the check allows.
    #[inline]
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The deny reason, if denied.
    pub fn reason(&self) -> Option<DenyReason> {
        match self {
            Decision::Allow(_) => None,
            Decision::Deny(reason) => Some(*reason),
        }
    }
}

/// What an allow rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allow {
    /// The role or delegation chain that granted the permission.
    pub grant: Grant,
    /// The subscription or override that entitled the permission's module.
    pub module_source: Option<Source>,
    /// The subscription or override that entitled the permission's feature, if it needs one.
    pub feature_source: Option<Source>,
}

/// The grant behind an allow.
///
/// Both variants are opaque handles into the company partition the decision was taken on, so that a
/// decision stays `Copy` and a check allocates nothing; [`Company::granted_by`] resolves them to ids on
/// that partition, and [`Access::check_granted`](crate::Access::check_granted) decides and resolves on one
/// partition in one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A role of the principal's membership (the first one, in membership order, that grants it).
    Role(RoleRef),
    /// A chain of delegations, from the principal's own back to the member whose roles grant it.
    Delegation(Chain),
}

/// What granted an allow, by id: [`Grant`] resolved against its company partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantedBy {
    /// A role of the principal's membership, system or custom.
    Role(RoleId),
    /// A chain of delegations, the link into the principal first, back to the one whose delegator's own
    /// roles grant the permission.
    Delegations(Vec<DelegationId>),
}

/// A delegation chain of at most [`MAX_CHAIN`] links, the link into the principal first: an opaque
/// handle into its company partition (see [`Grant`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Chain {
    /// Indices into the company's delegations.
    links: [u32; MAX_CHAIN],
    len: u8,
}

impl Chain {
    /// The number of links, from 1 to [`MAX_CHAIN`] in a chain that granted something.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the chain has no link (never the case for a chain that granted something).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The links as indices into the company's delegations, the one into the principal first.
    pub(crate) fn links(&self) -> &[u32] {
        self.links.get(..usize::from(self.len)).unwrap_or(&[])
    }

    fn contains(&self, link: u32) -> bool {
        self.links().contains(&link)
    }

    fn push(&mut self, link: u32) -> bool {
        match self.links.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = link;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    fn is_full(&self) -> bool {
        usize::from(self.len) >= MAX_CHAIN
    }
}

/// The membership-level verdict for a principal: its membership (none for agents), or the reason that
/// denies everything.
pub(crate) fn admit<'a>(
    company: &'a Company,
    principal: &Principal,
    t: Timestamp,
) -> Result<Option<&'a Membership>, DenyReason> {
    match principal {
        Principal::User(user) => {
            let member = company.member(user.as_str()).ok_or(DenyReason::NotAMember)?;
            if member.status != MembershipStatus::Active {
                return Err(DenyReason::MembershipInactive);
            }
            if member.expires_at().is_some_and(|end| t >= end) {
                return Err(DenyReason::MembershipExpired);
            }
            Ok(Some(member))
        }
        Principal::Agent(agent) if company.has_agent(agent) => Ok(None),
        Principal::Agent(_) => Err(DenyReason::NotAMember),
    }
}

impl Company {
    /// Decides one check by direct evaluation.
    pub(crate) fn decide(
        &self,
        cat: &AccessCatalog,
        principal: &Principal,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        t: Timestamp,
    ) -> Decision {
        self.decide_via(cat, principal, None, permission, resource, t)
    }

    /// Decides one check for agents acting for a user: every actor must be allowed through delegations
    /// whose first link comes from that user; the current actor's allow is the one reported.
    pub(crate) fn decide_acting(
        &self,
        cat: &AccessCatalog,
        acting: &Acting,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        t: Timestamp,
    ) -> Decision {
        let mut current = Decision::Deny(DenyReason::PermissionNotGranted);
        for (i, agent) in acting.actors().enumerate() {
            let actor = Principal::Agent(agent.clone());
            let decision = self.decide_via(cat, &actor, Some(&acting.user), permission, resource, t);
            if !decision.is_allowed() {
                return decision;
            }
            if i == 0 {
                current = decision;
            }
        }
        current
    }

    /// [`Company::decide`], counting only delegation chains whose link into the principal comes from
    /// `from` when it is given (an agent acting for that user).
    fn decide_via(
        &self,
        cat: &AccessCatalog,
        principal: &Principal,
        from: Option<&UserId>,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        t: Timestamp,
    ) -> Decision {
        // A permission id of another catalog is an evaluation error: it denies.
        let Some(def) = cat.permission_def(permission) else {
            return Decision::Deny(DenyReason::PermissionNotGranted);
        };
        let member = match admit(self, principal, t) {
            Ok(member) => member,
            Err(reason) => return Decision::Deny(reason),
        };
        if resource.is_some_and(|r| r.company != self.id) {
            return Decision::Deny(DenyReason::CrossTenant);
        }
        let (k, _) = self.segment_at(t);
        let Some(segment) = self.segment_ix(k) else { return Decision::Deny(DenyReason::PermissionNotGranted) };
        let p = permission.index();
        if !segment.module_ok.contains(p) {
            return Decision::Deny(DenyReason::ModuleNotEntitled);
        }
        if !segment.entitled.contains(p) {
            return Decision::Deny(DenyReason::FeatureNotEntitled);
        }
        if member.is_some_and(|m| self.restricts(m, p)) {
            return Decision::Deny(DenyReason::Restricted);
        }
        let grant = match member {
            Some(m) if m.role_bits.contains(p) => self
                .roles_of(m)
                .find(|r| self.role(cat, *r).is_some_and(|role| role.closure.contains(p)))
                .map(|r| Grant::Role(RoleRef(r))),
            _ => None,
        };
        let grant = grant.or_else(|| {
            let mut chain = Chain::default();
            let incoming = match member {
                Some(m) => self.incoming_of(m),
                None => self.incoming(principal),
            };
            self.find_chain(incoming, p, resource, t, from, &mut chain).then_some(Grant::Delegation(chain))
        });
        match grant {
            Some(grant) => Decision::Allow(Allow {
                grant,
                module_source: self.source_of(cat, k, Item::Module(def.module_ix)),
                feature_source: def.feature_ix.and_then(|f| self.source_of(cat, k, Item::Feature(f))),
            }),
            None => Decision::Deny(DenyReason::PermissionNotGranted),
        }
    }

    /// Whether some path of at most three delegations, none used twice, confers permission `p` through
    /// the `incoming` delegations of a principal (for `resource`) at `t`, rooted at a member whose own
    /// roles grant it, its first link from `from` when given. Fills `chain` with the path.
    fn find_chain(
        &self,
        incoming: &[u32],
        p: usize,
        resource: Option<&ResourceRef>,
        t: Timestamp,
        from: Option<&UserId>,
        chain: &mut Chain,
    ) -> bool {
        let first = chain.links().is_empty();
        for &di in incoming {
            if chain.contains(di) {
                continue;
            }
            let Some(d) = self.delegations.get(di as usize) else { continue };
            // Only the link into the principal itself may be non-redelegable.
            if (!first && !d.redelegable) || !d.is_valid_at(t) || !d.grant_bits.contains(p) {
                continue;
            }
            if first && from.is_some_and(|u| &d.from != u) {
                continue;
            }
            if let Some(scope) = &d.resources
                && !resource.is_some_and(|r| scope.contains(r))
            {
                continue;
            }
            let Some(from) = d.from_member.and_then(|i| self.members.get(i as usize)) else { continue };
            if !from.is_active_at(t) || self.restricts(from, p) {
                continue;
            }
            if !chain.push(di) {
                return false;
            }
            if from.role_bits.contains(p) {
                return true;
            }
            if !chain.is_full() && self.find_chain(self.incoming_of(from), p, resource, t, None, chain) {
                return true;
            }
            chain.pop();
        }
        false
    }

    /// Compiles Effective(principal, company, t) into a snapshot.
    pub(crate) fn snapshot(&self, cat: &AccessCatalog, principal: &Principal, t: Timestamp) -> Snapshot {
        self.snapshot_via(cat, principal, None, t)
    }

    /// Compiles the access of agents acting for a user (DESIGN.md §5): for each actor, what the user's
    /// delegations to it confer, intersected over the actors; reported as the current actor's.
    pub(crate) fn snapshot_acting(&self, cat: &AccessCatalog, acting: &Acting, t: Timestamp) -> Snapshot {
        let current = Principal::Agent(acting.agent.clone());
        let mut snap = self.snapshot_via(cat, &current, Some(&acting.user), t);
        for agent in &acting.prior {
            let prior = self.snapshot_via(cat, &Principal::Agent(agent.clone()), Some(&acting.user), t);
            snap.narrow_to(&prior);
        }
        snap
    }

    /// Whether `user` holds a delegation to `agent` that is valid at `t`.
    pub(crate) fn delegates_to(&self, user: &UserId, agent: &crate::ids::AgentId, t: Timestamp) -> bool {
        let to = Principal::Agent(agent.clone());
        self.incoming(&to)
            .iter()
            .filter_map(|&i| self.delegations.get(i as usize))
            .any(|d| &d.from == user && d.is_valid_at(t))
    }

    fn snapshot_via(
        &self,
        cat: &AccessCatalog,
        principal: &Principal,
        from: Option<&UserId>,
        t: Timestamp,
    ) -> Snapshot {
        let version = self.principal_version(principal);
        let n = cat.permission_count();
        let mut snap = Snapshot::denied(self.id.clone(), principal.clone(), t, version, n, DenyReason::NotAMember);
        let member = match admit(self, principal, t) {
            Ok(member) => member,
            Err(reason) => {
                // Nothing but a write changes these verdicts: an expired membership stays expired.
                snap.status = Some(reason);
                return snap;
            }
        };
        snap.status = None;
        let (k, mut until) = self.segment_at(t);
        let Some(segment) = self.segment_ix(k) else { return snap };
        snap.module_ok = segment.module_ok.clone();
        snap.entitled = segment.entitled.clone();
        if let (Some(_), Principal::User(user)) = (member, principal) {
            snap.support_session = self
                .doc
                .support_sessions
                .iter()
                .find(|s| s.user == user.as_str() && s.is_open_at(t))
                .map(|s| s.id.clone());
        }
        if let Some(m) = member {
            if let Some(bits) = self.restrict_bits(m) {
                snap.restricted = bits.clone();
            }
            snap.granted = m.role_bits.clone();
            earliest(&mut until, m.expires_at(), t);
        }
        let mut walk = PathWalk {
            company: self,
            t,
            until,
            redelegable_only: false,
            from,
            granted: &mut snap.granted,
            scoped: &mut snap.scoped,
        };
        let incoming = match member {
            Some(m) => self.incoming_of(m),
            None => self.incoming(principal),
        };
        walk.collect(incoming, &segment.entitled, None, &mut Chain::default());
        snap.valid_until = walk.until;
        snap.effective = snap.granted.clone();
        snap.effective.intersect_with(&snap.entitled);
        snap.effective.difference_with(&snap.restricted);
        snap
    }
}

impl Company {
    /// What `user` may pass on at `t` (DESIGN.md §4): what its own roles grant plus what reaches it through
    /// valid redelegable delegations, within entitlements, minus its restrictions, delegable only.
    /// Resource-scoped rights are left out.
    pub(crate) fn passable(&self, cat: &AccessCatalog, user: &crate::ids::UserId, t: Timestamp) -> BitSet {
        let mut granted = BitSet::new(cat.permission_count());
        let (Some(member), Some(segment)) = (self.member(user.as_str()), self.segment(t)) else { return granted };
        if !member.is_active_at(t) {
            return granted;
        }
        granted.union_with(&member.role_bits);
        let mut scoped = Vec::new();
        let mut walk = PathWalk {
            company: self,
            t,
            until: None,
            redelegable_only: true,
            from: None,
            granted: &mut granted,
            scoped: &mut scoped,
        };
        walk.collect(self.incoming_of(member), &segment.entitled, None, &mut Chain::default());
        granted.intersect_with(&segment.entitled);
        if let Some(bits) = self.restrict_bits(member) {
            granted.difference_with(bits);
        }
        granted.intersect_with(cat.delegable());
        granted
    }
}

fn earliest(until: &mut Option<Timestamp>, candidate: Option<Timestamp>, t: Timestamp) {
    if let Some(c) = candidate.filter(|c| *c > t) {
        *until = Some(until.map_or(c, |u| u.min(c)));
    }
}

/// Enumerates every delegation path into a principal, accumulating what each confers.
struct PathWalk<'a> {
    company: &'a Company,
    t: Timestamp,
    until: Option<Timestamp>,
    /// When set, even the link into the principal must be redelegable (what it may pass on).
    redelegable_only: bool,
    /// When set, the link into the principal must come from this user (an agent acting for it).
    from: Option<&'a UserId>,
    granted: &'a mut BitSet,
    scoped: &'a mut Vec<ScopedGrant>,
}

impl PathWalk<'_> {
    /// `incoming`: the delegations into the principal reached so far; `mask`: what the links walked so
    /// far let through; `scope`: their resource scopes intersected.
    fn collect(&mut self, incoming: &[u32], mask: &BitSet, scope: Option<&[ResourceRef]>, chain: &mut Chain) {
        let company = self.company;
        let first = chain.links().is_empty();
        for &di in incoming {
            let Some(d) = company.delegations.get(di as usize) else { continue };
            if chain.contains(di) || ((self.redelegable_only || !first) && !d.redelegable) {
                continue;
            }
            if first && self.from.is_some_and(|u| &d.from != u) {
                continue;
            }
            for b in d.boundaries() {
                earliest(&mut self.until, Some(b), self.t);
            }
            if !d.is_valid_at(self.t) {
                continue;
            }
            let Some(from) = d.from_member.and_then(|i| company.members.get(i as usize)) else { continue };
            earliest(&mut self.until, from.expires_at(), self.t);
            if !from.is_active_at(self.t) {
                continue;
            }
            let mut through = mask.clone();
            through.intersect_with(&d.grant_bits);
            if let Some(bits) = company.restrict_bits(from) {
                through.difference_with(bits);
            }
            if through.is_empty() {
                continue;
            }
            let narrowed: Option<Vec<ResourceRef>> = match (scope, &d.resources) {
                (None, None) => None,
                (Some(s), None) => Some(s.to_vec()),
                (None, Some(r)) => Some(r.clone()),
                (Some(s), Some(r)) => Some(s.iter().filter(|x| r.contains(x)).cloned().collect()),
            };
            if narrowed.as_ref().is_some_and(Vec::is_empty) {
                continue;
            }
            let mut conferred = through.clone();
            conferred.intersect_with(&from.role_bits);
            if !conferred.is_empty() {
                match &narrowed {
                    None => self.granted.union_with(&conferred),
                    Some(resources) => {
                        self.scoped.push(ScopedGrant { resources: resources.clone(), permissions: conferred })
                    }
                }
            }
            if !chain.is_full() && chain.push(di) {
                self.collect(company.incoming_of(from), &through, narrowed.as_deref(), chain);
                chain.pop();
            }
        }
    }
}

/// A decision explained for people and logs: what granted it, what entitled it, or why it was denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Explanation {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The deny reason, if denied.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub reason: Option<DenyReason>,
    /// The principal's roles in the company (for users with a membership).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The granting role and the inheritance path from it to the role whose own grants match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub role_path: Vec<String>,
    /// The granting delegation chain, the link into the principal first, as `id (from → to)`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delegations: Vec<String>,
    /// The subscriptions or overrides that entitle the permission's module and feature.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entitled_by: Vec<String>,
}

impl Explanation {
    /// The explanation of a deny that no company could explain (the company does not exist).
    pub(crate) fn denied(reason: Option<DenyReason>) -> Explanation {
        Explanation {
            decision: "deny",
            reason,
            roles: Vec::new(),
            role_path: Vec::new(),
            delegations: Vec::new(),
            entitled_by: Vec::new(),
        }
    }
}

impl Company {
    /// Explains a decision taken on this company.
    pub(crate) fn explain(
        &self,
        cat: &AccessCatalog,
        principal: &Principal,
        permission: PermissionId,
        decision: &Decision,
    ) -> Explanation {
        let member = principal.user().and_then(|u| self.member(u.as_str()));
        let roles = member
            .map(|m| self.roles_of(m).filter_map(|r| self.role(cat, r)).map(|r| r.id.to_string()).collect())
            .unwrap_or_default();
        let mut out = Explanation {
            decision: if decision.is_allowed() { "allow" } else { "deny" },
            reason: decision.reason(),
            roles,
            role_path: Vec::new(),
            delegations: Vec::new(),
            entitled_by: Vec::new(),
        };
        let Decision::Allow(allow) = decision else { return out };
        match allow.grant {
            Grant::Role(RoleRef(role)) => out.role_path = self.role_path(cat, role, permission.index()),
            Grant::Delegation(chain) => {
                out.delegations = chain
                    .links()
                    .iter()
                    .filter_map(|i| self.delegations.get(*i as usize))
                    .map(|d| format!("{} ({} → {})", d.id, d.from, d.to))
                    .collect();
            }
        }
        for source in [allow.module_source, allow.feature_source].into_iter().flatten() {
            let text = self.plans.describe_source(source);
            if !out.entitled_by.contains(&text) {
                out.entitled_by.push(text);
            }
        }
        out
    }

    /// What granted `decision`, taken on this partition, by id; `None` for a deny.
    ///
    /// A [`Grant`] is a handle into the partition the decision was taken on, so resolve it against that
    /// one: any partition of an immutable [`World`](crate::World), or the one a
    /// [`Directory`](crate::Directory) handed out before the check only if no write came in between.
    /// [`Access::check_granted`](crate::Access::check_granted) decides and resolves on one partition.
    /// Against another version of the company a grant may name the wrong role or delegation, or nothing
    /// (`None`).
    pub fn granted_by(&self, catalog: &AccessCatalog, decision: &Decision) -> Option<GrantedBy> {
        let Decision::Allow(allow) = decision else { return None };
        match allow.grant {
            Grant::Role(RoleRef(role)) => self.role(catalog, role).map(|r| GrantedBy::Role(r.id.clone())),
            Grant::Delegation(chain) => {
                let ids: Option<Vec<DelegationId>> =
                    chain.links().iter().map(|i| self.delegations.get(*i as usize).map(|d| d.id.clone())).collect();
                ids.filter(|ids| !ids.is_empty()).map(GrantedBy::Delegations)
            }
        }
    }

    /// The inheritance path from `role` to the first role (breadth first) whose own grants hold `p`.
    fn role_path(&self, cat: &AccessCatalog, role: RoleIx, p: usize) -> Vec<String> {
        let mut queue: std::collections::VecDeque<Vec<RoleIx>> = std::collections::VecDeque::from([vec![role]]);
        let mut seen = vec![role];
        while let Some(path) = queue.pop_front() {
            let Some(last) = path.last().and_then(|r| self.role(cat, *r)) else { continue };
            if last.direct.contains(p) {
                return path.iter().filter_map(|r| self.role(cat, *r)).map(|r| r.id.to_string()).collect();
            }
            for parent in &last.inherits {
                if !seen.contains(parent) {
                    seen.push(*parent);
                    let mut next = path.clone();
                    next.push(*parent);
                    queue.push_back(next);
                }
            }
        }
        self.role(cat, role).map(|r| vec![r.id.to_string()]).unwrap_or_default()
    }
}
