//! The store suite, written once and run on each backend.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kisum_access::doc::{MembershipDoc, MembershipStatus};
use kisum_access::{Access, Actor, Change, CompanyId, Principal};
use kisum_entitlements::Timestamp;
use kisum_errors::{ErrorCode, KisumError};
use kisum_store::{Checkpoint, Credential, Engine, LogEntry, SideWrite, Store, StoreError, WriteTx, connect};
use kisum_tests::{Backend, TestDb, demo_world};
use sqlx::{AssertSqlSafe, Connection, Executor};

fn at() -> Timestamp {
    Timestamp::parse("2026-03-15T12:00:00Z").unwrap()
}

fn encore() -> CompanyId {
    "encore".parse().unwrap()
}

fn add_user(id: &str) -> Change {
    Change::AddUser { user: id.parse().unwrap() }
}

fn invite(user: &str) -> Change {
    invite_as(user, "viewer")
}

fn invite_as(user: &str, role: &str) -> Change {
    Change::PutMembership(MembershipDoc {
        user: user.into(),
        company: "encore".into(),
        status: MembershipStatus::Invited,
        roles: vec![role.into()],
        expires_at: None,
        restrictions: Vec::new(),
    })
}

async fn open(db: &TestDb) -> Engine {
    let store = connect(&db.url).await.unwrap();
    Engine::open(store, Some(&demo_world())).await.unwrap()
}

/// Runs raw SQL against the test database (to damage it on purpose).
async fn sql(db: &TestDb, statement: &str) {
    let statement = AssertSqlSafe(statement.to_owned());
    if db.url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", db.url)).await.unwrap();
        c.execute(statement).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        c.execute(statement).await.unwrap();
    }
}

pub async fn empty_store_needs_a_seed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = connect(&db.url).await.unwrap();
    let err = Engine::open(store.clone(), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Empty), "{err}");
    // A seed that does not validate is refused and leaves the store empty.
    let mut bad = demo_world();
    bad.memberships[0].user = "nobody".into();
    let err = Engine::open(store.clone(), Some(&bad)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationFailed, "{err}");
    assert!(store.latest_checkpoint().await.unwrap().is_none());
    let engine = Engine::open(store, Some(&demo_world())).await.unwrap();
    assert_eq!(engine.seq(), 0);
    assert_eq!(engine.directory().to_doc(), kisum_access::World::from_doc(&demo_world()).unwrap().to_doc());
}

pub async fn writes_survive_reopening_in_order(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = open(&db).await;
    let mut seqs = Vec::new();
    for i in 0..10 {
        seqs.push(engine.write(&Actor::Platform, at(), add_user(&format!("n{i}"))).await.unwrap().seq);
        seqs.push(engine.write(&Actor::Platform, at(), invite(&format!("n{i}"))).await.unwrap().seq);
    }
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
    let maya = Actor::User("maya".parse().unwrap());
    let record = engine.write(&maya, at(), invite("n0")).await.unwrap();
    assert_eq!(record.principals, vec![Principal::parse("user:n0").unwrap()]);
    let before = engine.directory().to_doc();
    drop(engine);

    let reopened = open(&db).await;
    assert_eq!(reopened.seq(), 21);
    assert_eq!(reopened.directory().to_doc(), before);
    // Versions are the sequence of the last change that touched the principal.
    let n0 = Principal::parse("user:n0").unwrap();
    assert_eq!(reopened.directory().principal_version(&n0, &encore()), 21);
    // The audit log names the actor, the instant and what changed.
    let audit = reopened.store().audit(Some(&encore()), 0, 100).await.unwrap();
    assert_eq!(audit.len(), 11);
    let last = audit.last().unwrap();
    assert_eq!((last.seq, &last.actor, last.at), (21, &maya, at()));
    assert_eq!(reopened.store().audit(None, 0, 100).await.unwrap().len(), 21);
}

