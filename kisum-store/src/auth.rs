//! Auth's state beside the model: sessions and refresh tokens, sign-in failures, signing keys and service
//! clients ([`AuthStore`], which every [`Store`](crate::Store) implements).
//!
//! None of it is part of the access model or of the change log. What the rest of the platform must learn
//! — a session revoked, the key set changed, an agent's client registered — is written as a
//! [`SideWrite`](crate::SideWrite) in the same transaction as the change that records it, so the log and
//! this state never disagree. Instants are Unix seconds.

use async_trait::async_trait;

use crate::error::StoreError;

/// A sign-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session id (`sid` in tokens).
    pub sid: String,
    /// The user signed in.
    pub user: String,
    /// When it started.
    pub created_at: i64,
    /// When it ends by itself.
    pub expires_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

impl Session {
    /// Whether the session can still be used at `now`.
    pub fn is_live_at(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A stored refresh token with its session.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// The session it belongs to.
    pub session: Session,
    /// When it was issued.
    pub issued_at: i64,
    /// When it was used (it is used once), if it was.
    pub used_at: Option<i64>,
    /// The company the use asked for.
    pub company: Option<String>,
    /// The answer of that use, sealed under the key-encryption key.
    pub answer: Option<String>,
}

impl std::fmt::Debug for RefreshRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRecord")
            .field("session", &self.session)
            .field("issued_at", &self.issued_at)
            .field("used_at", &self.used_at)
            .field("company", &self.company)
            .finish_non_exhaustive()
    }
}

/// The use of a refresh token: when, for which company, the (sealed) answer, and its successor's hash.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshUse {
    /// When.
    pub at: i64,
    /// The company asked for.
    pub company: String,
    /// The answer, sealed, for a retry within the grace period.
    pub answer: String,
    /// The hash of the refresh token issued in exchange.
    pub next_hash: String,
}

impl std::fmt::Debug for RefreshUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshUse").field("at", &self.at).field("company", &self.company).finish_non_exhaustive()
    }
}

/// The outcome of a sign-in attempt's admission ([`AuthStore::login_attempt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// The attempt may go on; record it with [`AuthStore::login_failed`] if it fails.
    Admitted,
    /// Too many failures in the window: retry after this many seconds.
    Limited {
        /// Seconds until the oldest failure in the window leaves it.
        retry_after: i64,
    },
}

/// A signing key as stored: the public JWK in clear, the private key sealed, and its schedule.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The key id.
    pub kid: String,
    /// The public JWK, as JSON.
    pub public_jwk: String,
    /// The private key, sealed under the key-encryption key.
    pub private_sealed: String,
    /// Published (in the JWKS) from.
    pub published_at: i64,
    /// Signs from.
    pub signs_from: i64,
    /// Signs until (exclusive).
    pub signs_until: i64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("published_at", &self.published_at)
            .field("signs_from", &self.signs_from)
            .field("signs_until", &self.signs_until)
            .finish_non_exhaustive()
    }
}

/// A registered service client (client credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceClient {
    /// The client id.
    pub client_id: String,
    /// The secret's hash (never the secret).
    pub secret_hash: String,
    /// The permission patterns the client may hold.
    pub scopes: Vec<String>,
    /// For an agent's client: its company.
    pub company: Option<String>,
    /// For an agent's client: the agent.
    pub agent: Option<String>,
    /// When it was registered.
    pub created_at: i64,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("company", &self.company)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

/// Auth's state. Writes that other replicas or modules must learn of go through
/// [`SideWrite`](crate::SideWrite)s with a change instead.
#[async_trait]
pub trait AuthStore: Send + Sync {
    /// Starts a session with its first refresh token (by hash).
    async fn create_session(&self, session: &Session, refresh_hash: &str) -> Result<(), StoreError>;

    /// A session by id.
    async fn session(&self, sid: &str) -> Result<Option<Session>, StoreError>;

    /// Sessions revoked at or after `since` (to refuse their tokens until they expire).
    async fn revoked_sessions(&self, since: i64) -> Result<Vec<Session>, StoreError>;

