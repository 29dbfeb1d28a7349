//! One company's partition of the model, compiled for evaluation: custom roles, memberships with their
//! role and restriction bitsets, agents, delegations indexed by delegate, and the entitlement timeline.
//!
//! A partition is immutable. Writes build a new one from the previous one's source documents; readers
//! keep whichever partition they loaded. It knows nothing of other companies.

use std::collections::{HashMap, HashSet};

use kisum_entitlements::{BitSet, CompanyId, CompanyPlans, Idx, Issues, Item, Source, Timestamp};

use crate::catalog::{AccessCatalog, Role, RoleIx, clip, compile_roles};
use crate::doc::{AgentDoc, CompanyDoc, DelegationDoc, MembershipDoc, MembershipStatus, PrincipalDoc, ResourceDoc};
use crate::ids::{AgentId, DelegationId, Principal, ResourceId, ResourceKind, ResourceRef, UserId};

/// The longest a delegation may last: 90 days.
pub const MAX_DELEGATION_SECONDS: i64 = 90 * 24 * 3600;

/// A compiled membership.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub user: UserId,
    pub status: MembershipStatus,
    pub roles: Vec<RoleIx>,
    pub expires_at: Option<Timestamp>,
    /// Everything its roles grant, inheritance closed.
    pub role_bits: BitSet,
    /// Everything its restrictions match.
    pub restrict_bits: BitSet,
    /// The delegations whose delegate is this member.
    pub incoming: Vec<u32>,
}

impl Membership {
    /// Status `active` and before `expires_at`.
    pub fn is_active_at(&self, t: Timestamp) -> bool {
        self.status == MembershipStatus::Active && self.expires_at.is_none_or(|end| t < end)
    }
}

/// A compiled delegation.
#[derive(Debug, Clone)]
pub(crate) struct Delegation {
    pub id: DelegationId,
    pub from: UserId,
    /// The delegator's membership in this company, if it has one.
    pub from_member: Option<u32>,
    pub to: Principal,
    /// What its grants match, less every non-delegable permission.
    pub grant_bits: BitSet,
    pub resources: Option<Vec<ResourceRef>>,
    pub not_before: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub redelegable: bool,
}

impl Delegation {
    /// `not_before ≤ t < expires_at`, and not revoked at `t`.
    pub fn is_valid_at(&self, t: Timestamp) -> bool {
        self.not_before <= t && t < self.expires_at && self.revoked_at.is_none_or(|r| t < r)
    }

    /// Every instant at which its validity may change.
    pub fn boundaries(&self) -> impl Iterator<Item = Timestamp> {
        [Some(self.not_before), Some(self.expires_at), self.revoked_at].into_iter().flatten()
    }
}

/// The entitlements of one stretch of time between two boundaries, as per-permission masks and the
/// first source of each module and feature (for explanations).
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// Permissions whose module is entitled.
    pub module_ok: BitSet,
    /// Permissions whose module and feature (if any) are entitled.
    pub entitled: BitSet,
    /// By module index: the first source that entitles it.
    pub module_source: Vec<Option<Source>>,
    /// By feature index: the first source that entitles it.
    pub feature_source: Vec<Option<Source>>,
}

/// The source documents of a company: what a write edits and what an export writes out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompanySource {
    /// The company with its custom roles, subscriptions and overrides.
    pub company: CompanyDoc,
    /// Its memberships.
    pub memberships: Vec<MembershipDoc>,
    /// Its agents.
    pub agents: Vec<AgentDoc>,
    /// Its delegations.
    pub delegations: Vec<DelegationDoc>,
}

/// Where the documents of a source sit in the file they came from, for error paths.
pub(crate) struct SourcePaths<'a> {
    pub company: String,
    pub memberships: &'a [usize],
    pub agents: &'a [usize],
    pub delegations: &'a [usize],
}

/// A compiled company partition.
#[derive(Debug, Clone)]
pub struct Company {
    pub(crate) id: CompanyId,
    pub(crate) source: CompanySource,
    pub(crate) roles: Vec<Role>,
    pub(crate) plans: CompanyPlans,
    pub(crate) members: Vec<Membership>,
    pub(crate) member_ix: HashMap<UserId, u32>,
    pub(crate) agents: HashSet<AgentId>,
    pub(crate) delegations: Vec<Delegation>,
    /// Delegations to agents, by agent; delegations to members are listed in their membership, and those
    /// to users without a membership confer nothing, so they are not indexed.
    pub(crate) incoming_agents: HashMap<AgentId, Vec<u32>>,
    pub(crate) boundaries: Vec<Timestamp>,
    pub(crate) segments: Vec<Segment>,
    /// Bumped by every write to the company.
    pub(crate) version: u64,
    /// The version of the last write that could change every principal's access.
    pub(crate) epoch: u64,
    /// The version of the last write that could change one principal's access.
    pub(crate) principal_versions: HashMap<Principal, u64>,
}

