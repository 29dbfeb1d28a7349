//! The invariants of DESIGN.md §4 as properties over generated worlds.

use kisum_access::doc::{MembershipStatus, WorldDoc};
use kisum_access::{Access, Actor, Change, Decision, Directory, Grant, GrantedBy, Snapshot, World};
use kisum_entitlements::doc::SubscriptionStatus;
use proptest::prelude::*;

use crate::worlds::{self, cid, instants, load, queries};

fn config() -> ProptestConfig {
    ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() }
}

/// Every decision of the query space at every instant.
fn decisions(world: &World) -> Vec<Decision> {
    let mut out = Vec::new();
    for t in instants() {
        for (principal, company, permission, resource) in queries(world) {
            out.push(world.check(&principal, &company, permission, resource.as_ref(), t));
        }
    }
    out
}

proptest! {
    #![proptest_config(config())]

    /// A snapshot answers every check exactly as direct evaluation does, at every instant from the one it
    /// was built at until `valid_until`.
    #[test]
    fn snapshot_equals_direct_evaluation(seed in any::<u64>()) {
        let world = load(&worlds::world(seed));
        let times = instants();
        for principal in worlds::principals() {
            for company in ["a", "b", "zzz"].map(cid) {
                for (i, &t0) in times.iter().enumerate() {
                    let snap = world.snapshot(&principal, &company, t0);
                    // The wire form rebuilds a snapshot that decides exactly the same.
                    let wire = world.wire_snapshot(&principal, &company, t0);
                    let json = serde_json::to_string(&wire).unwrap();
                    let rebuilt = Snapshot::from_wire(&serde_json::from_str(&json).unwrap(), &world.catalog()).unwrap();
                    for &t in times.iter().skip(i) {
                        if !snap.is_valid_at(t) {
                            continue;
                        }
                        for permission in world.catalog().permission_ids() {
                            for resource in worlds::query_resources() {
                                let direct = world.check(&principal, &company, permission, resource.as_ref(), t);
                                let fast = snap.decide(permission, resource.as_ref());
                                prop_assert_eq!(rebuilt.decide(permission, resource.as_ref()), fast);
                                prop_assert_eq!(fast.err(), direct.reason(),
                                    "seed {} {} {} {} {:?} built {} asked {}", seed, principal, company,
                                    world.catalog().key(permission), resource, t0, t);
                                if resource.is_none() {
                                    prop_assert_eq!(snap.allows(permission, None), direct.is_allowed());
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// A delegate never gains a permission its delegator cannot pass on: whatever a principal is allowed
    /// through a delegation, the delegator of its first link is allowed too, and the permission is
    /// delegable.
    #[test]
    fn delegation_attenuates(seed in any::<u64>()) {
        let doc = worlds::world(seed);
        let world = load(&doc);
        for t in instants() {
            for (principal, company, permission, resource) in queries(&world) {
                let (decision, granted) = world.check_granted(&principal, &company, permission, resource.as_ref(), t);
                let Decision::Allow(allow) = decision else { continue };
                let Grant::Delegation(chain) = allow.grant else { continue };
                prop_assert!(world.catalog().permission_def(permission).unwrap().is_delegable());
                let Some(GrantedBy::Delegations(links)) = granted else {
                    panic!("seed {seed}: a delegation allow resolves to its chain, got {granted:?}")
                };
                prop_assert_eq!(links.len(), chain.len());
                let partition = world.company(&company).unwrap();
                let d = partition.source().delegations.iter().find(|d| d.id == links[0].as_str()).unwrap();
                let kisum_access::doc::PrincipalDoc::User(from) = &d.from else { panic!("from is a user") };
                let delegator = kisum_access::Principal::parse(&format!("user:{from}")).unwrap();
                let theirs = world.check(&delegator, &company, permission, resource.as_ref(), t);
                prop_assert!(theirs.is_allowed(), "seed {} {} got {} from {} who lacks it",
                    seed, principal, world.catalog().key(permission), delegator);
            }
        }
    }

    /// Changing anything in company `a` never changes a decision in company `b`.
    #[test]
    fn tenants_are_isolated(seed in any::<u64>(), other in any::<u64>()) {
        let doc = worlds::world(seed);
        let replacement = worlds::world(other);
        let mut changed = doc.clone();
        let only = |d: &WorldDoc, company: &str| -> WorldDoc {
            let mut d = d.clone();
            d.companies.retain(|c| c.id == company);
            d.memberships.retain(|m| m.company == company);
            d.agents.retain(|a| a.company == company);
            d.delegations.retain(|x| x.company == company);
            d
        };
        let (b, a2) = (only(&doc, "b"), only(&replacement, "a"));
        changed.companies = a2.companies.into_iter().chain(b.companies).collect();
        changed.memberships = a2.memberships.into_iter().chain(b.memberships).collect();
        changed.agents = a2.agents.into_iter().chain(b.agents).collect();
        changed.delegations = a2.delegations.into_iter().chain(b.delegations).collect();
        let (before, after) = (load(&doc), load(&changed));
        for t in instants() {
            for (principal, company, permission, resource) in queries(&before) {
                if company.as_str() != "b" {
                    continue;
                }
                prop_assert_eq!(
                    before.check(&principal, &company, permission, resource.as_ref(), t).reason(),
                    after.check(&principal, &company, permission, resource.as_ref(), t).reason()
                );
            }
        }
    }

    /// Suspending a membership, revoking a delegation or canceling a subscription never turns a deny
    /// into an allow.
    #[test]
    fn revocation_is_monotone(seed in any::<u64>(), pick in any::<u64>(), when in 0usize..9) {
        let doc = worlds::world(seed);
        let mut revoked = doc.clone();
        let mut rng = kisum_access::synth::Rng::new(pick);
        match rng.below(3) {
            0 if !revoked.memberships.is_empty() => {
                let i = rng.below(revoked.memberships.len());
                revoked.memberships[i].status = MembershipStatus::Suspended;
            }
            1 if !revoked.delegations.is_empty() => {
                let i = rng.below(revoked.delegations.len());
                let at = instants()[when];
                let d = &mut revoked.delegations[i];
                d.revoked_at = Some(d.revoked_at.map_or(at, |r| r.min(at)));
            }
            _ => {
                let c = rng.below(2);
                if !revoked.companies[c].subscriptions.is_empty() {
                    let i = rng.below(revoked.companies[c].subscriptions.len());
                    revoked.companies[c].subscriptions[i].status = SubscriptionStatus::Canceled;
                }
            }
        }
        let (before, after) = (decisions(&load(&doc)), decisions(&load(&revoked)));
        for (b, a) in before.iter().zip(&after) {
            prop_assert!(b.is_allowed() || !a.is_allowed(), "seed {} pick {}: a deny became an allow", seed, pick);
        }
    }

    /// After any sequence of writes, the directory decides exactly as a world loaded from its exported
    /// state, and versions only grow.
    #[test]
    fn directory_equals_reloaded_world(seed in any::<u64>(), writes in any::<u64>()) {
        let directory = Directory::new(load(&worlds::world(seed)));
        let mut rng = kisum_access::synth::Rng::new(writes);
        let mut last_seq = 0u64;
        for n in 0..12 {
            let name = worlds::COMPANIES[rng.below(2)];
            let company = cid(name);
            let at = instants()[rng.below(9)];
            let change = match rng.below(6) {
                0 => {
                    let user = rng.pick(&worlds::USERS, "u0");
                    Change::PutMembership(worlds::membership(&mut rng, user, name))
                }
                1 => Change::PutDelegation(worlds::delegation(&mut rng, format!("w{n}"), name)),
                2 => Change::RemoveMembership {
                    company: company.clone(),
                    user: rng.pick(&worlds::USERS, "u0").parse().unwrap(),
                },
                3 => Change::RevokeDelegation { company: company.clone(), delegation: format!("{name}-d0").parse().unwrap() },
                4 => {
                    let subs = worlds::subscriptions(&mut rng);
                    match subs.into_iter().next() {
                        Some(subscription) => Change::PutSubscription { company: company.clone(), subscription },
                        None => continue,
                    }
                }
                _ => Change::PutRole {
                    company: company.clone(),
                    role: serde_json::from_str(r#"{"id":"extra","grants":["ai:*"],"inherits":["reader"]}"#).unwrap(),
                },
            };
            // Each change goes through the log's record format, as a store replays it.
            let change: Change = serde_json::from_str(&serde_json::to_string(&change).unwrap()).unwrap();
            if let Ok(record) = directory.apply(&Actor::Platform, at, change) {
                prop_assert!(record.seq > last_seq);
                last_seq = record.seq;
            }
        }
        let reloaded = World::from_doc(&directory.to_doc()).unwrap();
        for t in instants() {
            for (principal, company, permission, resource) in queries(&reloaded) {
                prop_assert_eq!(
                    directory.check(&principal, &company, permission, resource.as_ref(), t).reason(),
                    reloaded.check(&principal, &company, permission, resource.as_ref(), t).reason()
                );
            }
        }
    }
}
