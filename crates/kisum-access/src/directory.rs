//! The directory: the whole model in memory, read by many threads while one writer writes.
//!
//! Each company is an immutable [`Company`] partition behind an `ArcSwap`; a write builds the new
//! partition from a copy of that company's source documents only, validates it, and swaps it in. Readers
//! never take a lock: they load the partition pointer and evaluate on whatever version they loaded.
//! Companies are spread over [`SHARDS`] shard maps, so that creating a company copies only its shard's
//! table of pointers, never any company's data.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use kisum_entitlements::doc::{OverrideDoc, SubscriptionDoc};
use kisum_entitlements::{BitSet, CompanyId, EntitlementsSummary, Issues, Timestamp};
use serde::Serialize;

use crate::catalog::{AccessCatalog, PermissionId, RoleRef};
use crate::company::{Company, CompanySource, SourcePaths};
use crate::doc::{
    AgentDoc, CompanyDoc, DelegationDoc, MembershipDoc, MembershipStatus, PrincipalDoc, RoleDoc, WorldDoc,
};
use crate::error::AccessError;
use crate::eval::{Decision, Explanation};
use crate::ids::{AgentId, DelegationId, Principal, ResourceRef, UserId};
use crate::snapshot::Snapshot;
use crate::world::{self, World};

/// The number of shard maps companies are spread over.
pub const SHARDS: usize = 64;

/// Who makes a write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The platform itself (Core's billing, platform admins): bypasses the actor rules, never the model
    /// rules (last owner, seats, validation).
    Platform,
    /// A user acting in the company the write touches.
    User(UserId),
}

/// One write. Every field is in the world-file form and is validated like a loaded world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Creates a company and its first owner's active membership, atomically.
    CreateCompany {
        /// The company, with any custom roles, subscriptions and overrides.
        company: CompanyDoc,
        /// The first owner (a declared user).
        owner: String,
    },
    /// Removes a company with everything that belongs to it (platform only).
    RemoveCompany {
        /// The company id.
        company: String,
    },
    /// Declares a user (platform only).
    AddUser {
        /// The user id.
        user: String,
    },
    /// Creates or replaces a custom role.
    PutRole {
        /// The company id.
        company: String,
        /// The role.
        role: RoleDoc,
    },
    /// Removes a custom role (rejected while a membership or role still refers to it).
    RemoveRole {
        /// The company id.
        company: String,
        /// The role id.
        role: String,
    },
    /// Creates or replaces the membership of `user` in `company`.
    PutMembership(MembershipDoc),
    /// Deletes a membership outright (prefer status `removed`, which keeps the record).
    RemoveMembership {
        /// The company id.
        company: String,
        /// The user id.
        user: String,
    },
    /// Registers or replaces an agent.
    PutAgent(AgentDoc),
    /// Unregisters an agent (rejected while a delegation still names it).
    RemoveAgent {
        /// The company id.
        company: String,
        /// The agent id.
        agent: String,
    },
    /// Creates or replaces a delegation.
    PutDelegation(DelegationDoc),
    /// Revokes a delegation at the write's instant.
    RevokeDelegation {
        /// The company id.
        company: String,
        /// The delegation id.
        delegation: String,
    },
    /// Creates or replaces a subscription (platform only).
    PutSubscription {
        /// The company id.
        company: String,
        /// The subscription.
        subscription: SubscriptionDoc,
    },
    /// Removes a subscription (platform only).
    RemoveSubscription {
        /// The company id.
        company: String,
        /// The subscription id.
        subscription: String,
    },
    /// Replaces the company's overrides (platform only).
    SetOverrides {
        /// The company id.
        company: String,
        /// The overrides.
        overrides: Vec<OverrideDoc>,
    },
}

