//! `ward agent ...`: the desktop side, run by `ward-agent` (the device key,
//! the state directory, enrolment, tokens, the daemon); this module reads
//! the flags and prints the result.

use clap::{Args, Subcommand};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;
use ward_agent::daemon::{Ended, RunConfig};
use ward_agent::spool::SpoolConfig;
use ward_agent::{DeviceFacts, TokenWanted};
use ward_client::{Client, LocalClient};

use crate::error::{CliError, CliResult};
use crate::output::Output;

/// `ward agent ...`.
#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Enrol this device: makes the device key (0600) and stores the agent id.
    Enroll(EnrollArgs),
    /// Get a token for scopes, signing a DPoP proof with the device key.
    Token(TokenArgs),
    /// Run the enforcement daemon: local API on a Unix socket, heartbeats, tokens, spool.
    Run(RunArgs),
    /// Show what the running daemon enforces (its local `GET /v1/status`).
    Status(SocketArgs),
    /// Show each feature and its scopes, and record the owner's consent (signed in with `ward login`).
    Consent(ConsentArgs),
    /// Run a program confined by Landlock to what the agent's tokens grant (files, TCP ports), frozen while the agent is quarantined.
    Exec(ExecArgs),
    /// What `ward agent exec` starts: confines itself and becomes the program.
    #[command(hide = true)]
    Confined(ConfinedArgs),
}

/// `ward agent confined` (started by `ward agent exec`, not by hand).
#[derive(Args, Debug)]
pub struct ConfinedArgs {
    /// The supervisor's pid: if it is gone, nothing runs; when it dies, the program is killed.
    #[arg(long)]
    pub parent: u32,
    /// The confinement, as JSON.
    #[arg(long)]
    pub confinement: String,
    /// Run even where the kernel cannot confine the program.
    #[arg(long)]
    pub allow_unsandboxed: bool,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

/// `ward agent exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Where the daemon is.
    #[command(flatten)]
    pub daemon: SocketArgs,
    /// Run even where the kernel cannot confine the program (no Landlock).
    #[arg(long)]
    pub allow_unsandboxed: bool,
    /// Another tree the program may read (repeatable).
    #[arg(long)]
    pub allow_read: Vec<PathBuf>,
    /// Another tree the program may read and write (repeatable).
    #[arg(long)]
    pub allow_write: Vec<PathBuf>,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

/// `ward agent run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Directory written by `ward agent enroll`.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Socket to serve (default STATE_DIR/agent.sock).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Also admit this uid on the socket (the desktop user's, when the daemon runs as a service user; repeatable).
    #[arg(long = "allow-uid")]
    pub allow_uids: Vec<u32>,
    /// Another path no action may touch, besides the state directory (repeatable).
    #[arg(long)]
    pub protect: Vec<PathBuf>,
    /// Largest spool of unshipped events, in bytes.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    pub spool_max_bytes: u64,
    /// Reported runtime version (defaults to this binary's).
    #[arg(long)]
    pub agent_version: Option<String>,
    /// Seconds uninstalling may spend shipping what is left.
    #[arg(long, default_value_t = 10)]
    pub uninstall_ship_secs: u64,
}

/// Where the daemon's socket is.
#[derive(Args, Debug)]
pub struct SocketArgs {
    /// Directory written by `ward agent enroll` (the socket is STATE_DIR/agent.sock).
    #[arg(long, required_unless_present = "socket")]
    pub state_dir: Option<PathBuf>,
    /// The daemon's socket, when it is not in the state directory.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl SocketArgs {
    fn client(&self) -> LocalClient {
        let socket = self.socket.clone().unwrap_or_else(|| {
            self.state_dir
                .clone()
                .unwrap_or_default()
                .join("agent.sock")
        });
        LocalClient::new(&socket)
    }
}

