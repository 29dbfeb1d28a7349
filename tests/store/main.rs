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
);
