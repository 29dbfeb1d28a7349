//! The one query interface: [`Access`], implemented by the immutable [`World`](crate::World), the
//! concurrent [`Directory`](crate::Directory), and by anything else that can hand out company
//! partitions (the SDK's local access source).
//!
//! An implementation supplies the catalog and a way to find a company's current partition; every query
//! is written once, here, on top of those two.

use std::sync::Arc;

use kisum_entitlements::{CompanyId, EntitlementsSummary, Timestamp};
use kisum_errors::DenyReason;

use crate::catalog::{AccessCatalog, PermissionId};
use crate::company::Company;
use crate::error::AccessError;
use crate::eval::{Decision, Explanation, GrantedBy};
use crate::ids::{Acting, AgentId, Principal, ResourceRef, UserId};
use crate::snapshot::{Snapshot, WireSnapshot};

/// Questions about who may do what, answered on one state of the model. `Send + Sync`; every method
/// but [`catalog`](Access::catalog) and [`company`](Access::company) has a default built on those two.
///
/// Each query evaluates on one version of the company it names, even while writers write.
pub trait Access: Send + Sync {
    /// The catalog every company is evaluated against (the newest one: publishing a plan replaces it).
    fn catalog(&self) -> Arc<AccessCatalog>;

    /// The current partition of a company: an immutable value that later writes do not change.
    fn company(&self, id: &CompanyId) -> Option<Arc<Company>>;

    /// Resolves a permission key (`UNKNOWN_PERMISSION` if undeclared). Resolve keys once, at start-up.
    fn permission(&self, key: &str) -> Result<PermissionId, AccessError> {
        self.catalog().permission(key)
    }

    /// Decides a check at `at` by direct evaluation.
    fn check(
        &self,
        principal: &Principal,
        company: &CompanyId,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        at: Timestamp,
    ) -> Decision {
        decide(&self.catalog(), self.company(company).as_deref(), principal, permission, resource, at)
    }

    /// Decides a check at `at` and names what granted an allow by id ([`Company::granted_by`]), both on
    /// one version of the company. Allocates for a delegation chain: keep [`check`](Access::check) on
    /// hot paths.
    fn check_granted(
        &self,
        principal: &Principal,
        company: &CompanyId,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        at: Timestamp,
    ) -> (Decision, Option<GrantedBy>) {
        let catalog = self.catalog();
        let cat = &*catalog;
        let partition = self.company(company);
        let decision = decide(cat, partition.as_deref(), principal, permission, resource, at);
        let granted = partition.and_then(|c| c.granted_by(cat, &decision));
        (decision, granted)
    }

    /// Decides many checks of one principal in one company, on one consistent version of it.
    fn check_many(
        &self,
        principal: &Principal,
        company: &CompanyId,
        checks: &[(PermissionId, Option<&ResourceRef>)],
        at: Timestamp,
    ) -> Vec<Decision> {
        let partition = self.company(company);
        let catalog = self.catalog();
        checks.iter().map(|(p, r)| decide(&catalog, partition.as_deref(), principal, *p, *r, at)).collect()
    }

    /// Compiles a snapshot of the principal's effective access at `at`.
    fn snapshot(&self, principal: &Principal, company: &CompanyId, at: Timestamp) -> Snapshot {
        let catalog = self.catalog();
        let cat = &*catalog;
        match self.company(company) {
            Some(c) => c.snapshot(cat, principal, at),
            None => Snapshot::denied(
                company.clone(),
                principal.clone(),
                at,
                0,
                cat.permission_count(),
                DenyReason::UnknownCompany,
            ),
        }
    }

    /// The snapshot in its wire form, with the company's entitlements: what Auth serves and the SDK caches
    /// (rebuild it with [`Snapshot::from_wire`]).
    fn wire_snapshot(&self, principal: &Principal, company: &CompanyId, at: Timestamp) -> WireSnapshot {
        wire(self, principal, company, at, |c, cat| c.snapshot(cat, principal, at))
    }

    /// The access of agents acting for a user (a token with `act`, DESIGN.md §5): what `acting.user`
    /// delegated to each actor at `at`, intersected over the actors, never what anyone else delegated
    /// to them. The snapshot is the current actor's (its version follows that agent's).
    fn acting_snapshot(&self, acting: &Acting, company: &CompanyId, at: Timestamp) -> Snapshot {
        let catalog = self.catalog();
        match self.company(company) {
            Some(c) => c.snapshot_acting(&catalog, acting, at),
            None => Snapshot::denied(
                company.clone(),
                acting.principal(),
                at,
                0,
                catalog.permission_count(),
                DenyReason::UnknownCompany,
            ),
        }
    }

    /// [`acting_snapshot`](Access::acting_snapshot) in its wire form, with the company's entitlements.
    fn acting_wire_snapshot(&self, acting: &Acting, company: &CompanyId, at: Timestamp) -> WireSnapshot {
        wire(self, &acting.principal(), company, at, |c, cat| c.snapshot_acting(cat, acting, at))
    }

