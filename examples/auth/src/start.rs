//! Auth's configuration and its one way to start, shared by `kisum-auth` and `kisum-platform`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use kisum_entitlements::SystemClock;
use tokio::task::JoinHandle;

use crate::boot::Opened;
use crate::{AuthState, Settings, StartError};

/// What Auth's tokens say and who runs the platform (the store's flags are [`Boot`](crate::boot::Boot)'s).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// The claims, shared with Core.
    #[command(flatten)]
    pub claims: kisum_server::ClaimsArgs,
}

impl Config {
    /// Auth's settings when it is served at `url` (the issuer unless `--issuer` names one).
    pub fn settings(&self, url: &str) -> Settings {
        let mut settings = Settings::new(self.claims.issuer_or(url), self.claims.platform_company.clone());
        settings.audience = self.claims.audience.clone();
        settings
    }
}

/// A started Auth: its state (close it to end the feed's streams before a graceful shutdown), its
/// router, and its background tasks (abort them to stop).
#[derive(Debug)]
pub struct Started {
    /// Its state.
    pub state: Arc<AuthState>,
    /// Its router ([`app`](crate::app)).
    pub router: Router,
    /// Its background tasks.
    pub tasks: Vec<JoinHandle<()>>,
}

/// Auth on an opened store, with `settings`: its router, and its background tasks
/// ([`background`](crate::background), and the engine following the log every `follow` when the engine is
/// Auth's own — `None` when another service of the process already follows it).
pub async fn start(opened: &Opened, settings: Settings, follow: Option<Duration>) -> Result<Started, StartError> {
    let state = AuthState::open(opened.engine.clone(), opened.kek.clone(), settings, Arc::new(SystemClock)).await?;
    let mut tasks = vec![crate::background(state.clone())];
    if let Some(poll) = follow {
        tasks.push(opened.engine.follow(poll));
    }
    Ok(Started { router: crate::app(state.clone()), state, tasks })
}
