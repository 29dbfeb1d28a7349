//! DESIGN.md §4 "Writes" and §5 as properties: random sequences of writes by random members never give
//! anyone a permission outside the actor's granted set at the instant of the write (by grants, whatever
//! the plan, and effectively), never widen the actor's own membership; an agent acting for a user holds
//! only what that user delegated to it.

use std::collections::HashSet;

use kisum_access::doc::{PrincipalDoc, RoleDoc, WorldDoc};
use kisum_access::synth::Rng;
use kisum_access::{
    Access, Acting, Actor, AgentId, Change, CompanyId, Decision, Directory, GrantedBy, Principal, ResourceRef,
    Timestamp, UserId,
};
use kisum_entitlements::LimitValue;
use kisum_entitlements::doc::{Effect, OverrideDoc, SubscriptionStatus};
use proptest::prelude::*;

use crate::worlds::{self, USERS, cid, day, instants, load, query_resources};

/// The same world with every module, feature and seat entitled by overrides: there a principal is
/// allowed exactly what it holds by grants (roles and delegations, less restrictions).
fn all_entitled(doc: &WorldDoc) -> WorldDoc {
    let mut doc = doc.clone();
    let grant = |module: Option<&str>, feature: Option<&str>, limit: Option<&str>| OverrideDoc {
        id: None,
        effect: Effect::Grant,
        module: module.map(String::from),
        feature: feature.map(String::from),
        limit: limit.map(String::from),
        value: limit.map(|_| LimitValue::Unlimited),
        expires_at: None,
        reason: "shadow".into(),
    };
    for c in &mut doc.companies {
        c.overrides.retain(|o| o.effect == Effect::Grant);
        for m in ["core", "fin", "ai"] {
            c.overrides.push(grant(Some(m), None, None));
        }
        c.overrides.push(grant(None, Some("fin.approvals"), None));
        c.overrides.push(grant(None, None, Some("core.seats")));
    }
    doc
}

type Holding = (Principal, String, Option<ResourceRef>, Timestamp);

/// Everything allowed in `company` at the write's instant `t` and at two later instants (a write may
/// give for later only, extending an end), over the generated query space.
fn held(dir: &Directory, company: &CompanyId, t: Timestamp) -> HashSet<Holding> {
    let catalog = dir.catalog();
    let mut out = HashSet::new();
    for at in [t, day(40), day(120)] {
        for principal in worlds::principals() {
            for permission in catalog.permission_ids() {
                for resource in query_resources().into_iter().take(2) {
                    if dir.check(&principal, company, permission, resource.as_ref(), at).is_allowed() {
                        out.insert((principal.clone(), catalog.key(permission).to_owned(), resource, at));
                    }
                }
            }
        }
    }
    out
}

/// The actor's granted set (its roles' closure less its restrictions), read off the all-entitled
/// directory: the permissions its own roles allow it there.
fn granted_set(shadow: &Directory, user: &UserId, company: &CompanyId, t: Timestamp) -> HashSet<String> {
    let catalog = shadow.catalog();
    let me = Principal::User(user.clone());
    catalog
        .permission_ids()
        .filter(|p| {
            matches!(shadow.check_granted(&me, company, *p, None, t), (Decision::Allow(_), Some(GrantedBy::Role(_))))
        })
        .map(|p| catalog.key(p).to_owned())
        .collect()
}

fn random_change(rng: &mut Rng, dir: &Directory, company: &str, actor: &str, n: usize) -> Change {
    let user = |rng: &mut Rng| rng.pick(&USERS, "u0");
    match rng.below(10) {
        0..=3 => {
            let target = if rng.chance(25) { actor } else { user(rng) };
            Change::PutMembership(worlds::membership(rng, target, company))
        }
        4 => Change::EndMembership { company: cid(company), user: user(rng).parse().unwrap() },
        5 | 6 => {
            let patterns =
                ["*", "core:*", "core:member:invite", "core:role:manage", "fin:*", "core:doc:read", "ai:chat:ask"];
            let id = rng.pick(&["manager", "lead", "r0", "r1"], "r0");
            let inherits = if rng.chance(30) { vec!["reader".to_owned()] } else { Vec::new() };
            let grants = worlds::subset(rng, &patterns.map(String::from), 30);
            Change::PutRole { company: cid(company), role: RoleDoc { id: id.into(), grants, inherits } }
        }
        7 | 8 => {
            let mut d = worlds::delegation(rng, format!("w{n}"), company);
            d.from = PrincipalDoc::User(actor.into());
            Change::AddDelegation(d)
        }
        _ => {
            let ids: Vec<String> = dir
                .company(&cid(company))
                .map(|c| c.source().delegations.iter().map(|d| d.id.clone()).collect())
                .unwrap_or_default();
            match ids.get(rng.below(ids.len().max(1))) {
                Some(id) => Change::RevokeDelegation { company: cid(company), delegation: id.parse().unwrap() },
                None => Change::RotateAgentSecret {
                    company: cid(company),
                    agent: format!("bot-{company}").parse().unwrap(),
                },
            }
        }
    }
}

