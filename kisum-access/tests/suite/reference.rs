//! A reference evaluator written straight from DESIGN.md §4 over the world documents — no compilation,
//! no bitsets, no indexes: linear scans of the documents and recursion over delegation paths — and the
//! property that the compiled layout (through a `World` and through a `Directory`) decides exactly as it
//! does on random worlds. Entitlements come from kisum-entitlements' own resolution of the company's
//! subscriptions and overrides, which has its own tests; everything kisum-access adds is re-derived here.

use kisum_access::doc::{DelegationDoc, MembershipDoc, MembershipStatus, PrincipalDoc, WorldDoc};
use kisum_access::{Access, DenyReason, Directory, Principal, ResourceRef, Timestamp};
use kisum_entitlements::{Catalog, CompanyPlans};
use proptest::prelude::*;

use crate::worlds::{self, instants, load, queries};

/// DESIGN.md §4 "Pattern": a key, or a trailing whole-segment `*`.
fn matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => pattern == key,
    }
}

/// Status `active` and before `expires_at`.
fn active(m: &MembershipDoc, t: Timestamp) -> bool {
    m.status == MembershipStatus::Active && m.expires_at.is_none_or(|end| t < end)
}

/// Whether `t` is in the delegation's validity window.
fn valid(d: &DelegationDoc, t: Timestamp) -> bool {
    d.not_before <= t && t < d.expires_at && d.revoked_at.is_none_or(|r| t < r)
}

struct Reference<'a> {
    doc: &'a WorldDoc,
    commercial: Catalog,
}

impl<'a> Reference<'a> {
    fn new(doc: &'a WorldDoc) -> Self {
        let commercial = Catalog::from_doc(&doc.catalog.commercial()).unwrap();
        Reference { doc, commercial }
    }

