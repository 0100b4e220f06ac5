//! `ward agent ...`: the desktop side. The device key never leaves the state
//! directory (file mode 0600); only its public half is sent at enrolment.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use ward_api::{DeviceInfo, DeviceKey, EnrollAgent, TokenRequest};
use ward_auth::Keypair;
use ward_client::Client;

use crate::commands::print_json;

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

/// Arguments of `ward agent enroll`.
pub struct EnrollArgs {
    pub server: String,
    pub enroll_token: String,
    pub state_dir: PathBuf,
    pub os: Option<String>,
    pub agent_version: Option<String>,
    pub host_id: Option<String>,
    pub json: bool,
}

/// Enrols this device.
pub async fn enroll(args: EnrollArgs) -> Result<(), String> {
    let dir = &args.state_dir;
    if dir.join(STATE_FILE).exists() {
        return Err(format!(
            "`{}` already holds an enrolled agent; use another --state-dir",
            dir.display()
        ));
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
            return Err(e.to_string());
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
    if args.json {
        print_json(&agent)
    } else {
        println!(
            "enrolled agent {} ({}), state {}",
            agent.id, agent.profile, agent.state
        );
        Ok(())
    }
}

/// Gets a token for scopes.
pub async fn token(
    state_dir: &Path,
    scopes: Vec<String>,
    duration: Option<u64>,
    approval_id: Option<String>,
    action: Option<String>,
    json: bool,
) -> Result<(), String> {
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
    let granted = client
        .request_token(&device, &body)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        print_json(&granted)
    } else {
        println!("{}", granted.token);
        Ok(())
    }
}

fn read_device_key(path: &Path) -> Result<Keypair, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "`{}` is readable by others (mode {:o}); run `chmod 600` on it",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
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

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
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
