//! A whole state loaded from a world file: validated, compiled, immutable. The [`Directory`](crate::Directory)
//! is the concurrent, writable form of the same state.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::sync::Arc;

use kisum_entitlements::{CompanyId, Issues, Timestamp};

use crate::catalog::{AccessCatalog, PermissionId, clip};
use crate::company::{Company, CompanySource, Scratch, SourcePaths, SourceRef};
use crate::doc::{CompanyDoc, UserDoc, WorldDoc};
use crate::error::AccessError;
use crate::eval::Decision;
use crate::ids::{Principal, ResourceRef, UserId};
use crate::query::{Access, decide};
use crate::users::UserSet;

type Fast = foldhash::fast::RandomState;

/// An immutable, validated world. `Send + Sync`; share it by `Arc`. Queries come from the [`Access`] trait.
#[derive(Debug, Clone)]
pub struct World {
    pub(crate) catalog: Arc<AccessCatalog>,
    pub(crate) companies: Vec<Arc<Company>>,
    pub(crate) company_ix: HashMap<CompanyId, usize, Fast>,
    pub(crate) users: UserSet,
    /// Ids of removed companies, sorted.
    pub(crate) retired: Vec<CompanyId>,
}

impl World {
    /// Parses and loads a world file.
    pub fn from_json(text: &str) -> Result<World, AccessError> {
        let doc: WorldDoc = serde_json::from_str(text).map_err(|e| AccessError::Malformed(e.to_string()))?;
        World::from_doc(&doc)
    }

    /// Validates every rule of the world format (scenarios/README.md) and compiles the world, or names
    /// every problem found (`VALIDATION_FAILED`, one field error per problem).
    pub fn from_doc(doc: &WorldDoc) -> Result<World, AccessError> {
        let mut issues = Issues::new();
        let catalog = AccessCatalog::compile(&doc.catalog, &mut issues);
        let mut users = UserSet::with_capacity(doc.users.len());
        for (i, u) in doc.users.iter().enumerate() {
            if let Err(e) = valid_user(&u.id) {
                issues.push(format!("/users/{i}/id"), e);
            } else if !users.insert(&u.id) {
                issues.push(format!("/users/{i}/id"), format!("duplicate user `{}`", u.id));
            }
        }
        users.shrink_to_fit();
        let grouped = group_by_company(doc, &mut issues);
        let user_exists = |u: &str| users.contains(u);
        let mut companies = Vec::with_capacity(grouped.groups.len());
        let mut scratch = Scratch::default();
        let empty = CompanyDoc::default();
        let mut source = SourceRef { company: &empty, memberships: vec![], agents: vec![], delegations: vec![] };
        let mut cpath = String::new();
        for group in &grouped.groups {
            cpath.clear();
            let _ = write!(cpath, "/companies/{}", group.index);
            let memberships = grouped.memberships.get(group.memberships.clone()).unwrap_or_default();
            let agents = grouped.agents.get(group.agents.clone()).unwrap_or_default();
            let delegations = grouped.delegations.get(group.delegations.clone()).unwrap_or_default();
            let paths = SourcePaths { company: &cpath, memberships, agents, delegations };
            // One set of borrowed lists, refilled for each company.
            source.company = group.doc;
            source.memberships.clear();
            source.memberships.extend(memberships.iter().filter_map(|&i| doc.memberships.get(i)));
            source.agents.clear();
            source.agents.extend(agents.iter().filter_map(|&i| doc.agents.get(i)));
            source.delegations.clear();
            source.delegations.extend(delegations.iter().filter_map(|&i| doc.delegations.get(i)));
            if let Some(company) = Company::compile(&catalog, &source, &paths, &user_exists, &mut issues, &mut scratch)
            {
                companies.push(Arc::new(company));
            }
        }
        let company_ix: HashMap<CompanyId, usize, Fast> =
            companies.iter().enumerate().map(|(i, c)| (c.id.clone(), i)).collect();
        let mut retired = Vec::with_capacity(doc.retired_companies.len());
        for (i, text) in doc.retired_companies.iter().enumerate() {
            match CompanyId::parse(text) {
                Ok(id) if company_ix.contains_key(&id) => {
                    issues.push(format!("/retired_companies/{i}"), format!("company `{id}` exists and is not retired"));
                }
                Ok(id) => retired.push(id),
                Err(e) => issues.push(format!("/retired_companies/{i}"), e.to_string()),
            }
        }
        if !issues.is_empty() {
            return Err(AccessError::Validation(issues.into_vec()));
        }
        retired.sort_unstable();
        retired.dedup();
        Ok(World { catalog: Arc::new(catalog), companies, company_ix, users, retired })
    }

