//! Ward's control plane: the HTTP API as an axum [`Router`] over shared
//! [`AppState`]. `ward serve` builds the state with [`init`] and serves
//! [`router`]; tests do the same on a loopback socket.

mod agent_cache;
mod alerts;
mod audit;
mod auth;
mod broker;
mod error;
mod extract;
mod fields;
mod instance;
mod keys;
mod metrics;
pub mod oidc;
mod openapi;
mod paging;
pub mod policy;
mod revocation;
mod routes;
mod switches;
mod util;

pub use broker::events::store_batch;
pub use error::ApiError;
pub use openapi::openapi_json;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ward_model::matrix::Matrix;
use ward_store::Store;

use crate::keys::KeyRing;
use crate::revocation::{ReplayCache, Revocations};

/// Everything `ward serve` can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the database and keys live.
    pub data_dir: PathBuf,
    /// The URL clients use to reach this server, without a trailing slash:
    /// the token issuer (`iss`) and the base of DPoP `htu` checks.
    pub public_url: String,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Token lifetime when the request names none, seconds.
    pub default_token_secs: u64,
    /// Longest token lifetime granted, seconds.
    pub max_token_secs: u64,
    /// How old a DPoP proof's `iat` may be, seconds.
    pub dpop_max_age_secs: i64,
    /// How far ahead of our clock a DPoP proof's `iat` may be, seconds.
    pub dpop_max_future_secs: i64,
    /// How long an approval request can be decided and redeemed, seconds.
    pub approval_ttl_secs: u64,
    /// The OpenID provider people sign in with, if any.
    pub oidc: Option<oidc::OidcConfig>,
    /// Enrolment token lifetime when none is asked for, seconds.
    pub enroll_default_ttl_secs: u64,
    /// Longest enrolment token lifetime, seconds.
    pub enroll_max_ttl_secs: u64,
    /// Alert rules and receivers (`--alerts`; the checklist's three rules
    /// and no receivers by default).
    pub alerts: ward_telemetry::rules::RuleSet,
}

impl Config {
    /// Defaults for a data directory and public URL.
    pub fn new(data_dir: PathBuf, public_url: String) -> Config {
        Config {
            data_dir,
            public_url: public_url.trim_end_matches('/').to_owned(),
            max_body_bytes: 64 * 1024,
            default_token_secs: 15 * 60,
            max_token_secs: 60 * 60,
            oidc: None,
            approval_ttl_secs: 60 * 60,
            dpop_max_age_secs: 60,
            dpop_max_future_secs: 5,
            enroll_default_ttl_secs: 15 * 60,
            enroll_max_ttl_secs: 24 * 60 * 60,
            alerts: ward_telemetry::rules::RuleSet::defaults(),
        }
    }
}

/// The capability matrix in force and where it came from.
pub struct LoadedMatrix {
    /// The parsed matrix.
    pub matrix: Matrix,
    /// The file it was read from, if any.
    pub source: Option<PathBuf>,
    /// SHA-256 of its text, recorded with every broker decision.
    pub digest: String,
}

/// Shared state of the control plane; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

/// The state behind [`AppState`]; its parts are private to the crate.
pub struct StateInner {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) keys: KeyRing,
    pub(crate) revocations: Revocations,
    pub(crate) agents: agent_cache::AgentCache,
    pub(crate) oidc: Option<oidc::OidcVerifier>,
    pub(crate) policies: policy::Policies,
    pub(crate) switches: switches::Switches,
    /// Bumped after every commit that appended events; wakes watchers.
    pub(crate) events: tokio::sync::watch::Sender<u64>,
    /// Set once the server is stopping; ends the watch streams.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
    pub(crate) replay: ReplayCache,
    pub(crate) matrix: LoadedMatrix,
    /// Unix seconds at start: DPoP proofs issued earlier are refused, since
    /// the replay cache does not survive a restart.
    pub(crate) started_at: i64,
    /// Heartbeats and acknowledgements received, for `/metrics`.
    pub(crate) counters: metrics::Counters,
    /// Alert rules, their engine and receivers.
    pub(crate) alerting: alerts::Alerting,
    /// Bumped after every batch of device events is stored: wakes live
    /// tails (`GET /v1/events/stream`), which read from the database.
    pub(crate) agent_events: tokio::sync::watch::Sender<u64>,
    /// The server's redactor (the edge's library and rules), applied to
    /// what is read back.
    pub(crate) redactor: ward_redact::Redactor,
}