impl Change {
    /// A short name of the kind of change, for audit records.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::CreateCompany { .. } => "create_company",
            Change::RemoveCompany { .. } => "remove_company",
            Change::AddUser { .. } => "add_user",
            Change::PutRole { .. } => "put_role",
            Change::RemoveRole { .. } => "remove_role",
            Change::PutMembership(_) => "put_membership",
            Change::RemoveMembership { .. } => "remove_membership",
            Change::PutAgent(_) => "put_agent",
            Change::RemoveAgent { .. } => "remove_agent",
            Change::PutDelegation(_) => "put_delegation",
            Change::RevokeDelegation { .. } => "revoke_delegation",
            Change::PutSubscription { .. } => "put_subscription",
            Change::RemoveSubscription { .. } => "remove_subscription",
            Change::SetOverrides { .. } => "set_overrides",
        }
    }

    fn company(&self) -> Option<&str> {
        match self {
            Change::CreateCompany { company, .. } => Some(&company.id),
            Change::AddUser { .. } => None,
            Change::PutMembership(m) => Some(&m.company),
            Change::PutAgent(a) => Some(&a.company),
            Change::PutDelegation(d) => Some(&d.company),
            Change::RemoveCompany { company }
            | Change::PutRole { company, .. }
            | Change::RemoveRole { company, .. }
            | Change::RemoveMembership { company, .. }
            | Change::RemoveAgent { company, .. }
            | Change::RevokeDelegation { company, .. }
            | Change::PutSubscription { company, .. }
            | Change::RemoveSubscription { company, .. }
            | Change::SetOverrides { company, .. } => Some(company),
        }
    }
}

/// What a write did, for caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The company written to, if any.
    pub company: Option<CompanyId>,
    /// The company's version after the write.
    pub version: u64,
    /// `true` when the write may change every principal's access in the company.
    pub company_wide: bool,
    /// Otherwise, the principals whose access may have changed.
    pub principals: Vec<Principal>,
}

/// A record of one write: who, when, what, before and after (as world-file JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Who wrote.
    pub actor: Actor,
    /// The write's instant.
    pub at: Timestamp,
    /// The kind of change.
    pub change: &'static str,
    /// The company written to, if any.
    pub company: Option<String>,
    /// The item as it was (`None` if created).
    pub before: Option<String>,
    /// The item as it is (`None` if removed).
    pub after: Option<String>,
    /// The company's version after the write.
    pub version: u64,
}

/// Where audit records go. Called by the writer after each successful write, in write order.
pub trait AuditSink: Send + Sync {
    /// Takes one record.
    fn record(&self, record: AuditRecord);
}

/// An audit sink that keeps every record in memory.
#[derive(Debug, Default)]
pub struct MemoryAudit {
    records: Mutex<Vec<AuditRecord>>,
}

impl MemoryAudit {
    /// A copy of every record so far.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl AuditSink for MemoryAudit {
    fn record(&self, record: AuditRecord) {
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
    }
}

/// An audit sink that drops every record.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAudit;

impl AuditSink for NoAudit {
    fn record(&self, _record: AuditRecord) {}
}

type Shard = HashMap<CompanyId, Arc<ArcSwap<Company>>>;

struct Writer {
    users: HashSet<UserId>,
    agents: HashMap<AgentId, CompanyId>,
    delegations: HashMap<DelegationId, CompanyId>,
    order: Vec<CompanyId>,
}

/// The concurrent, writable store of the whole model. `Send + Sync`; share it by `Arc`.
pub struct Directory {
    catalog: Arc<AccessCatalog>,
    shards: Box<[ArcSwap<Shard>]>,
    writer: Mutex<Writer>,
    audit: Arc<dyn AuditSink>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("shards", &self.shards.len()).finish_non_exhaustive()
    }
}

