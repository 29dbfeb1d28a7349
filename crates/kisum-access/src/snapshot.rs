//! Snapshots: Effective(u, c, t) compiled to bitsets over interned permissions, for checks that cost a
//! few nanoseconds, with the instant until which they hold and the version they were built from.

use kisum_entitlements::{BitSet, CompanyId, Timestamp};
use kisum_errors::DenyReason;

use crate::catalog::{AccessCatalog, PermissionId};
use crate::ids::{Principal, ResourceRef};

/// What resource-scoped delegations confer: permissions granted only on the listed resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedGrant {
    /// The resources in scope (the intersection of the scopes along the chain).
    pub resources: Vec<ResourceRef>,
    /// The permissions conferred on them.
    pub permissions: BitSet,
}

/// Effective(u, c, t) compiled for fast checks.
///
/// A snapshot answers every check exactly as direct evaluation would at any instant from `at` until
/// `valid_until` (exclusive), as long as the principal's version is unchanged: caches drop it at
/// `valid_until` or when [`version`](Snapshot::version) falls behind the directory's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub(crate) company: Option<CompanyId>,
    pub(crate) principal: Principal,
    pub(crate) at: Timestamp,
    pub(crate) valid_until: Option<Timestamp>,
    pub(crate) version: u64,
    /// A reason that denies every check (unknown company, not a member, inactive or expired membership).
    pub(crate) status: Option<DenyReason>,
    pub(crate) module_ok: BitSet,
    pub(crate) entitled: BitSet,
    pub(crate) restricted: BitSet,
    /// Granted by roles or unscoped delegations, before entitlements and restrictions.
    pub(crate) granted: BitSet,
    /// `granted ∩ entitled − restricted`: the allow fast path.
    pub(crate) effective: BitSet,
    pub(crate) scoped: Vec<ScopedGrant>,
}

impl Snapshot {
    pub(crate) fn denied(
        company: Option<CompanyId>,
        principal: Principal,
        at: Timestamp,
        version: u64,
        permissions: usize,
        reason: DenyReason,
    ) -> Snapshot {
        Snapshot {
            company,
            principal,
            at,
            valid_until: None,
            version,
            status: Some(reason),
            module_ok: BitSet::new(permissions),
            entitled: BitSet::new(permissions),
            restricted: BitSet::new(permissions),
            granted: BitSet::new(permissions),
            effective: BitSet::new(permissions),
            scoped: Vec::new(),
        }
    }

    /// Whether the check is allowed: the fast path, a bit test when no resource is given.
    #[inline]
    pub fn allows(&self, permission: PermissionId, resource: Option<&ResourceRef>) -> bool {
        let p = permission.index();
        match resource {
            None => self.effective.contains(p),
            Some(r) => self.decide(permission, Some(r)).is_ok(),
        }
    }

    /// The decision as direct evaluation gives it: `Ok(())` to allow, or the deny reason.
    pub fn decide(&self, permission: PermissionId, resource: Option<&ResourceRef>) -> Result<(), DenyReason> {
        let p = permission.index();
        if let Some(reason) = self.status {
            return Err(reason);
        }
        if resource.is_some_and(|r| Some(&r.company) != self.company.as_ref()) {
            return Err(DenyReason::CrossTenant);
        }
        if self.effective.contains(p) {
            return Ok(());
        }
        if !self.module_ok.contains(p) {
            return Err(DenyReason::ModuleNotEntitled);
        }
        if !self.entitled.contains(p) {
            return Err(DenyReason::FeatureNotEntitled);
        }
        if self.restricted.contains(p) {
            return Err(DenyReason::Restricted);
        }
        if let Some(r) = resource
            && self.scoped.iter().any(|g| g.permissions.contains(p) && g.resources.contains(r))
        {
            return Ok(());
        }
        Err(DenyReason::PermissionNotGranted)
    }

    /// The principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The company (absent when it does not exist).
    pub fn company(&self) -> Option<&CompanyId> {
        self.company.as_ref()
    }

    /// The instant the snapshot was computed at.
    pub fn at(&self) -> Timestamp {
        self.at
    }

    /// The first instant after `at` at which anything it depends on starts or ends; `None` if nothing
    /// does. The snapshot must not be used at or after it.
    pub fn valid_until(&self) -> Option<Timestamp> {
        self.valid_until
    }

    /// Whether the snapshot may answer checks at `t`.
    pub fn is_valid_at(&self, t: Timestamp) -> bool {
        self.at <= t && self.valid_until.is_none_or(|end| t < end)
    }

    /// The principal's version in the company when the snapshot was built.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The reason that denies every check, if any.
    pub fn denies_all(&self) -> Option<DenyReason> {
        self.status
    }

    /// The permissions allowed without a resource scope: "what can this principal do here".
    pub fn permissions<'a>(&'a self, catalog: &'a AccessCatalog) -> impl Iterator<Item = &'a str> + 'a {
        self.effective.iter().filter_map(move |p| catalog.permission_at(p)).map(|p| catalog.key(p))
    }

    /// What resource-scoped delegations add, already within entitlements and restrictions.
    pub fn scoped(&self) -> impl Iterator<Item = ScopedGrant> + '_ {
        self.scoped.iter().map(|g| {
            let mut permissions = g.permissions.clone();
            permissions.intersect_with(&self.entitled);
            permissions.difference_with(&self.restricted);
            ScopedGrant { resources: g.resources.clone(), permissions }
        })
    }
}
