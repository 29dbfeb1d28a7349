//! Synthetic multi-tenant worlds, seeded and reproducible: for benchmarks, load tests and property tests.
//!
//! A world has about 200 permissions over 8 modules, 5 system roles (owner, admin, finance_manager,
//! booker, viewer), three packages and four add-ons entitling different module sets, a few custom roles
//! per company with inheritance, some suspended and expired memberships, and some delegations (including
//! two-link chains, resource-scoped ones and agents).
//!
//! Behind the `synth` feature (off by default).

use kisum_entitlements::Timestamp;
use kisum_entitlements::doc::{
    AddonDoc, Combine, FeatureDoc, LimitDoc, LimitValue, ModuleDoc, ModuleKind, PackageDoc, PlanRefDoc,
    SubscriptionDoc, SubscriptionStatus,
};

use crate::doc::{
    AccessCatalogDoc, AgentDoc, CompanyDoc, DelegationDoc, MembershipDoc, MembershipStatus, PermissionDoc,
    PrincipalDoc, ResourceDoc, RoleDoc, UserDoc, WorldDoc,
};

/// The instant synthetic worlds are built around: every subscription has started, nothing has ended.
pub const EPOCH: &str = "2026-03-01T00:00:00Z";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Number of companies.
    pub companies: usize,
    /// Members per company (users are not shared between companies).
    pub members: usize,
    /// Seed of the generator: the same spec always gives the same world.
    pub seed: u64,
}

/// SplitMix64: a tiny, good-enough, seedable generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    /// One of `items`, uniformly (the first when there is one item; `fallback` when there is none).
    pub fn pick<T: Copy>(&mut self, items: &[T], fallback: T) -> T {
        items.get(self.below(items.len())).copied().unwrap_or(fallback)
    }

    /// `true` with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// The modules of synthetic worlds.
pub const MODULES: [&str; 8] = ["core", "promoters", "artist", "finance", "touring", "venue", "ai", "crm"];
const RESOURCES: [&str; 5] = ["event", "invoice", "contract", "report", "profile"];
const ACTIONS: [&str; 5] = ["read", "create", "update", "delete", "approve"];

