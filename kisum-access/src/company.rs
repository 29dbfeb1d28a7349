//! One company's partition of the model, compiled for evaluation: custom roles, memberships with their
//! role and restriction bitsets, agents, delegations indexed by delegate, and the entitlement timeline.
//!
//! A partition is immutable. Writes build a new one from the previous one's documents; readers keep
//! whichever partition they loaded. It knows nothing of other companies.
//!
//! The layout is what a cold check pays for, one cache miss at a time (BENCHMARKS.md): the partition's
//! first lines hold its id (inline when short), the pointers a check follows and, for companies of up to
//! [`INLINE_MEMBERS`] members, the member index itself; a member row holds everything a check reads about
//! the member (its id inline when short, status, expiry, role bitset, its first roles). So a check reads
//! the directory's slot, the partition's head, one member row and one entitlement segment, and the last
//! two in parallel. The documents a write edits are not kept: [`Company::documents`] rebuilds them from
//! the compiled partition (only the texts a compiled form loses — grant and restriction patterns — are
//! kept beside it).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use kisum_entitlements::{BitSet, CompanyId, CompanyPlans, Idx, Issues, Item, Source, Timestamp};

use crate::catalog::{AccessCatalog, Role, RoleIx, clip, compile_roles};
use crate::doc::{
    AgentDoc, CompanyDoc, DelegationDoc, MembershipDoc, MembershipStatus, PrincipalDoc, ResourceDoc, RoleDoc,
};
use crate::ids::{AgentId, DelegationId, Principal, ResourceId, ResourceKind, ResourceRef, UserId};

/// The longest a delegation may last: 90 days.
pub const MAX_DELEGATION_SECONDS: i64 = 90 * 24 * 3600;

/// Companies with at most this many members keep their member index inside the partition's own
/// allocation (no pointer to follow); larger ones keep it in a table of its own.
pub(crate) const INLINE_MEMBERS: usize = 24;
/// Slots of the inline member index: a power of two with room to spare at [`INLINE_MEMBERS`].
const INLINE_SLOTS: usize = 32;
/// Entitlement boundaries kept inline; a company with more keeps them in a table of its own.
const INLINE_BOUNDARIES: usize = 4;

/// The hash of member and company ids: foldhash, seeded once per process (the tables it indexes never
/// leave the process), so that ids chosen to collide cannot be prepared in advance.
pub(crate) fn hash_id(text: &str) -> u64 {
    static STATE: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    STATE.get_or_init(foldhash::fast::RandomState::default).hash_one(text)
}

/// An id kept inline when it is at most 23 bytes (almost every id), or else in a side table.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Name {
    /// Byte length; more than 23 means the text is in the side table, from the offset in `bytes[..4]`.
    len: u8,
    bytes: [u8; 23],
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Name").field("len", &self.len).finish_non_exhaustive()
    }
}

impl Name {
    const INLINE: usize = 23;

    /// Stores `text` inline, or appends it to `long` (ids are at most 64 bytes, so the length fits).
    fn new(text: &str, long: &mut String) -> Name {
        let mut bytes = [0u8; Name::INLINE];
        let len = u8::try_from(text.len()).unwrap_or(u8::MAX);
        match bytes.get_mut(..text.len()) {
            Some(inline) => inline.copy_from_slice(text.as_bytes()),
            None => {
                let offset = u32::try_from(long.len()).unwrap_or(u32::MAX).to_le_bytes();
                if let Some(head) = bytes.get_mut(..4) {
                    head.copy_from_slice(&offset);
                }
                long.push_str(text);
            }
        }
        Name { len, bytes }
    }

    /// The text; `long` is the side table it was stored with.
    #[inline]
    fn as_str<'a>(&'a self, long: &'a str) -> &'a str {
        let len = usize::from(self.len);
        let bytes = match self.bytes.get(..len) {
            Some(inline) => inline,
            None => {
                let mut offset = [0u8; 4];
                offset.copy_from_slice(self.bytes.get(..4).unwrap_or(&[0; 4]));
                let start = u32::from_le_bytes(offset) as usize;
                long.as_bytes().get(start..start + len).unwrap_or_default()
            }
        };
        // INVARIANT: the bytes were copied whole from a `&str` (inline, or a whole `push_str` to `long`).
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

/// A compiled membership: one row of the company's member table, everything a check reads about it.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    /// Everything its roles grant, inheritance closed.
    pub role_bits: BitSet,
    name: Name,
    /// Meaningful only with `has_expiry`.
    expires_at: Timestamp,
    /// The first two roles; the others from `more_roles` in the company's role pool.
    roles: [RoleIx; 2],
    more_roles: u32,
    /// Its incoming delegations: `incoming_len` entries from `incoming` in the company's pool.
    incoming: u32,
    incoming_len: u32,
    /// Its restrictions: an index into the company's restriction sets (0: none).
    restrict: u32,
    roles_len: u16,
    pub status: MembershipStatus,
    has_expiry: bool,
}

impl Membership {
    /// Status `active` and before `expires_at`.
    #[inline]
    pub fn is_active_at(&self, t: Timestamp) -> bool {
        self.status == MembershipStatus::Active && (!self.has_expiry || t < self.expires_at)
    }