/// `ward agent consent`.
#[derive(Args, Debug)]
pub struct ConsentArgs {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Only this feature (repeatable; default: every feature that needs consent).
    #[arg(long = "feature")]
    pub features: Vec<String>,
    /// Grant without asking.
    #[arg(long, conflicts_with = "refuse")]
    pub grant: bool,
    /// Refuse without asking.
    #[arg(long)]
    pub refuse: bool,
    /// The owner's token (default: the one `ward login` stored for the server).
    #[arg(long, env = "WARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `ward agent enroll`.
#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// Server URL.
    #[arg(long, env = "WARD_SERVER")]
    pub server: String,
    /// The enrolment token from an admin.
    #[arg(long, env = "WARD_ENROLL_TOKEN", hide_env_values = true)]
    pub enroll_token: String,
    /// Directory for the device key and agent state.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Reported OS (defaults to this machine's).
    #[arg(long)]
    pub os: Option<String>,
    /// Reported agent version (defaults to this binary's).
    #[arg(long)]
    pub agent_version: Option<String>,
    /// Reported host id (defaults to /etc/machine-id or the hostname).
    #[arg(long)]
    pub host_id: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ward agent token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Directory written by `ward agent enroll`.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Scope wanted (repeatable).
    #[arg(long = "scope", required = true)]
    pub scopes: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Redeem this approved approval request.
    #[arg(long)]
    pub approval_id: Option<String>,
    /// Bind the token to one action (JSON, e.g. `{"tool":"Bash","arguments":{...}}`).
    #[arg(long)]
    pub action: Option<String>,
    /// Print JSON instead of the bare token.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ward agent ...`.
pub async fn run(command: AgentCommand) -> CliResult {
    match command {
        AgentCommand::Enroll(args) => enroll(args).await,
        AgentCommand::Token(args) => token(args).await,
        AgentCommand::Run(args) => run_daemon(args).await,
        AgentCommand::Status(args) => status(args).await,
        AgentCommand::Consent(args) => consent(args).await,
        AgentCommand::Exec(args) => exec(args).await,
        AgentCommand::Confined(args) => confined(args),
    }
}

async fn run_daemon(args: RunArgs) -> CliResult {
    crate::serving::init_logging();
    let config = RunConfig {
        state_dir: args.state_dir,
        socket: args.socket,
        allow_uids: args.allow_uids,
        protect: args.protect,
        spool: SpoolConfig {
            max_bytes: args.spool_max_bytes,
            ..SpoolConfig::default()
        },
        version: args
            .agent_version
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
        os: DeviceFacts::local_os(),
        call_timeout: Duration::from_secs(10),
        uninstall_ship_bound: Duration::from_secs(args.uninstall_ship_secs),
    };
    match ward_agent::daemon::run(config, crate::serving::signal()).await? {
        Ended::Stopped => tracing::info!("stopped"),
        Ended::Uninstalled => tracing::info!("uninstalled"),
    }
    Ok(())
}

async fn status(args: SocketArgs) -> CliResult {
    let status = args.client().status().await?;
    Output::new(args.json).show(&status, |status| {
        let mut text = format!(
            "agent {} ({}), mode {}{}\n",
            status.agent_id,
            status.agent_state,
            status.mode,
            if status.mode_reason.is_empty() {
                String::new()
            } else {
                format!(": {}", status.mode_reason)
            }
        );
        text.push_str(&format!(
            "last contact {}\n",
            status.last_contact.as_deref().unwrap_or("never")
        ));
        for token in &status.tokens {
            match (&token.expires_at, &token.refused) {
                (Some(expires), _) => {
                    text.push_str(&format!("  {}: token until {expires}\n", token.feature))
                }
                (None, Some(why)) => {
                    text.push_str(&format!("  {}: no token: {why}\n", token.feature))
                }
                (None, None) => text.push_str(&format!("  {}: no token\n", token.feature)),
            }
        }
        text.push_str(&format!(
            "spool: {} events waiting, {} bytes, {} dropped, {} corrupt",
            status.spool.depth, status.spool.bytes, status.spool.dropped, status.spool.corrupt
        ));
        text
    })
}

/// Shows each feature's scopes in plain words and records the owner's
/// answer with the owner's own sign-in: the server refuses consent carried
/// by the agent's key alone.
async fn consent(args: ConsentArgs) -> CliResult {
    let mut local = args.socket.client();
    let status = local.status().await?;
    let token = args
        .token
        .clone()
        .or_else(|| crate::credentials::stored_token(&status.server))
        .ok_or_else(|| {
            format!(
                "sign in as the agent's owner first: `ward login --server {}`",
                status.server
            )
        })?;
    let wanted: Vec<&ward_api::AgentFeature> = status
        .features
        .iter()
        .filter(|f| {
            if args.features.is_empty() {
                f.consent_required
            } else {
                args.features.contains(&f.name)
            }
        })
        .collect();
    for name in &args.features {
        if !status.features.iter().any(|f| &f.name == name) {
            return Err(format!(
                "feature `{name}` is not in this agent's profile; `ward agent status` lists them"
            )
            .into());
        }
    }
    if wanted.is_empty() {
        println!("no feature of agent {} needs consent", status.agent_id);
        return Ok(());
    }
    let server = Client::new(&status.server, Some(token))?;
    let stdin = std::io::stdin();
    for feature in wanted {
        println!(
            "Feature `{}` ({} risk): {}",
            feature.name, feature.risk, feature.description
        );
        println!("It lets the agent:");
        for scope in &feature.scopes {
            match scope.parse::<ward_model::scope::Scope>() {
                Ok(parsed) => println!("  - {} ({scope})", parsed.describe()),
                Err(_) => println!("  - {scope}"),
            }
        }
        let decision = if args.grant {
            "granted"
        } else if args.refuse {
            "refused"
        } else {
            print!("Allow it? [y/N] ");
            let _ = std::io::stdout().flush();
            let mut answer = String::new();
            stdin
                .lock()
                .read_line(&mut answer)
                .map_err(|e| format!("cannot read the answer: {e}"))?;
            if matches!(answer.trim(), "y" | "Y" | "yes") {
                "granted"
            } else {
                "refused"
            }
        };
        let recorded = server
            .record_consent(&ward_api::RecordConsent {
                agent_id: status.agent_id.clone(),
                scopes: feature.scopes.clone(),
                decision: decision.to_owned(),
                text_version: CONSENT_TEXT_VERSION.to_owned(),
                reason: None,
            })
            .await?;
        println!(
            "{decision}: recorded as {} by {}",
            recorded.id, recorded.owner
        );
    }
    if let Err(error) = local.refresh().await {
        eprintln!(
            "ward: the daemon was not asked to refresh ({error}); it learns at its next heartbeat"
        );
    }
    Ok(())
}

/// The version of the consent text `ward agent consent` shows.
const CONSENT_TEXT_VERSION: &str = "ward-agent-consent-1";

async fn enroll(args: EnrollArgs) -> CliResult {
    let facts = DeviceFacts {
        os: args.os.unwrap_or_else(DeviceFacts::local_os),
        agent_version: args
            .agent_version
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
        host_id: args.host_id.unwrap_or_else(DeviceFacts::local_host_id),
    };
    let agent = ward_agent::enrol(&args.server, args.enroll_token, &args.state_dir, facts).await?;
    Output::new(args.json).show(&agent, |agent| {
        format!(
            "enrolled agent {} ({}), state {}",
            agent.id, agent.profile, agent.state
        )
    })
}

async fn token(args: TokenArgs) -> CliResult {
    let action = args
        .action
        .map(|text| {
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| format!("--action is not JSON: {e}"))
        })
        .transpose()?;
    let wanted = TokenWanted {
        scopes: args.scopes,
        duration: args.duration,
        approval_id: args.approval_id,
        action,
    };
    let granted = ward_agent::acquire_token(&args.state_dir, wanted).await?;
    Output::new(args.json).show(&granted, |granted| granted.token.clone())
}

