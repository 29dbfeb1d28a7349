//! Small random worlds for property tests, valid by construction, from a seed (a failing case prints it).

use kisum_access::doc::{
    AccessCatalogDoc, AgentDoc, CompanyDoc, DelegationDoc, MembershipDoc, MembershipStatus, PrincipalDoc, ResourceDoc,
    UserDoc, WorldDoc,
};
use kisum_access::synth::Rng;
use kisum_access::{Access, CompanyId, Principal, ResourceRef, Timestamp, World};
use kisum_entitlements::doc::{Effect, OverrideDoc, PlanRefDoc, SubscriptionDoc, SubscriptionStatus};

pub const COMPANIES: [&str; 2] = ["a", "b"];
pub const USERS: [&str; 6] = ["u0", "u1", "u2", "u3", "u4", "u5"];

pub fn day(n: i64) -> Timestamp {
    Timestamp::from_unix(1_767_225_600 + n * 86_400)
}

/// The instants queries are asked at: they coincide with every boundary the generator uses.
pub fn instants() -> Vec<Timestamp> {
    [0, 3, 5, 10, 20, 40, 60, 90, 120].into_iter().map(day).collect()
}

pub fn catalog() -> AccessCatalogDoc {
    serde_json::from_str(
        r#"{
        "modules": [{"id":"core","kind":"base"},{"id":"fin","kind":"addon"},{"id":"ai","kind":"addon"}],
        "features": [{"key":"fin.approvals","module":"fin"}],
        "limits": [{"key":"core.seats","combine":"sum"}],
        "permissions": [
            {"key":"core:doc:read"}, {"key":"core:doc:write"}, {"key":"core:member:manage","delegable":false},
            {"key":"core:member:invite","delegable":false}, {"key":"core:member:remove","delegable":false},
            {"key":"core:role:manage","delegable":false}, {"key":"core:agent:manage","delegable":false},
            {"key":"fin:invoice:read"}, {"key":"fin:invoice:approve","feature":"fin.approvals"},
            {"key":"fin:payout:read"}, {"key":"ai:chat:ask"}, {"key":"ai:chat:admin","delegable":false}
        ],
        "packages": [
            {"id":"basic","version":1,"modules":["core"],"limits":{"core.seats":3}},
            {"id":"full","version":1,"modules":["core","fin"],"features":["fin.approvals"],"limits":{"core.seats":10}}
        ],
        "addons": [
            {"id":"ai","version":1,"requires":["basic","full"],"modules":["ai"]},
            {"id":"fin","version":1,"requires":["basic"],"modules":["fin"]}
        ],
        "roles": [
            {"id":"owner","grants":["*"]},
            {"id":"reader","grants":["core:doc:read","fin:invoice:read"]},
            {"id":"finance","grants":["fin:*"],"inherits":["reader"]},
            {"id":"aiuser","grants":["ai:chat:ask"]}
        ]}"#,
    )
    .unwrap()
}

pub fn subset<T: Clone>(rng: &mut Rng, items: &[T], percent: u64) -> Vec<T> {
    items.iter().filter(|_| rng.chance(percent)).cloned().collect()
}

pub fn resources(company: &str) -> Vec<ResourceDoc> {
    ["i1", "i2"].map(|id| ResourceDoc { company: company.into(), kind: "invoice".into(), id: id.into() }).to_vec()
}

fn instant(rng: &mut Rng) -> Timestamp {
    let all = instants();
    rng.pick(&all, day(0))
}

pub fn subscriptions(rng: &mut Rng) -> Vec<SubscriptionDoc> {
    let statuses = [
        SubscriptionStatus::Active,
        SubscriptionStatus::Active,
        SubscriptionStatus::Trialing,
        SubscriptionStatus::PastDue,
        SubscriptionStatus::Canceled,
        SubscriptionStatus::Paused,
    ];
    let mut subs = Vec::new();
    let plans = [("package", "basic"), ("package", "full"), ("addon", "ai"), ("addon", "fin")];
    let mut package_taken = false;
    for (i, (kind, id)) in plans.into_iter().enumerate() {
        if !rng.chance(if kind == "package" { 60 } else { 50 }) || (kind == "package" && package_taken) {
            continue;
        }
        package_taken |= kind == "package";
        let start = day(rng.pick(&[0, 5, 10], 0));
        subs.push(SubscriptionDoc {
            id: format!("s{i}"),
            plan: PlanRefDoc {
                package: (kind == "package").then(|| id.into()),
                addon: (kind == "addon").then(|| id.into()),
                version: 1,
            },
            status: rng.pick(&statuses, SubscriptionStatus::Active),
            starts_at: start,
            ends_at: rng.chance(30).then(|| day(rng.pick(&[20, 60, 120], 120))),
            trial_ends_at: Some(day(rng.pick(&[20, 40], 40))),
            grace_until: Some(day(rng.pick(&[20, 90], 90))),
            quantity: Some(1 + rng.below(3) as u64),
        });
    }
    subs
}