    /// The expiry, if any.
    #[inline]
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.has_expiry.then_some(self.expires_at)
    }
}

/// A set of restriction patterns, as written and compiled.
#[derive(Debug, Clone)]
struct Restrictions {
    texts: Box<[String]>,
    bits: BitSet,
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
    /// Its grants as written.
    grants: Box<[String]>,
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

    fn to_doc(&self, company: &str) -> DelegationDoc {
        let principal = |p: &Principal| match p {
            Principal::User(u) => PrincipalDoc::User(u.to_string()),
            Principal::Agent(a) => PrincipalDoc::Agent(a.to_string()),
        };
        DelegationDoc {
            id: self.id.to_string(),
            company: company.to_owned(),
            from: PrincipalDoc::User(self.from.to_string()),
            to: principal(&self.to),
            grants: self.grants.to_vec(),
            resources: self.resources.as_ref().map(|list| {
                list.iter()
                    .map(|r| ResourceDoc {
                        company: r.company.to_string(),
                        kind: r.kind.to_string(),
                        id: r.id.to_string(),
                    })
                    .collect()
            }),
            not_before: self.not_before,
            expires_at: self.expires_at,
            redelegable: self.redelegable,
            revoked_at: self.revoked_at,
        }
    }
}

/// What the check path reads of an entitlement segment: per-permission masks.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// Permissions whose module is entitled.
    pub module_ok: BitSet,
    /// Permissions whose module and feature (if any) are entitled.
    pub entitled: BitSet,
}

/// A company's custom roles, as written and compiled; shared between companies that define the same
/// ones (a world loader compiles each distinct set once).
#[derive(Debug)]
pub(crate) struct CustomRoles {
    docs: Vec<RoleDoc>,
    pub roles: Vec<Role>,
    /// The catalog's system role ids, so that a partition can write its documents on its own.
    system: Vec<crate::ids::RoleId>,
}

/// Compiled custom role sets by their documents, shared across the companies of one load.
pub(crate) type RoleCache = HashMap<Vec<RoleDoc>, Arc<CustomRoles>>;

/// What the compilation of one company needs only while it runs, kept from one company to the next
/// of a load: a load of millions of companies then allocates only what the partitions keep (freeing
/// millions of temporaries in a heap of gigabytes costs the allocator more than the compilation).
#[derive(Default)]
pub(crate) struct Scratch {
    drafts: Vec<Draft>,
    roles_of: Vec<RoleIx>,
    incoming: Vec<(u32, u32)>,
    index: Vec<u64>,
    boundaries: Vec<Timestamp>,
    sources: Vec<Option<Source>>,
    /// Compiled custom role sets, by their documents.
    pub roles: RoleCache,
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

/// A membership's roles, status and expiry ([`Company::membership_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipSummary {
    /// Role ids, in membership order.
    pub roles: Vec<String>,
    /// Its status.
    pub status: crate::doc::MembershipStatus,
    /// Its expiry, if any.
    pub expires_at: Option<Timestamp>,
}

/// The documents of one company, borrowed from wherever they are (a world file, an edited source).
pub(crate) struct SourceRef<'a> {
    pub company: &'a CompanyDoc,
    pub memberships: Vec<&'a MembershipDoc>,
    pub agents: Vec<&'a AgentDoc>,
    pub delegations: Vec<&'a DelegationDoc>,
}

impl<'a> SourceRef<'a> {
    /// Borrows an owned source.
    pub fn of(source: &'a CompanySource) -> SourceRef<'a> {
        SourceRef {
            company: &source.company,
            memberships: source.memberships.iter().collect(),
            agents: source.agents.iter().collect(),
            delegations: source.delegations.iter().collect(),
        }
    }
}

/// Where the documents of a source sit in the file they came from, for error paths.
pub(crate) struct SourcePaths<'a> {
    pub company: &'a str,
    pub memberships: &'a [usize],
    pub agents: &'a [usize],
    pub delegations: &'a [usize],
}

