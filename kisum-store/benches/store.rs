//! kisum-store benchmarks (DESIGN.md §8), each beside its baseline in the same run:
//! - committed writes (one company each, every commit durable) on SQLite and PostgreSQL, against the
//!   disk's bare fsync rate;
//! - opening a store of N companies × 20 members (checkpoint + 1,000 changes) against loading the same
//!   world from its JSON file (N from `KISUM_BENCH_COMPANIES`, default 100,000);
//! - a directory check while a writer commits continuously, against the same check with no writer.
//!
//! PostgreSQL is `KISUM_TEST_PG` or `postgres://postgres@127.0.0.1:5432/test`; the bench creates and drops
//! a database of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kisum_access::doc::{MembershipDoc, WorldDoc};
use kisum_access::synth::{self, Spec};
use kisum_access::{Access, Actor, Change, CompanyId, Directory, Principal, Timestamp, World};
use kisum_store::{Engine, connect};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};
use tokio::runtime::Runtime;

fn at() -> Timestamp {
    Timestamp::from_unix(1_773_964_800)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn pg_base() -> String {
    std::env::var("KISUM_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh PostgreSQL database for the bench; dropped by `drop_pg`.
async fn create_pg(name: &str) -> String {
    let base = pg_base();
    let mut admin = base.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
    admin.execute(AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))).await.unwrap();
    admin.execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#))).await.unwrap();
    admin.close().await.unwrap();
    format!("{}/{name}", base.rsplit_once('/').unwrap().0)
}

async fn drop_pg(name: &str) {
    let mut admin = pg_base().parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
    admin.execute(AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))).await.unwrap();
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kisum-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes that each touch one company: member `u1` of company `i` alternates between two roles.
struct Writes {
    memberships: Vec<MembershipDoc>,
    n: AtomicU64,
}

impl Writes {
    fn new(doc: &WorldDoc) -> Writes {
        let memberships = doc.memberships.iter().filter(|m| m.user.ends_with("-u1")).cloned().collect();
        Writes { memberships, n: AtomicU64::new(0) }
    }

    fn next(&self) -> Change {
        let n = self.n.fetch_add(1, Ordering::Relaxed) as usize;
        let mut m = self.memberships[n % self.memberships.len()].clone();
        m.roles = vec![if (n / self.memberships.len()).is_multiple_of(2) { "viewer" } else { "booker" }.to_owned()];
        Change::PutMembership(m)
    }
}

fn small_world() -> WorldDoc {
    synth::world(Spec { companies: 1_000, members: 20, seed: 7 })
}

fn committed_writes(c: &mut Criterion) {
    let rt = runtime();
    let doc = small_world();
    let writes = Writes::new(&doc);
    let mut g = c.benchmark_group("committed writes");
    g.sample_size(20).measurement_time(Duration::from_secs(10));

    // The baseline: what the disk can make durable, one small write and fsync at a time.
    let dir = temp_dir("fsync");
    let mut file = std::fs::File::create(dir.join("fsync.bin")).unwrap();
    g.bench_function("bare fsync (64 B write + fdatasync)", |b| {
        b.iter(|| {
            file.write_all(&[7u8; 64]).unwrap();
            file.sync_data().unwrap();
        })
    });

    let sqlite_dir = temp_dir("writes");
    let url = format!("sqlite://{}", sqlite_dir.join("kisum.db").display());
    let engine = rt.block_on(async { Engine::open(connect(&url).await.unwrap(), Some(&doc)).await.unwrap() });
    g.bench_function("sqlite", |b| {
        b.iter(|| rt.block_on(engine.write(&Actor::Platform, at(), writes.next())).unwrap())
    });
    drop(engine);

    let pg_name = format!("kisum_bench_{}", std::process::id());
    let pg_url = rt.block_on(create_pg(&pg_name));
    let engine = rt.block_on(async { Engine::open(connect(&pg_url).await.unwrap(), Some(&doc)).await.unwrap() });
    g.bench_function("postgres", |b| {
        b.iter(|| rt.block_on(engine.write(&Actor::Platform, at(), writes.next())).unwrap())
    });
    drop(engine);
    rt.block_on(drop_pg(&pg_name));
    g.finish();
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(sqlite_dir);
}

