//! The desktop runtime's local API, served by `ward agent run` on the Unix
//! socket `STATE_DIR/agent.sock` to processes of the allowed users only:
//! the adapters (hooks, MCP proxy) ask it for decisions and hand it events.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/authorize`: may this action be done to this resource?
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// The matrix feature acting; absent: any feature of the profile.
    #[serde(default)]
    pub feature: Option<String>,
    /// `resource:action`, e.g. `files:read`, `files:write`, `exec:run`, `http:call`.
    pub action: String,
    /// The target: a file path, a command (argv[0]), a URL, or another
    /// resource's name. Canonicalised before matching.
    pub resource: String,
    /// The directory a relative path or command is resolved from
    /// (absolute); default: refused for relative paths.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Correlation id; a new one is made when absent.
    #[serde(default)]
    pub correlation_id: Option<String>,
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthorizeResponse {
    /// `allow` or `deny`.
    pub decision: String,
    /// Why, in plain words.
    pub reason: String,
    /// The granted scope that allowed it; absent on deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The feature whose scope allowed it; absent on deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// The canonical form of the resource that was judged.
    pub resource: String,
    /// Correlation id (the caller's, or a new one).
    pub correlation_id: String,
}

/// `GET /v1/status`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LocalStatus {
    /// The agent.
    pub agent_id: String,
    /// The control plane it enrolled with.
    pub server: String,
    /// The mode in force: `normal`, `read-only` or `offline`.
    pub mode: String,
    /// Why the mode is what it is, in plain words.
    pub mode_reason: String,
    /// The agent's lifecycle state as last heard: `active`, `quarantined`, ...
    pub agent_state: String,
    /// Per feature: when its token expires, or why it has none.
    pub tokens: Vec<FeatureToken>,
    /// Last successful contact with the control plane, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact: Option<String>,
    /// The staleness bounds in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<crate::StalenessBounds>,
    /// The profile's features as last heard, with their consent state.
    pub features: Vec<crate::AgentFeature>,
    /// Features the server asks the owner to consent to again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reconsent: Vec<String>,
    /// The spool.
    pub spool: SpoolStatus,
    /// Version of the runtime.
    pub version: String,
}

/// A feature's token, as the runtime holds it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct FeatureToken {
    /// The feature.
    pub feature: String,
    /// When its token expires, RFC 3339; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Why it has no token (refusal by the broker, consent missing, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The scopes its token grants (none without a token).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// The spool's counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct SpoolStatus {
    /// Events not yet shipped.
    pub depth: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Telemetry events dropped because the spool was full.
    pub dropped: u64,
    /// Records set aside because they were torn or failed their checksum.
    pub corrupt: u64,
    /// Events the server refused, kept in the spool's `refused/` directory.
    #[serde(default)]
    pub refused: u64,
    /// The highest sequence number the server holds.
    pub shipped_seq: u64,
}

/// `POST /v1/events` on the local socket: events from a local producer.
/// Identity fields (`agent_id`, `user_id`, `device_id`, `seq`) are filled by
/// the runtime; a body that sets them is refused.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalEvents {
    /// 1 to 1000 events.
    pub events: Vec<LocalEvent>,
}

/// One event from a local producer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalEvent {
    /// When it happened, RFC 3339; default now.
    #[serde(default)]
    pub ts: Option<String>,
    /// Correlation id; a new one when absent.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// `audit` or `telemetry` (default).
    #[serde(default)]
    pub class: Option<String>,
    /// The feature, if any.
    #[serde(default)]
    pub feature: Option<String>,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// The outcome.
    pub result: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// How long it took.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// The sampling rate it was kept at, (0, 1]; default 1.
    #[serde(default)]
    pub sampling: Option<f64>,
}

impl LocalEvent {
    /// An audit event happening now: `action` on `target` with `result`,
    /// nothing else said (the fields are public for the rest).
    pub fn audit(action: &str, target: &str, result: &str) -> LocalEvent {
        LocalEvent {
            ts: None,
            correlation_id: None,
            class: Some("audit".to_owned()),
            feature: None,
            action: action.to_owned(),
            target: target.to_owned(),
            result: result.to_owned(),
            reason: None,
            duration_ms: None,
            sampling: None,
        }
    }
}

/// Events taken into the spool.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LocalEventsAccepted {
    /// Events appended.
    pub accepted: u64,
    /// Telemetry events dropped because the spool was full.
    pub dropped: u64,
}