/// A compiled company partition.
///
/// `repr(C)` keeps what a check reads in the partition's first lines: the id, the pointers to the member
/// rows and segments, the first boundaries, and the inline member index.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Company {
    // Read by every check.
    key: Name,
    pub(crate) members: Box<[Membership]>,
    segments: Box<[Segment]>,
    /// Slots `(hash >> 32) << 32 | (row + 1)`, 0 when free; empty when the index is inline.
    index_heap: Box<[u64]>,
    n_boundaries: u32,
    boundaries_inline: [Timestamp; INLINE_BOUNDARIES],
    /// The inline member index (see `index_heap`).
    index_inline: [u64; INLINE_SLOTS],
    // Read by delegation chains, explanations and writes.
    boundaries_heap: Box<[Timestamp]>,
    pub(crate) id: CompanyId,
    /// Ids longer than [`Name::INLINE`] bytes, concatenated.
    long_names: Box<str>,
    roles: Arc<CustomRoles>,
    /// Roles of memberships with more than two, concatenated.
    role_pool: Box<[RoleIx]>,
    /// Incoming delegations of the members, concatenated.
    incoming_pool: Box<[u32]>,
    /// Index 0 is the empty set.
    restrictions: Box<[Restrictions]>,
    /// By segment, the first source of each module then of each feature, for explanations: one table,
    /// so that an allow finds them without following a pointer per segment.
    sources: Box<[Option<Source>]>,
    pub(crate) plans: CompanyPlans,
    /// The company document less its roles (kept in `roles`).
    pub(crate) doc: Box<CompanyDoc>,
    pub(crate) agents: Vec<AgentId>,
    pub(crate) delegations: Vec<Delegation>,
    /// Delegations to agents, by agent; delegations to members are listed in their membership, and those
    /// to users without a membership confer nothing, so they are not indexed.
    incoming_agents: Vec<(AgentId, Vec<u32>)>,
    /// Bumped by every write to the company.
    pub(crate) version: u64,
    /// The version of the last write that could change every principal's access.
    pub(crate) epoch: u64,
    /// The version of the last write that could change one principal's access.
    pub(crate) principal_versions: HashMap<Principal, u64>,
    /// [`Company::source`]'s documents, rebuilt on first use.
    source: OnceLock<Box<CompanySource>>,
}

fn u32_of(i: usize) -> u32 {
    // INVARIANT: a company holds far fewer than 2^32 items.
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// Where a document sits in its file, for error paths: formatted only when a problem is recorded.
#[derive(Clone, Copy)]
struct At<'a> {
    list: &'static str,
    paths: &'a [usize],
    i: usize,
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/{}/{}", self.list, self.paths.get(self.i).copied().unwrap_or(self.i))
    }
}

fn at<'a>(paths: &'a [usize], i: usize, list: &'static str) -> At<'a> {
    At { list, paths, i }
}

/// An index slot: the hash's high half and the row, plus one (0 marks a free slot).
#[inline]
fn slot(hash: u64, row: usize) -> u64 {
    (hash >> 32) << 32 | u64::from(u32_of(row + 1))
}

/// A member being compiled, before the rows are laid out.
struct Draft {
    name: Name,
    status: MembershipStatus,
    expires_at: Option<Timestamp>,
    /// Its roles: `roles_len` entries from `roles` in the builder's role list.
    roles: u32,
    roles_len: u16,
    role_bits: BitSet,
    restrict: u32,
}

/// `…/grants` under a document's path.
struct GrantsPath<'a>(At<'a>);

impl std::fmt::Display for GrantsPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/grants", self.0)
    }
}

/// The compiler's state for one company.
struct Builder<'c> {
    cat: &'c AccessCatalog,
    id: CompanyId,
    roles: Arc<CustomRoles>,
    long_names: String,
    drafts: Vec<Draft>,
    /// The roles of every draft, concatenated.
    roles_of: Vec<RoleIx>,
    /// (row, delegation) for every delegation to a member.
    incoming: Vec<(u32, u32)>,
    /// Grows with the drafts: the final index is laid out once they are all known.
    index: Vec<u64>,
    restrictions: Vec<Restrictions>,
    agents: Vec<AgentId>,
    delegations: Vec<Delegation>,
    incoming_agents: Vec<(AgentId, Vec<u32>)>,
}