pub async fn refused_writes_store_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = open(&db).await;
    engine.write(&Actor::Platform, at(), add_user("zed")).await.unwrap();
    let before = engine.directory().to_doc();
    let leo = Actor::User("leo".parse().unwrap());
    for (actor, change, code) in [
        (Actor::Platform, add_user("zed"), ErrorCode::Conflict),
        (Actor::Platform, invite("ghost"), ErrorCode::ValidationFailed),
        (leo, invite_as("zed", "owner"), ErrorCode::Forbidden),
        (Actor::Platform, Change::RemoveCompany { company: "nowhere".parse().unwrap() }, ErrorCode::NotFound),
    ] {
        let err = engine.write(&actor, at(), change).await.unwrap_err();
        assert!(matches!(err, StoreError::Rejected(_)), "{err}");
        assert_eq!(err.code(), code, "{err}");
    }
    assert_eq!(engine.store().head().await.unwrap(), 1);
    assert_eq!(engine.directory().to_doc(), before);
    drop(engine);
    assert_eq!(open(&db).await.directory().to_doc(), before);
}

pub async fn two_engines_on_one_store_stay_in_step(backend: Backend) {
    let db = TestDb::new(backend).await;
    let a = open(&db).await;
    let b = open(&db).await;
    a.write(&Actor::Platform, at(), add_user("ann")).await.unwrap();
    // B has not heard of it, but a write through B catches up first, so it validates against it.
    let record = b.write(&Actor::Platform, at(), invite("ann")).await.unwrap();
    assert_eq!(record.seq, 2);
    let b_doc = b.directory().to_doc();
    assert!(b_doc.users.iter().any(|u| u.id == "ann"), "b caught up with a before validating");
    let caught = a.catch_up().await.unwrap();
    assert_eq!(caught.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2]);
    assert_eq!(a.directory().to_doc(), b.directory().to_doc());
    // A conflicting write through A, judged on the caught-up state.
    let err = a.write(&Actor::Platform, at(), add_user("ann")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
}

pub async fn concurrent_writers_get_contiguous_sequences(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engines = [Arc::new(open(&db).await), Arc::new(open(&db).await), Arc::new(open(&db).await)];
    let mut tasks = Vec::new();
    for (e, engine) in engines.iter().enumerate() {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..15 {
                let user = format!("c{e}x{i}");
                seqs.push(engine.write(&Actor::Platform, at(), add_user(&user)).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=45).collect::<Vec<u64>>(), "every write got its own sequence, without gaps");
    let last = open(&db).await;
    let doc = last.directory().to_doc();
    assert_eq!(doc.users.iter().filter(|u| u.id.starts_with('c')).count(), 45);
}

pub async fn followers_see_a_commit_within_a_second(backend: Backend) {
    let db = TestDb::new(backend).await;
    let writer = open(&db).await;
    let follower = Arc::new(open(&db).await);
    let follow = follower.follow(Duration::from_millis(200));
    let mut installed = follower.installed();
    for i in 0..5 {
        let seq = writer.write(&Actor::Platform, at(), add_user(&format!("f{i}"))).await.unwrap().seq;
        let start = Instant::now();
        let seen = tokio::time::timeout(Duration::from_secs(1), installed.wait_for(|s| *s >= seq)).await;
        assert!(seen.is_ok(), "write {seq} not seen by the follower after {:?}", start.elapsed());
    }
    follow.abort();
    assert_eq!(follower.directory().to_doc(), writer.directory().to_doc());
}

pub async fn feed_reads_and_resync_after_pruning(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = open(&db).await;
    for i in 0..6 {
        engine.write(&Actor::Platform, at(), add_user(&format!("p{i}"))).await.unwrap();
    }
    let store = engine.store();
    let page = store.changes_after(2, 3).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq()).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert_eq!(page[0].change, add_user("p2"));
    assert!(store.changes_after(6, 10).await.unwrap().is_empty());
    // Nothing is pruned past the newest checkpoint.
    assert_eq!(store.prune(100).await.unwrap(), 0);
    assert_eq!(engine.checkpoint().await.unwrap(), 6);
    engine.write(&Actor::Platform, at(), add_user("p6")).await.unwrap();
    assert_eq!(store.prune(5).await.unwrap(), 4);
    let err = store.changes_after(2, 10).await.unwrap_err();
    assert!(matches!(err, StoreError::ResyncRequired { after: 2, from: 7 }), "{err}");
    assert_eq!(err.code(), ErrorCode::ResyncRequired);
    assert_eq!(err.code().status(), 410);
    assert_eq!(store.changes_after(4, 10).await.unwrap().len(), 3);
    // Pruning up to the checkpoint leaves the entries after it, and reopening works.
    assert_eq!(store.prune(100).await.unwrap(), 2);
    assert!(matches!(store.changes_after(5, 10).await, Err(StoreError::ResyncRequired { .. })));
    assert_eq!(store.changes_after(6, 10).await.unwrap().len(), 1);
    let reopened = open(&db).await;
    assert_eq!(reopened.seq(), 7);
    assert_eq!(reopened.directory().to_doc(), engine.directory().to_doc());
}