    /// A refresh token by hash, with its session.
    async fn refresh_token(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError>;

    /// Uses the refresh token `hash` if nobody has and its session is live, storing its successor, in one
    /// transaction: `true` for the one use that wins, `false` for every other (read the record again to
    /// see who won).
    async fn use_refresh_token(&self, hash: &str, used: &RefreshUse) -> Result<bool, StoreError>;

    /// Admits a sign-in attempt for `user` (a presented name, known or not) at `at` unless `max` failures
    /// were recorded in the `window` seconds before.
    async fn login_attempt(&self, user: &str, at: i64, window: i64, max: u32) -> Result<LoginAttempt, StoreError>;

    /// Records a failed sign-in of `user` at `at`.
    async fn login_failed(&self, user: &str, at: i64) -> Result<(), StoreError>;

    /// Forgets `user`'s failures after a successful sign-in.
    async fn login_succeeded(&self, user: &str) -> Result<(), StoreError>;

    /// Every stored signing key.
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;

    /// A service client by id.
    async fn service_client(&self, client_id: &str) -> Result<Option<ServiceClient>, StoreError>;

    /// Creates or replaces a service client outside any change (the platform's own clients at start-up).
    async fn put_service_client(&self, client: &ServiceClient) -> Result<(), StoreError>;

    /// The platform's service clients (not agents'), by id.
    async fn service_clients(&self) -> Result<Vec<ServiceClient>, StoreError>;

    /// Deletes sessions (with their refresh tokens) that ended before `before`, and sign-in failures
    /// older than it; returns how many sessions went.
    async fn purge_auth(&self, before: i64) -> Result<u64, StoreError>;
}

/// Writes the [`AuthStore`] implementation of a backend whose `pool` field is a pool of `$db`, with its
/// query module `$q` and the statement that begins an exclusive transaction.
macro_rules! auth_store_impl {
    ($store:ty, $db:ty, $q:ident, $begin:literal) => {
        #[async_trait::async_trait]
        impl crate::auth::AuthStore for $store {
            async fn create_session(
                &self,
                session: &crate::auth::Session,
                refresh_hash: &str,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(StoreError::db)?;
                $q::create_session(&mut tx, session, refresh_hash).await?;
                tx.commit().await.map_err(StoreError::db)
            }

            async fn session(&self, sid: &str) -> Result<Option<crate::auth::Session>, StoreError> {
                $q::session(&mut *self.pool.acquire().await.map_err(StoreError::db)?, sid).await
            }

            async fn revoked_sessions(&self, since: i64) -> Result<Vec<crate::auth::Session>, StoreError> {
                $q::revoked_sessions(&mut *self.pool.acquire().await.map_err(StoreError::db)?, since).await
            }

            async fn refresh_token(&self, hash: &str) -> Result<Option<crate::auth::RefreshRecord>, StoreError> {
                $q::refresh_token(&mut *self.pool.acquire().await.map_err(StoreError::db)?, hash).await
            }

            async fn use_refresh_token(&self, hash: &str, used: &crate::auth::RefreshUse) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin_with($begin).await.map_err(StoreError::db)?;
                let won = $q::use_refresh_token(&mut tx, hash, used).await?;
                tx.commit().await.map_err(StoreError::db)?;
                Ok(won)
            }

            async fn login_attempt(
                &self,
                user: &str,
                at: i64,
                window: i64,
                max: u32,
            ) -> Result<crate::auth::LoginAttempt, StoreError> {
                $q::login_attempt(&mut *self.pool.acquire().await.map_err(StoreError::db)?, user, at, window, max).await
            }

            async fn login_failed(&self, user: &str, at: i64) -> Result<(), StoreError> {
                $q::login_failed(&mut *self.pool.acquire().await.map_err(StoreError::db)?, user, at).await
            }

            async fn login_succeeded(&self, user: &str) -> Result<(), StoreError> {
                $q::login_succeeded(&mut *self.pool.acquire().await.map_err(StoreError::db)?, user).await
            }

            async fn signing_keys(&self) -> Result<Vec<crate::auth::StoredKey>, StoreError> {
                $q::signing_keys(&mut *self.pool.acquire().await.map_err(StoreError::db)?).await
            }

            async fn service_client(&self, client_id: &str) -> Result<Option<crate::auth::ServiceClient>, StoreError> {
                $q::service_client(&mut *self.pool.acquire().await.map_err(StoreError::db)?, client_id).await
            }

            async fn put_service_client(&self, client: &crate::auth::ServiceClient) -> Result<(), StoreError> {
                $q::put_service_client(&mut *self.pool.acquire().await.map_err(StoreError::db)?, client).await
            }

            async fn service_clients(&self) -> Result<Vec<crate::auth::ServiceClient>, StoreError> {
                $q::service_clients(&mut *self.pool.acquire().await.map_err(StoreError::db)?).await
            }

            async fn purge_auth(&self, before: i64) -> Result<u64, StoreError> {
                let mut tx = self.pool.begin().await.map_err(StoreError::db)?;
                let n = $q::purge_auth(&mut tx, before).await?;
                tx.commit().await.map_err(StoreError::db)?;
                Ok(n)
            }
        }
    };
}

