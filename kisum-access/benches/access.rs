//! Access benchmarks: snapshot checks against a bare bitset, snapshot resolution, direct checks through
//! the directory at growing sizes, and writes under concurrent reads. See BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kisum_access::doc::{DelegationDoc, MembershipDoc, MembershipStatus, PrincipalDoc, UserDoc};
use kisum_access::synth::{self, Spec};
use kisum_access::{Access, Actor, Change, CompanyId, Directory, Principal, Timestamp, World};
use kisum_entitlements::BitSet;

fn at() -> Timestamp {
    Timestamp::parse("2026-03-15T00:00:00Z").unwrap()
}

/// One company where `hero` holds 5 roles (3 custom, inheriting system roles) and receives 3 delegations
/// (one through a two-link chain) in a catalog of 200 permissions.
fn hero_world() -> World {
    let mut doc = synth::world(Spec { companies: 1, members: 8, seed: 7 });
    // Make the company and the delegators deterministic: everything entitled, every delegator active.
    doc.companies[0].subscriptions.truncate(1);
    doc.companies[0].subscriptions[0].plan.package = Some("enterprise".into());
    for m in doc.memberships.iter_mut().take(4) {
        m.status = MembershipStatus::Active;
        m.expires_at = None;
        m.restrictions.clear();
    }
    doc.users.push(UserDoc { id: "hero".into() });
    doc.memberships.push(MembershipDoc {
        user: "hero".into(),
        company: "c0".into(),
        status: MembershipStatus::Active,
        roles: ["accountant", "lead_accountant", "tour_lead", "viewer", "booker"].map(String::from).to_vec(),
        expires_at: None,
        restrictions: vec!["core:report:*".into()],
    });
    let start = Timestamp::parse("2026-03-01T00:00:00Z").unwrap();
    for (n, (from, grants)) in [("c0-u0", "crm:*"), ("c0-u1", "finance:*"), ("c0-u3", "ai:*")].into_iter().enumerate() {
        doc.delegations.push(DelegationDoc {
            id: format!("hero-{n}"),
            company: "c0".into(),
            from: PrincipalDoc::User(from.into()),
            to: PrincipalDoc::User("hero".into()),
            grants: vec![grants.into()],
            resources: None,
            not_before: start,
            expires_at: Timestamp::parse("2026-04-01T00:00:00Z").unwrap(),
            redelegable: false,
            revoked_at: None,
        });
    }
    World::from_doc(&doc).unwrap()
}

fn snapshot_checks(c: &mut Criterion) {
    let world = hero_world();
    let hero = Principal::parse("user:hero").unwrap();
    let c0 = CompanyId::parse("c0").unwrap();
    let snapshot = world.snapshot(&hero, &c0, at());
    let read = world.permission("finance:invoice:read").unwrap();
    let denied = world.permission("core:report:read").unwrap();
    assert!(snapshot.allows(read, None) && !snapshot.allows(denied, None));
    // The baseline: a bare precompiled bitset with the same bits, looked up the same way.
    let mut bare = BitSet::new(world.catalog().permission_count());
    for p in world.catalog().permission_ids() {
        if snapshot.allows(p, None) {
            bare.insert(p.index());
        }
    }
    let mut g = c.benchmark_group("snapshot check");
    g.bench_function("bare bitset lookup", |b| b.iter(|| black_box(&bare).contains(black_box(read).index())));
    g.bench_function("Snapshot::allows", |b| b.iter(|| black_box(&snapshot).allows(black_box(read), None)));
    g.bench_function("Snapshot::decide (deny, with reason)", |b| {
        b.iter(|| black_box(&snapshot).decide(black_box(denied), None))
    });
    g.finish();

    let mut g = c.benchmark_group("resolve");
    g.bench_function("snapshot, 5 roles + 3 delegations, 200 permissions", |b| {
        b.iter(|| world.snapshot(black_box(&hero), black_box(&c0), at()))
    });
    g.bench_function("direct check (allow through a delegation)", |b| {
        b.iter(|| world.check(black_box(&hero), &c0, black_box(read), None, at()))
    });
    g.finish();
}

