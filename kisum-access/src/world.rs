//! A whole state loaded from a world file: validated, compiled, immutable. The [`Directory`](crate::Directory)
//! is the concurrent, writable form of the same state.

use std::collections::{HashMap, HashSet};
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
        let groups = group_by_company(doc, &mut issues);
        let user_exists = |u: &str| users.contains(u);
        let mut companies = Vec::with_capacity(groups.len());
        let mut scratch = Scratch::default();
        let empty = CompanyDoc::default();
        let mut source = SourceRef { company: &empty, memberships: vec![], agents: vec![], delegations: vec![] };
        let mut cpath = String::new();
        for group in &groups {
            cpath.clear();
            cpath.push_str("/companies/");
            cpath.push_str(&group.index.to_string());
            let paths = SourcePaths {
                company: &cpath,
                memberships: &group.memberships,
                agents: &group.agents,
                delegations: &group.delegations,
            };
            // One set of borrowed lists, refilled for each company.
            source.company = group.doc;
            source.memberships.clear();
            source.memberships.extend(group.memberships.iter().filter_map(|&i| doc.memberships.get(i)));
            source.agents.clear();
            source.agents.extend(group.agents.iter().filter_map(|&i| doc.agents.get(i)));
            source.delegations.clear();
            source.delegations.extend(group.delegations.iter().filter_map(|&i| doc.delegations.get(i)));
            if let Some(company) = Company::compile(&catalog, &source, &paths, &user_exists, &mut issues, &mut scratch)
            {
                companies.push(Arc::new(company));
            }
        }
        if !issues.is_empty() {
            return Err(AccessError::Validation(issues.into_vec()));
        }
        let company_ix = companies.iter().enumerate().map(|(i, c)| (c.id.clone(), i)).collect();
        Ok(World { catalog: Arc::new(catalog), companies, company_ix, users })
    }

    /// The world as a document, in the world file format.
    pub fn to_doc(&self) -> WorldDoc {
        to_doc(&self.catalog, self.users.iter(), self.companies.iter().map(|c| c.documents()))
    }

    /// Every company, in file order.
    pub fn companies(&self) -> impl Iterator<Item = &Company> {
        self.companies.iter().map(Arc::as_ref)
    }
}

impl Access for World {
    fn catalog(&self) -> &Arc<AccessCatalog> {
        &self.catalog
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

/// A company document and the indices, in the world file, of everything that belongs to it.
struct Group<'a> {
    index: usize,
    doc: &'a CompanyDoc,
    memberships: Vec<usize>,
    agents: Vec<usize>,
    delegations: Vec<usize>,
}

/// Sorts memberships, agents and delegations under their companies, checking the world-wide rules:
/// unique company, agent and delegation ids, and references to existing companies.
fn group_by_company<'a>(doc: &'a WorldDoc, issues: &mut Issues) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut ix: HashMap<&str, usize, Fast> = HashMap::with_capacity_and_hasher(doc.companies.len(), Fast::default());
    for (i, c) in doc.companies.iter().enumerate() {
        if ix.contains_key(c.id.as_str()) {
            issues.push_conflict(format!("/companies/{i}/id"), format!("duplicate company `{}`", clip(&c.id)));
            continue;
        }
        ix.insert(c.id.as_str(), groups.len());
        groups.push(Group { index: i, doc: c, memberships: vec![], agents: vec![], delegations: vec![] });
    }
    let place = |company: &str, path: String, issues: &mut Issues| -> Option<usize> {
        let found = ix.get(company).copied();
        if found.is_none() {
            issues.push(path, format!("unknown company `{}`", clip(company)));
        }
        found
    };
    // Files list a company's memberships together: the previous one's company is looked up only once.
    let mut last: Option<(&str, usize)> = None;
    for (i, m) in doc.memberships.iter().enumerate() {
        let found = match last {
            Some((company, g)) if company == m.company => Some(g),
            _ => place(&m.company, format!("/memberships/{i}/company"), issues),
        };
        if let Some(g) = found {
            last = Some((m.company.as_str(), g));
            if let Some(group) = groups.get_mut(g) {
                group.memberships.push(i);
            }
        }
    }
    let mut agent_ids: HashSet<&str, Fast> = HashSet::with_capacity_and_hasher(doc.agents.len(), Fast::default());
    for (i, a) in doc.agents.iter().enumerate() {
        if !agent_ids.insert(a.id.as_str()) {
            issues.push_conflict(format!("/agents/{i}/id"), format!("duplicate agent `{}`", clip(&a.id)));
            continue;
        }
        if let Some(g) = place(&a.company, format!("/agents/{i}/company"), issues).and_then(|g| groups.get_mut(g)) {
            g.agents.push(i);
        }
    }
    let mut delegation_ids: HashSet<&str, Fast> =
        HashSet::with_capacity_and_hasher(doc.delegations.len(), Fast::default());
    for (i, d) in doc.delegations.iter().enumerate() {
        if !delegation_ids.insert(d.id.as_str()) {
            issues.push_conflict(format!("/delegations/{i}/id"), format!("duplicate delegation `{}`", clip(&d.id)));
            continue;
        }
        if let Some(g) = place(&d.company, format!("/delegations/{i}/company"), issues).and_then(|g| groups.get_mut(g))
        {
            g.delegations.push(i);
        }
    }
    groups
}
