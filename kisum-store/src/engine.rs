//! The directory kept in step with a store: open = newest checkpoint + replay of the log after it;
//! a write = lock, catch up, validate, append, commit, install — durable before it is visible.

use std::sync::Arc;
use std::time::Duration;

use kisum_access::doc::WorldDoc;
use kisum_access::{Actor, Change, ChangeRecord, Directory, World};
use kisum_entitlements::Timestamp;
use tokio::sync::{Mutex, broadcast, watch};

use crate::error::StoreError;
use crate::store::{LogEntry, SideWrite, Store};

/// The state a checkpoint holds, validated; a checkpoint that does not decode or validate is a typed
/// error, never repaired.
fn world_of(checkpoint: &crate::store::Checkpoint) -> Result<World, StoreError> {
    let seq = checkpoint.seq;
    let doc: WorldDoc = serde_json::from_str(&checkpoint.world).map_err(|e| StoreError::Corrupt {
        what: "checkpoint",
        seq,
        detail: e.to_string(),
    })?;
    World::from_doc(&doc).map_err(|source| StoreError::Invalid { what: "checkpoint", seq, source })
}

/// How many changes a catch-up reads at a time.
const PAGE: u32 = 1_000;

/// A [`Directory`] backed by a [`Store`]: every write is committed to the change log before it becomes
/// visible, and changes committed by other processes are replayed in order.
///
/// Share it by `Arc`. Reads go straight to [`directory`](Engine::directory) and never wait; writes and
/// catch-ups serialize on one lock per process, and on the store's write lock across processes.
pub struct Engine {
    store: Arc<dyn Store>,
    directory: Arc<Directory>,
    /// Serializes this process's writes and catch-ups (both install into the directory).
    apply: Mutex<()>,
    /// The directory's sequence after each install, for in-process followers (Auth's change feed).
    installed: watch::Sender<u64>,
    /// Every change installed, in order, for in-process followers ([`Engine::subscribe`]).
    changes: broadcast::Sender<Installed>,
    /// Why the directory cannot follow the log (a pruned position, an entry that does not decode or
    /// validate), while that lasts: the replica is then not ready and serves no decision as current.
    behind: std::sync::Mutex<Option<String>>,
}

/// How many installed changes a slow follower may fall behind before it is told it lagged.
const FOLLOWER_BUFFER: usize = 4096;

/// What the engine installed, as its followers see it ([`Engine::subscribe`]).
#[derive(Debug, Clone)]
pub enum Installed {
    /// One change of the log, in order: written by this process or replayed from another's.
    Change(Arc<LogEntry>),
    /// The directory was reloaded from a checkpoint at `seq`: the changes before it were not sent one by
    /// one, so a follower reloads what it derives from them.
    Reloaded {
        /// The checkpoint's sequence.
        seq: u64,
    },
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("backend", &self.store.backend())
            .field("seq", &self.directory.seq())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens the state kept in `store`: its newest checkpoint, then every change after it. A stored
    /// record that does not decode or no longer validates is a typed error, never repaired.
    ///
    /// An empty store is seeded with `seed` (validated first, written as checkpoint 0 under the write
    /// lock, so that concurrent first starts agree); without one it is [`StoreError::Empty`].
    pub async fn open(store: Arc<dyn Store>, seed: Option<&WorldDoc>) -> Result<Engine, StoreError> {
        let checkpoint = match store.latest_checkpoint().await? {
            Some(c) => c,
            None => {
                let seed = seed.ok_or(StoreError::Empty)?;
                World::from_doc(seed)?;
                let world = serde_json::to_string(seed).map_err(|e| StoreError::Database(e.to_string()))?;
                // Under the write lock, and only if nobody seeded first: concurrent first starts agree on
                // whichever seed won.
                let mut tx = store.begin_write().await?;
                if tx.seed(&world).await? {
                    tx.commit().await?;
                } else {
                    drop(tx);
                }
                store.latest_checkpoint().await?.ok_or(StoreError::Empty)?
            }
        };
        let seq = checkpoint.seq;
        let world = world_of(&checkpoint)?;
        let engine = Engine {
            store,
            directory: Arc::new(Directory::at_seq(world, seq)),
            apply: Mutex::new(()),
            installed: watch::Sender::new(seq),
            changes: broadcast::Sender::new(FOLLOWER_BUFFER),
            behind: std::sync::Mutex::new(None),
        };
        engine.catch_up().await?;
        Ok(engine)
    }

    /// The directory: every query, without waiting for writers.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The sequence of the last change the directory holds.
    pub fn seq(&self) -> u64 {
        self.directory.seq()
    }