    /// The world as a document, in the world file format.
    pub fn to_doc(&self) -> WorldDoc {
        let mut doc = to_doc(&self.catalog, self.users.iter(), self.companies.iter().map(|c| c.documents()));
        doc.retired_companies = self.retired.iter().map(ToString::to_string).collect();
        doc
    }

    /// Every company, in file order.
    pub fn companies(&self) -> impl Iterator<Item = &Company> {
        self.companies.iter().map(Arc::as_ref)
    }
}

impl Access for World {
    fn catalog(&self) -> Arc<AccessCatalog> {
        self.catalog.clone()
    }

    fn company(&self, id: &CompanyId) -> Option<Arc<Company>> {
        self.companies.get(*self.company_ix.get(id)?).cloned()
    }

    fn check(
        &self,
        principal: &Principal,
        company: &CompanyId,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        at: Timestamp,
    ) -> Decision {
        // No reference count touched: the world owns its partitions for as long as it is borrowed.
        let partition = self.company_ix.get(company).and_then(|&i| self.companies.get(i));
        decide(&self.catalog, partition.map(Arc::as_ref), principal, permission, resource, at)
    }
}

/// Checks a user id without keeping it (the set keeps the text).
fn valid_user(id: &str) -> Result<(), String> {
    if kisum_entitlements::is_id(id) {
        return Ok(());
    }
    UserId::parse(id).map(drop).map_err(|e| e.to_string())
}

pub(crate) fn to_doc<'a>(
    catalog: &AccessCatalog,
    users: impl Iterator<Item = &'a str>,
    sources: impl Iterator<Item = CompanySource>,
) -> WorldDoc {
    let mut doc = WorldDoc { catalog: catalog.doc().clone(), ..WorldDoc::default() };
    let mut users: Vec<UserDoc> = users.map(|u| UserDoc { id: u.to_owned() }).collect();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    doc.users = users;
    for source in sources {
        doc.companies.push(source.company);
        doc.memberships.extend(source.memberships);
        doc.agents.extend(source.agents);
        doc.delegations.extend(source.delegations);
    }
    doc
}

/// A company document and the indices, in the world file, of everything that belongs to it (ranges of
/// the flat lists of [`Grouped`]).
struct Group<'a> {
    index: usize,
    doc: &'a CompanyDoc,
    memberships: std::ops::Range<usize>,
    agents: std::ops::Range<usize>,
    delegations: std::ops::Range<usize>,
}

/// Every company's group, and the world file's indices of memberships, agents and delegations, sorted
/// by company (three flat lists, not three lists per company: a load of millions of companies makes no
/// allocation per company here).
struct Grouped<'a> {
    groups: Vec<Group<'a>>,
    memberships: Vec<usize>,
    agents: Vec<usize>,
    delegations: Vec<usize>,
}

