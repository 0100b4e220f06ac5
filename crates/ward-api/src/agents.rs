//! Enrolment tokens, enrolled agents and their lifecycle.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/enroll-tokens`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollToken {
    /// Email of the person who owns the agent instance.
    pub owner: String,
    /// Capability profile from the matrix.
    pub profile: String,
    /// Lifetime in seconds (default 900, at most 86400).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// A single-use enrolment token; the secret is shown only here.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrollTokenCreated {
    /// Enrolment token id (`enr_...`).
    pub id: String,
    /// The secret to hand to the device. Only its hash is stored.
    pub token: String,
    /// Tenant id.
    pub tenant: String,
    /// Owner email.
    pub owner: String,
    /// Profile.
    pub profile: String,
    /// Expiry, RFC 3339.
    pub expires_at: String,
}

/// A device public key as a JWK (RFC 8037): `kty` `OKP`, `crv` `Ed25519`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceKey {
    /// Key type, `OKP`.
    pub kty: String,
    /// Curve, `Ed25519`.
    pub crv: String,
    /// Public key, base64url.
    pub x: String,
}

/// Metadata the device reports about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo {
    /// Operating system and version, e.g. `macos 15.2`.
    pub os: String,
    /// Version of the agent software.
    pub agent_version: String,
    /// Stable host identifier.
    pub host_id: String,
}

/// `POST /v1/agents`: enrol a device with an enrolment token.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollAgent {
    /// The enrolment token secret.
    pub enroll_token: String,
    /// The device's public key.
    pub device_key: DeviceKey,
    /// Device metadata.
    pub device: DeviceInfo,
}

/// An enrolled agent instance.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    /// Agent id (`agt_...`).
    pub id: String,
    /// Tenant id.
    pub tenant: String,
    /// Owner email.
    pub owner: String,
    /// Capability profile.
    pub profile: String,
    /// Lifecycle state: `pending_approval`, `active`, `quarantined`, `revoked`, `uninstalled`.
    pub state: String,
    /// Device metadata.
    pub device: DeviceInfo,
    /// RFC 7638 thumbprint of the device key (`cnf.jkt` of its tokens).
    pub device_jkt: String,
    /// Enrolment time, RFC 3339.
    pub created_at: String,
    /// Last state change, RFC 3339.
    pub updated_at: String,
    /// Last heartbeat, RFC 3339; absent before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_at: Option<String>,
    /// Seconds since the last heartbeat; absent before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_age_secs: Option<u64>,
    /// Whether it missed 3 heartbeat intervals (an active agent that never
    /// sent one counts from its enrolment).
    #[serde(default)]
    pub stale: bool,
    /// The mode its runtime reported in the last heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The runtime version it reported in the last heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
}

/// A page of agents.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentList {
    /// The agents, oldest first.
    pub agents: Vec<Agent>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Body of the agent lifecycle actions (activate, quarantine, revoke, uninstall).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleChange {
    /// Why, recorded in the audit log. Required, 1 to 1000 characters.
    pub reason: String,
}