fn u32_of(i: usize) -> u32 {
    // INVARIANT: a company holds far fewer than 2^32 items.
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn at(paths: &[usize], i: usize, list: &str) -> String {
    format!("/{list}/{}", paths.get(i).copied().unwrap_or(i))
}

impl Company {
    /// Compiles a company from its source documents, recording every problem found in `issues`.
    /// `user_exists` answers whether a user id is declared (users are global).
    pub(crate) fn compile(
        cat: &AccessCatalog,
        source: CompanySource,
        paths: &SourcePaths<'_>,
        user_exists: &dyn Fn(&str) -> bool,
        issues: &mut Issues,
    ) -> Option<Company> {
        let cpath = &paths.company;
        let id = match CompanyId::parse(&source.company.id) {
            Ok(id) => id,
            Err(e) => {
                issues.push(format!("{cpath}/id"), e.to_string());
                return None;
            }
        };
        let roles =
            compile_roles(cat, &source.company.roles, &format!("{cpath}/roles"), Some(cat.system_roles()), issues);
        let plans = CompanyPlans::compile(
            cat.commercial(),
            &source.company.subscriptions,
            &source.company.overrides,
            cpath,
            issues,
        );
        let mut company = Company {
            id,
            roles,
            plans,
            members: Vec::new(),
            member_ix: HashMap::new(),
            agents: HashSet::new(),
            delegations: Vec::new(),
            incoming_agents: HashMap::new(),
            boundaries: Vec::new(),
            segments: Vec::new(),
            version: 0,
            epoch: 0,
            principal_versions: HashMap::new(),
            // Moved in once everything below has been compiled from it.
            source: CompanySource::default(),
        };
        for (i, doc) in source.agents.iter().enumerate() {
            let path = at(paths.agents, i, "agents");
            match AgentId::parse(&doc.id) {
                Ok(agent) if company.agents.contains(&agent) => {
                    issues.push_conflict(format!("{path}/id"), format!("duplicate agent `{agent}`"));
                }
                Ok(agent) => {
                    company.agents.insert(agent);
                }
                Err(e) => issues.push(format!("{path}/id"), e.to_string()),
            }
        }
        for (i, doc) in source.memberships.iter().enumerate() {
            company.add_membership(cat, doc, &at(paths.memberships, i, "memberships"), user_exists, issues);
        }
        for (i, doc) in source.delegations.iter().enumerate() {
            company.add_delegation(cat, doc, &at(paths.delegations, i, "delegations"), user_exists, issues);
        }
        company.build_timeline(cat);
        company.source = source;
        Some(company)
    }

    fn role_ref(&self, cat: &AccessCatalog, id: &str) -> Option<RoleIx> {
        if let Some(i) = self.roles.iter().position(|r| r.id.as_str() == id) {
            return Some(RoleIx::Custom(u32_of(i)));
        }
        cat.system_role(id).map(|(i, _)| RoleIx::System(i))
    }

    /// The compiled role a reference names.
    pub(crate) fn role<'a>(&'a self, cat: &'a AccessCatalog, r: RoleIx) -> Option<&'a Role> {
        match r {
            RoleIx::System(i) => cat.system_roles().get(i as usize),
            RoleIx::Custom(i) => self.roles.get(i as usize),
        }
    }

    fn add_membership(
        &mut self,
        cat: &AccessCatalog,
        doc: &MembershipDoc,
        path: &str,
        user_exists: &dyn Fn(&str) -> bool,
        issues: &mut Issues,
    ) {
        let user = match UserId::parse(&doc.user) {
            Ok(u) => u,
            Err(e) => return issues.push(format!("{path}/user"), e.to_string()),
        };
        if !user_exists(&doc.user) {
            issues.push(format!("{path}/user"), format!("unknown user `{user}`"));
        }
        if self.member_ix.contains_key(&user) {
            return issues.push_conflict(
                format!("{path}/user"),
                format!("user `{user}` already has a membership in `{}`", self.id),
            );
        }
        let mut role_bits = BitSet::new(cat.permission_count());
        let mut roles = Vec::with_capacity(doc.roles.len());
        for (j, r) in doc.roles.iter().enumerate() {
            match self.role_ref(cat, r) {
                Some(rr) => {
                    if let Some(role) = self.role(cat, rr) {
                        role_bits.union_with(&role.closure);
                    }
                    roles.push(rr);
                }
                None => issues.push(format!("{path}/roles/{j}"), format!("unknown role `{}`", clip(r))),
            }
        }
        let restrict_bits = cat.patterns(&doc.restrictions, &format!("{path}/restrictions"), issues);
        self.member_ix.insert(user.clone(), u32_of(self.members.len()));
        self.members.push(Membership {
            user,
            status: doc.status,
            roles,
            expires_at: doc.expires_at,
            role_bits,
            restrict_bits,
            incoming: Vec::new(),
        });
    }

    fn add_delegation(
        &mut self,
        cat: &AccessCatalog,
        doc: &DelegationDoc,
        path: &str,
        user_exists: &dyn Fn(&str) -> bool,
        issues: &mut Issues,
    ) {
        let mut ok = true;
        let mut fail = |issues: &mut Issues, field: &str, message: String| {
            issues.push(format!("{path}/{field}"), message);
            ok = false;
        };
        let id = DelegationId::parse(&doc.id).map_err(|e| fail(issues, "id", e.to_string())).ok();
        if doc.company != self.id.as_str() {
            fail(
                issues,
                "company",
                format!("delegation of company `{}` filed under `{}`", clip(&doc.company), self.id),
            );
        }
        let from = match &doc.from {
            PrincipalDoc::User(u) => match UserId::parse(u) {
                Ok(u) if user_exists(u.as_str()) => Some(u),
                Ok(u) => {
                    fail(issues, "from", format!("unknown user `{u}`"));
                    None
                }
                Err(e) => {
                    fail(issues, "from", e.to_string());
                    None
                }
            },
            PrincipalDoc::Agent(_) => {
                fail(issues, "from", "a delegation is from a user".to_owned());
                None
            }
        };
        let to = match &doc.to {
            PrincipalDoc::User(u) => match UserId::parse(u) {
                Ok(u) if user_exists(u.as_str()) => Some(Principal::User(u)),
                Ok(u) => {
                    fail(issues, "to", format!("unknown user `{u}`"));
                    None
                }
                Err(e) => {
                    fail(issues, "to", e.to_string());
                    None
                }
            },
            PrincipalDoc::Agent(a) => match AgentId::parse(a) {
                Ok(a) if self.agents.contains(&a) => Some(Principal::Agent(a)),
                Ok(a) => {
                    fail(issues, "to", format!("agent `{a}` is not registered to company `{}`", self.id));
                    None
                }
                Err(e) => {
                    fail(issues, "to", e.to_string());
                    None
                }
            },
        };
        if doc.expires_at <= doc.not_before {
            fail(issues, "expires_at", "`expires_at` must be after `not_before`".to_owned());
        } else if doc.not_before.checked_add_seconds(MAX_DELEGATION_SECONDS).is_some_and(|max| doc.expires_at > max) {
            fail(issues, "expires_at", "a delegation lasts at most 90 days".to_owned());
        }
        let resources = match &doc.resources {
            None => None,
            Some(list) if list.is_empty() => {
                fail(issues, "resources", "a resource scope names at least one resource".to_owned());
                None
            }
            Some(list) => {
                let mut refs = Vec::with_capacity(list.len());
                for (j, r) in list.iter().enumerate() {
                    match resource_ref(r) {
                        Ok(r) if r.company == self.id => refs.push(r),
                        Ok(r) => {
                            fail(issues, &format!("resources/{j}"), format!("resource `{r}` is of another company"))
                        }
                        Err(e) => fail(issues, &format!("resources/{j}"), e),
                    }
                }
                Some(refs)
            }
        };
        let mut grant_bits = cat.patterns(&doc.grants, &format!("{path}/grants"), issues);
        grant_bits.intersect_with(cat.delegable());
        let (Some(id), Some(from), Some(to)) = (id, from, to) else { return };
        if !ok {
            return;
        }
        let index = u32_of(self.delegations.len());
        match &to {
            Principal::User(user) => {
                if let Some(member) = self.member_ix.get(user).and_then(|&i| self.members.get_mut(i as usize)) {
                    member.incoming.push(index);
                }
            }
            Principal::Agent(agent) => self.incoming_agents.entry(agent.clone()).or_default().push(index),
        }
        self.delegations.push(Delegation {
            id,
            from_member: self.member_ix.get(&from).copied(),
            from,
            to,
            grant_bits,
            resources,
            not_before: doc.not_before,
            expires_at: doc.expires_at,
            revoked_at: doc.revoked_at,
            redelegable: doc.redelegable,
        });
    }

    fn build_timeline(&mut self, cat: &AccessCatalog) {
        let mut boundaries: Vec<Timestamp> = self.plans.boundaries().collect();
        boundaries.sort_unstable();
        boundaries.dedup();
        let starts = std::iter::once(Timestamp::from_unix(i64::MIN)).chain(boundaries.iter().copied());
        self.segments = starts.map(|t| segment(cat, &self.plans, t)).collect();
        self.boundaries = boundaries;
    }

    /// The entitlement segment in force at `t`.
    #[inline]
    pub(crate) fn segment(&self, t: Timestamp) -> Option<&Segment> {
        self.segments.get(self.boundaries.partition_point(|b| *b <= t))
    }

    /// The membership of `user`, if any.
    #[inline]
    pub(crate) fn member(&self, user: &str) -> Option<&Membership> {
        self.members.get(*self.member_ix.get(user)? as usize)
    }

    /// The delegations whose delegate is `to` (none for a user without a membership).
    #[inline]
    pub(crate) fn incoming(&self, to: &Principal) -> &[u32] {
        match to {
            Principal::User(user) => self.member(user.as_str()).map_or(&[], |m| m.incoming.as_slice()),
            Principal::Agent(agent) => self.incoming_agents.get(agent).map_or(&[], Vec::as_slice),
        }
    }

    /// The company id.
    pub fn id(&self) -> &CompanyId {
        &self.id
    }

    /// The source documents.
    pub fn source(&self) -> &CompanySource {
        &self.source
    }

    /// The subscriptions and overrides.
    pub fn plans(&self) -> &CompanyPlans {
        &self.plans
    }

    /// Bumped by every write to the company.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The version of the last write that could have changed `principal`'s access here.
    pub fn principal_version(&self, principal: &Principal) -> u64 {
        self.principal_versions.get(principal).copied().unwrap_or(0).max(self.epoch)
    }

    /// Every principal of the company: members (any status) and agents.
    pub fn principals(&self) -> impl Iterator<Item = Principal> + '_ {
        let users = self.members.iter().map(|m| Principal::User(m.user.clone()));
        users.chain(self.agents.iter().map(|a| Principal::Agent(a.clone())))
    }

    /// Whether `user` has a membership that holds the system role `owner` directly and is active at `t`.
    pub(crate) fn active_owner_count(&self, cat: &AccessCatalog, t: Timestamp) -> usize {
        let Some((owner, _)) = cat.system_role("owner") else { return 0 };
        self.members.iter().filter(|m| m.is_active_at(t) && m.roles.contains(&RoleIx::System(owner))).count()
    }

    /// Memberships active at `t` (they count against `core.seats`).
    pub(crate) fn active_member_count(&self, t: Timestamp) -> u64 {
        self.members.iter().filter(|m| m.is_active_at(t)).count() as u64
    }
}