    fn membership(&self, user: &str, company: &str) -> Option<&'a MembershipDoc> {
        self.doc.memberships.iter().find(|m| m.user == user && m.company == company)
    }

    /// Whether role `id` of `company` (custom first, then system), with what it inherits, grants `key`.
    fn role_grants(&self, company: &str, id: &str, key: &str, depth: usize) -> bool {
        if depth > 32 {
            return false;
        }
        let custom =
            self.doc.companies.iter().find(|c| c.id == company).and_then(|c| c.roles.iter().find(|r| r.id == id));
        let (role, inherits_custom) = match custom {
            Some(r) => (r, true),
            None => match self.doc.catalog.roles.iter().find(|r| r.id == id) {
                Some(r) => (r, false),
                None => return false,
            },
        };
        role.grants.iter().any(|g| matches(g, key))
            || role.inherits.iter().any(|parent| {
                if inherits_custom {
                    self.role_grants(company, parent, key, depth + 1)
                } else {
                    // A system role inherits system roles only.
                    self.doc.catalog.roles.iter().any(|r| r.id == *parent) && self.system_grants(parent, key, depth + 1)
                }
            })
    }

    fn system_grants(&self, id: &str, key: &str, depth: usize) -> bool {
        if depth > 32 {
            return false;
        }
        let Some(role) = self.doc.catalog.roles.iter().find(|r| r.id == id) else { return false };
        role.grants.iter().any(|g| matches(g, key))
            || role.inherits.iter().any(|p| self.system_grants(p, key, depth + 1))
    }

    /// Whether the membership's own roles grant `key`.
    fn own_roles_grant(&self, m: &MembershipDoc, key: &str) -> bool {
        m.roles.iter().any(|r| self.role_grants(&m.company, r, key, 0))
    }

    /// Whether some path of at most `left` more delegations into `to`, none in `used`, confers `key` (on
    /// `resource`), rooted at a member whose own roles grant it. `first`: the link into the principal,
    /// the only one that need not be redelegable.
    #[allow(clippy::too_many_arguments)]
    fn conferred(
        &self,
        company: &str,
        to: &PrincipalDoc,
        key: &str,
        resource: Option<&ResourceRef>,
        t: Timestamp,
        used: &mut Vec<&'a str>,
        left: usize,
    ) -> bool {
        if left == 0 {
            return false;
        }
        let first = used.is_empty();
        for d in self.doc.delegations.iter().filter(|d| d.company == company && d.to == *to) {
            if used.contains(&d.id.as_str()) || (!first && !d.redelegable) || !valid(d, t) {
                continue;
            }
            if !d.grants.iter().any(|g| matches(g, key)) {
                continue;
            }
            if let Some(scope) = &d.resources {
                let Some(r) = resource else { continue };
                let hit = scope
                    .iter()
                    .any(|s| s.company == r.company.as_str() && s.kind == r.kind.as_str() && s.id == r.id.as_str());
                if !hit {
                    continue;
                }
            }
            let PrincipalDoc::User(from) = &d.from else { continue };
            let Some(fm) = self.membership(from, company) else { continue };
            if !active(fm, t) || fm.restrictions.iter().any(|p| matches(p, key)) {
                continue;
            }
            if self.own_roles_grant(fm, key) {
                return true;
            }
            used.push(d.id.as_str());
            let deeper = self.conferred(company, &d.from, key, resource, t, used, left - 1);
            used.pop();
            if deeper {
                return true;
            }
        }
        false
    }

    /// The decision of DESIGN.md §4: `Ok(())` to allow, or the first deny reason that applies.
    fn decide(
        &self,
        principal: &Principal,
        company: &str,
        key: &str,
        resource: Option<&ResourceRef>,
        t: Timestamp,
    ) -> Result<(), DenyReason> {
        let Some(c) = self.doc.companies.iter().find(|c| c.id == company) else {
            return Err(DenyReason::UnknownCompany);
        };
        let member = match principal {
            Principal::User(u) => {
                let m = self.membership(u.as_str(), company).ok_or(DenyReason::NotAMember)?;
                if m.status != MembershipStatus::Active {
                    return Err(DenyReason::MembershipInactive);
                }
                if m.expires_at.is_some_and(|end| t >= end) {
                    return Err(DenyReason::MembershipExpired);
                }
                Some(m)
            }
            Principal::Agent(a) => {
                if !self.doc.agents.iter().any(|x| x.id == a.as_str() && x.company == company) {
                    return Err(DenyReason::NotAMember);
                }
                None
            }
        };
        if resource.is_some_and(|r| r.company.as_str() != company) {
            return Err(DenyReason::CrossTenant);
        }
        let plans = CompanyPlans::from_docs(&self.commercial, &c.subscriptions, &c.overrides).unwrap();
        let summary = plans.entitlements(&self.commercial, t).summary(&self.commercial, &plans);
        let def = self.doc.catalog.permissions.iter().find(|p| p.key == key).unwrap();
        let module = key.split(':').next().unwrap();
        if !summary.modules.iter().any(|m| m == module) {
            return Err(DenyReason::ModuleNotEntitled);
        }
        if def.feature.as_ref().is_some_and(|f| !summary.features.contains(f)) {
            return Err(DenyReason::FeatureNotEntitled);
        }
        if member.is_some_and(|m| m.restrictions.iter().any(|p| matches(p, key))) {
            return Err(DenyReason::Restricted);
        }
        if member.is_some_and(|m| self.own_roles_grant(m, key)) {
            return Ok(());
        }
        let delegable = def.delegable != Some(false);
        let to = match principal {
            Principal::User(u) => PrincipalDoc::User(u.to_string()),
            Principal::Agent(a) => PrincipalDoc::Agent(a.to_string()),
        };
        if delegable && self.conferred(company, &to, key, resource, t, &mut Vec::new(), 3) {
            return Ok(());
        }
        Err(DenyReason::PermissionNotGranted)
    }
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    /// The compiled layout — through an immutable world and through the concurrent directory — decides
    /// every query of the generated space at every instant exactly as the reference evaluator does.
    #[test]
    fn layout_equals_reference_evaluation(seed in any::<u64>()) {
        let doc = worlds::world(seed);
        let world = load(&doc);
        let directory = Directory::new(load(&doc));
        let reference = Reference::new(&doc);
        for t in instants() {
            for (principal, company, permission, resource) in queries(&world) {
                let catalog = world.catalog();
                let key = catalog.key(permission);
                let expected = reference.decide(&principal, company.as_str(), key, resource.as_ref(), t).err();
                let got = world.check(&principal, &company, permission, resource.as_ref(), t).reason();
                prop_assert_eq!(got, expected, "seed {} {} {} {} {:?} at {}", seed, principal, company, key, resource, t);
                let got = directory.check(&principal, &company, permission, resource.as_ref(), t).reason();
                prop_assert_eq!(got, expected, "directory: seed {} {} {} {} {:?} at {}", seed, principal, company, key, resource, t);
            }
        }
    }

    /// The documents a partition rebuilds from its compiled form are the documents it was loaded from:
    /// exporting a generated world gives it back exactly.
    #[test]
    fn documents_rebuild_exactly(seed in any::<u64>()) {
        let doc = worlds::world(seed);
        let world = load(&doc);
        prop_assert_eq!(&world.to_doc(), &doc);
        prop_assert_eq!(&Directory::new(load(&doc)).to_doc(), &doc);
        for company in world.companies() {
            prop_assert_eq!(company.source(), &company.documents());
        }
    }
}