fn sizes() -> Vec<usize> {
    std::env::var("KISUM_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000])
}

/// The memory-bound limit a cold check is up against: `k` dependent loads at random places in a buffer
/// as large as a directory (each load's address comes from the previous one, as a check's pointers do).
fn memory_latency(c: &mut Criterion) {
    const MIB: usize = 512;
    let n = MIB * 1024 * 1024 / 8;
    let mut rng = synth::Rng::new(3);
    // One random cycle through every 64-byte line, so that no load is predictable.
    let lines = n / 8;
    let mut order: Vec<usize> = (0..lines).collect();
    for i in (1..lines).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut next = vec![0u64; n];
    for k in 0..lines {
        next[order[k] * 8] = (order[(k + 1) % lines] * 8) as u64;
    }
    let mut g = c.benchmark_group(format!("memory latency ({MIB} MiB buffer)"));
    for k in [1usize, 3] {
        let mut p = 0usize;
        g.bench_function(format!("{k} dependent random loads"), |b| {
            b.iter(|| {
                for _ in 0..k {
                    p = next[p] as usize;
                }
                black_box(p)
            })
        });
    }
    g.finish();
}

fn directory_scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("directory check (no snapshot)");
    for companies in sizes() {
        let started = Instant::now();
        let doc = synth::world(Spec { companies, members: 20, seed: 42 });
        let generated = started.elapsed();
        let started = Instant::now();
        let world = World::from_doc(&doc).unwrap();
        let loaded = started.elapsed();
        let directory = Directory::new(world);
        eprintln!(
            "{companies} companies x 20 members: generated in {generated:.1?}, World::from_doc {loaded:.1?}, \
             + Directory::new {:.1?}",
            started.elapsed()
        );
        let permission = directory.permission("promoters:event:read").unwrap();
        // Query a spread of (company, member) pairs, the same count at every size.
        let queries: Vec<(Principal, CompanyId)> = (0..1024)
            .map(|i| {
                let company = (i * 7919) % companies;
                let member = (i * 31) % 20;
                (
                    Principal::parse(&format!("user:c{company}-u{member}")).unwrap(),
                    CompanyId::parse(&format!("c{company}")).unwrap(),
                )
            })
            .collect();
        let mut i = 0;
        g.bench_with_input(BenchmarkId::new("1,024 queries", companies), &companies, |b, _| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                let (principal, company) = &queries[i];
                directory.check(principal, company, permission, None, at())
            })
        });
        // Random queries: 20,000 (member, company, permission) triples drawn uniformly over the whole
        // directory, as the peers benchmark draws them; each iteration asks the next one.
        let mut rng = synth::Rng::new(11);
        let permissions: Vec<_> = directory.catalog().permission_ids().collect();
        let random: Vec<(Principal, CompanyId, kisum_access::PermissionId)> = (0..20_000)
            .map(|_| {
                let company = rng.below(companies);
                let member = rng.below(20);
                (
                    Principal::parse(&format!("user:c{company}-u{member}")).unwrap(),
                    CompanyId::parse(&format!("c{company}")).unwrap(),
                    permissions[rng.below(permissions.len())],
                )
            })
            .collect();
        let mut i = 0;
        g.bench_with_input(BenchmarkId::new("20,000 random queries", companies), &companies, |b, _| {
            b.iter(|| {
                i = (i + 1) % random.len();
                let (principal, company, permission) = &random[i];
                directory.check(principal, company, *permission, None, at())
            })
        });
    }
    g.finish();
}