pub(crate) use auth_store_impl;

/// Writes Auth's query functions for one backend's connection and row types (inside the backend's `q`
/// module, after `log_queries!`).
macro_rules! auth_queries {
    ($conn:ty, $row:ty) => {
        use crate::auth::{LoginAttempt, RefreshRecord, RefreshUse, ServiceClient, Session, StoredKey};

        fn session_of(row: &$row) -> Result<Session, StoreError> {
            Ok(Session {
                sid: row.try_get("sid").map_err(StoreError::db)?,
                user: row.try_get("user_id").map_err(StoreError::db)?,
                created_at: row.try_get("created_at").map_err(StoreError::db)?,
                expires_at: row.try_get("expires_at").map_err(StoreError::db)?,
                revoked_at: row.try_get("revoked_at").map_err(StoreError::db)?,
            })
        }

        pub(crate) async fn create_session(
            conn: &mut $conn,
            session: &Session,
            refresh_hash: &str,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO auth_session (sid, user_id, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&session.sid)
            .bind(&session.user)
            .bind(session.created_at)
            .bind(session.expires_at)
            .bind(session.revoked_at)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            sqlx::query("INSERT INTO refresh_token (hash, sid, issued_at) VALUES ($1, $2, $3)")
                .bind(refresh_hash)
                .bind(&session.sid)
                .bind(session.created_at)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db)?;
            Ok(())
        }

        pub(crate) async fn session(conn: &mut $conn, sid: &str) -> Result<Option<Session>, StoreError> {
            let sql = "SELECT s.sid, s.user_id, s.created_at, s.expires_at, s.revoked_at FROM auth_session s WHERE s.sid = $1";
            let row = sqlx::query(sql).bind(sid).fetch_optional(&mut *conn).await.map_err(StoreError::db)?;
            row.as_ref().map(session_of).transpose()
        }

        pub(crate) async fn revoked_sessions(conn: &mut $conn, since: i64) -> Result<Vec<Session>, StoreError> {
            let sql = "SELECT s.sid, s.user_id, s.created_at, s.expires_at, s.revoked_at FROM auth_session s WHERE s.revoked_at >= $1";
            let rows = sqlx::query(sql).bind(since).fetch_all(&mut *conn).await.map_err(StoreError::db)?;
            rows.iter().map(session_of).collect()
        }

        pub(crate) async fn refresh_token(conn: &mut $conn, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
            let sql = "SELECT s.sid, s.user_id, s.created_at, s.expires_at, s.revoked_at, r.issued_at, r.used_at, r.company, r.answer \
                 FROM refresh_token r JOIN auth_session s ON s.sid = r.sid WHERE r.hash = $1";
            let row = sqlx::query(sql).bind(hash).fetch_optional(&mut *conn).await.map_err(StoreError::db)?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some(RefreshRecord {
                session: session_of(&row)?,
                issued_at: row.try_get("issued_at").map_err(StoreError::db)?,
                used_at: row.try_get("used_at").map_err(StoreError::db)?,
                company: row.try_get("company").map_err(StoreError::db)?,
                answer: row.try_get("answer").map_err(StoreError::db)?,
            }))
        }

        /// The one conditional update decides the winner: on PostgreSQL a concurrent use waits for the
        /// row lock and then finds `used_at` set; on SQLite the exclusive transaction serializes them.
        pub(crate) async fn use_refresh_token(conn: &mut $conn, hash: &str, used: &RefreshUse) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE refresh_token SET used_at = $2, company = $3, answer = $4 \
                 WHERE hash = $1 AND used_at IS NULL AND sid IN \
                   (SELECT sid FROM auth_session WHERE revoked_at IS NULL AND expires_at > $2)",
            )
            .bind(hash)
            .bind(used.at)
            .bind(&used.company)
            .bind(&used.answer)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            sqlx::query("INSERT INTO refresh_token (hash, sid, issued_at) SELECT $1, sid, $2 FROM refresh_token WHERE hash = $3")
                .bind(&used.next_hash)
                .bind(used.at)
                .bind(hash)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db)?;
            Ok(true)
        }

        pub(crate) async fn login_attempt(
            conn: &mut $conn,
            user: &str,
            at: i64,
            window: i64,
            max: u32,
        ) -> Result<LoginAttempt, StoreError> {
            let since = at.saturating_sub(window);
            let row = sqlx::query(
                "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM login_failure WHERE user_name = $1 AND at > $2",
            )
            .bind(user)
            .bind(since)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            let n: i64 = row.try_get("n").map_err(StoreError::db)?;
            let oldest: Option<i64> = row.try_get("oldest").map_err(StoreError::db)?;
            if n >= i64::from(max) {
                let retry_after = oldest.map_or(window, |o| o.saturating_add(window).saturating_sub(at)).max(1);
                return Ok(LoginAttempt::Limited { retry_after });
            }
            Ok(LoginAttempt::Admitted)
        }

        pub(crate) async fn login_failed(conn: &mut $conn, user: &str, at: i64) -> Result<(), StoreError> {
            sqlx::query("INSERT INTO login_failure (user_name, at) VALUES ($1, $2)")
                .bind(user)
                .bind(at)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db)?;
            Ok(())
        }

        pub(crate) async fn login_succeeded(conn: &mut $conn, user: &str) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM login_failure WHERE user_name = $1")
                .bind(user)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db)?;
            Ok(())
        }

        pub(crate) async fn signing_keys(conn: &mut $conn) -> Result<Vec<StoredKey>, StoreError> {
            let rows = sqlx::query(
                "SELECT kid, public_jwk, private_sealed, published_at, signs_from, signs_until \
                 FROM signing_key ORDER BY signs_from, kid",
            )
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            rows.iter()
                .map(|row| {
                    Ok(StoredKey {
                        kid: row.try_get("kid").map_err(StoreError::db)?,
                        public_jwk: row.try_get("public_jwk").map_err(StoreError::db)?,
                        private_sealed: row.try_get("private_sealed").map_err(StoreError::db)?,
                        published_at: row.try_get("published_at").map_err(StoreError::db)?,
                        signs_from: row.try_get("signs_from").map_err(StoreError::db)?,
                        signs_until: row.try_get("signs_until").map_err(StoreError::db)?,
                    })
                })
                .collect()
        }

        pub(crate) async fn put_signing_key(conn: &mut $conn, key: &StoredKey) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO signing_key (kid, public_jwk, private_sealed, published_at, signs_from, signs_until) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kid) DO UPDATE SET \
                 published_at = excluded.published_at, signs_from = excluded.signs_from, \
                 signs_until = excluded.signs_until",
            )
            .bind(&key.kid)
            .bind(&key.public_jwk)
            .bind(&key.private_sealed)
            .bind(key.published_at)
            .bind(key.signs_from)
            .bind(key.signs_until)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            Ok(())
        }

        fn service_client_of(row: &$row) -> Result<ServiceClient, StoreError> {
            let client_id: String = row.try_get("client_id").map_err(StoreError::db)?;
            let scopes: String = row.try_get("scopes").map_err(StoreError::db)?;
            Ok(ServiceClient {
                scopes: serde_json::from_str(&scopes)
                    .map_err(|e| StoreError::Database(format!("scopes of client `{client_id}`: {e}")))?,
                client_id,
                secret_hash: row.try_get("secret_hash").map_err(StoreError::db)?,
                company: row.try_get("company").map_err(StoreError::db)?,
                agent: row.try_get("agent").map_err(StoreError::db)?,
                created_at: row.try_get("created_at").map_err(StoreError::db)?,
            })
        }

        pub(crate) async fn service_client(conn: &mut $conn, client_id: &str) -> Result<Option<ServiceClient>, StoreError> {
            let row = sqlx::query(
                "SELECT client_id, secret_hash, scopes, company, agent, created_at FROM service_client WHERE client_id = $1",
            )
            .bind(client_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            row.as_ref().map(service_client_of).transpose()
        }

        pub(crate) async fn service_clients(conn: &mut $conn) -> Result<Vec<ServiceClient>, StoreError> {
            let rows = sqlx::query(
                "SELECT client_id, secret_hash, scopes, company, agent, created_at FROM service_client \
                 WHERE company IS NULL ORDER BY client_id",
            )
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            rows.iter().map(service_client_of).collect()
        }

        pub(crate) async fn add_service_client(conn: &mut $conn, client: &ServiceClient) -> Result<(), StoreError> {
            let scopes = serde_json::to_string(&client.scopes).map_err(|e| StoreError::Database(e.to_string()))?;
            sqlx::query(
                "INSERT INTO service_client (client_id, secret_hash, scopes, company, agent, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&client.client_id)
            .bind(&client.secret_hash)
            .bind(scopes)
            .bind(&client.company)
            .bind(&client.agent)
            .bind(client.created_at)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            Ok(())
        }

        pub(crate) async fn put_service_client(conn: &mut $conn, client: &ServiceClient) -> Result<(), StoreError> {
            let scopes = serde_json::to_string(&client.scopes).map_err(|e| StoreError::Database(e.to_string()))?;
            sqlx::query(
                "INSERT INTO service_client (client_id, secret_hash, scopes, company, agent, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (client_id) DO UPDATE SET \
                 secret_hash = excluded.secret_hash, scopes = excluded.scopes, company = excluded.company, \
                 agent = excluded.agent",
            )
            .bind(&client.client_id)
            .bind(&client.secret_hash)
            .bind(scopes)
            .bind(&client.company)
            .bind(&client.agent)
            .bind(client.created_at)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            Ok(())
        }

        /// The side writes of Auth's state, in the transaction of the change that records them.
        pub(crate) async fn auth_side_write(conn: &mut $conn, write: &crate::store::SideWrite) -> Result<(), StoreError> {
            use crate::store::SideWrite;
            let query = match write {
                SideWrite::SetPassword { .. } | SideWrite::DisableUser { .. } => return Ok(()),
                SideWrite::PutSigningKey(key) => return put_signing_key(conn, key).await,
                SideWrite::PutServiceClient(client) => return put_service_client(conn, client).await,
                SideWrite::AddServiceClient(client) => return add_service_client(conn, client).await,
                SideWrite::RotateServiceClientSecret { client_id, expected, secret_hash } => sqlx::query(
                    "UPDATE service_client SET secret_hash = $3 \
                     WHERE client_id = $1 AND secret_hash = $2 AND company IS NULL",
                )
                .bind(client_id.clone())
                .bind(expected.clone())
                .bind(secret_hash.clone()),
                SideWrite::RemovePlatformClient { client_id, expected } => sqlx::query(
                    "DELETE FROM service_client WHERE client_id = $1 AND secret_hash = $2 AND company IS NULL",
                )
                .bind(client_id.clone())
                .bind(expected.clone()),
                SideWrite::RevokeSession { sid, at } => {
                    sqlx::query("UPDATE auth_session SET revoked_at = $2 WHERE sid = $1 AND revoked_at IS NULL")
                        .bind(sid.clone())
                        .bind(*at)
                }
                SideWrite::RevokeUserSessions { user, at } => sqlx::query(
                    "UPDATE auth_session SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
                )
                .bind(user.to_string())
                .bind(*at),
                SideWrite::RemoveSigningKey { kid } => {
                    sqlx::query("DELETE FROM signing_key WHERE kid = $1").bind(kid.clone())
                }
                SideWrite::RemoveServiceClient { client_id } => {
                    sqlx::query("DELETE FROM service_client WHERE client_id = $1").bind(client_id.clone())
                }
                SideWrite::RemoveAgentClients { company, agent: Some(agent) } => {
                    sqlx::query("DELETE FROM service_client WHERE company = $1 AND agent = $2")
                        .bind(company.clone())
                        .bind(agent.clone())
                }
                SideWrite::RemoveAgentClients { company, agent: None } => {
                    sqlx::query("DELETE FROM service_client WHERE company = $1 AND agent IS NOT NULL").bind(company.clone())
                }
            };
            let done = query.execute(&mut *conn).await.map_err(StoreError::db)?;
            // A write guarded by the client's secret as it was judged changes exactly that client, or the
            // whole transaction fails.
            if let SideWrite::RotateServiceClientSecret { client_id, .. } | SideWrite::RemovePlatformClient { client_id, .. } =
                write
                && done.rows_affected() == 0
            {
                return Err(StoreError::Database(format!("service client `{client_id}` changed meanwhile")));
            }
            Ok(())
        }

        pub(crate) async fn purge_auth(conn: &mut $conn, before: i64) -> Result<u64, StoreError> {
            sqlx::query(
                "DELETE FROM refresh_token WHERE sid IN (SELECT sid FROM auth_session \
                 WHERE expires_at < $1 OR revoked_at < $1)",
            )
            .bind(before)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db)?;
            let done = sqlx::query("DELETE FROM auth_session WHERE expires_at < $1 OR revoked_at < $1")
                .bind(before)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db)?;
            sqlx::query("DELETE FROM login_failure WHERE at < $1")
                .bind(before)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db)?;
            Ok(done.rows_affected())
        }
    };
}

pub(crate) use auth_queries;