/// Runs the program confined to the agent's scopes as the daemon holds
/// them, and supervises it: its whole process tree is frozen while the
/// agent is quarantined or the daemon cannot be reached, resumed when
/// that ends, and killed if this supervisor dies. Exits as the program
/// did.
async fn exec(args: ExecArgs) -> CliResult {
    use ward_agent::sandbox::confinement;
    let mut daemon = args.daemon.client();
    let status = daemon.status().await?;
    if status.agent_state == "quarantined" || status.mode == "offline" {
        return Err(CliError::Failed(format!(
            "the agent is {} ({}); nothing may run",
            if status.agent_state == "quarantined" {
                "quarantined"
            } else {
                "offline"
            },
            status.mode_reason
        )));
    }
    let scopes: Vec<String> = status
        .tokens
        .iter()
        .flat_map(|token| token.scopes.iter().cloned())
        .collect();
    let mut confined = confinement(&scopes, status.mode == "read-only");
    confined.read.extend(args.allow_read);
    confined.write.extend(args.allow_write);
    // Ward's own state stays out, whatever a scope or a flag covers.
    let Some(state_dir) = &args.daemon.state_dir else {
        return Err(CliError::Failed(
            "give --state-dir, so that Ward's own state is kept out of the sandbox".into(),
        ));
    };
    let state_dir = std::fs::canonicalize(state_dir)
        .map_err(|e| CliError::Failed(format!("cannot open `{}`: {e}", state_dir.display())))?;
    confined = confined.without(&state_dir);
    let confinement = serde_json::to_string(&confined)
        .map_err(|e| CliError::Failed(format!("cannot encode the confinement: {e}")))?;
    // Orphans of the program are re-parented here, so none escapes a freeze.
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| CliError::Failed(format!("cannot supervise the program: {e}")))?;
    let ward = std::env::current_exe()
        .map_err(|e| CliError::Failed(format!("cannot tell where `ward` is: {e}")))?;
    let me = std::process::id();
    let mut child = tokio::process::Command::new(ward);
    child
        .args(["agent", "confined", "--parent", &me.to_string()])
        .args(["--confinement", &confinement]);
    if args.allow_unsandboxed {
        child.arg("--allow-unsandboxed");
    }
    let mut child = child
        .arg("--")
        .args(&args.command)
        .spawn()
        .map_err(|e| CliError::Failed(format!("cannot start the confined program: {e}")))?;
    let program = args
        .command
        .first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    supervise(&mut child, &mut daemon, &program).await
}