    /// Every change this engine installs from now on, in order: one subscription to the log that
    /// in-process followers share instead of each reading the log (Core's revocations and signing keys,
    /// and Auth's, follow it; so do Auth's feed streams once caught up — behind, they read the log, to
    /// resume from any cursor). A follower that falls more than 4,096 changes behind gets `Lagged` and
    /// catches up on what it derives, as after [`Installed::Reloaded`].
    pub fn subscribe(&self) -> broadcast::Receiver<Installed> {
        self.changes.subscribe()
    }

    /// The directory's sequence after each install: in-process followers wait on it.
    pub fn installed(&self) -> watch::Receiver<u64> {
        self.installed.subscribe()
    }

    /// Commits one write and makes it visible: under the store's write lock, validates the write (every
    /// rule of the directory) against the newest state — catching up with changes other processes
    /// committed whenever the append finds the log ahead, or before reporting a refusal — appends it to
    /// the log, commits, and only then installs it. A refused write ([`StoreError::Rejected`]) changes
    /// nothing. A commit that reports an error is checked against the log: if the change is there after
    /// all (the answer was lost), it is installed and answered as a success; if not, nothing changed. When
    /// the log cannot be read either, the error is returned and the outcome is unknown to the caller — the
    /// next catch-up installs the change if it was committed.
    pub async fn write(&self, actor: &Actor, at: Timestamp, change: Change) -> Result<ChangeRecord, StoreError> {
        self.write_with(actor, at, change, &[]).await
    }

    /// [`write`](Engine::write), with writes beside the model (credentials) committed in the same
    /// transaction: both or neither.
    pub async fn write_with(
        &self,
        actor: &Actor,
        at: Timestamp,
        change: Change,
        side: &[SideWrite],
    ) -> Result<ChangeRecord, StoreError> {
        let _apply = self.apply.lock().await;
        loop {
            let started = std::time::Instant::now();
            let mut tx = self.store.begin_write().await?;
            let prepared = match self.directory.prepare(actor, at, change.clone()) {
                Ok(prepared) => prepared,
                Err(refused) => {
                    // Refused on this state: final only if it is the newest one.
                    let missed = tx.changes_after(self.directory.seq()).await?;
                    if missed.is_empty() {
                        return Err(refused.into());
                    }
                    drop(tx);
                    self.replay(missed)?;
                    continue;
                }
            };
            let seq = self.directory.seq() + 1;
            let record = prepared.record(seq);
            // The append succeeds only if nobody committed since this directory's state, so the write
            // was validated against exactly the state it follows; otherwise catch up and validate again.
            let entry = LogEntry { record, change: prepared.change().clone() };
            if !tx.append(&entry).await? {
                let missed = tx.changes_after(self.directory.seq()).await?;
                drop(tx);
                if missed.is_empty() {
                    return Err(StoreError::Gap { after: self.directory.seq(), found: self.store.head().await? });
                }
                self.replay(missed)?;
                continue;
            }
            for write in side {
                tx.side_write(write).await?;
            }
            if let Err(e) = tx.commit().await {
                // The database may have committed although the answer was lost: the log says which.
                if !self.committed(seq, &prepared).await {
                    return Err(e);
                }
                tracing::warn!(seq, error = %e, "the commit reported an error but the change is in the log");
            }
            metrics::histogram!("kisum_store_commit_seconds").record(started.elapsed().as_secs_f64());
            // INVARIANT: the apply lock is held since `prepare`, so nothing was installed in between.
            let record = self.directory.install(prepared, seq)?;
            self.store.notify_committed(seq);
            self.installed_up_to(seq);
            let _ = self.changes.send(Installed::Change(Arc::new(entry)));
            return Ok(record);
        }
    }

    /// Whether change `seq` of the log is `prepared` (read afresh, after a commit that reported an error).
    async fn committed(&self, seq: u64, prepared: &kisum_access::Prepared) -> bool {
        match self.store.changes_after(seq - 1, 1).await {
            Ok(entries) => entries.first().is_some_and(|e| e.seq() == seq && &e.change == prepared.change()),
            Err(_) => false,
        }
    }

    /// Replays every change committed after the directory's sequence (by other processes); returns
    /// their records. [`StoreError::ResyncRequired`] if the log no longer reaches back that far.
    pub async fn catch_up(&self) -> Result<Vec<ChangeRecord>, StoreError> {
        let _apply = self.apply.lock().await;
        let mut records = Vec::new();
        loop {
            let page = self.store.changes_after(self.directory.seq(), PAGE).await?;
            let full = page.len() == PAGE as usize;
            records.extend(self.replay(page)?);
            if !full {
                return Ok(records);
            }
        }
    }