/// Sorts item indices by owning group (a counting sort, stable); `owners[i]` is item `i`'s group, or
/// `u32::MAX` for none. Returns the sorted indices and each group's range.
fn bucket(owners: &[u32], groups: usize) -> (Vec<usize>, Vec<std::ops::Range<usize>>) {
    let mut starts = vec![0usize; groups + 1];
    for &g in owners {
        if let Some(n) = starts.get_mut(g as usize + 1) {
            *n += 1;
        }
    }
    for g in 0..groups {
        let before = starts.get(g).copied().unwrap_or(0);
        if let Some(n) = starts.get_mut(g + 1) {
            *n += before;
        }
    }
    let ranges = starts.windows(2).map(|w| w.first().copied().unwrap_or(0)..w.get(1).copied().unwrap_or(0)).collect();
    let mut next = starts;
    let mut sorted = vec![0usize; next.last().copied().unwrap_or(0)];
    for (i, &g) in owners.iter().enumerate() {
        if let Some(at) = next.get_mut(g as usize) {
            if let Some(slot) = sorted.get_mut(*at) {
                *slot = i;
            }
            *at += 1;
        }
    }
    (sorted, ranges)
}

/// Sorts memberships, agents and delegations under their companies, checking the world-wide rules:
/// unique company, agent and delegation ids, and references to existing companies.
fn group_by_company<'a>(doc: &'a WorldDoc, issues: &mut Issues) -> Grouped<'a> {
    let mut groups: Vec<Group<'a>> = Vec::with_capacity(doc.companies.len());
    let mut ix: HashMap<&str, u32, Fast> = HashMap::with_capacity_and_hasher(doc.companies.len(), Fast::default());
    for (i, c) in doc.companies.iter().enumerate() {
        if ix.contains_key(c.id.as_str()) {
            issues.push_conflict(format!("/companies/{i}/id"), format!("duplicate company `{}`", clip(&c.id)));
            continue;
        }
        ix.insert(c.id.as_str(), u32::try_from(groups.len()).unwrap_or(u32::MAX));
        groups.push(Group { index: i, doc: c, memberships: 0..0, agents: 0..0, delegations: 0..0 });
    }
    // Files list a company's items together: the previous item's company is looked up only once.
    let mut last: Option<(&str, u32)> = None;
    let mut owner = |company: &'a str, list: &str, i: usize, issues: &mut Issues| -> u32 {
        if let Some((c, g)) = last
            && c == company
        {
            return g;
        }
        match ix.get(company) {
            Some(&g) => {
                last = Some((company, g));
                g
            }
            None => {
                issues.push(format!("/{list}/{i}/company"), format!("unknown company `{}`", clip(company)));
                u32::MAX
            }
        }
    };
    let memberships: Vec<u32> =
        doc.memberships.iter().enumerate().map(|(i, m)| owner(&m.company, "memberships", i, issues)).collect();
    let mut agent_ids: HashSet<&str, Fast> = HashSet::with_capacity_and_hasher(doc.agents.len(), Fast::default());
    let mut agents = Vec::with_capacity(doc.agents.len());
    for (i, a) in doc.agents.iter().enumerate() {
        if !agent_ids.insert(a.id.as_str()) {
            issues.push_conflict(format!("/agents/{i}/id"), format!("duplicate agent `{}`", clip(&a.id)));
            agents.push(u32::MAX);
            continue;
        }
        agents.push(owner(&a.company, "agents", i, issues));
    }
    let mut delegation_ids: HashSet<&str, Fast> =
        HashSet::with_capacity_and_hasher(doc.delegations.len(), Fast::default());
    let mut delegations = Vec::with_capacity(doc.delegations.len());
    for (i, d) in doc.delegations.iter().enumerate() {
        if !delegation_ids.insert(d.id.as_str()) {
            issues.push_conflict(format!("/delegations/{i}/id"), format!("duplicate delegation `{}`", clip(&d.id)));
            delegations.push(u32::MAX);
            continue;
        }
        delegations.push(owner(&d.company, "delegations", i, issues));
    }
    let n = groups.len();
    let (memberships, m_ranges) = bucket(&memberships, n);
    let (agents, a_ranges) = bucket(&agents, n);
    let (delegations, d_ranges) = bucket(&delegations, n);
    for (((g, m), a), d) in groups.iter_mut().zip(m_ranges).zip(a_ranges).zip(d_ranges) {
        g.memberships = m;
        g.agents = a;
        g.delegations = d;
    }
    Grouped { groups, memberships, agents, delegations }
}