pub fn delegation(rng: &mut Rng, id: String, company: &str) -> DelegationDoc {
    let patterns = ["*", "fin:*", "fin:invoice:*", "core:doc:read", "ai:*", "core:member:manage"];
    let to = if rng.chance(25) {
        PrincipalDoc::Agent(format!("bot-{company}"))
    } else {
        PrincipalDoc::User(rng.pick(&USERS, "u0").into())
    };
    let not_before = day(rng.pick(&[0, 3, 5, 10], 0));
    let scope = subset(rng, &resources(company), 60);
    DelegationDoc {
        id,
        company: company.into(),
        from: PrincipalDoc::User(rng.pick(&USERS, "u0").into()),
        to,
        grants: subset(rng, &patterns.map(String::from), 35),
        resources: (rng.chance(30) && !scope.is_empty()).then_some(scope),
        not_before,
        expires_at: not_before.checked_add_seconds(86_400 * (1 + rng.below(90)) as i64).unwrap(),
        redelegable: rng.chance(60),
        revoked_at: rng.chance(15).then(|| instant(rng)),
    }
}

pub fn membership(rng: &mut Rng, user: &str, company: &str) -> MembershipDoc {
    let statuses = [
        MembershipStatus::Active,
        MembershipStatus::Active,
        MembershipStatus::Active,
        MembershipStatus::Suspended,
        MembershipStatus::Invited,
        MembershipStatus::Removed,
    ];
    let roles = ["owner", "reader", "finance", "aiuser", "lead", "manager"].map(String::from);
    let restrictions = ["fin:payout:*", "ai:*", "core:doc:write"].map(String::from);
    MembershipDoc {
        user: user.into(),
        company: company.into(),
        status: rng.pick(&statuses, MembershipStatus::Active),
        roles: subset(rng, &roles, 30),
        expires_at: rng.chance(20).then(|| instant(rng)),
        restrictions: subset(rng, &restrictions, 10),
    }
}

/// A random valid world.
pub fn world(seed: u64) -> WorldDoc {
    let mut rng = Rng::new(seed);
    let mut doc = WorldDoc { catalog: catalog(), ..WorldDoc::default() };
    doc.users = USERS.iter().map(|u| UserDoc { id: (*u).into() }).collect();
    for company in COMPANIES {
        let overrides = (0..rng.below(3))
            .map(|_| {
                let effect = if rng.chance(50) { Effect::Grant } else { Effect::Revoke };
                let feature = rng.chance(50);
                OverrideDoc {
                    id: None,
                    effect,
                    module: (!feature).then(|| "ai".into()),
                    feature: feature.then(|| "fin.approvals".into()),
                    limit: None,
                    value: None,
                    expires_at: rng.chance(50).then(|| instant(&mut rng)),
                    reason: "test".into(),
                }
            })
            .collect();
        let lead =
            serde_json::from_str(r#"{"id":"lead","grants":["fin:invoice:approve"],"inherits":["finance"]}"#).unwrap();
        // Manages members and roles, and reads: the actor of most generated writes.
        let manager = serde_json::from_str(
            r#"{"id":"manager","grants":["core:member:invite","core:member:remove","core:role:manage","core:doc:read"]}"#,
        )
        .unwrap();
        doc.companies.push(CompanyDoc {
            id: company.into(),
            roles: vec![lead, manager],
            subscriptions: subscriptions(&mut rng),
            overrides,
            support_sessions: Vec::new(),
        });
        doc.agents.push(AgentDoc { id: format!("bot-{company}"), company: company.into() });
        for user in USERS {
            if rng.chance(75) {
                doc.memberships.push(membership(&mut rng, user, company));
            }
        }
        for n in 0..rng.below(8) {
            doc.delegations.push(delegation(&mut rng, format!("{company}-d{n}"), company));
        }
    }
    doc
}

pub fn load(doc: &WorldDoc) -> World {
    World::from_doc(doc).unwrap_or_else(|e| panic!("generated world rejected: {e}"))
}

pub fn principals() -> Vec<Principal> {
    let mut all: Vec<Principal> = USERS.iter().map(|u| Principal::parse(&format!("user:{u}")).unwrap()).collect();
    for p in ["agent:bot-a", "agent:bot-b", "user:ghost"] {
        all.push(Principal::parse(p).unwrap());
    }
    all
}

pub fn query_resources() -> Vec<Option<ResourceRef>> {
    let mut all = vec![None];
    for r in ["a/invoice/i1", "a/invoice/i2", "b/invoice/i1"] {
        all.push(Some(ResourceRef::parse(r).unwrap()));
    }
    all
}

/// Every query of the generated space, as (principal, company, permission key, resource).
pub fn queries(world: &World) -> Vec<(Principal, CompanyId, kisum_access::PermissionId, Option<ResourceRef>)> {
    let mut out = Vec::new();
    for principal in principals() {
        for company in ["a", "b", "zzz"].map(cid) {
            for permission in world.catalog().permission_ids() {
                for resource in query_resources() {
                    out.push((principal.clone(), company.clone(), permission, resource));
                }
            }
        }
    }
    out
}

/// A company id.
pub fn cid(id: &str) -> CompanyId {
    CompanyId::parse(id).unwrap()
}