fn segment(cat: &AccessCatalog, plans: &CompanyPlans, t: Timestamp) -> Segment {
    let entitlements = plans.entitlements(cat.commercial(), t);
    let mut module_ok = BitSet::new(cat.permission_count());
    let mut entitled = BitSet::new(cat.permission_count());
    for p in cat.permission_ids() {
        let Some(def) = cat.permission_def(p) else { continue };
        if entitlements.has_module(def.module_ix) {
            module_ok.insert(p.index());
            if def.feature_ix.is_none_or(|f| entitlements.has_feature(f)) {
                entitled.insert(p.index());
            }
        }
    }
    let commercial = cat.commercial();
    let first = |item: Item| entitlements.sources(item).next();
    let module_source = (0..commercial.module_count()).map(|m| first(Item::Module(Idx(u32_of(m))))).collect();
    let feature_source = (0..commercial.feature_count()).map(|f| first(Item::Feature(Idx(u32_of(f))))).collect();
    Segment { module_ok, entitled, module_source, feature_source }
}

/// Parses a resource document.
pub(crate) fn resource_ref(doc: &ResourceDoc) -> Result<ResourceRef, String> {
    Ok(ResourceRef {
        company: CompanyId::parse(&doc.company).map_err(|e| e.to_string())?,
        kind: ResourceKind::parse(&doc.kind).map_err(|e| e.to_string())?,
        id: ResourceId::parse(&doc.id).map_err(|e| e.to_string())?,
    })
}