pub async fn checkpoints_shorten_replay(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = open(&db).await;
    for i in 0..4 {
        engine.write(&Actor::Platform, at(), add_user(&format!("k{i}"))).await.unwrap();
    }
    engine.checkpoint().await.unwrap();
    engine.write(&Actor::Platform, at(), invite("k0")).await.unwrap();
    let store = engine.store();
    assert_eq!(store.latest_checkpoint().await.unwrap().unwrap().seq, 4);
    // Damage the entries the checkpoint covers: opening must not need them.
    sql(&db, "UPDATE change_log SET change = 'garbage' WHERE seq <= 4").await;
    let reopened = open(&db).await;
    assert_eq!(reopened.seq(), 5);
    assert_eq!(reopened.directory().to_doc(), engine.directory().to_doc());
}

pub async fn foreign_databases_are_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    sql(&db, "CREATE TABLE invoices (id TEXT PRIMARY KEY)").await;
    let err = connect(&db.url).await.unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("invoices"), "{err}");
    if let Some(path) = db.sqlite_path() {
        // A file that is not a database at all.
        let junk = path.with_file_name("junk.db");
        let bytes = b"this is not a database, just some bytes of text: ".repeat(200);
        std::fs::write(&junk, &bytes).unwrap();
        let err = connect(&format!("sqlite://{}", junk.display())).await.unwrap_err();
        assert!(matches!(err, StoreError::NotADatabase(_)), "{err}");
        assert_eq!(std::fs::read(&junk).unwrap(), bytes, "the file is left as it was");
    }
    let err = connect("mysql://localhost/x").await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err}");
}

pub async fn newer_schemas_are_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    drop(open(&db).await);
    let future = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES (9999, 'from the future', true, X'00', 1)";
    let future = if db.url.starts_with("postgres") { future.replace("X'00'", "'\\x00'::bytea") } else { future.into() };
    sql(&db, &future).await;
    let err = connect(&db.url).await.unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { version: 9999 }), "{err}");
}

pub async fn corrupt_or_invalid_log_entries_are_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engine = open(&db).await;
    engine.write(&Actor::Platform, at(), add_user("v1")).await.unwrap();
    engine.write(&Actor::Platform, at(), invite("v1")).await.unwrap();
    drop(engine);
    // A change that decodes but no longer validates: inviting a user nobody declared.
    let ghost = serde_json::to_string(&invite("ghost")).unwrap().replace('\'', "''");
    sql(&db, &format!("UPDATE change_log SET change = '{ghost}' WHERE seq = 2")).await;
    let err = Engine::open(connect(&db.url).await.unwrap(), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { what: "change", seq: 2, .. }), "{err}");
    // A change that does not decode.
    sql(&db, "UPDATE change_log SET change = '{\"kind\":\"explode\"}' WHERE seq = 2").await;
    let err = Engine::open(connect(&db.url).await.unwrap(), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { what: "change", seq: 2, .. }), "{err}");
    // A checkpoint that does not decode.
    sql(&db, "UPDATE checkpoint SET world = '[1, 2' WHERE seq = 0").await;
    let err = Engine::open(connect(&db.url).await.unwrap(), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { what: "checkpoint", seq: 0, .. }), "{err}");
}

pub async fn killed_writers_lose_no_committed_write(backend: Backend) {
    crate::crash::run(backend).await;
}

/// A store whose commits fail on demand: the write is rolled back, as when the disk or the database
/// fails at the last moment.
#[derive(Debug)]
struct FailingCommits {
    inner: Arc<dyn Store>,
    fail: std::sync::atomic::AtomicBool,
    /// Commit for real, then report an error anyway (the answer was lost).
    lose_answer: std::sync::atomic::AtomicBool,
}

