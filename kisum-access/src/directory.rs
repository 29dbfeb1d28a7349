//! The directory: the whole model in memory, read by many threads while one writer writes.
//!
//! Each company is an immutable [`Company`] partition behind an `ArcSwap`; a write builds the new
//! partition from a copy of that company's source documents only, validates it, and swaps it in. Readers
//! never take a lock: they load the partition pointer and evaluate on whatever version they loaded.
//! Companies are spread over [`SHARDS`] shard tables, so that creating a company copies only its shard's
//! table of pointers, never any company's data. A shard is an open-addressing table whose slots hold the
//! company's hash and its partition pointer side by side: finding a company reads one slot, then the
//! partition (whose first line holds its id, to confirm the match).
//!
//! A write has two steps, so that a store can make it durable before anyone sees it:
//! [`Directory::prepare`] validates the change against the current state and every rule of DESIGN.md §4
//! and returns a [`Prepared`] change (nothing is visible yet); [`Directory::install`] makes it visible
//! under the sequence number the store gave it. [`Directory::apply`] does both for callers without a
//! store. Versions are sequence numbers: the directory's version is the sequence of the last installed
//! change, and a principal's version is the sequence of the last change that could have changed its
//! access, so versions only grow, across companies and across a company's removal and re-creation.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use kisum_entitlements::doc::{OverrideDoc, SubscriptionDoc};
use kisum_entitlements::{CompanyId, Issues, Timestamp};
use serde::Serialize;

use crate::catalog::{AccessCatalog, PermissionId, RoleIx};
use crate::change::{Actor, Change, ChangeRecord};
use crate::company::{Company, CompanySource, Scratch, SourcePaths, SourceRef, hash_id};
use crate::doc::{MembershipDoc, MembershipStatus, PrincipalDoc, SupportSessionDoc, WorldDoc};
use crate::error::{AccessError, ForbiddenRule, ItemKind};
use crate::eval::Decision;
use crate::ids::{AgentId, DelegationId, Principal, ResourceRef, UserId};
use crate::query::{Access, decide};
use crate::rules;
use crate::users::UserSet;
use crate::world::{self, World};

type Fast = foldhash::fast::RandomState;

/// The number of shard tables companies are spread over (a power of two).
pub const SHARDS: usize = 64;

/// One slot of a shard: the company's hash (with the low bit set, so that 0 marks a free slot) and its
/// current partition.
struct Slot {
    hash: u64,
    company: ArcSwapOption<Company>,
}

/// An open-addressing table of companies, linear probing, at most half full. Replaced whole when a
/// company is created or removed; a write to an existing company swaps the partition in its slot.
struct Shard {
    slots: Box<[Slot]>,
    len: usize,
}

/// The key under which a company id is stored.
#[inline]
fn tag(hash: u64) -> u64 {
    hash | 1
}

/// The first slot to probe (bit 0 is the tag's, so a hash and its tag start at the same slot).
#[inline]
fn start(hash: u64, mask: usize) -> usize {
    (hash >> 1) as usize & mask
}

impl Shard {
    /// A table holding `companies`, with room to grow.
    fn with(companies: Vec<(u64, Arc<Company>)>) -> Shard {
        let size = (companies.len() * 2 + 2).next_power_of_two().max(8);
        let mut slots: Vec<Slot> = (0..size).map(|_| Slot { hash: 0, company: ArcSwapOption::empty() }).collect();
        let mask = size - 1;
        let len = companies.len();
        for (hash, company) in companies {
            let mut i = start(hash, mask);
            while slots.get(i).is_some_and(|s| s.hash != 0) {
                i = (i + 1) & mask;
            }
            if let Some(s) = slots.get_mut(i) {
                *s = Slot { hash: tag(hash), company: ArcSwapOption::new(Some(company)) };
            }
        }
        Shard { slots: slots.into_boxed_slice(), len }
    }

