//! `ward agent ...`: the desktop side. The device key never leaves the
//! state directory (file mode 0600); only its public half is sent at
//! enrolment.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use ward_api::{DeviceInfo, DeviceKey, EnrollAgent, TokenRequest};
use ward_auth::Keypair;
use ward_client::Client;

use crate::error::CliResult;
use crate::output::Output;

/// `ward agent ...`.
#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Enrol this device: makes the device key (0600) and stores the agent id.
    Enroll(EnrollArgs),
    /// Get a token for scopes, signing a DPoP proof with the device key.
    Token(TokenArgs),
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

const KEY_FILE: &str = "device.key";
const STATE_FILE: &str = "agent.json";

/// What `ward agent enroll` remembers.
#[derive(Serialize, Deserialize)]
struct AgentStateFile {
    server: String,
    agent_id: String,
    tenant: String,
    device_jkt: String,
}

/// Runs `ward agent ...`.
pub async fn run(command: AgentCommand) -> CliResult {
    match command {
        AgentCommand::Enroll(args) => enroll(args).await,
        AgentCommand::Token(args) => token(args).await,
    }
}

/// Enrols this device.
async fn enroll(args: EnrollArgs) -> CliResult {
    let dir = &args.state_dir;
    if dir.join(STATE_FILE).exists() {
        return Err(format!(
            "`{}` already holds an enrolled agent; use another --state-dir",
            dir.display()
        )
        .into());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let device = Keypair::generate().map_err(|e| e.to_string())?;
    write_private(
        &dir.join(KEY_FILE),
        URL_SAFE_NO_PAD.encode(device.seed_bytes()).as_bytes(),
    )?;
    let jwk = device.public_jwk();
    let body = EnrollAgent {
        enroll_token: args.enroll_token,
        device_key: DeviceKey {
            kty: jwk.kty,
            crv: jwk.crv,
            x: jwk.x,
        },
        device: DeviceInfo {
            os: args.os.unwrap_or_else(local_os),
            agent_version: args
                .agent_version
                .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
            host_id: args.host_id.unwrap_or_else(local_host_id),
        },
    };
    let client = Client::new(&args.server, None).map_err(|e| e.to_string())?;
    let agent = match client.enroll(&body).await {
        Ok(agent) => agent,
        Err(e) => {
            let _ = std::fs::remove_file(dir.join(KEY_FILE));
            return Err(e.into());
        }
    };
    let state = AgentStateFile {
        server: client.base().to_owned(),
        agent_id: agent.id.clone(),
        tenant: agent.tenant.clone(),
        device_jkt: agent.device_jkt.clone(),
    };
    let text = serde_json::to_vec_pretty(&state).map_err(|e| e.to_string())?;
    write_private(&dir.join(STATE_FILE), &text)?;
    Output::new(args.json).show(&agent, |agent| {
        format!(
            "enrolled agent {} ({}), state {}",
            agent.id, agent.profile, agent.state
        )
    })
}

/// Gets a token for scopes.
async fn token(args: TokenArgs) -> CliResult {
    let TokenArgs {
        state_dir,
        scopes,
        duration,
        approval_id,
        action,
        json,
    } = args;
    let state_dir = state_dir.as_path();
    let action = action
        .map(|text| {
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| format!("--action is not JSON: {e}"))
        })
        .transpose()?;
    let state: AgentStateFile =
        serde_json::from_slice(&std::fs::read(state_dir.join(STATE_FILE)).map_err(|e| {
            format!(
                "cannot read `{}`: {e}; run `ward agent enroll` first",
                state_dir.join(STATE_FILE).display()
            )
        })?)
        .map_err(|e| format!("`{}` is corrupt: {e}", state_dir.join(STATE_FILE).display()))?;
    let device = read_device_key(&state_dir.join(KEY_FILE))?;
    let client = Client::new(&state.server, None).map_err(|e| e.to_string())?;
    let body = TokenRequest {
        agent_id: state.agent_id,
        requested_scopes: scopes,
        requested_duration: duration,
        approval_id,
        action,
    };
    let granted = client.request_token(&device, &body).await?;
    Output::new(json).show(&granted, |granted| granted.token.clone())
}

fn read_device_key(path: &Path) -> CliResult<Keypair> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "`{}` is readable by others (mode {:o}); run `chmod 600` on it",
            path.display(),
            meta.permissions().mode() & 0o777
        )
        .into());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| format!("`{}` is not a device key", path.display()))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| format!("`{}` is not a device key", path.display()))?;
    Ok(Keypair::from_seed(&seed))
}

fn write_private(path: &Path, bytes: &[u8]) -> CliResult {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()).into())
}

fn local_os() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{} {}", std::env::consts::OS, release.trim())
        .trim()
        .to_owned()
}

fn local_host_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown-host".to_owned())
}