fn opening(c: &mut Criterion) {
    let companies: usize = std::env::var("KISUM_BENCH_COMPANIES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let rt = runtime();
    let started = Instant::now();
    let doc = synth::world(Spec { companies, members: 20, seed: 42 });
    let json = serde_json::to_string(&doc).unwrap();
    eprintln!("world of {companies} companies x 20 members: {} MB of JSON", json.len() >> 20);

    let dir = temp_dir("open");
    let url = format!("sqlite://{}", dir.join("kisum.db").display());
    rt.block_on(async {
        let engine = Engine::open(connect(&url).await.unwrap(), Some(&doc)).await.unwrap();
        let writes = Writes::new(&doc);
        for _ in 0..1_000 {
            engine.write(&Actor::Platform, at(), writes.next()).await.unwrap();
        }
    });
    drop(doc);
    eprintln!("store prepared (checkpoint + 1,000 changes) in {:.1?}", started.elapsed());

    let mut g = c.benchmark_group("open");
    g.sample_size(10).measurement_time(Duration::from_secs(1));
    g.bench_with_input(BenchmarkId::new("world JSON -> directory", companies), &json, |b, json| {
        b.iter(|| black_box(Directory::new(World::from_json(json).unwrap())))
    });
    g.bench_with_input(BenchmarkId::new("sqlite checkpoint + 1,000 changes", companies), &url, |b, url| {
        b.iter(|| rt.block_on(async { black_box(Engine::open(connect(url).await.unwrap(), None).await.unwrap()) }))
    });
    g.finish();
    let _ = std::fs::remove_dir_all(dir);
}

fn checks_under_writes(c: &mut Criterion) {
    let doc = small_world();
    let dir = temp_dir("readers");
    let url = format!("sqlite://{}", dir.join("kisum.db").display());
    let rt = Arc::new(runtime());
    let engine = Arc::new(rt.block_on(async { Engine::open(connect(&url).await.unwrap(), Some(&doc)).await.unwrap() }));
    let directory = engine.directory().clone();
    let permission = directory.permission("promoters:event:read").unwrap();
    let queries: Vec<(Principal, CompanyId)> = (0..1024)
        .map(|i| {
            let company = (i * 7919) % 1_000;
            let member = (i * 31) % 20;
            (Principal::parse(&format!("user:c{company}-u{member}")).unwrap(), format!("c{company}").parse().unwrap())
        })
        .collect();
    let mut g = c.benchmark_group("directory check");
    let mut i = 0;
    g.bench_function("no writer", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            let (p, company) = &queries[i];
            directory.check(p, company, permission, None, at())
        })
    });
    // A writer at the target rate (1,000 commits/s, DESIGN.md §8), then one as fast as it can go.
    for (label, pace) in [
        ("while a writer commits 1,000/s to SQLite", Some(Duration::from_millis(1))),
        ("while a writer commits flat out to SQLite", None),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let writer = {
            let (engine, stop, committed, rt) = (engine.clone(), stop.clone(), committed.clone(), rt.clone());
            let writes = Writes::new(&doc);
            std::thread::spawn(move || {
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    rt.block_on(engine.write(&Actor::Platform, at(), writes.next())).unwrap();
                    let n = committed.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Some(pace) = pace {
                        let due = start + pace * n as u32;
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    }
                }
            })
        };
        let started = Instant::now();
        g.bench_function(label, |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                let (p, company) = &queries[i];
                directory.check(p, company, permission, None, at())
            })
        });
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        let n = committed.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64();
        eprintln!("{label}: {n} commits in {secs:.1} s ({:.0}/s)", n as f64 / secs);
    }
    g.finish();
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, committed_writes, checks_under_writes, opening);
criterion_main!(benches);
