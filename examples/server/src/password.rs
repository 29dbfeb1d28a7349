//! Passwords, hashed with argon2id (RFC 9106; the argon2 crate's defaults: m = 19 MiB, t = 2, p = 1, the
//! OWASP recommendation) on the blocking pool, never on the async workers.
//!
//! Credentials under attack (API.md §1): hashing is bounded — at most one hash per core runs at a time,
//! sign-ins and client secrets in separate [`Queue`]s (half the cores each, at least one), so that a
//! flood of one never starves the other; a request that cannot start hashing within [`ADMISSION`] is
//! refused with `503 UPSTREAM_UNAVAILABLE` and `Retry-After`, and memory stays bounded (19 MiB a hash).

use std::sync::LazyLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use kisum_errors::ErrorCode;
use tokio::sync::Semaphore;

use crate::ApiError;

/// The shortest password accepted.
pub const MIN_LEN: usize = 8;
/// The longest password accepted (a bound on hashing work).
pub const MAX_LEN: usize = 1024;

/// Refuses a password outside the length bounds (`VALIDATION_FAILED` on `/password`).
pub fn check_policy(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_LEN || password.len() > MAX_LEN {
        return Err(ApiError::invalid("/password", format!("a password has {MIN_LEN} to {MAX_LEN} characters")));
    }
    Ok(())
}

/// How long a request may wait to start hashing before it is refused (`503`).
pub const ADMISSION: Duration = Duration::from_secs(2);

/// Which queue a hashing job waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Passwords: sign-ins, and the Admin API setting them.
    Password,
    /// Client secrets an operator chose (`KISUM_ADMIN_CLIENT_SECRET`), checked at the token endpoint.
    ClientSecret,
}

/// Hashing jobs allowed to run at once in each queue: half the cores, at least one.
fn permits() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

static PASSWORDS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(permits()));
static CLIENT_SECRETS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(permits()));

/// Runs `work` on the blocking pool once `queue` admits it, or refuses after [`ADMISSION`].
async fn bounded<T: Send + 'static>(queue: Queue, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    let semaphore = match queue {
        Queue::Password => &*PASSWORDS,
        Queue::ClientSecret => &*CLIENT_SECRETS,
    };
    let name = match queue {
        Queue::Password => "password",
        Queue::ClientSecret => "client",
    };
    let busy = || {
        metrics::counter!("kisum_credential_hash_refused_total", "queue" => name).increment(1);
        ApiError::new(ErrorCode::UpstreamUnavailable, "too many credentials are being checked; retry shortly")
            .with_header(axum::http::header::RETRY_AFTER, "1")
    };
    // Waiting or running, until this job is done or given up (dropped).
    let _queued = Queued::enter(name);
    let permit = tokio::time::timeout(ADMISSION, semaphore.acquire()).await.map_err(|_| busy())?.map_err(|_| busy())?;
    let done = tokio::task::spawn_blocking(work).await;
    drop(permit);
    done.map_err(|_| ApiError::new(ErrorCode::Internal, "password hashing failed"))
}

/// One job in `kisum_credential_hash_queue{queue}`, from its arrival until it is done or dropped.
struct Queued(&'static str);

impl Queued {
    fn enter(queue: &'static str) -> Queued {
        metrics::gauge!("kisum_credential_hash_queue", "queue" => queue).increment(1.0);
        Queued(queue)
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        metrics::gauge!("kisum_credential_hash_queue", "queue" => self.0).decrement(1.0);
    }
}

/// Hashes a password into a PHC string, with a fresh random salt (in the [`Queue::Password`] queue).
pub async fn hash(password: String) -> Result<String, ApiError> {
    check_policy(&password)?;
    let hashed =
        bounded(Queue::Password, move || Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()))
            .await?;
    hashed.map_err(|_| ApiError::new(ErrorCode::Internal, "password hashing failed"))
}

/// Whether `password` matches the PHC string `hash`, checked in `queue`. A malformed or empty hash
/// matches nothing. The work is the same whether or not a hash exists (pass [`DUMMY_HASH`] for unknown
/// users), so timing does not tell them apart. `503` when the queue does not admit it in time.
pub async fn verify(queue: Queue, password: String, hash: String) -> Result<bool, ApiError> {
    bounded(queue, move || {
        let Ok(parsed) = PasswordHash::new(&hash) else { return false };
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
    })
    .await
}

/// A well-formed argon2id hash, with the default parameters, that matches no password anyone knows:
/// verifying against it (for a user that does not exist) costs what verifying a real password costs.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0mT1pPIAoIbPWAbwzbPNWJiyaG2RB8F9rvVb4Y0h5o4";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_the_dummy_matches_nothing() {
        let hash = hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify(Queue::Password, "correct horse".into(), hash.clone()).await.unwrap());
        assert!(!verify(Queue::Password, "wrong horse".into(), hash).await.unwrap());
        assert!(PasswordHash::new(DUMMY_HASH).is_ok(), "the dummy is a well-formed hash, so it costs a real check");
        assert!(!verify(Queue::Password, "correct horse".into(), DUMMY_HASH.into()).await.unwrap());
        assert!(!verify(Queue::ClientSecret, "x".into(), String::new()).await.unwrap());
        assert!(hash_policy_refuses("short").await);
        assert!(hash_policy_refuses(&"x".repeat(MAX_LEN + 1)).await);
    }

    /// A queue whose every permit is taken refuses after [`ADMISSION`]; the other queue is not held up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_queue_refuses_and_does_not_starve_the_other() {
        let hash = hash("correct horse".into()).await.unwrap();
        let held = CLIENT_SECRETS.acquire_many(u32::try_from(permits()).unwrap()).await.unwrap();
        let flooded = tokio::spawn(verify(Queue::ClientSecret, "wrong".into(), DUMMY_HASH.into()));
        // While client secrets wait, a sign-in is admitted by its own queue.
        assert!(verify(Queue::Password, "correct horse".into(), hash).await.unwrap());
        let refused = flooded.await.unwrap().unwrap_err();
        assert_eq!(refused.code(), ErrorCode::UpstreamUnavailable);
        drop(held);
        assert!(!verify(Queue::ClientSecret, "wrong".into(), DUMMY_HASH.into()).await.unwrap());
    }

    async fn hash_policy_refuses(password: &str) -> bool {
        hash(password.into()).await.is_err_and(|e| e.code() == ErrorCode::ValidationFailed)
    }
}