impl Builder<'_> {
    fn find(&self, user: &str) -> Option<usize> {
        find_slot(&self.index, user, |row| self.drafts.get(row).map(|d| d.name.as_str(&self.long_names)))
    }

    fn role_ref(&self, id: &str) -> Option<RoleIx> {
        if let Some(i) = self.roles.roles.iter().position(|r| r.id.as_str() == id) {
            return Some(RoleIx::Custom(u32_of(i)));
        }
        self.cat.system_role(id).map(|(i, _)| RoleIx::System(i))
    }

    fn role(&self, r: RoleIx) -> Option<&Role> {
        match r {
            RoleIx::System(i) => self.cat.system_roles().get(i as usize),
            RoleIx::Custom(i) => self.roles.roles.get(i as usize),
        }
    }

    fn add_membership(
        &mut self,
        doc: &MembershipDoc,
        path: At<'_>,
        user_exists: &dyn Fn(&str) -> bool,
        issues: &mut Issues,
    ) {
        if !kisum_entitlements::is_id(&doc.user)
            && let Err(e) = UserId::parse(&doc.user)
        {
            return issues.push(format!("{path}/user"), e.to_string());
        }
        let user = doc.user.as_str();
        if !user_exists(user) {
            issues.push(format!("{path}/user"), format!("unknown user `{user}`"));
        }
        if self.find(user).is_some() {
            return issues.push_conflict(
                format!("{path}/user"),
                format!("user `{user}` already has a membership in `{}`", self.id),
            );
        }
        let mut role_bits = BitSet::new(self.cat.permission_count());
        let first_role = u32_of(self.roles_of.len());
        for (j, r) in doc.roles.iter().enumerate() {
            match self.role_ref(r) {
                Some(rr) => {
                    if let Some(role) = self.role(rr) {
                        role_bits.union_with(&role.closure);
                    }
                    self.roles_of.push(rr);
                }
                None => issues.push(format!("{path}/roles/{j}"), format!("unknown role `{}`", clip(r))),
            }
        }
        let restrict = if doc.restrictions.is_empty() {
            0
        } else if let Some(ix) = self.restrictions.iter().position(|r| *r.texts == *doc.restrictions) {
            u32_of(ix)
        } else {
            let bits = self.cat.patterns(&doc.restrictions, &format!("{path}/restrictions"), issues);
            self.restrictions.push(Restrictions { texts: doc.restrictions.clone().into_boxed_slice(), bits });
            u32_of(self.restrictions.len() - 1)
        };
        let name = Name::new(user, &mut self.long_names);
        let row = self.drafts.len();
        self.drafts.push(Draft {
            name,
            status: doc.status,
            expires_at: doc.expires_at,
            roles: first_role,
            roles_len: u16::try_from(self.roles_of.len() - first_role as usize).unwrap_or(u16::MAX),
            role_bits,
            restrict,
        });
        if (self.drafts.len() + 1) * 4 > self.index.len() * 3 {
            self.index = layout_index(&self.drafts, &self.long_names, self.index.len() * 2);
        } else {
            insert_slot(&mut self.index, hash_id(user), row);
        }
    }

    fn add_delegation(
        &mut self,
        doc: &DelegationDoc,
        path: At<'_>,
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
        let grants_path = GrantsPath(path);
        let mut grant_bits = self.cat.patterns(&doc.grants, &grants_path, issues);
        grant_bits.intersect_with(self.cat.delegable());
        let (Some(id), Some(from), Some(to)) = (id, from, to) else { return };
        if !ok {
            return;
        }
        let index = u32_of(self.delegations.len());
        match &to {
            Principal::User(user) => {
                if let Some(row) = self.find(user.as_str()) {
                    self.incoming.push((u32_of(row), index));
                }
            }
            Principal::Agent(agent) => match self.incoming_agents.iter_mut().find(|(a, _)| a == agent) {
                Some((_, list)) => list.push(index),
                None => self.incoming_agents.push((agent.clone(), vec![index])),
            },
        }
        self.delegations.push(Delegation {
            id,
            from_member: self.find(from.as_str()).map(u32_of),
            from,
            to,
            grant_bits,
            grants: doc.grants.clone().into_boxed_slice(),
            resources,
            not_before: doc.not_before,
            expires_at: doc.expires_at,
            revoked_at: doc.revoked_at,
            redelegable: doc.redelegable,
        });
    }
}

/// Finds the row whose id is `user` in an index; `name` gives a row's id.
#[inline]
fn find_slot<'a>(index: &[u64], user: &str, name: impl Fn(usize) -> Option<&'a str>) -> Option<usize> {
    let mask = index.len().checked_sub(1)?;
    let hash = hash_id(user);
    let tag = hash >> 32;
    let mut i = hash as usize & mask;
    for _ in 0..index.len() {
        let s = *index.get(i)?;
        if s == 0 {
            return None;
        }
        let row = (s & 0xffff_ffff) as usize - 1;
        if s >> 32 == tag && name(row) == Some(user) {
            return Some(row);
        }
        i = (i + 1) & mask;
    }
    None
}

fn insert_slot(index: &mut [u64], hash: u64, row: usize) {
    let Some(mask) = index.len().checked_sub(1) else { return };
    let mut i = hash as usize & mask;
    for _ in 0..index.len() {
        match index.get_mut(i) {
            Some(s) if *s == 0 => {
                *s = slot(hash, row);
                return;
            }
            _ => i = (i + 1) & mask,
        }
    }
}