/// Auth's state is not what this wrapper fails: it passes straight through.
#[async_trait::async_trait]
impl kisum_store::AuthStore for FailingCommits {
    async fn create_session(&self, session: &kisum_store::Session, refresh_hash: &str) -> Result<(), StoreError> {
        self.inner.create_session(session, refresh_hash).await
    }
    async fn session(&self, sid: &str) -> Result<Option<kisum_store::Session>, StoreError> {
        self.inner.session(sid).await
    }
    async fn revoked_sessions(&self, since: i64) -> Result<Vec<kisum_store::Session>, StoreError> {
        self.inner.revoked_sessions(since).await
    }
    async fn refresh_token(&self, hash: &str) -> Result<Option<kisum_store::RefreshRecord>, StoreError> {
        self.inner.refresh_token(hash).await
    }
    async fn use_refresh_token(&self, hash: &str, used: &kisum_store::RefreshUse) -> Result<bool, StoreError> {
        self.inner.use_refresh_token(hash, used).await
    }
    async fn login_attempt(
        &self,
        user: &str,
        at: i64,
        window: i64,
        max: u32,
    ) -> Result<kisum_store::LoginAttempt, StoreError> {
        self.inner.login_attempt(user, at, window, max).await
    }
    async fn login_failed(&self, user: &str, at: i64) -> Result<(), StoreError> {
        self.inner.login_failed(user, at).await
    }
    async fn login_succeeded(&self, user: &str) -> Result<(), StoreError> {
        self.inner.login_succeeded(user).await
    }
    async fn signing_keys(&self) -> Result<Vec<kisum_store::StoredKey>, StoreError> {
        self.inner.signing_keys().await
    }
    async fn service_client(&self, client_id: &str) -> Result<Option<kisum_store::ServiceClient>, StoreError> {
        self.inner.service_client(client_id).await
    }
    async fn put_service_client(&self, client: &kisum_store::ServiceClient) -> Result<(), StoreError> {
        self.inner.put_service_client(client).await
    }
    async fn service_clients(&self) -> Result<Vec<kisum_store::ServiceClient>, StoreError> {
        self.inner.service_clients().await
    }
    async fn purge_auth(&self, before: i64) -> Result<u64, StoreError> {
        self.inner.purge_auth(before).await
    }
}

struct FailingTx(Box<dyn WriteTx>, bool);

#[async_trait::async_trait]
impl WriteTx for FailingTx {
    async fn head(&mut self) -> Result<u64, StoreError> {
        self.0.head().await
    }
    async fn changes_after(&mut self, after: u64) -> Result<Vec<LogEntry>, StoreError> {
        self.0.changes_after(after).await
    }
    async fn append(&mut self, entry: &LogEntry) -> Result<bool, StoreError> {
        self.0.append(entry).await
    }
    async fn side_write(&mut self, write: &SideWrite) -> Result<(), StoreError> {
        self.0.side_write(write).await
    }
    async fn seed(&mut self, world: &str) -> Result<bool, StoreError> {
        self.0.seed(world).await
    }
    async fn put_checkpoint(&mut self, seq: u64, world: &str) -> Result<(), StoreError> {
        self.0.put_checkpoint(seq, world).await
    }
    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let FailingTx(inner, lose_answer) = *self;
        if lose_answer {
            inner.commit().await?;
            return Err(StoreError::Database("injected: the answer to a commit was lost".into()));
        }
        drop(inner);
        Err(StoreError::Database("injected commit failure".into()))
    }
}

#[async_trait::async_trait]
impl Store for FailingCommits {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn head(&self) -> Result<u64, StoreError> {
        self.inner.head().await
    }
    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.latest_checkpoint().await
    }
    async fn changes_after(&self, after: u64, limit: u32) -> Result<Vec<LogEntry>, StoreError> {
        self.inner.changes_after(after, limit).await
    }
    async fn audit(
        &self,
        company: Option<&CompanyId>,
        after: u64,
        limit: u32,
    ) -> Result<Vec<kisum_access::ChangeRecord>, StoreError> {
        self.inner.audit(company, after, limit).await
    }
    async fn credential(&self, user: &kisum_access::UserId) -> Result<Option<Credential>, StoreError> {
        self.inner.credential(user).await
    }
    async fn begin_write(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        let tx = self.inner.begin_write().await?;
        let lose_answer = self.lose_answer.load(std::sync::atomic::Ordering::SeqCst);
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) || lose_answer {
            Ok(Box::new(FailingTx(tx, lose_answer)))
        } else {
            Ok(tx)
        }
    }
    async fn prune(&self, before: u64) -> Result<u64, StoreError> {
        self.inner.prune(before).await
    }
    fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.commits()
    }
    fn notify_committed(&self, seq: u64) {
        self.inner.notify_committed(seq);
    }
}