    /// The slot of company `id`, whose hash is `hash`, and its partition, loaded once.
    #[inline]
    fn find(&self, hash: u64, id: &str) -> Option<(&Slot, Guard<Option<Arc<Company>>>)> {
        let mask = self.slots.len().checked_sub(1)?;
        let want = tag(hash);
        let mut i = start(hash, mask);
        for _ in 0..self.slots.len() {
            let slot = self.slots.get(i)?;
            if slot.hash == 0 {
                return None;
            }
            if slot.hash == want {
                let partition = slot.company.load();
                if partition.as_ref().is_some_and(|c| c.is(id)) {
                    return Some((slot, partition));
                }
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Every partition whose company's hash is `hash` (one, but for a 63-bit collision).
    fn with_hash(&self, hash: u64) -> Vec<Arc<Company>> {
        let mut found = Vec::new();
        let Some(mask) = self.slots.len().checked_sub(1) else { return found };
        let want = tag(hash);
        let mut i = start(hash, mask);
        for _ in 0..self.slots.len() {
            let Some(slot) = self.slots.get(i) else { break };
            if slot.hash == 0 {
                break;
            }
            if slot.hash == want
                && let Some(c) = slot.company.load_full()
            {
                found.push(c);
            }
            i = (i + 1) & mask;
        }
        found
    }

    /// Every company of the shard.
    fn companies(&self) -> impl Iterator<Item = (u64, Arc<Company>)> + '_ {
        self.slots.iter().filter_map(|s| Some((s.hash, s.company.load_full()?)))
    }
}

fn shard_of(hash: u64) -> usize {
    (hash >> (64 - SHARDS.trailing_zeros())) as usize
}

#[derive(Default)]
struct Writer {
    /// The sequence of the last installed change.
    seq: u64,
    users: UserSet,
    agents: HashMap<AgentId, CompanyId, Fast>,
    delegations: HashMap<DelegationId, CompanyId, Fast>,
    order: Vec<CompanyId>,
    /// Ids of removed companies: never given to a new company.
    retired: HashSet<CompanyId>,
    /// The company of every support session, by session id.
    support_sessions: HashMap<String, CompanyId, Fast>,
    /// Whether `users` indexes every membership (built on first use: loading stays as fast as it was).
    indexed: bool,
}

/// The concurrent, writable form of the whole model. `Send + Sync`; share it by `Arc`. Queries come
/// from the [`Access`] trait.
pub struct Directory {
    /// The current catalog. Publishing a plan swaps it; plans are only ever appended, so every
    /// partition compiled against an older catalog evaluates the same against the newer one.
    catalog: ArcSwap<AccessCatalog>,
    shards: Box<[ArcSwap<Shard>]>,
    writer: Mutex<Writer>,
    /// A copy of `Writer::seq` that readers load without the lock.
    seq: AtomicU64,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("seq", &self.seq()).finish_non_exhaustive()
    }
}

/// A change validated against the directory's state at [`base`](Prepared::base), not yet visible.
///
/// Install it with [`Directory::install`] once it is durable; drop it to abandon the write. It cannot be
/// installed after another change was: prepare it again against the new state.
#[derive(Debug)]
#[must_use = "a prepared change does nothing until it is installed"]
pub struct Prepared {
    base: u64,
    actor: Actor,
    at: Timestamp,
    change: Change,
    effect: Effect,
    company: Option<CompanyId>,
    /// `None`: every principal of the company.
    principals: Option<Vec<Principal>>,
    before: Option<String>,
    after: Option<String>,
}

#[derive(Debug)]
enum Effect {
    /// Recorded, changes no access (a credential event).
    Nothing,
    AddUser(UserId),
    PublishPlan(Arc<AccessCatalog>),
    RemoveCompany(Arc<Company>),
    Put {
        old: Option<Arc<Company>>,
        new: Box<Company>,
    },
}

impl Prepared {
    /// The directory version the change was validated against.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Who writes.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The write's instant.
    pub fn at(&self) -> Timestamp {
        self.at
    }

    /// The change.
    pub fn change(&self) -> &Change {
        &self.change
    }

    /// The record the change will have once installed as `seq`: what a store appends to its log.
    pub fn record(&self, seq: u64) -> ChangeRecord {
        ChangeRecord {
            seq,
            actor: self.actor.clone(),
            at: self.at,
            kind: self.change.kind().to_owned(),
            company: self.company.clone(),
            company_wide: self.principals.is_none() && self.company.is_some(),
            principals: self.principals.clone().unwrap_or_default(),
            before: self.before.clone(),
            after: self.after.clone(),
        }
    }
}

impl Directory {
    /// A directory holding `world` at version 0.
    pub fn new(world: World) -> Directory {
        Directory::at_seq(world, 0)
    }

    /// A directory holding `world` as the state after change `seq` (a store's checkpoint): every company
    /// and principal starts at version `seq`.
    pub fn at_seq(world: World, seq: u64) -> Directory {
        let mut shards: Vec<Vec<(u64, Arc<Company>)>> = (0..SHARDS).map(|_| Vec::new()).collect();
        let mut writer = Writer {
            seq,
            users: world.users,
            agents: HashMap::with_capacity_and_hasher(world.companies.len(), Fast::default()),
            delegations: HashMap::with_capacity_and_hasher(world.companies.len() * 4, Fast::default()),
            order: Vec::with_capacity(world.companies.len()),
            retired: world.retired.into_iter().collect(),
            support_sessions: HashMap::default(),
            indexed: false,
        };
        for mut company in world.companies {
            // A world's partitions are its own: set in place, no copy.
            if let Some(c) = Arc::get_mut(&mut company) {
                c.version = seq;
                c.epoch = seq;
            } else {
                let mut c = Company::clone(&company);
                c.version = seq;
                c.epoch = seq;
                company = Arc::new(c);
            }
            let id = company.id.clone();
            for a in &company.agents {
                writer.agents.insert(a.clone(), id.clone());
            }
            for d in &company.delegations {
                writer.delegations.insert(d.id.clone(), id.clone());
            }
            let hash = hash_id(id.as_str());
            for s in &company.doc.support_sessions {
                writer.support_sessions.insert(s.id.clone(), id.clone());
            }
            writer.order.push(id);
            if let Some(shard) = shards.get_mut(shard_of(hash)) {
                shard.push((hash, company));
            }
        }
        Directory {
            catalog: ArcSwap::new(world.catalog),
            shards: shards.into_iter().map(|s| ArcSwap::from_pointee(Shard::with(s))).collect(),
            writer: Mutex::new(writer),
            seq: AtomicU64::new(seq),
        }
    }

    /// Replaces the whole state with `world` as the state after change `seq` (a newer checkpoint: what a
    /// replica does when it can no longer follow the log from where it is). Refused with
    /// [`AccessError::Stale`] unless `seq` is after the directory's version, so versions only grow.
    /// Readers in the middle of a query finish on the state they loaded.
    pub fn reload(&self, world: World, seq: u64) -> Result<(), AccessError> {
        let fresh = Directory::at_seq(world, seq);
        let mut writer = self.lock();
        if seq <= writer.seq {
            return Err(AccessError::Stale { expected: seq.saturating_sub(1), current: writer.seq });
        }
        let fresh_writer = std::mem::take(&mut *fresh.lock());
        self.catalog.store(fresh.catalog.load_full());
        for (mine, theirs) in self.shards.iter().zip(fresh.shards.iter()) {
            mine.store(theirs.load_full());
        }
        *writer = fresh_writer;
        self.seq.store(seq, Ordering::Release);
        Ok(())
    }

