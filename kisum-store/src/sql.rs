//! The SQL both backends share. The statements are the same text on SQLite and PostgreSQL (`$N`
//! placeholders work on both); only the connection types differ, so a macro writes the functions once
//! for each backend instead of a generic maze of sqlx trait bounds.

use kisum_access::{Actor, Change, ChangeRecord};

use crate::error::StoreError;
use crate::store::LogEntry;

/// `platform`, `staff:ID`, `service:ID` or `user:ID`, for the `actor` column.
pub(crate) fn actor_text(actor: &Actor) -> String {
    actor.to_string()
}

pub(crate) fn to_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Database(format!("sequence {seq} is out of range")))
}

/// A read cursor as a stored sequence: one beyond every sequence there can be reads as the largest.
pub(crate) fn cursor(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Database(format!("stored sequence {seq} is negative")))
}

/// Decodes a stored change, checking it is the one its row says.
pub(crate) fn decode_entry(seq: u64, record: &str, change: &str) -> Result<LogEntry, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { what: "change", seq, detail };
    let record: ChangeRecord = serde_json::from_str(record).map_err(|e| corrupt(format!("record: {e}")))?;
    let change: Change = serde_json::from_str(change).map_err(|e| corrupt(format!("change: {e}")))?;
    if record.seq != seq || record.kind != change.kind() {
        return Err(corrupt(format!("its record names change {} ({})", record.seq, record.kind)));
    }
    Ok(LogEntry { record, change })
}