pub async fn failed_commits_leave_everything_unchanged(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = Arc::new(FailingCommits {
        inner: connect(&db.url).await.unwrap(),
        fail: false.into(),
        lose_answer: false.into(),
    });
    let engine = Engine::open(store.clone(), Some(&demo_world())).await.unwrap();
    engine.write(&Actor::Platform, at(), add_user("ok1")).await.unwrap();
    let before = engine.directory().to_doc();
    let mut installed = engine.installed();
    installed.mark_unchanged();
    store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = engine.write(&Actor::Platform, at(), add_user("lost")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::UpstreamUnavailable, "{err}");
    assert_eq!(engine.directory().to_doc(), before, "nothing is visible that is not durable");
    assert_eq!(engine.seq(), 1);
    assert!(!installed.has_changed().unwrap(), "followers heard of nothing");
    store.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(engine.write(&Actor::Platform, at(), add_user("ok2")).await.unwrap().seq, 2);
    // A commit that went through although its answer was lost is found in the log and answered as done.
    store.lose_answer.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(engine.write(&Actor::Platform, at(), add_user("ok3")).await.unwrap().seq, 3);
    store.lose_answer.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(engine.directory().to_doc().users.iter().any(|u| u.id == "ok3"));
    let reopened = open(&db).await;
    let users = reopened.directory().to_doc().users;
    assert!(users.iter().any(|u| u.id == "ok2") && !users.iter().any(|u| u.id == "lost"));
}

