//! What a desktop runtime (`ward agent run`) and the control plane say to
//! each other: heartbeats and the directives they answer with, directive
//! acknowledgements, the per-tenant staleness policy, and the events the
//! runtime ships. Every call an agent makes is authenticated by a DPoP
//! proof signed with its enrolled device key.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/agents/{id}/heartbeat` (DPoP): how the device is doing.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Version of the runtime.
    pub version: String,
    /// Seconds since the runtime started.
    pub uptime_secs: u64,
    /// Operating system and release.
    pub os: String,
    /// `ok`, or `degraded` when something is wrong (see `problems`).
    pub health: String,
    /// What is wrong, in plain words; empty when healthy.
    #[serde(default)]
    pub problems: Vec<String>,
    /// The mode in force on the device: `normal`, `read-only` or `offline`.
    pub mode: String,
    /// Events waiting in the spool.
    pub spool_depth: u64,
    /// Bytes of the spool on disk.
    pub spool_bytes: u64,
    /// Telemetry events dropped because the spool was full, since enrolment.
    pub spool_dropped: u64,
    /// Directives applied since the last heartbeat that reached the server.
    #[serde(default)]
    pub acks: Vec<DirectiveAck>,
}

/// A directive the device applied, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectiveAck {
    /// The directive's id, as the server gave it (`Directive.id`) or as
    /// the device computed it from a change-feed event (the same id).
    pub directive: String,
    /// When it took effect on the device, RFC 3339 with milliseconds.
    pub applied_at: String,
}

/// `POST /v1/agents/{id}/acks` (DPoP): directives applied, sent as soon as
/// they take effect (heartbeats carry any that could not be sent).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectiveAcks {
    /// The acknowledgements, 1 to 100.
    pub acks: Vec<DirectiveAck>,
}

/// How many acknowledgements the server stored (repeats are not stored twice).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AcksStored {
    /// New acknowledgements.
    pub stored: u64,
}

/// The answer to a heartbeat: what the device must do and know.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    /// Seconds until the next heartbeat.
    pub interval_secs: u64,
    /// The server's clock, RFC 3339 with milliseconds.
    pub server_time: String,
    /// The agent's lifecycle state.
    pub state: String,
    /// The agent's owner (the `user_id` of its events).
    pub owner: String,
    /// The agent's tenant.
    pub tenant: String,
    /// The last change-feed sequence number this answer reflects: follow
    /// `GET /v1/agents/{id}/watch` from here (`Last-Event-ID`).
    pub feed_seq: i64,
    /// What the device must do now.
    pub directives: Vec<Directive>,
    /// When the device must tighten on its own without contact.
    pub bounds: StalenessBounds,
    /// The features of the agent's profile, with their scopes.
    pub features: Vec<AgentFeature>,
    /// Feature flags visible to the agent (a flag named after a feature
    /// and turned off disables that feature).
    pub flags: Vec<crate::Flag>,
}

/// One directive. Ids are stable: the same directive always has the same
/// id, so acknowledging it twice stores one acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Directive {
    /// Stable id to acknowledge, e.g. `killswitch:agent:ten_1:agt_1:2026-12-02T10:00:00.000Z`.
    pub id: String,
    /// `mode` (a kill switch in force), `quarantine`, `uninstall`,
    /// `reconsent` or `version`.
    pub kind: String,
    /// For `mode`: `read-only` or `offline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// For `mode`: the kill switch in force, so the device can apply its
    /// release from the change feed later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<crate::KillSwitch>,
    /// For `reconsent`: the features to ask consent for again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// For `version`: the version the device should run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When the server issued it, RFC 3339 with milliseconds.
    pub issued_at: String,
}

/// The staleness bounds: how long after its last successful contact with
/// the control plane a device tightens on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StalenessBounds {
    /// Heartbeat interval, seconds (default 30).
    pub heartbeat_interval_secs: u64,
    /// High-risk features stop after this many seconds (default 90).
    pub high_risk_after_secs: u64,
    /// Everything becomes read-only after this many seconds (default 300).
    pub read_only_after_secs: u64,
    /// Everything is denied after this many seconds (default 900; never
    /// longer than the token lifetime).
    pub offline_after_secs: u64,
}