/// What one run of writes saw: accepted writes, and accepted writes that gave someone something.
#[derive(Default)]
struct Seen {
    accepted: usize,
    widening: usize,
}

fn run(seed: u64, seen: &mut Seen) {
    let mut doc = worlds::world(seed);
    let mut rng = Rng::new(seed ^ 0x005e_ed0f_0a11);
    let paused = rng.chance(30);
    if paused {
        for s in doc.companies.iter_mut().flat_map(|c| c.subscriptions.iter_mut()) {
            s.status = SubscriptionStatus::Paused;
        }
    }
    let real = Directory::new(load(&doc));
    let shadow = Directory::new(load(&all_entitled(&doc)));
    let t = day(rng.pick(&[5, 10, 20], 10));
    for n in 0..30 {
        let company = rng.pick(&worlds::COMPANIES, "a");
        let name = rng.pick(&USERS, "u0");
        let user: UserId = name.parse().unwrap();
        let change = random_change(&mut rng, &real, company, name, n);
        let c = cid(company);
        let (real_before, shadow_before) = (held(&real, &c, t), held(&shadow, &c, t));
        let granted = granted_set(&shadow, &user, &c, t);
        if real.apply(&Actor::User(user.clone()), t, change.clone()).is_err() {
            continue;
        }
        seen.accepted += 1;
        shadow
            .apply(&Actor::Platform, t, change.clone())
            .unwrap_or_else(|e| panic!("seed {seed}: the shadow refused {change:?}: {e}"));
        let (real_after, shadow_after) = (held(&real, &c, t), held(&shadow, &c, t));
        let mut widened = false;
        for (what, before, after) in
            [("effectively", &real_before, &real_after), ("by grants", &shadow_before, &shadow_after)]
        {
            for gained in after.difference(before) {
                widened = true;
                assert!(
                    granted.contains(&gained.1),
                    "seed {seed} (paused: {paused}): {name}'s {change:?} gave {gained:?} {what}, outside its granted set {granted:?}"
                );
                assert!(
                    gained.0 != Principal::User(user.clone()),
                    "seed {seed}: {name} widened its own access with {change:?}: {gained:?} {what}"
                );
            }
        }
        seen.widening += usize::from(widened);
        memberships_are_indexed(&real, seed);
    }
}

/// The index of memberships by user (sign-in's list of companies) says what a scan of every company says.
fn memberships_are_indexed(dir: &Directory, seed: u64) {
    let catalog = dir.catalog();
    for name in USERS {
        let user: UserId = name.parse().unwrap();
        let scan: Vec<_> = dir
            .company_ids()
            .into_iter()
            .filter_map(|c| dir.company(&c).and_then(|p| p.membership_of(&catalog, &user)).map(|m| (c, m)))
            .collect();
        assert_eq!(dir.memberships_of(&user), scan, "seed {seed}: {name}");
    }
}

/// No sequence of accepted writes by members gives anyone a permission outside the actor's granted set,
/// and no actor widens its own access; with every plan paused too.
#[test]
fn member_writes_never_escalate() {
    let base: u64 = std::env::var("KISUM_WRITE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x006b_6973_756d);
    let mut seen = Seen::default();
    for i in 0..64 {
        run(base.wrapping_add(i), &mut seen);
    }
    // The property is not vacuous: writes were accepted, and many of them gave someone something.
    assert!(seen.accepted > 150 && seen.widening > 20, "accepted {}, widening {}", seen.accepted, seen.widening);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// An agent acting for a user holds only what that user delegated to it: every allow needs a valid
    /// delegation from the user to the agent, the user's own allow and the agent's; a snapshot decides as
    /// direct evaluation does; and what another user delegated to the same agent never counts.
    #[test]
    fn an_agent_acting_for_a_user_holds_only_what_that_user_delegated(seed in any::<u64>()) {
        let world = load(&worlds::world(seed));
        let catalog = world.catalog();
        for company in worlds::COMPANIES.map(cid) {
            let agent: AgentId = format!("bot-{company}").parse().unwrap();
            let as_agent = Principal::Agent(agent.clone());
            for name in USERS {
                let user: UserId = name.parse().unwrap();
                let acting = Acting::new(user.clone(), agent.clone());
                for t in instants() {
                    let snap = world.acting_snapshot(&acting, &company, t);
                    for permission in catalog.permission_ids() {
                        for resource in query_resources() {
                            let r = resource.as_ref();
                            let direct = world.acting_explain(&acting, &company, permission, r, t);
                            prop_assert_eq!(snap.decide(permission, r).err(), direct.reason,
                                "seed {} {} {} {:?} at {}", seed, acting, catalog.key(permission), r, t);
                            if direct.reason.is_none() {
                                prop_assert!(world.delegates_to(&company, &user, &agent, t));
                                prop_assert!(world.check(&Principal::User(user.clone()), &company, permission, r, t).is_allowed());
                                prop_assert!(world.check(&as_agent, &company, permission, r, t).is_allowed());
                            }
                        }
                    }
                }
            }
        }
    }
}
