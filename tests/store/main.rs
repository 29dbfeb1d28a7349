//! kisum-store: the same suite on SQLite and on PostgreSQL, including crash tests that kill a writing
//! process with SIGKILL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod crash;
mod suite;

kisum_tests::on_both_backends!(
    @in crate::suite;
    empty_store_needs_a_seed,
    writes_survive_reopening_in_order,
    refused_writes_store_nothing,
    two_engines_on_one_store_stay_in_step,
    concurrent_writers_get_contiguous_sequences,
    followers_see_a_commit_within_a_second,
    feed_reads_and_resync_after_pruning,
    checkpoints_shorten_replay,
    foreign_databases_are_refused,
    newer_schemas_are_refused,
    corrupt_or_invalid_log_entries_are_refused,
    failed_commits_leave_everything_unchanged,
    credentials_commit_with_their_change,
    killed_writers_lose_no_committed_write,
    a_replica_that_cannot_follow_reloads_or_says_so,
    followers_share_the_engines_subscription,
);

/// The PostgreSQL driver speaks TLS (issue 19): a store opened with `sslmode=require` works, and the
/// server says the session is encrypted. The machine's PostgreSQL serves TLS with its own certificate;
/// `sslmode=verify-full&sslrootcert=…` in the URL checks it against a CA (docs/deploy.md).
#[tokio::test]
async fn postgres_over_tls() {
    use sqlx::{ConnectOptions, Row};
    let db = kisum_tests::TestDb::new(kisum_tests::Backend::Postgres).await;
    let url = format!("{}?sslmode=require", db.url);
    let store = kisum_store::connect(&url).await.unwrap();
    kisum_store::Engine::open(store, Some(&kisum_tests::demo_world())).await.unwrap();
    // What was seeded over one TLS connection is read back over another.
    let again = kisum_store::Engine::open(kisum_store::connect(&url).await.unwrap(), None).await.unwrap();
    assert!(!again.directory().company_ids().is_empty(), "the seed was written and read over TLS");
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut connection = options.connect().await.unwrap();
    let row = sqlx::query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&mut connection).await;
    assert!(row.unwrap().get::<bool, _>("ssl"), "the session is encrypted");
}
