//! What Core's handlers share.

use std::sync::Arc;

use kisum_access::{ChangeRecord, CompanyId};
use kisum_entitlements::Timestamp;
use kisum_server::{ApiResult, Tokens};
use kisum_store::{Engine, SideWrite};

/// Core's state: the engine (directory + store), the token verifier, and the platform company whose
/// members with `admin:…` permissions are platform staff.
#[derive(Debug)]
pub struct CoreState {
    /// The directory kept in step with the store.
    pub engine: Arc<Engine>,
    /// Bearer-token verification (Auth's keys).
    pub tokens: Tokens,
    /// The company whose members are platform staff (default `kisum`): a user token of this company whose
    /// access allows an `admin:…` permission may call the Admin API routes that need it.
    pub platform_company: CompanyId,
}

impl CoreState {
    /// Now, by the server's clock.
    pub fn now(&self) -> Timestamp {
        self.tokens.clock().now()
    }

    /// Commits a write (and what must commit with it) and returns its record.
    pub async fn write(
        &self,
        actor: &kisum_access::Actor,
        change: kisum_access::Change,
        side: &[SideWrite],
    ) -> ApiResult<ChangeRecord> {
        Ok(self.engine.write_with(actor, self.now(), change, side).await?)
    }
}

impl kisum_server::ServerState for CoreState {
    fn tokens(&self) -> &kisum_server::Tokens {
        &self.tokens
    }

    fn installed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.engine.installed()
    }

    fn behind(&self) -> Option<String> {
        self.engine.behind()
    }
}
