//! Crash safety: a child process commits changes continuously and is killed with SIGKILL at random
//! moments; after each kill, reopening the store must show every write whose commit had returned (the
//! child printed its sequence), in order, and nothing partial.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kisum_access::Access;
use kisum_store::{Engine, connect};
use kisum_tests::{Backend, TestDb, demo_world};

/// Kills per backend.
const KILLS: usize = 20;

/// A small deterministic generator (xorshift), seeded from the clock and printed, so that a failing
/// schedule can be replayed with `KISUM_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub async fn run(backend: Backend) {
    let db = TestDb::new(backend).await;
    let seed = std::env::var("KISUM_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    eprintln!("crash test on {backend:?}: KISUM_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut committed: Vec<u64> = Vec::new();
    let mut previous_head = 0;
    for round in 0..KILLS {
        // Between 5 ms and 150 ms of writing after the child is ready: kills land anywhere in a commit.
        let delay = Duration::from_millis(5 + rng.next() % 145);
        let url = db.url.clone();
        let printed = tokio::task::spawn_blocking(move || kill_after(&url, delay)).await.unwrap();
        committed.extend(&printed);
        // A killed client's COMMIT may still be finishing inside PostgreSQL: its server process outlives the
        // client. Reopen once no other session is connected to this database, so the state read is final.
        if backend == Backend::Postgres {
            settle(&db.url).await;
        }

        let engine = Engine::open(connect(&db.url).await.unwrap(), None)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the store does not reopen after a kill: {e}"));
        let head = engine.seq();
        let last = committed.last().copied().unwrap_or(0);
        assert!(head >= last, "round {round}: sequence {last} was committed but the store ends at {head}");
        // At most the one write in flight at this kill may have committed without being printed.
        let known = last.max(previous_head);
        assert!(head <= known + 1, "round {round}: head {head} is beyond {known} + the one write in flight");
        previous_head = head;
        // Every printed write is there, in order, and the log has no gaps or partial entries.
        let log = engine.store().changes_after(0, u32::MAX).await.unwrap();
        let seqs: Vec<u64> = log.iter().map(|e| e.seq()).collect();
        assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "round {round}: the log is not contiguous");
        let doc = engine.directory().to_doc();
        for entry in &log {
            if let kisum_access::Change::AddUser { user } = &entry.change {
                assert!(doc.users.iter().any(|u| u.id == user.as_str()), "round {round}: {user} lost");
            }
        }
        // Decisions are answered from the reopened state: an invited user is not yet a member.
        if let Some(kisum_access::Change::PutMembership(m)) = log.last().map(|e| &e.change) {
            let p = kisum_access::Principal::parse(&format!("user:{}", m.user)).unwrap();
            let read = engine.directory().permission("promoters:event:read").unwrap();
            let company = "encore".parse().unwrap();
            let reason = engine.directory().check(&p, &company, read, None, kisum_tests_at()).reason();
            assert_eq!(reason, Some(kisum_access::DenyReason::MembershipInactive));
        }
    }
    assert!(committed.len() >= KILLS, "the writer committed too little to test anything: {committed:?}");
    // The seed world is still what the store started from.
    let engine = Engine::open(connect(&db.url).await.unwrap(), None).await.unwrap();
    let seeded = demo_world();
    assert!(seeded.users.iter().all(|u| engine.directory().to_doc().users.iter().any(|v| v.id == u.id)));
}

fn kisum_tests_at() -> kisum_entitlements::Timestamp {
    kisum_entitlements::Timestamp::parse("2026-03-15T12:00:00Z").unwrap()
}

/// Starts the writer, lets it write for `delay` after it is ready, kills it with SIGKILL, and returns
/// the sequences it reported as committed.
/// Waits (at most 10 s) until no other session is connected to the PostgreSQL database at `url`.
async fn settle(url: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("the test reaches PostgreSQL");
    let start = Instant::now();
    loop {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut conn)
        .await
        .expect("pg_stat_activity is readable");
        if others == 0 || start.elapsed() > Duration::from_secs(10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = conn.close().await;
}

fn kill_after(url: &str, delay: Duration) -> Vec<u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kisum-crash-writer"))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the crash writer starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(30)).expect("the writer reports ready");
    assert!(ready.starts_with("ready "), "unexpected first line `{ready}`");
    let start = Instant::now();
    let mut printed = Vec::new();
    while start.elapsed() < delay {
        if let Ok(line) = rx.recv_timeout(delay.saturating_sub(start.elapsed())) {
            printed.push(line.parse::<u64>().expect("a sequence per line"));
        }
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("the writer is reaped");
    assert!(!status.success(), "the writer was killed, not finished: {status}");
    reader.join().expect("the reader thread ends at EOF");
    printed.extend(rx.try_iter().map(|l| l.parse::<u64>().expect("a sequence per line")));
    printed
}
