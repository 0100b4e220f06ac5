//! `ward agent run`: the long-running enforcement daemon of one enrolled
//! agent instance. It serves the local API on a Unix socket ([`local`]),
//! keeps in-memory tokens and its view of the agent fresh from the control
//! plane ([`control`]), records every decision and event through redaction
//! into the durable spool ([`record`]), and ships the spool ([`ship`]).
//!
//! INVARIANT: `authorize` never waits on the network; the network only
//! tightens the view, and the staleness bounds tighten it on their own
//! when the network is gone.
//! INVARIANT: every lock on the view is taken and released without an
//! `.await` in between.

pub mod control;
pub mod local;
pub mod record;
pub mod ship;
pub mod view;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::UnixListener;
use tokio::sync::{Notify, watch};
use ward_auth::Keypair;
use ward_client::Client;
use ward_redact::Redactor;

use crate::device_key;
use crate::error::AgentError;
use crate::resource::Protected;
use crate::spool::{Spool, SpoolConfig};
use crate::state::{AgentRecord, StateDir};
use view::View;

/// How the daemon is run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The state directory `ward agent enroll` made.
    pub state_dir: PathBuf,
    /// The socket to serve; default `STATE_DIR/agent.sock`.
    pub socket: Option<PathBuf>,
    /// User ids admitted besides the daemon's own (the desktop user's,
    /// when the daemon runs as a service user).
    pub allow_uids: Vec<u32>,
    /// Paths besides the state directory and the socket that no action may
    /// touch (Ward's configuration, the agents' managed settings).
    pub protect: Vec<PathBuf>,
    /// The spool's limits.
    pub spool: SpoolConfig,
    /// The runtime's version, reported in heartbeats.
    pub version: String,
    /// The operating system, reported in heartbeats.
    pub os: String,
    /// How long a call to the control plane may take.
    pub call_timeout: Duration,
    /// How long uninstalling may spend shipping what is left.
    pub uninstall_ship_bound: Duration,
}

/// How the daemon ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Asked to stop (a signal).
    Stopped,
    /// Told to uninstall: its key, record and spool are gone.
    Uninstalled,
}

/// The daemon's shared parts.
pub struct Runtime {
    /// The enrolment record.
    pub record: AgentRecord,
    /// The device key (memory; the file stays 0600 in the state directory).
    pub device: Keypair,
    /// Calls to the control plane, each bounded by the call timeout.
    pub client: Client,
    /// The agent's view, see [`view`].
    pub view: RwLock<View>,
    /// The durable spool.
    pub spool: Spool,
    /// Redaction applied to every event before the spool.
    pub redactor: Redactor,
    /// Ward's own paths.
    pub protected: Protected,
    /// The state directory.
    pub dir: StateDir,
    /// The socket served.
    pub socket: PathBuf,
    /// The daemon's own uid and the admitted ones.
    pub allowed_uids: Vec<u32>,
    /// When it started.
    pub started: Instant,
    /// The configuration.
    pub config: RunConfig,
    /// Ask for a heartbeat now (a reconnect, a consent just given).
    pub wake_heartbeat: Notify,
    /// Look at tokens now.
    pub wake_tokens: Notify,
    /// Ship now.
    pub wake_shipper: Notify,
    /// Send acknowledgements now.
    pub wake_acks: Notify,
    /// Turns true when the daemon stops (or uninstalls).
    pub stopping: watch::Sender<bool>,
    /// When recent allowed calls were decided, for their results' durations.
    pub decided: std::sync::Mutex<record::Decided>,
}