/// The permission keys of synthetic worlds: 8 modules × 5 resources × 5 actions = 200.
pub fn permission_keys() -> Vec<String> {
    let mut keys = Vec::with_capacity(200);
    for m in MODULES {
        for r in RESOURCES {
            for a in ACTIONS {
                keys.push(format!("{m}:{r}:{a}"));
            }
        }
    }
    keys
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The catalog shared by every synthetic world.
pub fn catalog() -> AccessCatalogDoc {
    let modules = MODULES
        .iter()
        .enumerate()
        .map(|(i, m)| ModuleDoc { id: (*m).to_owned(), kind: if i < 2 { ModuleKind::Base } else { ModuleKind::Addon } })
        .collect();
    let features = vec![
        FeatureDoc { key: "finance.approvals".into(), module: "finance".into() },
        FeatureDoc { key: "venue.contracts".into(), module: "venue".into() },
        FeatureDoc { key: "ai.copilot".into(), module: "ai".into() },
    ];
    let permissions = permission_keys()
        .into_iter()
        .map(|key| {
            let feature = match key.as_str() {
                k if k.starts_with("finance:") && k.ends_with(":approve") => Some("finance.approvals".to_owned()),
                k if k.starts_with("venue:contract:") => Some("venue.contracts".to_owned()),
                k if k.starts_with("ai:") && !k.ends_with(":read") => Some("ai.copilot".to_owned()),
                _ => None,
            };
            let delegable = !(key.starts_with("core:") && (key.ends_with(":delete") || key.ends_with(":approve")));
            PermissionDoc { key, feature, delegable: (!delegable).then_some(false) }
        })
        .collect();
    let limit = |n: u64| LimitValue::Finite(n);
    let package = |id: &str, modules: &[&str], features: &[&str], seats: LimitValue| PackageDoc {
        id: id.into(),
        version: 1,
        modules: strings(modules),
        features: strings(features),
        limits: [("core.seats".to_owned(), seats)].into_iter().collect(),
    };
    let addon = |id: &str, modules: &[&str], features: &[&str]| AddonDoc {
        id: id.into(),
        version: 1,
        requires: strings(&["pro", "enterprise"]),
        modules: strings(modules),
        features: strings(features),
        limits: Default::default(),
    };
    let role = |id: &str, grants: &[&str], inherits: &[&str]| RoleDoc {
        id: id.into(),
        grants: strings(grants),
        inherits: strings(inherits),
    };
    AccessCatalogDoc {
        modules,
        features,
        limits: vec![LimitDoc { key: "core.seats".into(), combine: Combine::Sum }],
        permissions,
        packages: vec![
            package("starter", &["core", "promoters"], &[], limit(25)),
            package("pro", &["core", "promoters", "touring", "venue"], &["venue.contracts"], limit(50)),
            package(
                "enterprise",
                &MODULES,
                &["finance.approvals", "venue.contracts", "ai.copilot"],
                LimitValue::Unlimited,
            ),
        ],
        addons: vec![
            addon("finance", &["finance"], &["finance.approvals"]),
            addon("ai", &["ai"], &["ai.copilot"]),
            addon("artist", &["artist"], &[]),
            addon("crm", &["crm"], &[]),
        ],
        roles: vec![
            role("owner", &["*"], &[]),
            role(
                "viewer",
                &[
                    "core:event:read",
                    "core:profile:read",
                    "promoters:event:read",
                    "artist:profile:read",
                    "venue:event:read",
                ],
                &[],
            ),
            role("admin", &["core:*", "promoters:*", "touring:*", "venue:*", "artist:*", "crm:*"], &["viewer"]),
            role("finance_manager", &["finance:*"], &["viewer"]),
            role("booker", &["artist:*", "touring:*", "venue:event:*", "promoters:event:create"], &["viewer"]),
        ],
    }
}

fn roles_for(rng: &mut Rng) -> Vec<String> {
    const SYSTEM: [&str; 4] = ["admin", "finance_manager", "booker", "viewer"];
    const CUSTOM: [&str; 3] = ["accountant", "lead_accountant", "tour_lead"];
    let mut roles = Vec::new();
    for _ in 0..1 + rng.below(2) {
        let role = if rng.chance(30) { rng.pick(&CUSTOM, "viewer") } else { rng.pick(&SYSTEM, "viewer") };
        if !roles.iter().any(|r| r == role) {
            roles.push(role.to_owned());
        }
    }
    roles
}

fn ts(text: &str) -> Timestamp {
    // INVARIANT: only called with the literals below, which parse.
    Timestamp::parse(text).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A world following `spec`. Company `i` is `c{i}`, its members `c{i}-u{j}` (member 0 is the owner), its
/// agent `c{i}-bot`.
pub fn world(spec: Spec) -> WorldDoc {
    let mut rng = Rng::new(spec.seed);
    let mut doc = WorldDoc { catalog: catalog(), ..WorldDoc::default() };
    let start = ts("2026-01-01T00:00:00Z");
    for c in 0..spec.companies {
        let id = format!("c{c}");
        let package = rng.pick(&["starter", "pro", "enterprise"], "pro");
        let main = SubscriptionDoc {
            id: "main".into(),
            plan: PlanRefDoc { package: Some(package.into()), addon: None, version: 1 },
            status: SubscriptionStatus::Active,
            starts_at: start,
            ends_at: None,
            trial_ends_at: None,
            grace_until: None,
            quantity: None,
        };
        let mut subscriptions = vec![main.clone()];
        for addon in ["finance", "ai", "artist", "crm"] {
            if rng.chance(40) {
                subscriptions.push(SubscriptionDoc {
                    id: format!("addon-{addon}"),
                    plan: PlanRefDoc { package: None, addon: Some(addon.into()), version: 1 },
                    ..main.clone()
                });
            }
        }
        doc.companies.push(CompanyDoc {
            id: id.clone(),
            roles: vec![
                RoleDoc {
                    id: "accountant".into(),
                    grants: strings(&["finance:invoice:*", "finance:report:read"]),
                    inherits: strings(&["viewer"]),
                },
                RoleDoc {
                    id: "lead_accountant".into(),
                    grants: strings(&["finance:invoice:approve", "finance:report:*"]),
                    inherits: strings(&["accountant"]),
                },
                RoleDoc {
                    id: "tour_lead".into(),
                    grants: strings(&["touring:*", "promoters:event:*"]),
                    inherits: strings(&["booker"]),
                },
            ],
            subscriptions,
            overrides: Vec::new(),
            support_sessions: Vec::new(),
        });
        doc.agents.push(AgentDoc { id: format!("{id}-bot"), company: id.clone() });
        for m in 0..spec.members {
            let user = format!("{id}-u{m}");
            doc.users.push(UserDoc { id: user.clone() });
            let (status, expires_at) = match (m, rng.below(20)) {
                (0, _) => (MembershipStatus::Active, None),
                (_, 0) => (MembershipStatus::Suspended, None),
                (_, 1) => (MembershipStatus::Active, Some(ts("2026-02-01T00:00:00Z"))),
                (_, 2) => (MembershipStatus::Invited, None),
                _ => (MembershipStatus::Active, None),
            };
            let roles = if m == 0 { vec!["owner".to_owned()] } else { roles_for(&mut rng) };
            let restrictions = if rng.chance(10) { vec!["core:report:*".to_owned()] } else { Vec::new() };
            doc.memberships.push(MembershipDoc { user, company: id.clone(), status, roles, expires_at, restrictions });
        }
        if spec.members >= 4 {
            let user = |m: usize| format!("{id}-u{m}");
            let delegation =
                |n: usize, from: String, to: PrincipalDoc, grants: &[&str], redelegable: bool| DelegationDoc {
                    id: format!("{id}-d{n}"),
                    company: id.clone(),
                    from: PrincipalDoc::User(from),
                    to,
                    grants: strings(grants),
                    resources: None,
                    not_before: start,
                    expires_at: ts("2026-03-31T00:00:00Z"),
                    redelegable,
                    revoked_at: None,
                };
            doc.delegations.push(delegation(0, user(0), PrincipalDoc::User(user(1)), &["finance:*"], true));
            doc.delegations.push(delegation(1, user(1), PrincipalDoc::User(user(2)), &["finance:invoice:*"], false));
            let mut scoped =
                delegation(2, user(0), PrincipalDoc::Agent(format!("{id}-bot")), &["finance:*", "ai:*"], false);
            scoped.resources =
                Some(vec![ResourceDoc { company: id.clone(), kind: "invoice".into(), id: "inv-1".into() }]);
            doc.delegations.push(scoped);
            doc.delegations.push(delegation(3, user(0), PrincipalDoc::Agent(format!("{id}-bot")), &["ai:*"], false));
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Access;

    #[test]
    fn synthetic_worlds_load_and_are_reproducible() {
        let spec = Spec { companies: 5, members: 6, seed: 1 };
        assert_eq!(world(spec), world(spec));
        assert_ne!(world(spec), world(Spec { seed: 2, ..spec }));
        let w = crate::World::from_doc(&world(spec)).unwrap();
        assert_eq!(w.catalog().permission_count(), 200);
        assert_eq!(w.companies().count(), 5);
    }
}