    /// Installs entries read from the log, in order. The caller holds the apply lock.
    fn replay(&self, entries: Vec<LogEntry>) -> Result<Vec<ChangeRecord>, StoreError> {
        let mut records = Vec::with_capacity(entries.len());
        for entry in entries {
            let seq = entry.seq();
            let after = self.directory.seq();
            if seq <= after {
                continue;
            }
            if seq != after + 1 {
                return Err(StoreError::Gap { after, found: seq });
            }
            let installed = self
                .directory
                .replay(seq, &entry.record.actor, entry.record.at, entry.change.clone())
                .map_err(|source| StoreError::Invalid { what: "change", seq, source })?;
            self.installed_up_to(seq);
            let _ = self.changes.send(Installed::Change(Arc::new(entry)));
            records.push(installed);
        }
        Ok(records)
    }

    /// Tells waiters (and the `kisum_store_seq` gauge) that changes up to `seq` are installed.
    fn installed_up_to(&self, seq: u64) {
        self.installed.send_replace(seq);
        metrics::gauge!("kisum_store_seq").set(seq as f64);
    }

    /// Why this replica cannot follow the log now, if it cannot ([`Engine::sync`] sets and clears it).
    pub fn behind(&self) -> Option<String> {
        self.behind.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Readiness (API.md §1): the store answers, and the directory follows the log.
    pub async fn ready(&self) -> Result<(), String> {
        self.store.head().await.map_err(|e| e.to_string())?;
        match self.behind() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Catches up with the log; when the log no longer reaches back to the directory's position (pruned),
    /// or an entry does not decode or validate, reloads from the newest checkpoint if it is past the
    /// directory's position, then catches up from there. While neither works the replica is
    /// [`behind`](Engine::behind), and the error is returned; the next call tries again.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let result = match self.catch_up().await {
            Err(
                e @ (StoreError::ResyncRequired { .. }
                | StoreError::Invalid { .. }
                | StoreError::Corrupt { .. }
                | StoreError::Gap { .. }),
            ) => match self.reload().await {
                Ok(true) => self.catch_up().await.map(|_| ()),
                Ok(false) => Err(e),
                Err(reload) => Err(reload),
            },
            other => other.map(|_| ()),
        };
        let mut behind = self.behind.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *behind = match &result {
            Ok(()) => None,
            // A store that cannot be reached is readiness's other half; the state itself is not stale.
            Err(StoreError::Database(_)) => behind.take(),
            Err(e) => Some(format!("cannot follow the change log after {}: {e}", self.directory.seq())),
        };
        result
    }

    /// Replaces the directory with the newest checkpoint when that is ahead of it; whether it did.
    async fn reload(&self) -> Result<bool, StoreError> {
        let _apply = self.apply.lock().await;
        let Some(checkpoint) = self.store.latest_checkpoint().await? else { return Ok(false) };
        if checkpoint.seq <= self.directory.seq() {
            return Ok(false);
        }
        let seq = checkpoint.seq;
        let world = world_of(&checkpoint)?;
        self.directory.reload(world, seq).map_err(|source| StoreError::Invalid { what: "checkpoint", seq, source })?;
        self.installed_up_to(seq);
        let _ = self.changes.send(Installed::Reloaded { seq });
        tracing::warn!(seq, "reloaded the directory from the newest checkpoint: the log no longer reached back to it");
        Ok(true)
    }

    /// Writes a checkpoint of the current state; returns its sequence. Opening then replays only what
    /// came after it.
    pub async fn checkpoint(&self) -> Result<u64, StoreError> {
        let (doc, seq) = self.directory.doc_and_seq();
        let world = serde_json::to_string(&doc).map_err(|e| StoreError::Database(e.to_string()))?;
        let mut tx = self.store.begin_write().await?;
        tx.put_checkpoint(seq, &world).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Keeps this process in step with the others: [syncs](Engine::sync) whenever the store hears of a
    /// commit, and at least every `poll` (the fallback when notifications are lost, or on SQLite shared by
    /// several processes). Runs until the task is aborted; a failed sync is logged and retried, and the
    /// replica is not ready meanwhile.
    pub fn follow(self: &Arc<Self>, poll: Duration) -> tokio::task::JoinHandle<()> {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let mut commits = engine.store.commits();
            loop {
                if let Err(e) = engine.sync().await {
                    tracing::error!(error = %e, seq = engine.seq(), "catching up with the change log failed");
                }
                // Either a wake-up or the poll interval; a closed channel leaves polling only.
                let _ = tokio::time::timeout(poll, commits.changed()).await;
            }
        })
    }
}