impl Runtime {
    /// Unix milliseconds now.
    pub fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// The view, for reading; a poisoned lock is still read (the view is
    /// replaced whole by its writers, never left half-written by a panic in
    /// a reader).
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The view, for writing.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Checks the state directory, key, record and socket, then runs until
/// `stop` completes or the server says to uninstall. Errors before
/// serving say what is wrong with the state directory, the key or the
/// socket; after that, nothing the network does stops the daemon.
pub async fn run(
    config: RunConfig,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Ended, AgentError> {
    let dir = StateDir::open(&config.state_dir)?;
    let _lock = dir.lock_daemon()?;
    let record = dir.record()?;
    let device = device_key::load(&dir.key_path())?;
    let socket = config
        .socket
        .clone()
        .unwrap_or_else(|| dir.path().join("agent.sock"));
    let listener = local::bind(&socket, !config.allow_uids.is_empty())?;
    let spool = Spool::open(&dir.path().join("spool"), config.spool.clone())?;
    let mut protected_paths = vec![dir.path().to_owned(), socket.clone()];
    protected_paths.extend(config.protect.iter().cloned());
    if let Ok(exe) = std::env::current_exe() {
        protected_paths.push(exe);
    }
    let protected = Protected::new(&protected_paths);
    let own_uid = rustix::process::getuid().as_raw();
    let mut allowed_uids = vec![own_uid];
    allowed_uids.extend(config.allow_uids.iter().copied());
    let secret_values = std::env::vars()
        .filter(|(name, _)| record::is_sensitive_name(name))
        .map(|(_, value)| value);
    let runtime = Arc::new(Runtime {
        client: Client::new(&record.server, None)?.with_timeout(config.call_timeout),
        view: RwLock::new(View::new(
            record.agent_id.clone(),
            record.tenant.clone(),
            config.version.clone(),
        )),
        record,
        device,
        spool,
        redactor: Redactor::new().with_secret_values(secret_values),
        protected,
        dir,
        socket: socket.clone(),
        allowed_uids,
        started: Instant::now(),
        config,
        wake_heartbeat: Notify::new(),
        wake_tokens: Notify::new(),
        wake_shipper: Notify::new(),
        wake_acks: Notify::new(),
        stopping: watch::channel(false).0,
        decided: std::sync::Mutex::new(record::Decided::default()),
    });
    tracing::info!(
        agent = %runtime.record.agent_id,
        server = %runtime.record.server,
        socket = %socket.display(),
        allowed_uids = ?runtime.allowed_uids,
        "serving"
    );
    let ended = serve(Arc::clone(&runtime), listener, stop).await;
    let _ = std::fs::remove_file(&socket);
    if ended == Ended::Uninstalled {
        finish_uninstall(runtime)?;
    }
    Ok(ended)
}

async fn serve(
    runtime: Arc<Runtime>,
    listener: UnixListener,
    stop: impl std::future::Future<Output = ()>,
) -> Ended {
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(control::heartbeats(Arc::clone(&runtime)));
    tasks.spawn(control::tokens(Arc::clone(&runtime)));
    tasks.spawn(control::follow(Arc::clone(&runtime)));
    tasks.spawn(control::acks(Arc::clone(&runtime)));
    tasks.spawn(ship::shipper(Arc::clone(&runtime)));
    let stopped = runtime.stopping.subscribe();
    // Served from now on, while this task waits for the end.
    let api = tokio::spawn(local::serve(
        Arc::clone(&runtime),
        listener,
        ward_serve::stopping_of(stopped.clone()),
    ));
    let uninstall = control::uninstall_requested(Arc::clone(&runtime));
    let ended = tokio::select! {
        () = stop => Ended::Stopped,
        () = uninstall => Ended::Uninstalled,
    };
    let _ = runtime.stopping.send(true);
    if ended == Ended::Uninstalled {
        control::ship_and_acknowledge_uninstall(&runtime).await;
    }
    let _ = api.await;
    tasks.shutdown().await;
    ended
}

/// Wipes what the agent kept on the device: tokens (memory), the spool,
/// the device key and the enrolment record. Coming back needs a new
/// enrolment token.
fn finish_uninstall(runtime: Arc<Runtime>) -> Result<(), AgentError> {
    runtime.write().tokens.clear();
    let dir = runtime.dir.clone();
    let Ok(runtime) = Arc::try_unwrap(runtime) else {
        return Err(AgentError::Invalid(
            "uninstall: the daemon's tasks did not stop; the state directory is left as is".into(),
        ));
    };
    runtime.spool.wipe()?;
    dir.wipe()?;
    tracing::info!(state_dir = %dir.path().display(), "uninstalled: device key, record and spool removed");
    Ok(())
}