/// Writes the query functions for one backend's connection type.
macro_rules! log_queries {
    ($conn:ty) => {
        use sqlx::Row as _;

        use crate::error::StoreError;
        use crate::sql::{actor_text, cursor, decode_entry, to_i64, to_u64};
        use crate::store::{Checkpoint, LogEntry};

        pub(crate) async fn head(conn: &mut $conn) -> Result<u64, StoreError> {
            let row = sqlx::query(
                "SELECT COALESCE((SELECT MAX(seq) FROM change_log), 0) AS log, \
                        COALESCE((SELECT MAX(seq) FROM checkpoint), 0) AS cp",
            )
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            let log: i64 = row.try_get("log").map_err(StoreError::db)?;
            let cp: i64 = row.try_get("cp").map_err(StoreError::db)?;
            to_u64(log.max(cp))
        }

        pub(crate) async fn latest_checkpoint(conn: &mut $conn) -> Result<Option<Checkpoint>, StoreError> {
            let row = sqlx::query("SELECT seq, world FROM checkpoint ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await
                .map_err(StoreError::db)?;
            let Some(row) = row else { return Ok(None) };
            let seq: i64 = row.try_get("seq").map_err(StoreError::db)?;
            let world: String = row.try_get("world").map_err(StoreError::db)?;
            Ok(Some(Checkpoint { seq: to_u64(seq)?, world }))
        }

        /// Changes after `after`, at most `limit`, refusing a range whose start was pruned.
        pub(crate) async fn changes_after(
            conn: &mut $conn,
            after: u64,
            limit: u32,
        ) -> Result<Vec<LogEntry>, StoreError> {
            let rows = sqlx::query("SELECT seq, record, change FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(cursor(after))
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await
                .map_err(StoreError::db)?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in rows {
                let seq = to_u64(row.try_get("seq").map_err(StoreError::db)?)?;
                let record: String = row.try_get("record").map_err(StoreError::db)?;
                let change: String = row.try_get("change").map_err(StoreError::db)?;
                entries.push(decode_entry(seq, &record, &change)?);
            }
            match entries.first() {
                Some(first) if first.seq() != after + 1 => {
                    let head = head(conn).await?;
                    Err(StoreError::ResyncRequired { after, from: head })
                }
                Some(_) => Ok(entries),
                None => {
                    let head = head(conn).await?;
                    if after < head { Err(StoreError::ResyncRequired { after, from: head }) } else { Ok(entries) }
                }
            }
        }

        pub(crate) async fn audit(
            conn: &mut $conn,
            company: Option<&kisum_access::CompanyId>,
            after: u64,
            limit: u32,
        ) -> Result<Vec<kisum_access::ChangeRecord>, StoreError> {
            let rows = match company {
                Some(c) => sqlx::query(
                    "SELECT seq, record FROM change_log WHERE company = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(c.to_string())
                .bind(cursor(after))
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await
                .map_err(StoreError::db)?,
                None => sqlx::query("SELECT seq, record FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(cursor(after))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(StoreError::db)?,
            };
            let mut records = Vec::with_capacity(rows.len());
            for row in rows {
                let seq = to_u64(row.try_get("seq").map_err(StoreError::db)?)?;
                let record: String = row.try_get("record").map_err(StoreError::db)?;
                let record = serde_json::from_str(&record).map_err(|e| StoreError::Corrupt {
                    what: "change",
                    seq,
                    detail: e.to_string(),
                })?;
                records.push(record);
            }
            Ok(records)
        }

        /// Appends `entry` if its sequence is the head's successor, in one statement (so that a writer
        /// holding the write lock needs no separate read of the head); `false` if it is not.
        pub(crate) async fn append(conn: &mut $conn, entry: &LogEntry, sql: &'static str) -> Result<bool, StoreError> {
            let record = serde_json::to_string(&entry.record).map_err(|e| StoreError::Database(e.to_string()))?;
            let change = serde_json::to_string(&entry.change).map_err(|e| StoreError::Database(e.to_string()))?;
            let appended = sqlx::query(sql)
                .bind(to_i64(entry.seq())?)
                .bind(entry.record.at.to_string())
                .bind(actor_text(&entry.record.actor))
                .bind(entry.record.kind.clone())
                .bind(entry.record.company.as_ref().map(ToString::to_string))
                .bind(record)
                .bind(change)
                .bind(kisum_entitlements::Timestamp::now().to_string())
                .fetch_optional(&mut *conn)
                .await
                .map_err(StoreError::db)?;
            Ok(appended.is_some())
        }

        pub(crate) async fn side_write(conn: &mut $conn, write: &crate::store::SideWrite) -> Result<(), StoreError> {
            let now = kisum_entitlements::Timestamp::now().to_string();
            let query = match write {
                crate::store::SideWrite::SetPassword { user, hash } => sqlx::query(
                    "INSERT INTO credential (user_id, password_hash, disabled_at, updated_at) VALUES ($1, $2, NULL, $3) \
                     ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash, \
                     updated_at = excluded.updated_at",
                )
                .bind(user.to_string())
                .bind(hash.clone())
                .bind(now),
                crate::store::SideWrite::DisableUser { user, at } => sqlx::query(
                    "INSERT INTO credential (user_id, password_hash, disabled_at, updated_at) VALUES ($1, '', $2, $3) \
                     ON CONFLICT (user_id) DO UPDATE SET disabled_at = excluded.disabled_at, \
                     updated_at = excluded.updated_at",
                )
                .bind(user.to_string())
                .bind(at.to_string())
                .bind(now),
                other => return auth_side_write(conn, other).await,
            };
            query.execute(&mut *conn).await.map_err(StoreError::db)?;
            Ok(())
        }

        pub(crate) async fn credential(
            conn: &mut $conn,
            user: &kisum_access::UserId,
        ) -> Result<Option<crate::store::Credential>, StoreError> {
            let row = sqlx::query("SELECT password_hash, disabled_at FROM credential WHERE user_id = $1")
                .bind(user.to_string())
                .fetch_optional(&mut *conn)
                .await
                .map_err(StoreError::db)?;
            let Some(row) = row else { return Ok(None) };
            let password_hash: String = row.try_get("password_hash").map_err(StoreError::db)?;
            let disabled_at: Option<String> = row.try_get("disabled_at").map_err(StoreError::db)?;
            let disabled_at = disabled_at
                .map(|t| kisum_entitlements::Timestamp::parse(&t))
                .transpose()
                .map_err(|e| StoreError::Database(format!("credential of `{user}`: {e}")))?;
            Ok(Some(crate::store::Credential { user: user.clone(), password_hash, disabled_at }))
        }

        pub(crate) async fn put_checkpoint(conn: &mut $conn, seq: u64, world: &str) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO checkpoint (seq, world, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (seq) DO UPDATE SET world = excluded.world, created_at = excluded.created_at",
            )
            .bind(to_i64(seq)?)
            .bind(world.to_owned())
            .bind(kisum_entitlements::Timestamp::now().to_string())
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            Ok(())
        }

        /// Stores the seed as checkpoint 0 unless one is there; `false` if another process seeded first.
        pub(crate) async fn seed(conn: &mut $conn, world: &str) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "INSERT INTO checkpoint (seq, world, created_at) VALUES (0, $1, $2) ON CONFLICT (seq) DO NOTHING",
            )
            .bind(world.to_owned())
            .bind(kisum_entitlements::Timestamp::now().to_string())
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            Ok(done.rows_affected() == 1)
        }

        /// Deletes changes below `before` that the newest checkpoint includes, and older checkpoints.
        pub(crate) async fn prune(conn: &mut $conn, before: u64) -> Result<u64, StoreError> {
            let done = sqlx::query(
                "DELETE FROM change_log WHERE seq < $1 \
                 AND seq <= (SELECT COALESCE(MAX(seq), 0) FROM checkpoint)",
            )
            .bind(to_i64(before)?)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            sqlx::query("DELETE FROM checkpoint WHERE seq < (SELECT MAX(seq) FROM checkpoint)")
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db)?;
            Ok(done.rows_affected())
        }

        /// The tables of the connected database (outside the engine's own), to tell a Kisum store from a
        /// foreign database before migrating it.
        pub(crate) async fn user_tables(conn: &mut $conn, sql: &'static str) -> Result<Vec<String>, StoreError> {
            let rows = sqlx::query(sql).fetch_all(&mut *conn).await.map_err(StoreError::db)?;
            rows.iter().map(|r| r.try_get::<String, _>(0).map_err(StoreError::db)).collect()
        }

        /// Refuses a database with tables but without Kisum's identity row.
        pub(crate) async fn check_identity(conn: &mut $conn, tables: &[String]) -> Result<(), StoreError> {
            let ours = |t: &String| t == "kisum_meta" || t == "_sqlx_migrations";
            // Empty, or only the migration table: new, or another process is creating the schema right now
            // (sqlx creates its table before it takes the migration lock and runs migration 1).
            if tables.iter().all(|t| t == "_sqlx_migrations") {
                return Ok(());
            }
            if !tables.iter().any(|t| t == "kisum_meta") {
                let named: Vec<&str> = tables.iter().filter(|t| !ours(t)).take(5).map(String::as_str).collect();
                let named = if named.is_empty() { tables.join(", ") } else { named.join(", ") };
                return Err(StoreError::Foreign { tables: named });
            }
            let app: Option<String> = sqlx::query("SELECT value FROM kisum_meta WHERE key = 'app'")
                .fetch_optional(&mut *conn)
                .await
                .map_err(StoreError::db)?
                .map(|r| r.try_get::<String, _>(0))
                .transpose()
                .map_err(StoreError::db)?;
            match app.as_deref() {
                Some("kisum-store") => Ok(()),
                _ => Err(StoreError::Foreign { tables: "kisum_meta".into() }),
            }
        }

        /// Runs the migrations, refusing a schema newer than this build.
        pub(crate) async fn migrate(migrator: &sqlx::migrate::Migrator, conn: &mut $conn) -> Result<(), StoreError> {
            match migrator.run(&mut *conn).await {
                Ok(()) => Ok(()),
                Err(sqlx::migrate::MigrateError::VersionMissing(version)) => Err(StoreError::NewerSchema { version }),
                Err(e) => Err(StoreError::Database(format!("migration failed: {e}"))),
            }
        }
    };
}

pub(crate) use log_queries;