/// How long the daemon may stay silent before the program is frozen
/// (also while the agent is quarantined or offline).
const DAEMON_LOST_AFTER: Duration = Duration::from_secs(2);

/// Watches the daemon while `child` runs: see [`exec`].
async fn supervise(
    child: &mut tokio::process::Child,
    daemon: &mut LocalClient,
    program: &str,
) -> CliResult {
    use rustix::process::Signal;
    use tokio::signal::unix::{SignalKind, signal};
    use ward_agent::supervise::signal_tree;
    let me = std::process::id();
    let watch =
        |kind| signal(kind).map_err(|e| CliError::Failed(format!("cannot watch signals: {e}")));
    let (mut terminate, mut interrupt, mut hangup) = (
        watch(SignalKind::terminate())?,
        watch(SignalKind::interrupt())?,
        watch(SignalKind::hangup())?,
    );
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut frozen: Option<String> = None;
    let mut silent_since: Option<std::time::Instant> = None;
    let exit = loop {
        tokio::select! {
            exit = child.wait() => break exit,
            _ = terminate.recv() => stop_tree(me, frozen.is_some()),
            _ = hangup.recv() => stop_tree(me, frozen.is_some()),
            // The terminal sends it to the program too; the program decides.
            _ = interrupt.recv() => {}
            _ = tick.tick() => {
                let asked = tokio::time::timeout(Duration::from_secs(1), daemon.status()).await;
                let reason = match asked {
                    Ok(Ok(status)) => {
                        silent_since = None;
                        if status.agent_state == "quarantined" {
                            Some(format!("the agent is quarantined ({})", status.mode_reason))
                        } else if status.mode == "offline" {
                            Some(format!("the agent is offline ({})", status.mode_reason))
                        } else {
                            None
                        }
                    }
                    _ => {
                        let since = *silent_since.get_or_insert_with(std::time::Instant::now);
                        if since.elapsed() >= DAEMON_LOST_AFTER {
                            Some("the Ward daemon cannot be reached".to_owned())
                        } else {
                            frozen.clone()
                        }
                    }
                };
                match (reason, &frozen) {
                    (Some(why), None) => {
                        let count = signal_tree(me, Signal::STOP);
                        eprintln!("ward: {why}: `{program}` is frozen ({count} processes stopped) until that ends");
                        record(daemon, "agent.confine", program, &why).await;
                        frozen = Some(why);
                    }
                    (None, Some(why)) => {
                        signal_tree(me, Signal::CONT);
                        eprintln!("ward: `{program}` resumes ({why} no longer holds)");
                        record(daemon, "agent.release", program, why).await;
                        frozen = None;
                    }
                    // Still frozen: stop what was started or resumed since.
                    (Some(_), Some(_)) => {
                        signal_tree(me, Signal::STOP);
                    }
                    (None, None) => {}
                }
            }
        }
    };
    // Nothing the program started outlives it.
    signal_tree(me, Signal::KILL);
    let exit = exit.map_err(|e| CliError::Failed(format!("cannot wait for the program: {e}")))?;
    use std::os::unix::process::ExitStatusExt;
    let code = exit
        .code()
        .or_else(|| exit.signal().map(|s| 128 + s))
        .unwrap_or(1);
    if code == 0 {
        Ok(())
    } else {
        Err(CliError::Exit(code as u8))
    }
}