/// An index of `slots` slots (a power of two) over the drafts.
fn layout_index(drafts: &[Draft], long_names: &str, slots: usize) -> Vec<u64> {
    let mut index = vec![0u64; slots.max(INLINE_SLOTS)];
    for (row, d) in drafts.iter().enumerate() {
        insert_slot(&mut index, hash_id(d.name.as_str(long_names)), row);
    }
    index
}

impl Company {
    /// Compiles a company from its source documents, recording every problem found in `issues`.
    /// `user_exists` answers whether a user id is declared (users are global). `roles` shares compiled
    /// custom roles between companies that define the same ones.
    pub(crate) fn compile(
        cat: &AccessCatalog,
        source: &SourceRef<'_>,
        paths: &SourcePaths<'_>,
        user_exists: &dyn Fn(&str) -> bool,
        issues: &mut Issues,
        scratch: &mut Scratch,
    ) -> Option<Company> {
        let cpath = paths.company;
        let id = match CompanyId::parse(&source.company.id) {
            Ok(id) => id,
            Err(e) => {
                issues.push(format!("{cpath}/id"), e.to_string());
                return None;
            }
        };
        let roles = custom_roles(cat, &source.company.roles, cpath, issues, &mut scratch.roles);
        let plans = CompanyPlans::compile(
            cat.commercial(),
            &source.company.subscriptions,
            &source.company.overrides,
            cpath,
            issues,
        );
        let mut index = std::mem::take(&mut scratch.index);
        index.clear();
        index.resize((source.memberships.len() * 4 / 3 + 1).next_power_of_two().max(INLINE_SLOTS), 0);
        let mut b = Builder {
            cat,
            id,
            roles,
            long_names: String::new(),
            drafts: std::mem::take(&mut scratch.drafts),
            roles_of: std::mem::take(&mut scratch.roles_of),
            incoming: std::mem::take(&mut scratch.incoming),
            index,
            restrictions: vec![Restrictions { texts: Box::default(), bits: BitSet::new(cat.permission_count()) }],
            agents: Vec::with_capacity(source.agents.len()),
            delegations: Vec::with_capacity(source.delegations.len()),
            incoming_agents: Vec::new(),
        };
        for (i, doc) in source.agents.iter().enumerate() {
            let path = at(paths.agents, i, "agents");
            match AgentId::parse(&doc.id) {
                Ok(agent) if b.agents.contains(&agent) => {
                    issues.push_conflict(format!("{path}/id"), format!("duplicate agent `{agent}`"));
                }
                Ok(agent) => b.agents.push(agent),
                Err(e) => issues.push(format!("{path}/id"), e.to_string()),
            }
        }
        for (i, doc) in source.memberships.iter().enumerate() {
            b.add_membership(doc, at(paths.memberships, i, "memberships"), user_exists, issues);
        }
        for (i, doc) in source.delegations.iter().enumerate() {
            b.add_delegation(doc, at(paths.delegations, i, "delegations"), user_exists, issues);
        }
        let company = Company::lay_out(&mut b, source.company, plans, scratch);
        // The buffers go back for the next company, emptied but with their capacity.
        b.drafts.clear();
        b.roles_of.clear();
        b.incoming.clear();
        scratch.drafts = b.drafts;
        scratch.roles_of = b.roles_of;
        scratch.incoming = b.incoming;
        scratch.index = b.index;
        Some(company)
    }

