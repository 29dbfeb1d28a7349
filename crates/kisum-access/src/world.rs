//! A whole state loaded from a world file: validated, compiled, immutable. The [`Directory`](crate::Directory)
//! is the concurrent, writable form of the same state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kisum_entitlements::{CompanyId, EntitlementsSummary, Issues, Timestamp};

use crate::catalog::{AccessCatalog, PermissionId, clip};
use crate::company::{Company, CompanySource, SourcePaths};
use crate::doc::{CompanyDoc, UserDoc, WorldDoc};
use crate::error::AccessError;
use crate::eval::{Decision, Explanation};
use crate::ids::{Principal, ResourceRef, UserId};
use crate::snapshot::Snapshot;
use kisum_errors::DenyReason;

/// An immutable, validated world. `Send + Sync`; share it by `Arc`.
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

    /// The catalog.
    pub fn catalog(&self) -> &Arc<AccessCatalog> {
        &self.catalog
    }

    /// Resolves a permission key (`UNKNOWN_PERMISSION` if undeclared).
    pub fn permission(&self, key: &str) -> Result<PermissionId, AccessError> {
        self.catalog.permission(key)
    }

    /// A company by id.
    pub fn company(&self, id: &str) -> Option<&Company> {
        self.companies.get(*self.company_ix.get(id)?).map(Arc::as_ref)
    }

    /// Every company, in file order.
    pub fn companies(&self) -> impl Iterator<Item = &Company> {
        self.companies.iter().map(Arc::as_ref)
    }

    /// Decides a check at `at` by direct evaluation.
    pub fn check(
        &self,
        principal: &Principal,
        company: &str,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        at: Timestamp,
    ) -> Decision {
        check(&self.catalog, self.company(company), principal, permission, resource, at)
    }

    /// Compiles a snapshot of the principal's effective access at `at`.
    pub fn snapshot(&self, principal: &Principal, company: &str, at: Timestamp) -> Snapshot {
        snapshot(&self.catalog, self.company(company), principal, at)
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
        explain(&self.catalog, self.company(company), principal, permission, resource, at)
    }

    /// Who in the company may do `permission` (on `resource`) at `at`: every member and agent allowed.
    pub fn who_can(
        &self,
        company: &str,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        at: Timestamp,
    ) -> Vec<Principal> {
        who_can(&self.catalog, self.company(company), permission, resource, at)
    }

    /// The company's entitlements at `at`; `None` for an unknown company.
    pub fn entitlements(&self, company: &str, at: Timestamp) -> Option<EntitlementsSummary> {
        entitlements(&self.catalog, self.company(company)?, at)
    }
}

// The query functions below serve both the world and the directory: each takes the catalog and the
// company partition it found (or `None`), so the two share one implementation.

pub(crate) fn check(
    cat: &AccessCatalog,
    company: Option<&Company>,
    principal: &Principal,
    permission: PermissionId,
    resource: Option<&ResourceRef>,
    at: Timestamp,
) -> Decision {
    match company {
        Some(c) => c.decide(cat, principal, permission, resource, at),
        None => Decision::Deny(DenyReason::UnknownCompany),
    }
}

pub(crate) fn entitlements(cat: &AccessCatalog, company: &Company, at: Timestamp) -> Option<EntitlementsSummary> {
    let ent = company.plans.entitlements(cat.commercial(), at);
    Some(ent.summary(cat.commercial(), &company.plans))
}

pub(crate) fn snapshot(
    cat: &AccessCatalog,
    company: Option<&Company>,
    principal: &Principal,
    at: Timestamp,
) -> Snapshot {
    match company {
        Some(c) => c.snapshot(cat, principal, at),
        None => Snapshot::denied(None, principal.clone(), at, 0, cat.permission_count(), DenyReason::UnknownCompany),
    }
}

pub(crate) fn explain(
    cat: &AccessCatalog,
    company: Option<&Company>,
    principal: &Principal,
    permission: PermissionId,
    resource: Option<&ResourceRef>,
    at: Timestamp,
) -> Explanation {
    let decision = check(cat, company, principal, permission, resource, at);
    match company {
        Some(c) => c.explain(cat, principal, permission, &decision),
        None => Explanation {
            decision: "deny",
            reason: decision.reason(),
            roles: Vec::new(),
            role_path: Vec::new(),
            delegations: Vec::new(),
            entitled_by: Vec::new(),
        },
    }
}

pub(crate) fn who_can(
    cat: &AccessCatalog,
    company: Option<&Company>,
    permission: PermissionId,
    resource: Option<&ResourceRef>,
    at: Timestamp,
) -> Vec<Principal> {
    let Some(c) = company else { return Vec::new() };
    let mut allowed: Vec<Principal> =
        c.principals().filter(|p| c.decide(cat, p, permission, resource, at).is_allowed()).collect();
    allowed.sort();
    allowed
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