pub async fn credentials_commit_with_their_change(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = Arc::new(FailingCommits {
        inner: connect(&db.url).await.unwrap(),
        fail: false.into(),
        lose_answer: false.into(),
    });
    let engine = Engine::open(store.clone(), Some(&demo_world())).await.unwrap();
    let zoe: kisum_access::UserId = "zoe".parse().unwrap();
    let set = |hash: &str| SideWrite::SetPassword { user: zoe.clone(), hash: hash.into() };
    engine.write_with(&Actor::Platform, at(), add_user("zoe"), &[set("$argon2id$one")]).await.unwrap();
    let credential = store.credential(&zoe).await.unwrap().unwrap();
    assert_eq!((credential.password_hash.as_str(), credential.disabled_at), ("$argon2id$one", None));
    assert!(!format!("{credential:?}").contains("argon2id"), "hashes never reach logs");
    // A failed commit loses the change and the credential together.
    store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let change = Change::SetPassword { user: zoe.clone(), end_sessions: false };
    assert!(engine.write_with(&Actor::Platform, at(), change.clone(), &[set("$argon2id$two")]).await.is_err());
    assert_eq!(store.credential(&zoe).await.unwrap().unwrap().password_hash, "$argon2id$one");
    store.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    // A refused change stores no credential either.
    let ghost: kisum_access::UserId = "ghost".parse().unwrap();
    let refused = Change::SetPassword { user: ghost.clone(), end_sessions: false };
    let side = [SideWrite::SetPassword { user: ghost.clone(), hash: "$argon2id$x".into() }];
    assert_eq!(
        engine.write_with(&Actor::Platform, at(), refused, &side).await.unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert!(store.credential(&ghost).await.unwrap().is_none());
    engine.write_with(&Actor::Platform, at(), change, &[set("$argon2id$two")]).await.unwrap();
    let disable = SideWrite::DisableUser { user: zoe.clone(), at: at() };
    engine.write_with(&Actor::Platform, at(), Change::DisableUser { user: zoe.clone() }, &[disable]).await.unwrap();
    let credential = store.credential(&zoe).await.unwrap().unwrap();
    assert_eq!((credential.password_hash.as_str(), credential.disabled_at), ("$argon2id$two", Some(at())));
    // The log says what happened, never the hash.
    let log = engine.store().changes_after(0, 100).await.unwrap();
    let kinds: Vec<&str> = log.iter().map(|e| e.record.kind.as_str()).collect();
    assert_eq!(kinds, ["add_user", "set_password", "disable_user"]);
    assert!(log.iter().all(|e| !serde_json::to_string(&e.change).unwrap().contains("argon2id")));
}

/// A replica whose position the log was pruned past reloads from the newest checkpoint and catches up;
/// one that meets an entry it cannot read is not ready, answers nothing as current, and recovers once a
/// checkpoint past the entry exists (issue 21).
pub async fn a_replica_that_cannot_follow_reloads_or_says_so(backend: Backend) {
    let db = TestDb::new(backend).await;
    let a = open(&db).await;
    let b = Arc::new(open(&db).await);
    // B falls behind: A writes, checkpoints and prunes the log past B's position.
    for i in 0..5 {
        a.write(&Actor::Platform, at(), add_user(&format!("p{i}"))).await.unwrap();
    }
    let checkpoint = a.checkpoint().await.unwrap();
    a.store().prune(checkpoint).await.unwrap();
    a.write(&Actor::Platform, at(), invite("p0")).await.unwrap();
    assert!(matches!(b.catch_up().await, Err(StoreError::ResyncRequired { .. })));
    // Following, it reloads and catches up, and is ready throughout; its followers are told it reloaded.
    let mut told = b.subscribe();
    let follow = b.follow(Duration::from_millis(50));
    let started = Instant::now();
    while b.seq() < a.seq() {
        assert!(started.elapsed() < Duration::from_secs(5), "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    follow.abort();
    let mut reloaded = false;
    while let Ok(installed) = told.try_recv() {
        reloaded |= matches!(installed, kisum_store::Installed::Reloaded { seq } if seq == checkpoint);
    }
    assert!(reloaded, "the engine's followers were told it reloaded from the checkpoint");
    assert_eq!(b.directory().to_doc(), a.directory().to_doc());
    assert_eq!(b.behind(), None);
    b.ready().await.unwrap();

    // An entry that no longer decodes stops B: it says so and is not ready.
    let bad = a.write(&Actor::Platform, at(), invite("p1")).await.unwrap().seq;
    a.write(&Actor::Platform, at(), invite("p2")).await.unwrap();
    sql(&db, &format!("UPDATE change_log SET change = '{{\"kind\":\"nonsense\"}}' WHERE seq = {bad}")).await;
    assert!(b.sync().await.is_err());
    let why = b.behind().expect("a replica that cannot follow says why");
    assert!(why.contains(&format!("after {}", bad - 1)), "{why}");
    assert!(b.ready().await.is_err());
    assert_eq!(b.seq(), bad - 1, "nothing past the bad entry is installed");
    // Once a checkpoint past it exists (A holds the change), B reloads from it and is ready again.
    a.checkpoint().await.unwrap();
    b.sync().await.unwrap();
    assert_eq!((b.seq(), b.behind()), (a.seq(), None));
    assert_eq!(b.directory().to_doc(), a.directory().to_doc());
    b.ready().await.unwrap();
}

/// The engine's one subscription to the log (issue 19): a follower sees every change the engine installs,
/// in order — written through it, or replayed from another process's writes. (That it is told of a reload
/// from a checkpoint is checked in `a_replica_that_cannot_follow_reloads_or_says_so`.)
pub async fn followers_share_the_engines_subscription(backend: Backend) {
    let db = TestDb::new(backend).await;
    let a = open(&db).await;
    let b = open(&db).await;
    let mut follower = b.subscribe();
    let mut local = a.subscribe();
    a.write(&Actor::Platform, at(), add_user("sub1")).await.unwrap();
    a.write(&Actor::Platform, at(), add_user("sub2")).await.unwrap();
    b.write(&Actor::Platform, at(), add_user("sub3")).await.unwrap();
    // B replayed A's two changes before its own write: its follower sees all three, in order.
    let mut seen = Vec::new();
    for _ in 0..3 {
        match follower.recv().await.unwrap() {
            kisum_store::Installed::Change(entry) => seen.push((entry.seq(), entry.record.kind.clone())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, [(1, "add_user".to_owned()), (2, "add_user".to_owned()), (3, "add_user".to_owned())]);
    // A's own writes reached its follower as they were installed.
    for seq in [1, 2] {
        match local.recv().await.unwrap() {
            kisum_store::Installed::Change(entry) => assert_eq!(entry.seq(), seq),
            other => panic!("{other:?}"),
        }
    }
    assert!(local.try_recv().is_err(), "nothing else yet: B's write is A's once A catches up");
    a.catch_up().await.unwrap();
    assert!(matches!(local.try_recv(), Ok(kisum_store::Installed::Change(e)) if e.seq() == 3));
}