    /// Decides and explains a check for agents acting for a user (see
    /// [`acting_snapshot`](Access::acting_snapshot)).
    fn acting_explain(
        &self,
        acting: &Acting,
        company: &CompanyId,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        at: Timestamp,
    ) -> Explanation {
        let catalog = self.catalog();
        match self.company(company) {
            Some(c) => {
                let decision = c.decide_acting(&catalog, acting, permission, resource, at);
                c.explain(&catalog, &acting.principal(), permission, &decision)
            }
            None => Explanation::denied(Some(DenyReason::UnknownCompany)),
        }
    }

    /// Whether `user` holds a delegation to `agent` in `company` that is valid at `at`: what token
    /// exchange requires before an agent may act for the user.
    fn delegates_to(&self, company: &CompanyId, user: &UserId, agent: &AgentId, at: Timestamp) -> bool {
        self.company(company).is_some_and(|c| c.delegates_to(user, agent, at))
    }

    /// Decides and explains a check.
    fn explain(
        &self,
        principal: &Principal,
        company: &CompanyId,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        at: Timestamp,
    ) -> Explanation {
        let catalog = self.catalog();
        let cat = &*catalog;
        let partition = self.company(company);
        let decision = decide(cat, partition.as_deref(), principal, permission, resource, at);
        match partition {
            Some(c) => c.explain(cat, principal, permission, &decision),
            None => Explanation::denied(decision.reason()),
        }
    }

    /// Who in the company may do `permission` (on `resource`) at `at`: every member and agent allowed,
    /// sorted.
    fn who_can(
        &self,
        company: &CompanyId,
        permission: PermissionId,
        resource: Option<&ResourceRef>,
        at: Timestamp,
    ) -> Vec<Principal> {
        let Some(c) = self.company(company) else { return Vec::new() };
        let catalog = self.catalog();
        let cat = &*catalog;
        let mut allowed: Vec<Principal> =
            c.principals().filter(|p| c.decide(cat, p, permission, resource, at).is_allowed()).collect();
        allowed.sort();
        allowed
    }

    /// The members who could give `permission` to another member of the company at `at` (an active
    /// membership granting both `core:member:invite` and `permission`; DESIGN.md §4: nobody gives what
    /// they lack), sorted. Entitlements do not count: a grantor can grant ahead of the plan.
    fn grantors(&self, company: &CompanyId, permission: PermissionId, at: Timestamp) -> Vec<crate::UserId> {
        let Some(c) = self.company(company) else { return Vec::new() };
        let catalog = self.catalog();
        crate::rules::grantors(&catalog, &c, permission.index(), at)
    }

    /// Whether `user` holds `permission` in `company` in its own right at `at`: an active membership whose
    /// roles grant it and whose restrictions do not deny it. Entitlements and delegations do not count —
    /// the granted set DESIGN.md §4 judges every giving of access on (nobody gives what they lack).
    fn holds(&self, company: &CompanyId, user: &crate::UserId, permission: PermissionId, at: Timestamp) -> bool {
        self.company(company).is_some_and(|c| crate::rules::holds(&c, user, permission.index(), at))
    }

    /// The company's entitlements at `at`; `None` for an unknown company.
    fn entitlements(&self, company: &CompanyId, at: Timestamp) -> Option<EntitlementsSummary> {
        let c = self.company(company)?;
        let catalog = self.catalog();
        let cat = &*catalog;
        let ent = c.plans.entitlements(cat.commercial(), at);
        Some(ent.summary(cat.commercial(), &c.plans))
    }

    /// The principal's current version in the company (compare with [`Snapshot::version`]); 0 for a
    /// company that does not exist.
    fn principal_version(&self, principal: &Principal, company: &CompanyId) -> u64 {
        self.company(company).map_or(0, |c| c.principal_version(principal))
    }
}

/// A snapshot in its wire form with the company's entitlements, both of one partition.
fn wire<A: Access + ?Sized>(
    access: &A,
    principal: &Principal,
    company: &CompanyId,
    at: Timestamp,
    compile: impl FnOnce(&Company, &AccessCatalog) -> Snapshot,
) -> WireSnapshot {
    let catalog = access.catalog();
    let partition = access.company(company);
    let snapshot = match &partition {
        Some(c) => compile(c, &catalog),
        None => Snapshot::denied(
            company.clone(),
            principal.clone(),
            at,
            0,
            catalog.permission_count(),
            DenyReason::UnknownCompany,
        ),
    };
    let entitlements = partition
        .map(|c| c.plans.entitlements(catalog.commercial(), at).summary(catalog.commercial(), &c.plans))
        .unwrap_or_default();
    snapshot.to_wire(&catalog, entitlements)
}

/// Decides a check on the partition found for the company (`None`: it does not exist).
pub(crate) fn decide(
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