/// `PUT /v1/agent-policy`: a tenant's staleness bounds. Rules:
/// `1 <= heartbeat_interval_secs < high_risk_after_secs <= read_only_after_secs
/// <= offline_after_secs <= the server's default token lifetime`.
/// Like every runtime switch an admin sets, it carries a reason for the
/// audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAgentPolicy {
    /// Heartbeat interval, seconds.
    pub heartbeat_interval_secs: u64,
    /// High-risk features stop after this many seconds without contact.
    pub high_risk_after_secs: u64,
    /// Everything becomes read-only after this many seconds.
    pub read_only_after_secs: u64,
    /// Everything is denied after this many seconds.
    pub offline_after_secs: u64,
    /// Why (recorded in the audit log).
    pub reason: String,
}

impl SetAgentPolicy {
    /// The bounds asked for.
    pub fn bounds(&self) -> StalenessBounds {
        StalenessBounds {
            heartbeat_interval_secs: self.heartbeat_interval_secs,
            high_risk_after_secs: self.high_risk_after_secs,
            read_only_after_secs: self.read_only_after_secs,
            offline_after_secs: self.offline_after_secs,
        }
    }
}

/// A feature of the agent's profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentFeature {
    /// Feature name.
    pub name: String,
    /// What it does, in plain words.
    pub description: String,
    /// `low`, `medium` or `high`.
    pub risk: String,
    /// The scopes it needs.
    pub scopes: Vec<String>,
    /// Whether the owner must consent before the agent may use it.
    pub consent_required: bool,
    /// Whether the owner's consent to its current scopes is on record.
    pub consented: bool,
}

/// One event in the checklist's log schema, as the runtime ships it.
/// Identity fields are filled by the runtime, never by a local producer;
/// the server checks them against the proof's agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentEvent {
    /// The device's sequence number: with the device, the event's id.
    pub seq: u64,
    /// When it happened, RFC 3339 with milliseconds.
    pub ts: String,
    /// Correlation id.
    pub correlation_id: String,
    /// The agent (must be the sender).
    pub agent_id: String,
    /// The agent's owner.
    pub user_id: String,
    /// The device key thumbprint (must be the sender's).
    pub device_id: String,
    /// `audit` (never dropped) or `telemetry` (may be sampled or dropped).
    pub class: String,
    /// The feature, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// What was done, e.g. `files:read`, `directive`, `consent`.
    pub action: String,
    /// What it was done to (redacted).
    pub target: String,
    /// `allow`, `deny`, `ok`, `error`, `applied`, ...
    pub result: String,
    /// Why, in plain words (redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The sampling rate this event was kept at (1.0: every event).
    pub sampling: f64,
}

/// `POST /v1/events` (DPoP): a batch of a device's events.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// The sending agent; its device key signs the proof.
    pub agent_id: String,
    /// 1 to 1000 events.
    pub events: Vec<AgentEvent>,
}

/// The most events one `POST /v1/events` batch may hold.
pub const EVENT_BATCH_MAX_EVENTS: usize = 1000;

/// The largest `POST /v1/events` body, bytes (413 beyond): 1000 events of
/// about 4 KiB each. Every event within the field bounds below fits in a
/// batch of its own, so a shipper that cuts batches at this size and at
/// [`EVENT_BATCH_MAX_EVENTS`] never holds an event it cannot send.
pub const EVENT_BATCH_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The longest accepted `AgentEvent.target`, bytes of UTF-8.
pub const EVENT_TARGET_MAX_BYTES: usize = 2048;

/// The longest accepted `AgentEvent.reason`, bytes of UTF-8.
pub const EVENT_REASON_MAX_BYTES: usize = 1024;