    /// The directory's version: the sequence of the last installed change.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// The whole current state as a world document.
    pub fn to_doc(&self) -> WorldDoc {
        self.doc_and_seq().0
    }

    /// The whole current state as a world document, with the version it is at (a consistent pair: what a
    /// store writes as a checkpoint).
    pub fn doc_and_seq(&self) -> (WorldDoc, u64) {
        let writer = self.lock();
        let companies: Vec<Arc<Company>> = writer.order.iter().filter_map(|id| self.partition(id.as_str())).collect();
        let mut doc = world::to_doc(&self.catalog.load(), writer.users.iter(), companies.iter().map(|c| c.documents()));
        let mut retired: Vec<String> = writer.retired.iter().map(ToString::to_string).collect();
        retired.sort_unstable();
        doc.retired_companies = retired;
        (doc, writer.seq)
    }

    /// The ids of every company, sorted: what a listing pages through.
    pub fn company_ids(&self) -> Vec<CompanyId> {
        let mut ids: Vec<CompanyId> = self
            .shards
            .iter()
            .flat_map(|s| s.load().companies().map(|(_, c)| c.id.clone()).collect::<Vec<_>>())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every company where `user` has a membership, with its roles and status, sorted by company: from
    /// the index of memberships by user, so its cost does not grow with the number of companies.
    pub fn memberships_of(&self, user: &UserId) -> Vec<(CompanyId, crate::company::MembershipSummary)> {
        let hashes = {
            let mut writer = self.lock();
            if !writer.indexed {
                self.index_locked(&mut writer);
            }
            writer.users.companies_of(user.as_str())
        };
        let catalog = self.catalog.load();
        let mut found: Vec<(CompanyId, crate::company::MembershipSummary)> = hashes
            .into_iter()
            .flat_map(|hash| self.shards.get(shard_of(hash)).map(|s| s.load().with_hash(hash)).unwrap_or_default())
            .filter_map(|c| c.membership_of(&catalog, user).map(|m| (c.id.clone(), m)))
            .collect();
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        found.dedup_by(|a, b| a.0 == b.0);
        found
    }

    /// Builds the index of memberships by user now, if it is not built yet (it is built on the first
    /// [`memberships_of`](Directory::memberships_of) otherwise): about 0.2 µs a membership, under the
    /// write lock. A server calls it once after loading, off its request path.
    pub fn index_memberships(&self) {
        let mut writer = self.lock();
        if !writer.indexed {
            self.index_locked(&mut writer);
        }
    }

    fn index_locked(&self, writer: &mut Writer) {
        for shard in self.shards.iter() {
            for (_, company) in shard.load().companies() {
                // The id's hash, as installs record it (a shard slot holds it tagged).
                let hash = hash_id(company.id.as_str());
                for m in company.members.iter() {
                    writer.users.add_company(company.user_of(m), hash);
                }
            }
        }
        writer.indexed = true;
    }

    /// The company holding support session `id`, from an index (no scan of the companies).
    pub fn support_session_company(&self, id: &str) -> Option<CompanyId> {
        self.lock().support_sessions.get(id).cloned()
    }

    /// Whether `user` is a declared user.
    pub fn has_user(&self, user: &UserId) -> bool {
        self.lock().users.contains(user.as_str())
    }

    fn partition(&self, id: &str) -> Option<Arc<Company>> {
        let hash = hash_id(id);
        let shard = self.shards.get(shard_of(hash))?.load();
        shard.find(hash, id).and_then(|(_, partition)| Guard::into_inner(partition))
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A writer that panicked left no half-applied state behind (writes swap whole partitions), so a
        // poisoned lock is safe to take over.
        self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies one write at instant `at` as the next version: all or nothing. Checks the model rules of
    /// DESIGN.md §4 (only assign what you hold, only delegate what you may pass on, keep an active owner,
    /// respect `core.seats`) and validates the company as a world loader would.
    pub fn apply(&self, actor: &Actor, at: Timestamp, change: Change) -> Result<ChangeRecord, AccessError> {
        let mut writer = self.lock();
        let seq = writer.seq + 1;
        let prepared = self.prepare_locked(&writer, actor, at, change)?;
        self.install_locked(&mut writer, prepared, seq)
    }

    /// Applies a change read from a log as version `seq`, which must be after the directory's: what a
    /// replica does with the changes other processes committed. The change is validated again, so a log
    /// entry that no longer validates is refused, never installed.
    pub fn replay(&self, seq: u64, actor: &Actor, at: Timestamp, change: Change) -> Result<ChangeRecord, AccessError> {
        let mut writer = self.lock();
        let prepared = self.prepare_locked(&writer, actor, at, change)?;
        self.install_locked(&mut writer, prepared, seq)
    }

    /// Validates a write against the current state, without making it visible (see the module docs).
    pub fn prepare(&self, actor: &Actor, at: Timestamp, change: Change) -> Result<Prepared, AccessError> {
        let writer = self.lock();
        self.prepare_locked(&writer, actor, at, change)
    }

    /// Makes a prepared change visible as version `seq` (after the directory's current version), and
    /// returns its record. Refused with [`AccessError::Stale`] if another change was installed since it
    /// was prepared, or if `seq` is not after the current version; the directory is then unchanged.
    pub fn install(&self, prepared: Prepared, seq: u64) -> Result<ChangeRecord, AccessError> {
        let mut writer = self.lock();
        self.install_locked(&mut writer, prepared, seq)
    }

    fn prepare_locked(
        &self,
        writer: &Writer,
        actor: &Actor,
        at: Timestamp,
        change: Change,
    ) -> Result<Prepared, AccessError> {
        let base = writer.seq;
        let company_id = change.company()?;
        let prepared = |effect, company, principals, before, after, change| Prepared {
            base,
            actor: actor.clone(),
            at,
            change,
            effect,
            company,
            principals,
            before,
            after,
        };
        // A token acting for a user never writes access, nor anything else.
        if let Actor::Agent { .. } = actor {
            return Err(forbidden(actor, ForbiddenRule::ActsForAnother));
        }
        let Some(company_id) = company_id else {
            match (&change, actor) {
                // A user may end its own sessions.
                (Change::RevokeSession { user, .. }, Actor::User(me)) if me == user => {}
                _ => platform_only(actor, change.kind())?,
            }
            let user_doc = |user: &UserId| json(&crate::doc::UserDoc { id: user.to_string() });
            let known = |user: &UserId| {
                if writer.users.contains(user.as_str()) {
                    Ok(())
                } else {
                    Err(not_found(ItemKind::User, user.as_str()))
                }
            };
            let (effect, before, after) = match &change {
                Change::AddUser { user } => {
                    if writer.users.contains(user.as_str()) {
                        return Err(conflict("/user", format!("duplicate user `{user}`")));
                    }
                    (Effect::AddUser(user.clone()), None, user_doc(user))
                }
                Change::SetPassword { user, .. } | Change::DisableUser { user } => {
                    known(user)?;
                    (Effect::Nothing, user_doc(user), user_doc(user))
                }
                Change::RevokeSession { user, session, until } => {
                    known(user)?;
                    let after = serde_json::json!({ "user": user, "session": session, "until": until.to_string() });
                    (Effect::Nothing, None, json(&after))
                }
                Change::RotateKeys { kids } => (Effect::Nothing, None, json(&serde_json::json!({ "kids": kids }))),
                Change::PutServiceClient { client_id, scopes, rotated } => {
                    for (i, scope) in scopes.iter().enumerate() {
                        crate::Pattern::parse(scope).map_err(|e| {
                            AccessError::Validation(vec![kisum_errors::FieldError::new(
                                format!("/scopes/{i}"),
                                e.to_string(),
                            )])
                        })?;
                    }
                    let after = serde_json::json!({ "client_id": client_id, "scopes": scopes, "rotated": rotated });
                    (Effect::Nothing, None, json(&after))
                }
                Change::RemoveServiceClient { client_id } => {
                    (Effect::Nothing, json(&serde_json::json!({ "client_id": client_id })), None)
                }
                Change::PublishPlan { plan } => {
                    let catalog = self.catalog.load().with_plan(plan)?;
                    (Effect::PublishPlan(Arc::new(catalog)), None, json(plan))
                }
                // INVARIANT: `Change::company` names a company for every other kind of change.
                _ => return Err(AccessError::Malformed(format!("a `{}` change names no company", change.kind()))),
            };
            // Whose tokens a revoked session carried: the feed names them.
            let principals = match &change {
                Change::RevokeSession { user, .. } => vec![Principal::User(user.clone())],
                _ => Vec::new(),
            };
            return Ok(prepared(effect, None, Some(principals), before, after, change));
        };
        let current = self.partition(company_id.as_str());
        if let Change::RecordSupportAccess { session, route, record, .. } = &change {
            platform_only(actor, change.kind())?;
            let company = current.ok_or_else(|| not_found(ItemKind::Company, company_id.as_str()))?;
            if !company.doc.support_sessions.iter().any(|s| &s.id == session) {
                return Err(not_found(ItemKind::SupportSession, session));
            }
            let mut problems = Vec::new();
            if route.is_empty() || route.len() > 512 {
                problems.push(kisum_errors::FieldError::new("/route", "a route of 1 to 512 bytes"));
            }
            if record.as_ref().is_some_and(|r| r.is_empty() || r.len() > 512) {
                problems.push(kisum_errors::FieldError::new("/record", "a record of 1 to 512 bytes"));
            }
            if !problems.is_empty() {
                return Err(AccessError::Validation(problems));
            }
            let after = json(&serde_json::json!({ "session": session, "route": route, "record": record }));
            return Ok(prepared(Effect::Nothing, Some(company_id), Some(Vec::new()), None, after, change));
        }
        if let Change::RemoveCompany { .. } = &change {
            platform_only(actor, change.kind())?;
            let old = current.ok_or_else(|| not_found(ItemKind::Company, company_id.as_str()))?;
            let before = json(&old.documents().company);
            return Ok(prepared(Effect::RemoveCompany(old), Some(company_id), None, before, None, change));
        }
        let (old, mut source) = match (&change, current) {
            (Change::CreateCompany { .. }, None) if writer.retired.contains(&company_id) => {
                return Err(conflict(
                    "/company/id",
                    format!("company id `{company_id}` belonged to a removed company and is retired"),
                ));
            }
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
                let source = c.documents();
                (Some(c), source)
            }
            (_, None) => return Err(not_found(ItemKind::Company, company_id.as_str())),
        };
        let edit = edit(&mut source, &change, actor, at)?;
        check_global_ids(writer, &change, &company_id)?;
        let mut issues = Issues::new();
        let paths = SourcePaths { company: "/company", memberships: &[], agents: &[], delegations: &[] };
        let users = &writer.users;
        let user_exists = |u: &str| users.contains(u);
        // The previous partition's custom roles are shared when the write leaves them as they were.
        let mut scratch = Scratch::default();
        if let Some(o) = &old {
            o.share_roles(&mut scratch.roles);
        }
        let source = SourceRef::of(&source);
        let catalog = self.catalog.load();
        let compiled = Company::compile(&catalog, &source, &paths, &user_exists, &mut issues, &mut scratch);
        let new = match compiled {
            Some(c) if issues.is_empty() => c,
            _ if issues.has_conflict() => return Err(AccessError::Conflict(issues.into_vec())),
            _ => return Err(AccessError::Validation(issues.into_vec())),
        };
        self.check_rules(actor, at, &change, old.as_deref(), &new)?;
        let principals = edit.touched.map(|starts| {
            let mut affected = HashSet::new();
            for start in &starts {
                affected.extend(downstream(&new, start));
                if let Some(o) = &old {
                    affected.extend(downstream(o, start));
                }
            }
            let mut affected: Vec<Principal> = affected.into_iter().collect();
            affected.sort();
            affected
        });
        // A new company is new to every principal.
        let principals = if old.is_none() { None } else { principals };
        let effect = Effect::Put { old, new: Box::new(new) };
        Ok(prepared(effect, Some(company_id), principals, edit.before, edit.after, change))
    }

    fn install_locked(&self, writer: &mut Writer, prepared: Prepared, seq: u64) -> Result<ChangeRecord, AccessError> {
        if prepared.base != writer.seq {
            return Err(AccessError::Stale { expected: prepared.base, current: writer.seq });
        }
        if seq <= writer.seq {
            return Err(AccessError::Stale { expected: seq.saturating_sub(1), current: writer.seq });
        }
        let record = prepared.record(seq);
        match prepared.effect {
            Effect::Nothing => {}
            Effect::AddUser(user) => {
                writer.users.insert(user.as_str());
            }
            Effect::PublishPlan(catalog) => self.catalog.store(catalog),
            Effect::RemoveCompany(old) => self.remove_company(writer, &old),
            Effect::Put { old, new } => {
                let mut new = *new;
                new.version = seq;
                match (&old, &prepared.principals) {
                    (Some(old), Some(principals)) => {
                        new.epoch = old.epoch;
                        new.principal_versions = old.principal_versions.clone();
                        for p in principals {
                            new.principal_versions.insert(p.clone(), seq);
                        }
                    }
                    _ => new.epoch = seq,
                }
                self.install_partition(writer, old.as_deref(), Arc::new(new), prepared.principals.as_deref());
            }
        }
        writer.seq = seq;
        self.seq.store(seq, Ordering::Release);
        Ok(record)
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
        let catalog = self.catalog.load();
        let cat = &*catalog;
        match (actor, old, change) {
            (Actor::User(user), _, Change::CreateCompany { owner, .. }) if owner != user => {
                return Err(forbidden(actor, ForbiddenRule::CreatesForAnother { owner: owner.clone() }));
            }
            (Actor::User(user), Some(old), _) => rules::check_member_write(cat, actor, user, at, change, old, new)?,
            _ => {}
        }
        let owners_before = old.map_or(0, |o| owner_count(o, cat, at));
        if owner_count(new, cat, at) == 0 && (owners_before > 0 || old.is_none()) {
            return Err(conflict("/memberships", format!("company `{}` must keep an active owner", new.id)));
        }
        if let Some(old) = old {
            let support = support_users(new, at);
            let activated = new.members.iter().any(|m| {
                m.is_active_at(at)
                    && !support.contains(new.user_of(m))
                    && old.member(new.user_of(m)).is_none_or(|o| !o.is_active_at(at))
            });
            if activated && let Some(seats) = cat.commercial().limit_index("core.seats") {
                let ent = new.plans.entitlements(cat.commercial(), at);
                let used = new.active_member_count(at).saturating_sub(support.len() as u64);
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

    /// Swaps `new` in for `old`, keeping the writer's indices in step: agents, delegations, support
    /// sessions, and the memberships by user of the users in `touched` (every member when `old` is
    /// `None` or `touched` is; a write that names no principal changes no membership).
    fn install_partition(
        &self,
        writer: &mut Writer,
        old: Option<&Company>,
        new: Arc<Company>,
        touched: Option<&[Principal]>,
    ) {
        let hash = hash_id(new.id.as_str());
        match (old, touched) {
            _ if !writer.indexed => {}
            (Some(old), Some(touched)) => {
                for user in touched.iter().filter_map(Principal::user) {
                    match new.member(user.as_str()) {
                        Some(_) => writer.users.add_company(user.as_str(), hash),
                        None if old.member(user.as_str()).is_some() => {
                            writer.users.remove_company(user.as_str(), hash);
                        }
                        None => {}
                    }
                }
            }
            _ => {
                for m in new.members.iter() {
                    writer.users.add_company(new.user_of(m), hash);
                }
            }
        }
        for s in &new.doc.support_sessions {
            writer.support_sessions.insert(s.id.clone(), new.id.clone());
        }
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
        let Some(shard) = self.shards.get(shard_of(hash)) else { return };
        let current = shard.load();
        match current.find(hash, new.id.as_str()) {
            Some((slot, _)) => slot.company.store(Some(new)),
            None => {
                writer.order.push(new.id.clone());
                let mut companies: Vec<(u64, Arc<Company>)> = Vec::with_capacity(current.len + 1);
                companies.extend(current.companies());
                companies.push((hash, new));
                shard.store(Arc::new(Shard::with(companies)));
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
        writer.retired.insert(old.id.clone());
        let hash = hash_id(old.id.as_str());
        if writer.indexed {
            for m in old.members.iter() {
                writer.users.remove_company(old.user_of(m), hash);
            }
        }
        for s in &old.doc.support_sessions {
            writer.support_sessions.remove(&s.id);
        }
        if let Some(shard) = self.shards.get(shard_of(hash_id(old.id.as_str()))) {
            let companies = shard.load().companies().filter(|(_, c)| c.id != old.id).collect();
            shard.store(Arc::new(Shard::with(companies)));
        }
    }
}

impl Access for Directory {
    fn catalog(&self) -> Arc<AccessCatalog> {
        self.catalog.load_full()
    }

    fn company(&self, id: &CompanyId) -> Option<Arc<Company>> {
        self.partition(id.as_str())
    }

    fn check(
        &self,
        principal: &Principal,
        company: &CompanyId,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        at: Timestamp,
    ) -> Decision {
        // Guards, not clones: no reference count is touched on the check path.
        let hash = hash_id(company.as_str());
        let shard = self.shards.get(shard_of(hash)).map(ArcSwap::load);
        let found = shard.as_ref().and_then(|s| s.find(hash, company.as_str()));
        let partition = found.as_ref().and_then(|(_, p)| p.as_deref());
        decide(&self.catalog.load(), partition, principal, permission, resource, at)
    }
}

/// Refuses to edit the membership of a user in an open support session: it belongs to the session,
/// ends with it, and is closed through it (so it can never outlive its 4 hours).
fn in_support_session(source: &CompanySource, user: &str, at: Timestamp) -> Result<(), AccessError> {
    match source.company.support_sessions.iter().find(|s| s.user == user && s.is_open_at(at)) {
        Some(s) => {
            Err(conflict("/membership/user", format!("`{user}` is in support session `{}`: close it first", s.id)))
        }
        None => Ok(()),
    }
}

/// The users holding a support session open at `at`: their memberships take no seat and make no owner.
fn support_users(company: &Company, at: Timestamp) -> HashSet<&str> {
    let sessions = company.doc.support_sessions.iter();
    sessions
        .filter(|s| s.is_open_at(at) && company.member(&s.user).is_some_and(|m| m.is_active_at(at)))
        .map(|s| s.user.as_str())
        .collect()
}

/// Active owners at `at`, support sessions aside (a company must keep a real one).
fn owner_count(company: &Company, cat: &AccessCatalog, at: Timestamp) -> usize {
    let support = support_users(company, at);
    let supporting_owners = support
        .iter()
        .filter_map(|u| company.member(u))
        .filter(|m| cat.system_role("owner").is_some_and(|(o, _)| company.roles_of(m).any(|r| r == RoleIx::System(o))))
        .count();
    company.active_owner_count(cat, at).saturating_sub(supporting_owners)
}

/// Agent and delegation ids are unique across the world, not only within a company.
fn check_global_ids(writer: &Writer, change: &Change, company: &CompanyId) -> Result<(), AccessError> {
    match change {
        Change::PutAgent(a) => match writer.agents.get(a.id.as_str()) {
            Some(owner) if owner != company => {
                Err(conflict("/agent/id", format!("agent `{}` belongs to another company", a.id)))
            }
            _ => Ok(()),
        },
        Change::PutDelegation(d) => match writer.delegations.get(d.id.as_str()) {
            Some(owner) if owner != company => {
                Err(conflict("/delegation/id", format!("delegation `{}` exists in another company", d.id)))
            }
            _ => Ok(()),
        },
        Change::AddDelegation(d) => match writer.delegations.get(d.id.as_str()) {
            Some(_) => Err(conflict("/delegation/id", format!("delegation `{}` exists", d.id))),
            None => Ok(()),
        },
        _ => Ok(()),
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

fn conflict(path: &str, message: String) -> AccessError {
    AccessError::Conflict(vec![kisum_errors::FieldError::new(path, message)])
}

fn not_found(kind: ItemKind, id: &str) -> AccessError {
    AccessError::NotFound { kind, id: crate::catalog::clip(id) }
}

fn forbidden(actor: &Actor, rule: ForbiddenRule) -> AccessError {
    AccessError::Forbidden { actor: actor.clone(), rule }
}

fn platform_only(actor: &Actor, kind: &'static str) -> Result<(), AccessError> {
    match actor {
        Actor::User(_) | Actor::Agent { .. } => Err(forbidden(actor, ForbiddenRule::PlatformOnly { change: kind })),
        Actor::Platform | Actor::Staff(_) | Actor::Service(_) => Ok(()),
    }
}

/// DESIGN.md §3 "Nothing ends retroactively": an end instant a write adds or changes (`after`, where it
/// was `before`) is at or after the write's own instant `at`.
fn not_retroactive(
    path: &str,
    before: Option<Timestamp>,
    after: Option<Timestamp>,
    at: Timestamp,
) -> Result<(), AccessError> {
    match after {
        Some(end) if after != before && end < at => Err(AccessError::Validation(vec![kisum_errors::FieldError::new(
            path,
            format!("`{end}` is before the write's instant `{at}`: nothing ends retroactively"),
        )])),
        _ => Ok(()),
    }
}

/// [`not_retroactive`] for every end instant of a subscription (`ends_at`, `trial_ends_at`,
/// `grace_until`).
fn subscription_ends(
    path: &str,
    before: Option<&SubscriptionDoc>,
    after: &SubscriptionDoc,
    at: Timestamp,
) -> Result<(), AccessError> {
    let ends = |s: &SubscriptionDoc| [s.ends_at, s.trial_ends_at, s.grace_until];
    let names = ["ends_at", "trial_ends_at", "grace_until"];
    let before = before.map_or([None; 3], ends);
    for ((name, b), a) in names.into_iter().zip(before).zip(ends(after)) {
        not_retroactive(&format!("{path}/{name}"), b, a, at)?;
    }
    Ok(())
}

/// [`not_retroactive`] for overrides: one not among `before` (an identical one is unchanged) adds its
/// `expires_at`.
fn override_ends(path: &str, before: &[OverrideDoc], after: &[OverrideDoc], at: Timestamp) -> Result<(), AccessError> {
    for (i, o) in after.iter().enumerate() {
        if !before.contains(o) {
            not_retroactive(&format!("{path}/{i}/expires_at"), None, o.expires_at, at)?;
        }
    }
    Ok(())
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
            for (i, sub) in source.company.subscriptions.iter().enumerate() {
                subscription_ends(&format!("/company/subscriptions/{i}"), None, sub, at)?;
            }
            override_ends("/company/overrides", &[], &source.company.overrides, at)?;
            source.memberships.push(MembershipDoc {
                user: owner.to_string(),
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
            let before = take(&mut source.company.roles, |r| r.id == role.as_str())
                .ok_or_else(|| not_found(ItemKind::Role, role.as_str()))?;
            whole(json(&before), None)
        }
        Change::PutMembership(m) => {
            in_support_session(source, &m.user, at)?;
            let was = source.memberships.iter().find(|x| x.user == m.user).and_then(|x| x.expires_at);
            not_retroactive("/membership/expires_at", was, m.expires_at, at)?;
            let before = put(&mut source.memberships, m.clone(), |x| x.user == m.user);
            Ok(Edit {
                before: before.as_ref().and_then(json),
                after: json(m),
                touched: user_principal(&m.user).map(|p| vec![p]),
            })
        }
        Change::RemoveMembership { user, .. } => {
            in_support_session(source, user.as_str(), at)?;
            let before = take(&mut source.memberships, |x| x.user == user.as_str())
                .ok_or_else(|| not_found(ItemKind::Membership, user.as_str()))?;
            Ok(Edit { before: json(&before), after: None, touched: Some(vec![Principal::User(user.clone())]) })
        }
        Change::EndMembership { user, .. } => {
            in_support_session(source, user.as_str(), at)?;
            let m = source
                .memberships
                .iter_mut()
                .find(|x| x.user == user.as_str())
                .ok_or_else(|| not_found(ItemKind::Membership, user.as_str()))?;
            let before = json(m);
            m.status = MembershipStatus::Removed;
            Ok(Edit { before, after: json(m), touched: Some(vec![Principal::User(user.clone())]) })
        }
        Change::PutAgent(a) => {
            if source.agents.iter().any(|x| x.id == a.id) {
                return Err(conflict("/agent/id", format!("agent `{}` exists: rotate its secret instead", a.id)));
            }
            source.agents.push(a.clone());
            let touched = AgentId::parse(&a.id).ok().map(|a| vec![Principal::Agent(a)]);
            Ok(Edit { before: None, after: json(a), touched })
        }
        Change::RotateAgentSecret { agent, .. } => {
            let doc = source
                .agents
                .iter()
                .find(|x| x.id == agent.as_str())
                .ok_or_else(|| not_found(ItemKind::Agent, agent.as_str()))?;
            // The secret is not part of the model: the record is for the audit trail.
            Ok(Edit { before: json(doc), after: json(doc), touched: Some(Vec::new()) })
        }
        Change::RemoveAgent { agent, .. } => {
            let before = take(&mut source.agents, |x| x.id == agent.as_str())
                .ok_or_else(|| not_found(ItemKind::Agent, agent.as_str()))?;
            // Its delegations go with it: they could only ever confer access on the agent (the log keeps
            // them, and the audit log keeps this removal).
            let to_it = PrincipalDoc::Agent(agent.to_string());
            source.delegations.retain(|d| d.to != to_it);
            Ok(Edit { before: json(&before), after: None, touched: Some(vec![Principal::Agent(agent.clone())]) })
        }
        Change::PutDelegation(d) | Change::AddDelegation(d) => {
            let was = source.delegations.iter().find(|x| x.id == d.id);
            not_retroactive("/delegation/expires_at", was.map(|x| x.expires_at), Some(d.expires_at), at)?;
            not_retroactive("/delegation/revoked_at", was.and_then(|x| x.revoked_at), d.revoked_at, at)?;
            let before = put(&mut source.delegations, d.clone(), |x| x.id == d.id);
            // A replaced delegation may have had another delegate: both lose or gain access.
            let touched = [Some(&d.to), before.as_ref().map(|b| &b.to)].into_iter().flatten().filter_map(principal_of);
            Ok(Edit { before: before.as_ref().and_then(json), after: json(d), touched: Some(touched.collect()) })
        }
        Change::RevokeDelegation { delegation, .. } => {
            let d = source
                .delegations
                .iter_mut()
                .find(|x| x.id == delegation.as_str())
                .ok_or_else(|| not_found(ItemKind::Delegation, delegation.as_str()))?;
            let before = json(d);
            if d.revoked_at.is_none_or(|r| r > at) {
                d.revoked_at = Some(at);
            }
            Ok(Edit { before, after: json(d), touched: Some(principal_of(&d.to).into_iter().collect()) })
        }
        Change::PutSubscription { subscription, .. } => {
            platform_only(actor, change.kind())?;
            let was = source.company.subscriptions.iter().find(|s| s.id == subscription.id);
            subscription_ends("/subscription", was, subscription, at)?;
            let before = put(&mut source.company.subscriptions, subscription.clone(), |s| s.id == subscription.id);
            whole(before.as_ref().and_then(json), json(subscription))
        }
        Change::RemoveSubscription { subscription, .. } => {
            platform_only(actor, change.kind())?;
            let before = take(&mut source.company.subscriptions, |s| s.id == subscription.as_str())
                .ok_or_else(|| not_found(ItemKind::Subscription, subscription.as_str()))?;
            whole(json(&before), None)
        }
        Change::SetOverrides { overrides, .. } => {
            platform_only(actor, change.kind())?;
            override_ends("/overrides", &source.company.overrides, overrides, at)?;
            let before = std::mem::replace(&mut source.company.overrides, overrides.clone());
            whole(json(&before), json(overrides))
        }
        Change::AddSubscription { subscription, .. } => {
            platform_only(actor, change.kind())?;
            if source.company.subscriptions.iter().any(|s| s.id == subscription.id) {
                return Err(conflict("/subscription/id", format!("duplicate subscription `{}`", subscription.id)));
            }
            subscription_ends("/subscription", None, subscription, at)?;
            source.company.subscriptions.push(subscription.clone());
            whole(None, json(subscription))
        }
        Change::UpdateSubscription { subscription, patch, .. } => {
            platform_only(actor, change.kind())?;
            let slot = source
                .company
                .subscriptions
                .iter_mut()
                .find(|s| s.id == subscription.as_str())
                .ok_or_else(|| not_found(ItemKind::Subscription, subscription.as_str()))?;
            let next = slot.patched(patch)?;
            subscription_ends("/patch", Some(slot), &next, at)?;
            let before = std::mem::replace(slot, next);
            whole(json(&before), json(slot))
        }
        Change::AddOverride { item, .. } => {
            platform_only(actor, change.kind())?;
            let Some(id) = &item.id else {
                return Err(AccessError::Validation(vec![kisum_errors::FieldError::new(
                    "/override/id",
                    "an override added on its own needs an id",
                )]));
            };
            if source.company.overrides.iter().any(|o| o.id.as_ref() == Some(id)) {
                return Err(conflict("/override/id", format!("duplicate override `{id}`")));
            }
            not_retroactive("/override/expires_at", None, item.expires_at, at)?;
            source.company.overrides.push(item.clone());
            whole(None, json(item))
        }
        Change::RemoveOverride { id, .. } => {
            platform_only(actor, change.kind())?;
            let before = take(&mut source.company.overrides, |o| o.id.as_deref() == Some(id.as_str()))
                .ok_or_else(|| not_found(ItemKind::Override, id.as_str()))?;
            whole(json(&before), None)
        }
        Change::OpenSupportSession { session, .. } => {
            platform_only(actor, change.kind())?;
            // Staff open sessions for themselves; the platform itself (a seed, a migration) may record any.
            match actor {
                Actor::Staff(u) if u.as_str() != session.user => {
                    return Err(forbidden(actor, ForbiddenRule::StaffOnly));
                }
                Actor::Service(_) => return Err(forbidden(actor, ForbiddenRule::StaffOnly)),
                _ => {}
            }
            let invalid = |path: &str, message: &str| {
                AccessError::Validation(vec![kisum_errors::FieldError::new(path, message.to_owned())])
            };
            if session.reason.trim().is_empty() {
                return Err(invalid("/session/reason", "a support session needs a reason"));
            }
            let seconds = session.expires_at.unix_seconds() - session.opened_at.unix_seconds();
            if session.expires_at <= session.opened_at || seconds > SupportSessionDoc::MAX_SECONDS {
                return Err(invalid("/session/expires_at", "a support session lasts more than 0 and at most 4 hours"));
            }
            if session.opened_at > at || session.expires_at <= at {
                return Err(invalid("/session/opened_at", "a support session is open at the write's instant"));
            }
            if source.company.support_sessions.iter().any(|s| s.id == session.id) {
                return Err(conflict("/session/id", format!("duplicate support session `{}`", session.id)));
            }
            if source.memberships.iter().any(|m| m.user == session.user) {
                return Err(conflict("/session/user", format!("`{}` is already a member", session.user)));
            }
            source.company.support_sessions.push(session.clone());
            source.memberships.push(MembershipDoc {
                user: session.user.clone(),
                company: source.company.id.clone(),
                status: MembershipStatus::Active,
                roles: session.roles.clone(),
                expires_at: Some(session.expires_at),
                restrictions: Vec::new(),
            });
            Ok(Edit { before: None, after: json(session), touched: user_principal(&session.user).map(|p| vec![p]) })
        }
        Change::CloseSupportSession { id, .. } => {
            platform_only(actor, change.kind())?;
            let session = source
                .company
                .support_sessions
                .iter_mut()
                .find(|s| &s.id == id)
                .ok_or_else(|| not_found(ItemKind::SupportSession, id))?;
            if !session.is_open_at(at) {
                return Err(conflict("/id", format!("support session `{id}` is already over")));
            }
            let before = json(session);
            session.closed_at = Some(at);
            let (user, after) = (session.user.clone(), json(session));
            // While the session was open nobody could touch this membership: it is the session's.
            take(&mut source.memberships, |m| m.user == user);
            Ok(Edit { before, after, touched: user_principal(&user).map(|p| vec![p]) })
        }
        Change::AddUser { .. }
        | Change::RemoveCompany { .. }
        | Change::RecordSupportAccess { .. }
        | Change::PublishPlan { .. }
        | Change::SetPassword { .. }
        | Change::DisableUser { .. }
        | Change::RevokeSession { .. }
        | Change::RotateKeys { .. }
        | Change::PutServiceClient { .. }
        | Change::RemoveServiceClient { .. } => whole(None, None),
    }
}