/// Asks the program's tree to end (resuming it first when frozen, so
/// that it can).
fn stop_tree(me: u32, frozen: bool) {
    use rustix::process::Signal;
    use ward_agent::supervise::signal_tree;
    signal_tree(me, Signal::TERM);
    if frozen {
        signal_tree(me, Signal::CONT);
    }
}

/// Records a confinement change as an event; one the daemon cannot take
/// is only logged.
async fn record(daemon: &mut LocalClient, action: &str, program: &str, reason: &str) {
    let mut event = ward_api::LocalEvent::audit(action, program, "ok");
    event.reason = Some(reason.to_owned());
    let sent = tokio::time::timeout(
        Duration::from_secs(1),
        daemon.events(&ward_api::LocalEvents {
            events: vec![event],
        }),
    )
    .await;
    if !matches!(sent, Ok(Ok(_))) {
        eprintln!("ward: `{action}` of `{program}` could not be recorded");
    }
}

/// The supervised side of [`exec`]: dies with the supervisor, confines
/// itself, then becomes the program (it never returns on success).
fn confined(args: ConfinedArgs) -> CliResult {
    use std::os::unix::process::CommandExt;
    use ward_agent::sandbox::{Confinement, Enforced, enforce};
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(|e| CliError::Failed(format!("cannot tie the program to its supervisor: {e}")))?;
    let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);
    if parent != args.parent {
        return Err(CliError::Failed(
            "the supervisor is gone; nothing runs".into(),
        ));
    }
    let confinement: Confinement = serde_json::from_str(&args.confinement)
        .map_err(|e| CliError::Failed(format!("--confinement is not a confinement: {e}")))?;
    match enforce(&confinement)? {
        Enforced::Fully => {}
        Enforced::Partially => eprintln!(
            "ward: this kernel enforces only part of the confinement (an older Landlock ABI)"
        ),
        Enforced::Not if args.allow_unsandboxed => eprintln!(
            "ward: this kernel has no Landlock; running UNSANDBOXED as --allow-unsandboxed asks"
        ),
        Enforced::Not => {
            return Err(CliError::Failed(
                "this kernel has no Landlock, so the program cannot be confined; refusing (--allow-unsandboxed runs it anyway)".into(),
            ));
        }
    }
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| CliError::Failed("no program to run".into()))?;
    let error = std::process::Command::new(program).args(rest).exec();
    Err(CliError::Failed(format!(
        "cannot run `{}`: {error}",
        program.to_string_lossy()
    )))
}