/// Sign-in's list of a user's companies and closing a support session by id, at 1k and 100k companies:
/// from the directory's indices, beside the scan of every company they replaced (issue 21).
fn lookups_by_user(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookups by user and session");
    for companies in [1_000, 100_000] {
        let doc = synth::world(Spec { companies, members: 20, seed: 42 });
        let directory = Directory::new(World::from_doc(&doc).unwrap());
        let catalog = directory.catalog();
        let users: Vec<kisum_access::UserId> =
            (0..1024).map(|i| format!("c{}-u{}", (i * 7919) % companies, i % 20).parse().unwrap()).collect();
        let mut i = 0;
        g.bench_with_input(BenchmarkId::new("memberships_of (index)", companies), &companies, |b, _| {
            b.iter(|| {
                i = (i + 1) % users.len();
                black_box(directory.memberships_of(&users[i]))
            })
        });
        let mut i = 0;
        g.bench_with_input(BenchmarkId::new("memberships_of (scan, before)", companies), &companies, |b, _| {
            b.iter(|| {
                i = (i + 1) % users.len();
                let user = &users[i];
                let found: Vec<_> = directory
                    .company_ids()
                    .into_iter()
                    .filter_map(|c| directory.company(&c).and_then(|p| p.membership_of(&catalog, user)))
                    .collect();
                black_box(found)
            })
        });
        // One open support session in the middle company; closing it is an index lookup and a prepare.
        let company = CompanyId::parse(&format!("c{}", companies / 2)).unwrap();
        let open = Change::OpenSupportSession {
            company: company.clone(),
            session: serde_json::from_value(serde_json::json!({"id": "ss1", "user": "staff", "reason": "bench",
                "roles": ["viewer"], "opened_at": at(), "expires_at": Timestamp::from_unix(at().unix_seconds() + 3600)}))
            .unwrap(),
        };
        directory.apply(&Actor::Platform, at(), Change::AddUser { user: "staff".parse().unwrap() }).unwrap();
        directory.apply(&Actor::Platform, at(), open).unwrap();
        g.bench_with_input(
            BenchmarkId::new("close support session (index + prepare)", companies),
            &companies,
            |b, _| {
                b.iter(|| {
                    let company = directory.support_session_company("ss1").unwrap();
                    let close = Change::CloseSupportSession { company, id: "ss1".into() };
                    black_box(directory.prepare(&Actor::Platform, at(), close).unwrap())
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("close support session (scan + prepare, before)", companies),
            &companies,
            |b, _| {
                b.iter(|| {
                    let company = directory
                        .company_ids()
                        .into_iter()
                        .find(|c| {
                            directory
                                .company(c)
                                .is_some_and(|p| p.source().company.support_sessions.iter().any(|s| s.id == "ss1"))
                        })
                        .unwrap();
                    let close = Change::CloseSupportSession { company, id: "ss1".into() };
                    black_box(directory.prepare(&Actor::Platform, at(), close).unwrap())
                })
            },
        );
    }
    g.finish();
}

fn writes_under_reads(c: &mut Criterion) {
    let doc = synth::world(Spec { companies: 1_000, members: 20, seed: 9 });
    let directory = Arc::new(Directory::new(World::from_doc(&doc).unwrap()));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (directory, stop) = (directory.clone(), stop.clone());
        std::thread::spawn(move || {
            let p = directory.permission("core:event:read").unwrap();
            let principal = Principal::parse("user:c1-u1").unwrap();
            let c1 = CompanyId::parse("c1").unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                black_box(directory.check(&principal, &c1, p, None, at()));
                n += 1;
            }
            n
        })
    };
    let mut round = 0u64;
    let started = Instant::now();
    c.bench_function("directory write (membership update) with 1 reader thread", |b| {
        b.iter(|| {
            round += 1;
            let company = round % 1_000;
            let member = 1 + round % 19;
            let change = Change::PutMembership(MembershipDoc {
                user: format!("c{company}-u{member}"),
                company: format!("c{company}"),
                status: MembershipStatus::Active,
                roles: vec![if round.is_multiple_of(2) { "viewer" } else { "booker" }.into()],
                expires_at: None,
                restrictions: vec![],
            });
            directory.apply(&Actor::Platform, at(), change).unwrap()
        })
    });
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    let secs = started.elapsed().max(Duration::from_millis(1)).as_secs_f64();
    eprintln!("reader thread: {reads} checks in {secs:.1}s ({:.0}/s) while writing", reads as f64 / secs);
}

criterion_group!(benches, snapshot_checks, memory_latency, directory_scale, lookups_by_user, writes_under_reads);
criterion_main!(benches);
