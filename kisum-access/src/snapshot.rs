//! Snapshots: Effective(u, c, t) compiled to bitsets over interned permissions, for checks that cost a
//! few nanoseconds, with the instant until which they hold and the version they were built from.

use kisum_entitlements::{BitSet, CompanyId, EntitlementsSummary, Timestamp};
use kisum_errors::DenyReason;
use serde::{Deserialize, Serialize};

use crate::catalog::{AccessCatalog, PermissionId};
use crate::error::AccessError;
use crate::ids::{Principal, ResourceRef};

/// What resource-scoped delegations confer: permissions granted only on the listed resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedGrant {
    /// The resources in scope (the intersection of the scopes along the chain).
    pub(crate) resources: Vec<ResourceRef>,
    /// The permissions conferred on them.
    pub(crate) permissions: BitSet,
}

impl ScopedGrant {
    /// The resources in scope (the intersection of the scopes along the chain).
    pub fn resources(&self) -> &[ResourceRef] {
        &self.resources
    }

    /// The permissions conferred on them, in declaration order (their keys:
    /// [`AccessCatalog::key`]).
    pub fn permissions(&self) -> impl Iterator<Item = PermissionId> + '_ {
        self.permissions.iter().map(PermissionId::from_index)
    }

    /// Whether the grant confers `permission` on `resource`.
    pub fn allows(&self, permission: PermissionId, resource: &ResourceRef) -> bool {
        self.permissions.contains(permission.index()) && self.resources.contains(resource)
    }
}

/// Effective(u, c, t) compiled for fast checks.
///
/// A snapshot answers every check exactly as direct evaluation would at any instant from `at` until
/// `valid_until` (exclusive), as long as the principal's version is unchanged: caches drop it at
/// `valid_until` or when [`version`](Snapshot::version) falls behind the directory's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub(crate) company: CompanyId,
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
    /// The open support session whose membership gives the principal its access, if any: every action
    /// under it is audited (API.md §3).
    pub(crate) support_session: Option<String>,
}