impl std::ops::Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.inner
    }
}

/// What first start-up created, to be shown to the operator once.
pub struct Initialised {
    /// The state to serve.
    pub state: AppState,
    /// The bootstrap admin token, only when it was created by this start.
    pub new_bootstrap_token: Option<String>,
}

/// Start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The data directory is unusable.
    #[error("data directory `{path}`: {reason}")]
    DataDir {
        /// The directory.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] ward_store::StoreError),
    /// The signing keys could not be loaded or created.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// Something else refused.
    #[error("{0}")]
    Other(String),
}

impl From<ApiError> for InitError {
    fn from(error: ApiError) -> InitError {
        InitError::Other(error.message)
    }
}

/// Opens (or creates) the data directory: database, signing key, bootstrap
/// admin token. Returns the state to serve.
pub async fn init(config: Config, matrix: LoadedMatrix) -> Result<Initialised, InitError> {
    let dir = config.data_dir.clone();
    create_private_dir(&dir)?;
    let store = Store::open(&dir)?;
    let new_bootstrap_token = instance::first_start(&store, &dir).await?;
    let now = util::now_ms();
    let key_rows = store.read(ward_store::signing_keys).await?;
    let keys = KeyRing::load(&dir, &key_rows, now)?;
    let revocations = Revocations::default();
    let horizon = now - (config.max_token_secs as i64 + 300) * 1000;
    for row in store
        .read(move |conn| ward_store::revocations_since(conn, horizon))
        .await?
    {
        revocations.add(&revocation::rule_of(&row));
    }
    let oidc = config
        .oidc
        .clone()
        .map(oidc::OidcVerifier::new)
        .transpose()
        .map_err(|e| InitError::Other(e.to_string()))?;
    let policies = policy::Policies::load(&store).await?;
    let kills = store.read(ward_store::killswitches).await?;
    let flags = store.read(ward_store::flags).await?;
    let targets = alerts::deliver::resolve(&config.alerts).map_err(InitError::Other)?;
    let alerting = alerts::Alerting::new(config.alerts.clone(), targets);
    let state = AppState {
        inner: Arc::new(StateInner {
            config,
            store,
            keys,
            revocations,
            agents: agent_cache::AgentCache::default(),
            oidc,
            policies,
            switches: switches::Switches::new(kills, flags),
            events: tokio::sync::watch::Sender::new(0),
            stopping: tokio::sync::watch::Sender::new(false),
            replay: ReplayCache::default(),
            matrix,
            started_at: now / 1000,
            counters: metrics::Counters::default(),
            alerting,
            agent_events: tokio::sync::watch::Sender::new(0),
            redactor: ward_redact::Redactor::new(),
        }),
    };
    alerts::start(&state).await?;
    Ok(Initialised {
        state,
        new_bootstrap_token,
    })
}

/// Creates `dir` if needed and makes it private to this user (0700): it
/// holds the signing keys and the bootstrap token.
fn create_private_dir(dir: &Path) -> Result<(), InitError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let fail = |e: std::io::Error| InitError::DataDir {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fail)?;
    let mode = std::fs::metadata(dir).map_err(fail)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "data directory was not private; setting mode 700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}

impl AppState {
    /// Wakes the watch streams after a commit that appended events.
    pub(crate) fn published(&self) {
        self.events
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Tells long-lived responses (the watch streams) to end, so that a
    /// graceful shutdown does not wait for them.
    pub fn stop_streams(&self) {
        self.stopping.send_replace(true);
    }

    /// Completes once [`AppState::stop_streams`] was called.
    pub(crate) fn streams_stopped(&self) -> impl std::future::Future<Output = ()> + use<> {
        let mut stopping = self.stopping.subscribe();
        async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }
    }

    /// The storage handle.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    routes::routes()
        .fallback(routes::meta::not_found)
        .method_not_allowed_fallback(routes::meta::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), correlate))
        .with_state(state)
}

const CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// Takes the caller's correlation id (if well-formed) or makes one, serves
/// the request with it in scope, and returns it on every response.
async fn correlate(State(_state): State<AppState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(&CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| ward_model::audit::valid_correlation_id(v))
        .map(str::to_owned);
    let id = match given {
        Some(id) => id,
        None => util::new_id("corr").unwrap_or_else(|_| format!("corr_{}", util::now_ms())),
    };
    let header = HeaderValue::from_str(&id).ok();
    let mut response = error::CORRELATION_ID.scope(id, next.run(request)).await;
    if let Some(value) = header {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}