    /// Lays the compiled parts out as a partition.
    fn lay_out(b: &mut Builder<'_>, doc: &CompanyDoc, plans: CompanyPlans, scratch: &mut Scratch) -> Company {
        let cat = b.cat;
        let mut role_pool = Vec::new();
        // Delegations by delegate row, each row's in delegation order (the sort is stable).
        b.incoming.sort_by_key(|(row, _)| *row);
        let incoming_pool: Box<[u32]> = b.incoming.iter().map(|(_, d)| *d).collect();
        let mut next_incoming = 0usize;
        let members: Box<[Membership]> = b
            .drafts
            .iter()
            .enumerate()
            .map(|(row, d)| {
                let start = d.roles as usize;
                let roles = b.roles_of.get(start..start + usize::from(d.roles_len)).unwrap_or_default();
                let first = |k: usize| roles.get(k).copied().unwrap_or(RoleIx::System(0));
                let more_roles = u32_of(role_pool.len());
                role_pool.extend(roles.iter().skip(2).copied());
                let incoming = next_incoming;
                while b.incoming.get(next_incoming).is_some_and(|(r, _)| *r as usize == row) {
                    next_incoming += 1;
                }
                Membership {
                    role_bits: d.role_bits.clone(),
                    name: d.name,
                    expires_at: d.expires_at.unwrap_or(Timestamp::UNIX_EPOCH),
                    roles: [first(0), first(1)],
                    more_roles,
                    incoming: u32_of(incoming),
                    incoming_len: u32_of(next_incoming - incoming),
                    restrict: d.restrict,
                    roles_len: d.roles_len,
                    status: d.status,
                    has_expiry: d.expires_at.is_some(),
                }
            })
            .collect();
        let (index_inline, index_heap) = if b.drafts.len() <= INLINE_MEMBERS {
            let mut inline = [0u64; INLINE_SLOTS];
            for (row, d) in b.drafts.iter().enumerate() {
                insert_slot(&mut inline, hash_id(d.name.as_str(&b.long_names)), row);
            }
            (inline, Box::default())
        } else {
            ([0u64; INLINE_SLOTS], Box::from(b.index.as_slice()))
        };
        let boundaries = &mut scratch.boundaries;
        boundaries.clear();
        boundaries.extend(plans.boundaries());
        boundaries.sort_unstable();
        boundaries.dedup();
        let sources = &mut scratch.sources;
        sources.clear();
        let starts = std::iter::once(Timestamp::from_unix(i64::MIN)).chain(boundaries.iter().copied());
        let segments: Box<[Segment]> = starts.map(|t| segment(cat, &plans, t, sources)).collect();
        let mut boundaries_inline = [Timestamp::UNIX_EPOCH; INLINE_BOUNDARIES];
        for (slot, t) in boundaries_inline.iter_mut().zip(boundaries.iter()) {
            *slot = *t;
        }
        let boundaries_heap =
            if boundaries.len() > INLINE_BOUNDARIES { Box::from(boundaries.as_slice()) } else { Box::default() };
        let mut long_names = std::mem::take(&mut b.long_names);
        let key = Name::new(b.id.as_str(), &mut long_names);
        let company_doc = CompanyDoc {
            id: doc.id.clone(),
            roles: Vec::new(),
            subscriptions: doc.subscriptions.clone(),
            overrides: doc.overrides.clone(),
            support_sessions: doc.support_sessions.clone(),
        };
        Company {
            key,
            members,
            segments,
            index_heap,
            n_boundaries: u32_of(boundaries.len()),
            boundaries_inline,
            index_inline,
            boundaries_heap,
            id: b.id.clone(),
            long_names: long_names.into_boxed_str(),
            roles: b.roles.clone(),
            role_pool: role_pool.into_boxed_slice(),
            incoming_pool,
            restrictions: std::mem::take(&mut b.restrictions).into_boxed_slice(),
            sources: Box::from(sources.as_slice()),
            plans,
            doc: Box::new(company_doc),
            agents: std::mem::take(&mut b.agents),
            delegations: std::mem::take(&mut b.delegations),
            incoming_agents: std::mem::take(&mut b.incoming_agents),
            version: 0,
            epoch: 0,
            principal_versions: HashMap::new(),
            source: OnceLock::new(),
        }
    }

    /// Whether this partition is the company `id`: on the check path, compared inline when the id is
    /// short.
    #[inline]
    pub(crate) fn is(&self, id: &str) -> bool {
        self.key.as_str(&self.long_names) == id
    }

    /// The compiled role a reference names.
    pub(crate) fn role<'a>(&'a self, cat: &'a AccessCatalog, r: RoleIx) -> Option<&'a Role> {
        match r {
            RoleIx::System(i) => cat.system_roles().get(i as usize),
            RoleIx::Custom(i) => self.roles.roles.get(i as usize),
        }
    }

    /// Offers this partition's compiled custom roles to the compilation of its next version.
    pub(crate) fn share_roles(&self, cache: &mut RoleCache) {
        cache.insert(self.roles.docs.clone(), self.roles.clone());
    }

    /// The custom roles.
    pub(crate) fn custom_roles(&self) -> &[Role] {
        &self.roles.roles
    }

    /// The number of entitlement boundaries.
    #[inline]
    fn boundaries(&self) -> &[Timestamp] {
        let n = self.n_boundaries as usize;
        match self.boundaries_inline.get(..n) {
            Some(inline) => inline,
            None => &self.boundaries_heap,
        }
    }

    /// The index of the entitlement segment in force at `t`, and the next boundary after it.
    #[inline]
    pub(crate) fn segment_at(&self, t: Timestamp) -> (usize, Option<Timestamp>) {
        let boundaries = self.boundaries();
        let k = boundaries.partition_point(|b| *b <= t);
        (k, boundaries.get(k).copied())
    }

    /// The entitlement segment in force at `t`.
    #[inline]
    pub(crate) fn segment(&self, t: Timestamp) -> Option<&Segment> {
        self.segments.get(self.segment_at(t).0)
    }

