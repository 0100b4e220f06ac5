//! Enrolment: make the device key in a fresh state directory, send its
//! public half with an enrolment token and the device's facts, and keep
//! the record of the agent the server created.

use std::path::Path;
use ward_api::{Agent, DeviceInfo, DeviceKey, EnrollAgent};
use ward_client::Client;

use crate::device_key;
use crate::error::AgentError;
use crate::state::{AgentRecord, StateDir};

/// What the device reports about itself at enrolment.
#[derive(Clone, Debug)]
pub struct DeviceFacts {
    /// Operating system and release.
    pub os: String,
    /// Version of the agent software.
    pub agent_version: String,
    /// A stable id of the machine.
    pub host_id: String,
}

impl DeviceFacts {
    /// This machine's OS and release, e.g. `linux 6.1.0`.
    pub fn local_os() -> String {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        format!("{} {}", std::env::consts::OS, release.trim())
            .trim()
            .to_owned()
    }

    /// This machine's id: `/etc/machine-id`, else the hostname.
    pub fn local_host_id() -> String {
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
}

/// Enrols this device with the server at `server` using `enroll_token`,
/// keeping the device key and the agent's record in `state_dir`. A key
/// the server refused is removed again.
pub async fn enrol(
    server: &str,
    enroll_token: String,
    state_dir: &Path,
    facts: DeviceFacts,
) -> Result<Agent, AgentError> {
    let dir = StateDir::create(state_dir)?;
    if dir.is_enrolled() {
        return Err(AgentError::AlreadyEnrolled {
            path: state_dir.to_owned(),
        });
    }
    let device = device_key::create(&dir.key_path())?;
    let jwk = device.public_jwk();
    let body = EnrollAgent {
        enroll_token,
        device_key: DeviceKey {
            kty: jwk.kty,
            crv: jwk.crv,
            x: jwk.x,
        },
        device: DeviceInfo {
            os: facts.os,
            agent_version: facts.agent_version,
            host_id: facts.host_id,
        },
    };
    let client = Client::new(server, None)?;
    let agent = match client.enroll(&body).await {
        Ok(agent) => agent,
        Err(e) => {
            let _ = std::fs::remove_file(dir.key_path());
            return Err(e.into());
        }
    };
    dir.save_record(&AgentRecord {
        server: client.base().to_owned(),
        agent_id: agent.id.clone(),
        tenant: agent.tenant.clone(),
        device_jkt: agent.device_jkt.clone(),
    })?;
    Ok(agent)
}