/// The longest accepted `AgentEvent.action`, bytes of UTF-8.
pub const EVENT_ACTION_MAX_BYTES: usize = 128;

/// The longest accepted `AgentEvent.user_id`, bytes of UTF-8.
pub const EVENT_USER_MAX_BYTES: usize = 254;

/// The longest accepted `AgentEvent.result`, bytes (lowercase ASCII
/// letters, digits, `_`, `-`, `.`).
pub const EVENT_RESULT_MAX_BYTES: usize = 32;

/// The longest accepted `AgentEvent.ts`, bytes (an RFC 3339 time is about 30).
pub const EVENT_TS_MAX_BYTES: usize = 64;

/// A field of an [`AgentEvent`] the server refuses, and the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventProblem {
    /// The field, e.g. `target`.
    pub field: &'static str,
    /// The rule, continuing a sentence that names the field: "must be ...".
    pub rule: String,
}

impl AgentEvent {
    /// The first field of the event's content the server refuses, with
    /// the rule it breaks. Everything but the identity fields (`agent_id`,
    /// `device_id`), which the server compares with the sender. One rule
    /// for both ends: the server refuses by it, and the runtime checks its
    /// events by it before it sends them.
    pub fn problem(&self) -> Option<EventProblem> {
        let problem = |field: &'static str, rule: String| Some(EventProblem { field, rule });
        if self.seq == 0 || i64::try_from(self.seq).is_err() {
            return problem(
                "seq",
                format!("must be from 1 to {}, got {}", i64::MAX, self.seq),
            );
        }
        if self.ts.len() > EVENT_TS_MAX_BYTES
            || ward_model::timestamp::parse_rfc3339(&self.ts).is_none()
        {
            return problem(
                "ts",
                "is not an RFC 3339 time such as `2026-01-17T14:23:05.123Z`".to_owned(),
            );
        }
        if !ward_model::audit::valid_correlation_id(&self.correlation_id) {
            return problem(
                "correlation_id",
                "must be 1 to 128 ASCII letters, digits, `-`, `_`, `.` or `:`".to_owned(),
            );
        }
        if !matches!(self.class.as_str(), "audit" | "telemetry") {
            return problem(
                "class",
                format!("must be `audit` or `telemetry`, got `{}`", self.class),
            );
        }
        if !(self.sampling > 0.0 && self.sampling <= 1.0) {
            return problem(
                "sampling",
                format!(
                    "must be above 0 and at most 1 (1: every event kept), got {}",
                    self.sampling
                ),
            );
        }
        if self
            .duration_ms
            .is_some_and(|ms| i64::try_from(ms).is_err())
        {
            return problem("duration_ms", format!("must be at most {}", i64::MAX));
        }
        if let Some(feature) = &self.feature
            && !ward_model::matrix::is_valid_name(feature)
        {
            return problem(
                "feature",
                "is not a feature name: use 1 to 64 lowercase letters, digits, `-`, `_`, `.`"
                    .to_owned(),
            );
        }
        if self.result.len() > EVENT_RESULT_MAX_BYTES
            || !ward_model::matrix::is_valid_name(&self.result)
        {
            return problem(
                "result",
                format!(
                    "must be 1 to {EVENT_RESULT_MAX_BYTES} lowercase letters, digits, `-`, `_`, `.`, such as `allow` or `error`"
                ),
            );
        }
        for (field, value, max) in [
            ("user_id", &self.user_id, EVENT_USER_MAX_BYTES),
            ("action", &self.action, EVENT_ACTION_MAX_BYTES),
        ] {
            if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
                return problem(
                    field,
                    format!("must be 1 to {max} bytes without control characters"),
                );
            }
        }
        for (field, value, max) in [
            ("target", Some(&self.target), EVENT_TARGET_MAX_BYTES),
            ("reason", self.reason.as_ref(), EVENT_REASON_MAX_BYTES),
        ] {
            let Some(value) = value else { continue };
            if value.len() > max {
                return problem(
                    field,
                    format!("is longer than {max} bytes; shorten it on the device"),
                );
            }
            if value.contains('\0') {
                return problem(field, "must not contain NUL characters".to_owned());
            }
        }
        None
    }

    /// Rewrites the free-text fields (`action`, `target`, `reason`: those
    /// that may carry secrets; the names were checked to be identifiers)
    /// with `rewrite`, then [`AgentEvent::fit`]s the result, so a rewrite
    /// (redaction) never makes a valid event invalid.
    pub fn rewrite_text(&mut self, rewrite: impl Fn(&str) -> String) {
        self.action = rewrite(&self.action);
        self.target = rewrite(&self.target);
        self.reason = self.reason.as_deref().map(&rewrite);
        self.fit();
    }

    /// Makes the free text the runtime wrote itself fit the rules of
    /// [`AgentEvent::problem`]: control characters in `action` and
    /// `user_id` become spaces, NUL in `target` and `reason` becomes `\0`,
    /// and each is cut at a character boundary to its bound, ending in `…`.
    pub fn fit(&mut self) {
        fit_text(&mut self.action, EVENT_ACTION_MAX_BYTES, char::is_control);
        fit_text(&mut self.user_id, EVENT_USER_MAX_BYTES, char::is_control);
        fit_text(&mut self.target, EVENT_TARGET_MAX_BYTES, |c| c == '\0');
        if let Some(reason) = &mut self.reason {
            fit_text(reason, EVENT_REASON_MAX_BYTES, |c| c == '\0');
        }
    }
}