fn shard_of(company: &str) -> usize {
    // FNV-1a: stable and cheap. Only spreads companies over shards; each shard map hashes with SipHash.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in company.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

impl Directory {
    /// A directory holding `world`, writing audit records to `audit`.
    pub fn new(world: World, audit: Arc<dyn AuditSink>) -> Directory {
        let mut shards: Vec<Shard> = (0..SHARDS).map(|_| HashMap::new()).collect();
        let mut writer =
            Writer { users: world.users, agents: HashMap::new(), delegations: HashMap::new(), order: Vec::new() };
        for company in world.companies {
            let id = company.id.clone();
            for a in &company.agents {
                writer.agents.insert(a.clone(), id.clone());
            }
            for d in &company.delegations {
                writer.delegations.insert(d.id.clone(), id.clone());
            }
            writer.order.push(id.clone());
            if let Some(shard) = shards.get_mut(shard_of(id.as_str())) {
                shard.insert(id, Arc::new(ArcSwap::new(company)));
            }
        }
        Directory {
            catalog: world.catalog,
            shards: shards.into_iter().map(ArcSwap::from_pointee).collect(),
            writer: Mutex::new(writer),
            audit,
        }
    }

    /// A directory holding `world`, without audit records.
    pub fn from_world(world: World) -> Directory {
        Directory::new(world, Arc::new(NoAudit))
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<AccessCatalog> {
        &self.catalog
    }

    /// Resolves a permission key (`UNKNOWN_PERMISSION` if undeclared).
    pub fn permission(&self, key: &str) -> Result<PermissionId, AccessError> {
        self.catalog.permission(key)
    }

    /// The current partition of a company: an immutable value that later writes do not change.
    pub fn company(&self, id: &str) -> Option<Arc<Company>> {
        let shard = self.shards.get(shard_of(id))?.load();
        shard.get(id).map(|slot| slot.load_full())
    }

    /// Decides a check by direct evaluation on the current state. Takes no lock.
    pub fn check(
        &self,
        principal: &Principal,
        company: &str,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        at: Timestamp,
    ) -> Decision {
        // Guards, not clones: no reference count is touched on the check path.
        let shard = self.shards.get(shard_of(company)).map(ArcSwap::load);
        let partition = shard.as_ref().and_then(|s| s.get(company)).map(|slot| slot.load());
        world::check(&self.catalog, partition.as_deref().map(Arc::as_ref), principal, permission, resource, at)
    }

    /// Decides many checks of one principal in one company, on one consistent version of it.
    pub fn check_many(
        &self,
        principal: &Principal,
        company: &str,
        checks: &[(PermissionId, Option<&ResourceRef>)],
        at: Timestamp,
    ) -> Vec<Decision> {
        let company = self.company(company);
        checks.iter().map(|(p, r)| world::check(&self.catalog, company.as_deref(), principal, *p, *r, at)).collect()
    }

    /// Compiles a snapshot of the principal's effective access at `at`.
    pub fn snapshot(&self, principal: &Principal, company: &str, at: Timestamp) -> Snapshot {
        world::snapshot(&self.catalog, self.company(company).as_deref(), principal, at)
    }

    /// Decides and explains a check.
    pub fn explain(
        &self,
        principal: &Principal,
        company: &str,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        at: Timestamp,
    ) -> Explanation {
        world::explain(&self.catalog, self.company(company).as_deref(), principal, permission, resource, at)
    }

    /// Who in the company may do `permission` (on `resource`) at `at`.
    pub fn who_can(
        &self,
        company: &str,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        at: Timestamp,
    ) -> Vec<Principal> {
        world::who_can(&self.catalog, self.company(company).as_deref(), permission, resource, at)
    }

    /// The company's entitlements at `at`; `None` for an unknown company.
    pub fn entitlements(&self, company: &str, at: Timestamp) -> Option<EntitlementsSummary> {
        world::entitlements(&self.catalog, &*self.company(company)?, at)
    }

    /// The principal's current version in the company (compare with [`Snapshot::version`]).
    pub fn principal_version(&self, principal: &Principal, company: &str) -> u64 {
        self.company(company).map_or(0, |c| c.principal_version(principal))
    }

    /// The whole current state as a world document.
    pub fn to_doc(&self) -> WorldDoc {
        let writer = self.lock();
        let companies: Vec<Arc<Company>> = writer.order.iter().filter_map(|id| self.company(id.as_str())).collect();
        world::to_doc(&self.catalog, writer.users.iter(), companies.iter().map(|c| c.source()))
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A writer that panicked left no half-applied state behind (writes swap whole partitions), so a
        // poisoned lock is safe to take over.
        self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies one write at instant `at`: all or nothing. Checks the model rules of DESIGN.md §4 (only
    /// assign what you hold, only delegate what you may pass on, keep an active owner, respect
    /// `core.seats`) and validates the company as a world loader would.
    pub fn apply(&self, actor: &Actor, at: Timestamp, change: Change) -> Result<Receipt, AccessError> {
        let mut writer = self.lock();
        let kind = change.kind();
        if let Change::AddUser { user } = &change {
            platform_only(actor, kind)?;
            let id = UserId::parse(user).map_err(|e| validation("/user", e.to_string()))?;
            if writer.users.contains(&id) {
                return Err(conflict("/user", format!("duplicate user `{id}`")));
            }
            writer.users.insert(id);
            self.audit.record(AuditRecord {
                actor: actor.clone(),
                at,
                change: kind,
                company: None,
                before: None,
                after: Some(format!(r#"{{"id":"{user}"}}"#)),
                version: 0,
            });
            return Ok(Receipt { company: None, version: 0, company_wide: false, principals: Vec::new() });
        }
        let company_id = change.company().unwrap_or_default().to_owned();
        let current = self.company(&company_id);
        if let Change::RemoveCompany { .. } = &change {
            platform_only(actor, kind)?;
            let old = current.ok_or_else(|| not_found("company", &company_id))?;
            self.remove_company(&mut writer, &old);
            self.audit.record(AuditRecord {
                actor: actor.clone(),
                at,
                change: kind,
                company: Some(company_id),
                before: json(&old.source.company),
                after: None,
                version: old.version + 1,
            });
            return Ok(Receipt {
                company: Some(old.id.clone()),
                version: old.version + 1,
                company_wide: true,
                principals: vec![],
            });
        }
        let (old, mut source) = match (&change, current) {
            (Change::CreateCompany { company, .. }, None) => {
                let source = CompanySource {
                    company: company.clone(),
                    memberships: Vec::new(),
                    agents: Vec::new(),
                    delegations: Vec::new(),
                };
                (None, source)
            }
            (Change::CreateCompany { .. }, Some(_)) => {
                return Err(conflict("/company/id", format!("duplicate company `{company_id}`")));
            }
            (_, Some(c)) => {
                let source = c.source.clone();
                (Some(c), source)
            }
            (_, None) => return Err(not_found("company", &company_id)),
        };
        let edit = edit(&mut source, &change, actor, at)?;
        self.check_global_ids(&writer, &change, &company_id)?;
        let mut issues = Issues::new();
        let paths = SourcePaths { company: "/company".to_owned(), memberships: &[], agents: &[], delegations: &[] };
        let users = &writer.users;
        let user_exists = |u: &str| users.contains(u);
        let compiled = Company::compile(&self.catalog, source, &paths, &user_exists, &mut issues);
        let mut new = match compiled {
            Some(c) if issues.is_empty() => c,
            _ if issues.has_conflict() => return Err(AccessError::Conflict(issues.into_vec())),
            _ => return Err(AccessError::Validation(issues.into_vec())),
        };
        self.check_rules(actor, at, &change, old.as_deref(), &new)?;

        // Versions: company-wide changes move the epoch; others bump the principals they touch.
        let version = old.as_ref().map_or(1, |o| o.version + 1);
        new.version = version;
        new.epoch = old.as_ref().map_or(version, |o| o.epoch);
        new.principal_versions = old.as_ref().map(|o| o.principal_versions.clone()).unwrap_or_default();
        let touched = edit.touched.clone();
        let company_wide = touched.is_none();
        let principals = match touched {
            None => {
                new.epoch = version;
                Vec::new()
            }
            Some(starts) => {
                let mut affected = HashSet::new();
                for start in &starts {
                    affected.extend(downstream(&new, start));
                    if let Some(o) = &old {
                        affected.extend(downstream(o, start));
                    }
                }
                let mut affected: Vec<Principal> = affected.into_iter().collect();
                affected.sort();
                for p in &affected {
                    new.principal_versions.insert(p.clone(), version);
                }
                affected
            }
        };
        let id = new.id.clone();
        let new = Arc::new(new);
        self.install(&mut writer, old.as_deref(), &new);
        self.audit.record(AuditRecord {
            actor: actor.clone(),
            at,
            change: kind,
            company: Some(company_id),
            before: edit.before,
            after: edit.after,
            version,
        });
        Ok(Receipt { company: Some(id), version, company_wide, principals })
    }

    /// Agent and delegation ids are unique across the world, not only within a company.
    fn check_global_ids(&self, writer: &Writer, change: &Change, company: &str) -> Result<(), AccessError> {
        match change {
            Change::PutAgent(a) => match writer.agents.get(a.id.as_str()) {
                Some(owner) if owner.as_str() != company => {
                    Err(conflict("/agent/id", format!("agent `{}` belongs to another company", a.id)))
                }
                _ => Ok(()),
            },
            Change::PutDelegation(d) => match writer.delegations.get(d.id.as_str()) {
                Some(owner) if owner.as_str() != company => {
                    Err(conflict("/delegation/id", format!("delegation `{}` exists in another company", d.id)))
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// DESIGN.md §4 "Writes": the actor rules, the last active owner, and seats.
    fn check_rules(
        &self,
        actor: &Actor,
        at: Timestamp,
        change: &Change,
        old: Option<&Company>,
        new: &Company,
    ) -> Result<(), AccessError> {
        let cat = &*self.catalog;
        if let Actor::User(user) = actor {
            // The actor's rights are judged on the state before the write (or, for a new company, after).
            let judge = old.unwrap_or(new);
            let actor_principal = Principal::User(user.clone());
            let holds = judge.snapshot(cat, &actor_principal, at);
            if holds.denies_all().is_some() && !matches!(change, Change::CreateCompany { .. }) {
                return Err(AccessError::Forbidden(format!("`{user}` has no active membership in `{}`", new.id)));
            }
            let entitled = judge.segment(at).map(|s| s.entitled.clone()).unwrap_or_default();
            let must_hold = |roles: &[RoleRef], company: &Company, what: &str| -> Result<(), AccessError> {
                for r in roles {
                    let Some(role) = company.role(cat, *r) else { continue };
                    let mut needed = role.closure.clone();
                    needed.intersect_with(&entitled);
                    if !needed.is_subset(&holds.effective) {
                        return Err(AccessError::Forbidden(format!(
                            "`{user}` does not hold every permission of role `{}` ({what})",
                            role.id
                        )));
                    }
                }
                Ok(())
            };
            match change {
                Change::PutMembership(m) => {
                    let after = new.member(&m.user).map(|x| x.roles.clone()).unwrap_or_default();
                    let before = old.and_then(|o| o.member(&m.user)).map(|x| x.roles.clone());
                    let added: Vec<RoleRef> =
                        after.iter().filter(|r| before.as_ref().is_none_or(|b| !b.contains(r))).copied().collect();
                    must_hold(&added, new, "assigning it")?;
                    if m.user != user.as_str()
                        && let (Some(before), Some(o)) = (before, old)
                    {
                        must_hold(&before, o, "changing a membership that holds it")?;
                    }
                }
                Change::RemoveMembership { user: target, .. } => {
                    if let Some(m) = old.and_then(|o| o.member(target)) {
                        must_hold(&m.roles, judge, "removing a membership that holds it")?;
                    }
                }
                Change::PutRole { role, .. } => {
                    if let Some(i) = new.roles.iter().position(|r| r.id.as_str() == role.id) {
                        must_hold(&[RoleRef::Custom(i as u32)], new, "defining it")?;
                    }
                    if let Some(i) = judge.roles.iter().position(|r| r.id.as_str() == role.id) {
                        must_hold(&[RoleRef::Custom(i as u32)], judge, "redefining it")?;
                    }
                }
                Change::RemoveRole { role, .. } => {
                    if let Some(i) = judge.roles.iter().position(|r| r.id.as_str() == role) {
                        must_hold(&[RoleRef::Custom(i as u32)], judge, "removing it")?;
                    }
                }
                Change::PutDelegation(d) => {
                    if d.from != PrincipalDoc::User(user.to_string()) {
                        return Err(AccessError::Forbidden(format!("`{user}` may only delegate its own access")));
                    }
                    let mut wanted = self.grants_of(new, &d.id);
                    wanted.intersect_with(&entitled);
                    if !wanted.is_subset(&judge.passable(cat, user, at)) {
                        return Err(AccessError::Forbidden(format!(
                            "`{user}` may not pass on everything delegation `{}` grants",
                            d.id
                        )));
                    }
                }
                Change::RevokeDelegation { delegation, .. } => {
                    let own = judge.delegations.iter().any(|d| d.id.as_str() == delegation && &d.from == user);
                    if !own {
                        return Err(AccessError::Forbidden(format!("`{user}` may only revoke its own delegations")));
                    }
                }
                Change::CreateCompany { owner, .. } if owner != user.as_str() => {
                    return Err(AccessError::Forbidden(format!("`{user}` may only create a company it owns")));
                }
                _ => {}
            }
        }
        let owners_before = old.map_or(0, |o| o.active_owner_count(cat, at));
        if new.active_owner_count(cat, at) == 0 && (owners_before > 0 || old.is_none()) {
            return Err(conflict("/memberships", format!("company `{}` must keep an active owner", new.id)));
        }
        if let Some(old) = old {
            let activated = new
                .members
                .iter()
                .any(|m| m.is_active_at(at) && old.member(m.user.as_str()).is_none_or(|o| !o.is_active_at(at)));
            if activated && let Some(seats) = cat.commercial().limit_index("core.seats") {
                let ent = new.plans.entitlements(cat.commercial(), at);
                let used = new.active_member_count(at);
                let limit = ent.limit(seats).unwrap_or(kisum_entitlements::LimitValue::Finite(0));
                if !limit.allows(used, 0) {
                    return Err(AccessError::LimitExceeded {
                        key: "core.seats".into(),
                        limit,
                        used: used.saturating_sub(1),
                        requested: 1,
                    });
                }
            }
        }
        Ok(())
    }

    fn grants_of(&self, company: &Company, delegation: &str) -> BitSet {
        company
            .delegations
            .iter()
            .find(|d| d.id.as_str() == delegation)
            .map_or_else(|| BitSet::new(self.catalog.permission_count()), |d| d.grant_bits.clone())
    }

    fn install(&self, writer: &mut Writer, old: Option<&Company>, new: &Arc<Company>) {
        if let Some(old) = old {
            for a in &old.agents {
                writer.agents.remove(a);
            }
            for d in &old.delegations {
                writer.delegations.remove(&d.id);
            }
        }
        for a in &new.agents {
            writer.agents.insert(a.clone(), new.id.clone());
        }
        for d in &new.delegations {
            writer.delegations.insert(d.id.clone(), new.id.clone());
        }
        let Some(shard) = self.shards.get(shard_of(new.id.as_str())) else { return };
        let current = shard.load();
        match current.get(new.id.as_str()) {
            Some(slot) => slot.store(new.clone()),
            None => {
                let mut map: Shard = (**current).clone();
                map.insert(new.id.clone(), Arc::new(ArcSwap::new(new.clone())));
                shard.store(Arc::new(map));
                writer.order.push(new.id.clone());
            }
        }
    }

    fn remove_company(&self, writer: &mut Writer, old: &Company) {
        for a in &old.agents {
            writer.agents.remove(a);
        }
        for d in &old.delegations {
            writer.delegations.remove(&d.id);
        }
        writer.order.retain(|c| c != &old.id);
        if let Some(shard) = self.shards.get(shard_of(old.id.as_str())) {
            let mut map: Shard = (**shard.load()).clone();
            map.remove(old.id.as_str());
            shard.store(Arc::new(map));
        }
    }
}

/// The principals whose access may depend on `start`'s: itself and everyone downstream through
/// delegations, up to the chain limit.
fn downstream(company: &Company, start: &Principal) -> HashSet<Principal> {
    let mut seen: HashSet<Principal> = HashSet::from([start.clone()]);
    let mut frontier = vec![start.clone()];
    for _ in 0..crate::eval::MAX_CHAIN {
        let mut next = Vec::new();
        for p in &frontier {
            let Some(user) = p.user() else { continue };
            for d in company.delegations.iter().filter(|d| &d.from == user) {
                if seen.insert(d.to.clone()) {
                    next.push(d.to.clone());
                }
            }
        }
        frontier = next;
    }
    seen
}

/// The effect of an edit on the source documents: the item before and after, and whom it touches
/// directly (`None`: everyone in the company).
struct Edit {
    before: Option<String>,
    after: Option<String>,
    touched: Option<Vec<Principal>>,
}

fn json<T: Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value).ok()
}

fn validation(path: &str, message: String) -> AccessError {
    AccessError::Validation(vec![kisum_errors::FieldError::new(path, message)])
}

fn conflict(path: &str, message: String) -> AccessError {
    AccessError::Conflict(vec![kisum_errors::FieldError::new(path, message)])
}

fn not_found(what: &str, id: &str) -> AccessError {
    AccessError::NotFound(format!("{what} `{}`", crate::catalog::clip(id)))
}

fn platform_only(actor: &Actor, kind: &str) -> Result<(), AccessError> {
    match actor {
        Actor::Platform => Ok(()),
        Actor::User(u) => Err(AccessError::Forbidden(format!("`{kind}` is for the platform, not `{u}`"))),
    }
}

/// Replaces the item matching `same` in `list`, or appends it; returns the previous item.
fn put<T: Clone>(list: &mut Vec<T>, item: T, same: impl Fn(&T) -> bool) -> Option<T> {
    match list.iter_mut().find(|x| same(x)) {
        Some(slot) => Some(std::mem::replace(slot, item)),
        None => {
            list.push(item);
            None
        }
    }
}

/// Removes the item matching `same` from `list`.
fn take<T>(list: &mut Vec<T>, same: impl Fn(&T) -> bool) -> Option<T> {
    let i = list.iter().position(same)?;
    Some(list.remove(i))
}

fn user_principal(user: &str) -> Option<Principal> {
    UserId::parse(user).ok().map(Principal::User)
}

fn principal_of(doc: &PrincipalDoc) -> Option<Principal> {
    match doc {
        PrincipalDoc::User(u) => UserId::parse(u).ok().map(Principal::User),
        PrincipalDoc::Agent(a) => AgentId::parse(a).ok().map(Principal::Agent),
    }
}

/// Applies a change to a company's source documents.
fn edit(source: &mut CompanySource, change: &Change, actor: &Actor, at: Timestamp) -> Result<Edit, AccessError> {
    let whole = |before: Option<String>, after: Option<String>| Ok(Edit { before, after, touched: None });
    match change {
        Change::CreateCompany { owner, .. } => {
            source.memberships.push(MembershipDoc {
                user: owner.clone(),
                company: source.company.id.clone(),
                status: MembershipStatus::Active,
                roles: vec!["owner".into()],
                expires_at: None,
                restrictions: Vec::new(),
            });
            whole(None, json(&source.company))
        }
        Change::PutRole { role, .. } => {
            let before = put(&mut source.company.roles, role.clone(), |r| r.id == role.id);
            whole(before.as_ref().and_then(json), json(role))
        }
        Change::RemoveRole { role, .. } => {
            let before = take(&mut source.company.roles, |r| &r.id == role).ok_or_else(|| not_found("role", role))?;
            whole(json(&before), None)
        }
        Change::PutMembership(m) => {
            let before = put(&mut source.memberships, m.clone(), |x| x.user == m.user);
            Ok(Edit {
                before: before.as_ref().and_then(json),
                after: json(m),
                touched: user_principal(&m.user).map(|p| vec![p]),
            })
        }
        Change::RemoveMembership { user, .. } => {
            let before =
                take(&mut source.memberships, |x| &x.user == user).ok_or_else(|| not_found("membership", user))?;
            Ok(Edit { before: json(&before), after: None, touched: user_principal(user).map(|p| vec![p]) })
        }
        Change::PutAgent(a) => {
            let before = put(&mut source.agents, a.clone(), |x| x.id == a.id);
            let touched = AgentId::parse(&a.id).ok().map(|a| vec![Principal::Agent(a)]);
            Ok(Edit { before: before.as_ref().and_then(json), after: json(a), touched })
        }
        Change::RemoveAgent { agent, .. } => {
            let before = take(&mut source.agents, |x| &x.id == agent).ok_or_else(|| not_found("agent", agent))?;
            let touched = AgentId::parse(agent).ok().map(|a| vec![Principal::Agent(a)]);
            Ok(Edit { before: json(&before), after: None, touched })
        }
        Change::PutDelegation(d) => {
            let before = put(&mut source.delegations, d.clone(), |x| x.id == d.id);
            // A replaced delegation may have had another delegate: both lose or gain access.
            let touched = [Some(&d.to), before.as_ref().map(|b| &b.to)].into_iter().flatten().filter_map(principal_of);
            Ok(Edit { before: before.as_ref().and_then(json), after: json(d), touched: Some(touched.collect()) })
        }
        Change::RevokeDelegation { delegation, .. } => {
            let d = source
                .delegations
                .iter_mut()
                .find(|x| &x.id == delegation)
                .ok_or_else(|| not_found("delegation", delegation))?;
            let before = json(d);
            if d.revoked_at.is_none_or(|r| r > at) {
                d.revoked_at = Some(at);
            }
            Ok(Edit { before, after: json(d), touched: Some(principal_of(&d.to).into_iter().collect()) })
        }
        Change::PutSubscription { subscription, .. } => {
            platform_only(actor, change.kind())?;
            let before = put(&mut source.company.subscriptions, subscription.clone(), |s| s.id == subscription.id);
            whole(before.as_ref().and_then(json), json(subscription))
        }
        Change::RemoveSubscription { subscription, .. } => {
            platform_only(actor, change.kind())?;
            let before = take(&mut source.company.subscriptions, |s| &s.id == subscription)
                .ok_or_else(|| not_found("subscription", subscription))?;
            whole(json(&before), None)
        }
        Change::SetOverrides { overrides, .. } => {
            platform_only(actor, change.kind())?;
            let before = std::mem::replace(&mut source.company.overrides, overrides.clone());
            whole(json(&before), json(overrides))
        }
        Change::AddUser { .. } | Change::RemoveCompany { .. } => whole(None, None),
    }
}