    /// Segment `k`.
    #[inline]
    pub(crate) fn segment_ix(&self, k: usize) -> Option<&Segment> {
        self.segments.get(k)
    }

    /// The first source of a module (`Item::Module`) or feature (`Item::Feature`) in segment `k`.
    #[inline]
    pub(crate) fn source_of(&self, cat: &AccessCatalog, k: usize, item: Item) -> Option<Source> {
        let modules = cat.commercial().module_count();
        let stride = modules + cat.commercial().feature_count();
        let i = match item {
            Item::Module(m) => m.get(),
            Item::Feature(f) => modules + f.get(),
            Item::Limit(_) => return None,
        };
        self.sources.get(k * stride + i).copied().flatten()
    }

    /// The roles (by id, in membership order), status and expiry of `user`'s membership, if it has one:
    /// what a sign-in lists, without rebuilding the company's documents.
    pub fn membership_of(&self, cat: &AccessCatalog, user: &UserId) -> Option<MembershipSummary> {
        let m = self.member(user.as_str())?;
        let roles = self.roles_of(m).filter_map(|r| self.role(cat, r)).map(|r| r.id.to_string()).collect();
        Some(MembershipSummary { roles, status: m.status, expires_at: m.expires_at() })
    }

    /// The membership of `user`, if any.
    #[inline]
    pub(crate) fn member(&self, user: &str) -> Option<&Membership> {
        self.members.get(self.member_row(user)?)
    }

    /// The row of `user`'s membership, if any.
    #[inline]
    pub(crate) fn member_row(&self, user: &str) -> Option<usize> {
        let index: &[u64] = if self.index_heap.is_empty() { &self.index_inline } else { &self.index_heap };
        find_slot(index, user, |row| self.members.get(row).map(|m| m.name.as_str(&self.long_names)))
    }

    /// The user id of a member.
    pub(crate) fn user_of<'a>(&'a self, m: &'a Membership) -> &'a str {
        m.name.as_str(&self.long_names)
    }

    /// The roles of a membership, in membership order.
    pub(crate) fn roles_of<'a>(&'a self, m: &'a Membership) -> impl Iterator<Item = RoleIx> + 'a {
        let n = usize::from(m.roles_len);
        let start = m.more_roles as usize;
        let more = self.role_pool.get(start..start + n.saturating_sub(2)).unwrap_or_default();
        m.roles.iter().take(n).chain(more).copied()
    }

    /// What the restrictions of a membership match.
    #[inline]
    pub(crate) fn restrict_bits(&self, m: &Membership) -> Option<&BitSet> {
        if m.restrict == 0 {
            return None;
        }
        self.restrictions.get(m.restrict as usize).map(|r| &r.bits)
    }

    /// Whether a restriction of the membership matches `p`.
    #[inline]
    pub(crate) fn restricts(&self, m: &Membership, p: usize) -> bool {
        self.restrict_bits(m).is_some_and(|b| b.contains(p))
    }

    /// The delegations whose delegate is member `m`.
    #[inline]
    pub(crate) fn incoming_of(&self, m: &Membership) -> &[u32] {
        let start = m.incoming as usize;
        self.incoming_pool.get(start..start + m.incoming_len as usize).unwrap_or_default()
    }

    /// The delegations whose delegate is `to` (none for a user without a membership).
    pub(crate) fn incoming(&self, to: &Principal) -> &[u32] {
        match to {
            Principal::User(user) => self.member(user.as_str()).map_or(&[], |m| self.incoming_of(m)),
            Principal::Agent(agent) => {
                self.incoming_agents.iter().find(|(a, _)| a == agent).map_or(&[], |(_, list)| list.as_slice())
            }
        }
    }

    /// Whether `agent` is registered to the company.
    pub(crate) fn has_agent(&self, agent: &AgentId) -> bool {
        self.agents.contains(agent)
    }

    /// The company id.
    pub fn id(&self) -> &CompanyId {
        &self.id
    }

    /// The source documents, rebuilt from the partition on the first call and kept with it from then
    /// on. A partition does not keep its documents otherwise (they are most of its size): to read them
    /// without keeping them, use [`documents`](Company::documents).
    pub fn source(&self) -> &CompanySource {
        self.source.get_or_init(|| Box::new(self.documents()))
    }