/// Replaces the characters `banned` picks (NUL by `\0`, others by a space)
/// and cuts `text` to at most `max` bytes, ending in `…` when cut.
fn fit_text(text: &mut String, max: usize, banned: fn(char) -> bool) {
    if text.chars().any(banned) {
        let mut clean = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            match c {
                '\0' if banned(c) => clean.push_str("\\0"),
                c if banned(c) => clean.push(' '),
                c => clean.push(c),
            }
        }
        *text = clean;
    }
    if text.len() > max {
        const MARK: &str = "…";
        let mut end = max.saturating_sub(MARK.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(MARK);
    }
}

/// What the server did with a batch.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsAccepted {
    /// Events stored now.
    pub stored: u64,
    /// Events it already held (same device and sequence number).
    pub duplicates: u64,
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoredEvent {
    /// The event as the device sent it.
    #[serde(flatten)]
    pub event: AgentEvent,
    /// Its tenant.
    pub tenant: String,
    /// When the server stored it, RFC 3339 with milliseconds.
    pub received_at: String,
}

/// `GET /v1/events`: a page of events, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    /// The events.
    pub events: Vec<StoredEvent>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/killswitch/status`: every engaged kill switch and, for each
/// agent it covers, whether the device acknowledged it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct KillSwitchStatus {
    /// One entry per engaged switch.
    pub switches: Vec<KillSwitchReach>,
}

/// How far one kill switch has reached.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct KillSwitchReach {
    /// The switch.
    pub switch: crate::KillSwitch,
    /// Its directive id (what devices acknowledge).
    pub directive: String,
    /// Agents it covers that acknowledged it.
    pub acknowledged: Vec<DeviceAck>,
    /// Agents it covers that have not: when each is guaranteed to be in
    /// safe mode on its own.
    pub pending: Vec<DevicePending>,
}

/// An agent that applied a directive.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceAck {
    /// The agent.
    pub agent_id: String,
    /// When it took effect on the device, RFC 3339.
    pub applied_at: String,
    /// Milliseconds from the switch being set to it taking effect.
    pub time_to_apply_ms: i64,
}

/// An agent that has not acknowledged a directive yet.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DevicePending {
    /// The agent.
    pub agent_id: String,
    /// Its last successful contact, RFC 3339; absent if it never sent a heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact: Option<String>,
    /// By when it is in the switch's mode on its own at the latest (last
    /// contact + the tenant's bound for that mode), RFC 3339; absent if it
    /// never made contact (it then holds no token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_by: Option<String>,
}