impl Snapshot {
    pub(crate) fn denied(
        company: CompanyId,
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
            support_session: None,
        }
    }

    /// Keeps only what `other` allows too (an acting chain's intersection): a deny-all of either wins,
    /// the earlier `valid_until` and the larger version are kept.
    pub(crate) fn narrow_to(&mut self, other: &Snapshot) {
        if self.status.is_none() {
            self.status = other.status;
        }
        self.valid_until = match (self.valid_until, other.valid_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.version = self.version.max(other.version);
        self.granted.intersect_with(&other.granted);
        self.effective.intersect_with(&other.effective);
        let mut narrowed = Vec::new();
        for grant in &self.scoped {
            for resource in &grant.resources {
                // What `other` allows on this resource: unscoped, or through a scoped grant naming it.
                let mut allowed = other.effective.clone();
                for o in other.scoped.iter().filter(|o| o.resources.contains(resource)) {
                    allowed.union_with(&o.permissions);
                }
                allowed.intersect_with(&grant.permissions);
                if !allowed.is_empty() {
                    narrowed.push(ScopedGrant { resources: vec![resource.clone()], permissions: allowed });
                }
            }
        }
        self.scoped = narrowed;
    }

    /// The open support session whose membership gives the principal its access, if any: everything done
    /// under it must be recorded for the company's owners (API.md §3).
    pub fn support_session(&self) -> Option<&str> {
        self.support_session.as_deref()
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
        if resource.is_some_and(|r| r.company != self.company) {
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
            && self.scoped.iter().any(|g| g.allows(permission, r))
        {
            return Ok(());
        }
        Err(DenyReason::PermissionNotGranted)
    }

    /// The principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The company asked about (it may not exist: see [`denies_all`](Snapshot::denies_all)).
    pub fn company(&self) -> &CompanyId {
        &self.company
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

/// The wire form of a snapshot (API.md §2 `/v1/access/snapshot`): what Auth serves and the SDK caches.
///
/// Permissions travel as keys, so the form is independent of interning; `catalog` is the fingerprint of
/// the catalog it was built against, and [`Snapshot::from_wire`] refuses it against any other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WireSnapshot {
    /// `user:ID` or `agent:ID`.
    pub principal: String,
    /// The company.
    pub company: CompanyId,
    /// The principal's version in the company when the snapshot was built.
    pub version: u64,
    /// The instant the snapshot was computed at.
    pub at: Timestamp,
    /// The next instant at which the answer can change by time alone, if any.
    pub valid_until: Option<Timestamp>,
    /// The reason that denies every check (unknown company, not a member, inactive or expired
    /// membership), if any.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub denied: Option<DenyReason>,
    /// The permissions allowed without a resource, sorted.
    pub permissions: Vec<String>,
    /// Permissions allowed on one resource only, through resource-scoped delegations.
    pub scoped: Vec<WireScoped>,
    /// Entitled permissions that a restriction of the membership denies, sorted (so that a rebuilt
    /// snapshot gives the same deny reasons).
    pub restricted: Vec<String>,
    /// The company's entitlements at `at`.
    pub entitlements: EntitlementsSummary,
    /// The fingerprint of the catalog the snapshot was built against.
    pub catalog: String,
    /// The open support session the principal acts in, if any: modules record every action under it
    /// where the company's owners can list it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_session: Option<String>,
}

/// One resource-scoped permission of a [`WireSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WireScoped {
    /// The permission key.
    pub permission: String,
    /// The resource, `COMPANY/KIND/ID`.
    pub resource: String,
}

impl Snapshot {
    /// The wire form, with the company's entitlements at the snapshot's instant.
    pub fn to_wire(&self, catalog: &AccessCatalog, entitlements: EntitlementsSummary) -> WireSnapshot {
        let keys = |bits: &BitSet| -> Vec<String> {
            let mut keys: Vec<String> =
                bits.iter().filter_map(|p| catalog.permission_at(p)).map(|p| catalog.key(p).to_owned()).collect();
            keys.sort();
            keys
        };
        let mut restricted = self.restricted.clone();
        restricted.intersect_with(&self.entitled);
        let mut scoped: Vec<WireScoped> = self
            .scoped()
            .flat_map(|g| {
                let keys = keys(&g.permissions);
                g.resources
                    .iter()
                    .flat_map(|r| {
                        keys.iter().map(move |k| WireScoped { permission: k.clone(), resource: r.to_string() })
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        scoped.sort();
        scoped.dedup();
        WireSnapshot {
            principal: self.principal.to_string(),
            company: self.company.clone(),
            version: self.version,
            at: self.at,
            valid_until: self.valid_until,
            denied: self.status,
            permissions: keys(&self.effective),
            scoped,
            restricted: keys(&restricted),
            entitlements,
            catalog: catalog.fingerprint().to_owned(),
            support_session: self.support_session.clone(),
        }
    }

    /// Rebuilds a checkable snapshot from its wire form: it decides every check exactly as the snapshot
    /// it was made from. Refused if it was built against another catalog, or names a permission, module,
    /// feature, principal or resource that does not parse against this one.
    pub fn from_wire(wire: &WireSnapshot, catalog: &AccessCatalog) -> Result<Snapshot, AccessError> {
        if wire.catalog != catalog.fingerprint() {
            return Err(AccessError::CatalogMismatch {
                expected: catalog.fingerprint().to_owned(),
                found: crate::catalog::clip(&wire.catalog),
            });
        }
        let malformed = |what: &str, e: &dyn std::fmt::Display| AccessError::Malformed(format!("{what}: {e}"));
        let principal = Principal::parse(&wire.principal).map_err(|e| malformed("principal", &e))?;
        let n = catalog.permission_count();
        let bits = |keys: &[String]| -> Result<BitSet, AccessError> {
            let mut bits = BitSet::new(n);
            for key in keys {
                bits.insert(catalog.permission(key)?.index());
            }
            Ok(bits)
        };
        let modules: std::collections::HashSet<&str> = wire.entitlements.modules.iter().map(String::as_str).collect();
        let features: std::collections::HashSet<&str> = wire.entitlements.features.iter().map(String::as_str).collect();
        let (mut module_ok, mut entitled) = (BitSet::new(n), BitSet::new(n));
        for p in catalog.permission_ids() {
            let Some(def) = catalog.permission_def(p) else { continue };
            if modules.contains(def.module().as_str()) {
                module_ok.insert(p.index());
                if def.feature().is_none_or(|f| features.contains(f.as_str())) {
                    entitled.insert(p.index());
                }
            }
        }
        let effective = bits(&wire.permissions)?;
        let mut scoped: Vec<ScopedGrant> = Vec::with_capacity(wire.scoped.len());
        for s in &wire.scoped {
            let resource = ResourceRef::parse(&s.resource).map_err(|e| malformed("scoped resource", &e))?;
            let mut permissions = BitSet::new(n);
            permissions.insert(catalog.permission(&s.permission)?.index());
            scoped.push(ScopedGrant { resources: vec![resource], permissions });
        }
        Ok(Snapshot {
            company: wire.company.clone(),
            principal,
            at: wire.at,
            valid_until: wire.valid_until,
            version: wire.version,
            status: wire.denied,
            module_ok,
            entitled,
            restricted: bits(&wire.restricted)?,
            granted: effective.clone(),
            effective,
            scoped,
            support_session: wire.support_session.clone(),
        })
    }
}
