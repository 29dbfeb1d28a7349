//! A whole state loaded from a world file: validated, compiled, immutable. The [`Directory`](crate::Directory)
//! is the concurrent, writable form of the same state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kisum_entitlements::{CompanyId, Issues};

use crate::catalog::{AccessCatalog, clip};
use crate::company::{Company, CompanySource, SourcePaths};
use crate::doc::{CompanyDoc, UserDoc, WorldDoc};
use crate::error::AccessError;
use crate::ids::UserId;
use crate::query::Access;

/// An immutable, validated world. `Send + Sync`; share it by `Arc`. Queries come from the [`Access`] trait.
#[derive(Debug, Clone)]
pub struct World {
    pub(crate) catalog: Arc<AccessCatalog>,
    pub(crate) companies: Vec<Arc<Company>>,
    pub(crate) company_ix: HashMap<CompanyId, usize>,
    pub(crate) users: HashSet<UserId>,
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
        let mut users = HashSet::new();
        for (i, u) in doc.users.iter().enumerate() {
            match UserId::parse(&u.id) {
                Ok(id) if users.contains(&id) => {
                    issues.push(format!("/users/{i}/id"), format!("duplicate user `{id}`"))
                }
                Ok(id) => {
                    users.insert(id);
                }
                Err(e) => issues.push(format!("/users/{i}/id"), e.to_string()),
            }
        }
        let groups = group_by_company(doc, &mut issues);
        let user_exists = |u: &str| users.contains(u);
        let mut companies = Vec::with_capacity(groups.len());
        for group in groups {
            let paths = SourcePaths {
                company: format!("/companies/{}", group.index),
                memberships: &group.memberships,
                agents: &group.agents,
                delegations: &group.delegations,
            };
            let source = CompanySource {
                company: group.doc.clone(),
                memberships: group.memberships.iter().filter_map(|&i| doc.memberships.get(i)).cloned().collect(),
                agents: group.agents.iter().filter_map(|&i| doc.agents.get(i)).cloned().collect(),
                delegations: group.delegations.iter().filter_map(|&i| doc.delegations.get(i)).cloned().collect(),
            };
            if let Some(company) = Company::compile(&catalog, source, &paths, &user_exists, &mut issues) {
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
        to_doc(&self.catalog, self.users.iter(), self.companies.iter().map(|c| c.source()))
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
}

pub(crate) fn to_doc<'a>(
    catalog: &AccessCatalog,
    users: impl Iterator<Item = &'a UserId>,
    sources: impl Iterator<Item = &'a CompanySource>,
) -> WorldDoc {
    let mut doc = WorldDoc { catalog: catalog.doc().clone(), ..WorldDoc::default() };
    let mut users: Vec<UserDoc> = users.map(|u| UserDoc { id: u.to_string() }).collect();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    doc.users = users;
    for source in sources {
        doc.companies.push(source.company.clone());
        doc.memberships.extend(source.memberships.iter().cloned());
        doc.agents.extend(source.agents.iter().cloned());
        doc.delegations.extend(source.delegations.iter().cloned());
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
    let mut ix: HashMap<&str, usize> = HashMap::new();
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
    for (i, m) in doc.memberships.iter().enumerate() {
        if let Some(g) = place(&m.company, format!("/memberships/{i}/company"), issues).and_then(|g| groups.get_mut(g))
        {
            g.memberships.push(i);
        }
    }
    let mut agent_ids = HashSet::new();
    for (i, a) in doc.agents.iter().enumerate() {
        if !agent_ids.insert(a.id.as_str()) {
            issues.push_conflict(format!("/agents/{i}/id"), format!("duplicate agent `{}`", clip(&a.id)));
            continue;
        }
        if let Some(g) = place(&a.company, format!("/agents/{i}/company"), issues).and_then(|g| groups.get_mut(g)) {
            g.agents.push(i);
        }
    }
    let mut delegation_ids = HashSet::new();
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