    /// The source documents, rebuilt from the partition: equal to the documents it was compiled from
    /// (what a write edits and what an export writes out).
    pub fn documents(&self) -> CompanySource {
        let company = self.id.as_str();
        let mut doc = CompanyDoc::clone(&self.doc);
        doc.roles = self.roles.docs.clone();
        let memberships = self
            .members
            .iter()
            .map(|m| MembershipDoc {
                user: self.user_of(m).to_owned(),
                company: company.to_owned(),
                status: m.status,
                roles: self.roles_of(m).filter_map(|r| self.role_id(r)).map(|id| id.to_string()).collect(),
                expires_at: m.expires_at(),
                restrictions: self.restrictions.get(m.restrict as usize).map(|r| r.texts.to_vec()).unwrap_or_default(),
            })
            .collect();
        CompanySource {
            company: doc,
            memberships,
            agents: self.agents.iter().map(|a| AgentDoc { id: a.to_string(), company: company.to_owned() }).collect(),
            delegations: self.delegations.iter().map(|d| d.to_doc(company)).collect(),
        }
    }

    /// The id of a role, system or custom.
    fn role_id(&self, r: RoleIx) -> Option<&crate::ids::RoleId> {
        match r {
            RoleIx::System(i) => self.roles.system.get(i as usize),
            RoleIx::Custom(i) => self.roles.roles.get(i as usize).map(|r| &r.id),
        }
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
        let users = self.members.iter().filter_map(|m| UserId::parse(self.user_of(m)).ok().map(Principal::User));
        users.chain(self.agents.iter().map(|a| Principal::Agent(a.clone())))
    }

    /// Whether `user` has a membership that holds the system role `owner` directly and is active at `t`.
    pub(crate) fn active_owner_count(&self, cat: &AccessCatalog, t: Timestamp) -> usize {
        let Some((owner, _)) = cat.system_role("owner") else { return 0 };
        self.members
            .iter()
            .filter(|m| m.is_active_at(t) && self.roles_of(m).any(|r| r == RoleIx::System(owner)))
            .count()
    }

    /// Memberships active at `t` (they count against `core.seats`).
    pub(crate) fn active_member_count(&self, t: Timestamp) -> u64 {
        self.members.iter().filter(|m| m.is_active_at(t)).count() as u64
    }
}

/// Compiles a company's custom roles, or takes them from `cache` when another company defined the same.
fn custom_roles(
    cat: &AccessCatalog,
    docs: &[RoleDoc],
    cpath: &str,
    issues: &mut Issues,
    cache: &mut RoleCache,
) -> Arc<CustomRoles> {
    if let Some(hit) = cache.get(docs) {
        return hit.clone();
    }
    let path = format!("{cpath}/roles");
    let mut own = Issues::new();
    let mut roles = compile_roles(cat, docs, &path, Some(cat.system_roles()), &mut own);
    if !own.is_empty() {
        // Rare (the company is rejected): compiled again to record the problems with their kinds.
        roles = compile_roles(cat, docs, &path, Some(cat.system_roles()), issues);
    }
    let system = cat.system_roles().iter().map(|r| r.id.clone()).collect();
    let compiled = Arc::new(CustomRoles { docs: docs.to_vec(), roles, system });
    // Only a set that compiled without a problem is shared: problems carry this company's paths.
    if own.is_empty() {
        cache.insert(docs.to_vec(), compiled.clone());
    }
    compiled
}

fn segment(cat: &AccessCatalog, plans: &CompanyPlans, t: Timestamp, sources: &mut Vec<Option<Source>>) -> Segment {
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
    sources.extend((0..commercial.module_count()).map(|m| first(Item::Module(Idx(u32_of(m))))));
    sources.extend((0..commercial.feature_count()).map(|f| first(Item::Feature(Idx(u32_of(f))))));
    Segment { module_ok, entitled }
}

/// Parses a resource document.
pub(crate) fn resource_ref(doc: &ResourceDoc) -> Result<ResourceRef, String> {
    Ok(ResourceRef {
        company: CompanyId::parse(&doc.company).map_err(|e| e.to_string())?,
        kind: ResourceKind::parse(&doc.kind).map_err(|e| e.to_string())?,
        id: ResourceId::parse(&doc.id).map_err(|e| e.to_string())?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// The sizes BENCHMARKS.md accounts for: a member row, and the partition head with its inline index.
    #[test]
    fn rows_and_heads_stay_compact() {
        assert_eq!(std::mem::size_of::<Membership>(), 120);
        assert!(std::mem::size_of::<Company>() <= 768, "{}", std::mem::size_of::<Company>());
    }

    #[test]
    fn names_inline_and_spilled_read_back() {
        let mut long = String::new();
        let short = Name::new("alice", &mut long);
        let spilled = Name::new(&"x".repeat(64), &mut long);
        let other = Name::new("bob-with-a-long-user-id-of-40-characters", &mut long);
        assert_eq!(short.as_str(&long), "alice");
        assert_eq!(spilled.as_str(&long), "x".repeat(64));
        assert_eq!(other.as_str(&long), "bob-with-a-long-user-id-of-40-characters");
        assert!(long.len() == 64 + 40);
    }
}
