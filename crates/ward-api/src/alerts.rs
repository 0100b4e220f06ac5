//! Alerts, their failed notifications, and silences.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One alert, firing or resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertView {
    /// Id, also the cursor of `GET /v1/alerts`.
    pub id: i64,
    /// `firing` or `resolved`.
    pub status: String,
    /// The rule that fired, e.g. `privileged-failures`.
    pub rule: String,
    /// `high`, `medium` or `low`.
    pub severity: String,
    /// The tenant.
    pub tenant: String,
    /// What the subject is: `agent_id`, `user_id` or `tenant`.
    pub subject_label: String,
    /// The agent, user or tenant the rule counted.
    pub subject: String,
    /// The rule's summary.
    pub summary: String,
    /// Which feature deviated, by how much, against what.
    pub explanation: String,
    /// The figure that crossed the threshold (a count, or seconds since a heartbeat).
    pub value: f64,
    /// The threshold.
    pub threshold: f64,
    /// Correlation ids of the latest events counted (`ward events list --correlation-id`).
    pub evidence: Vec<String>,
    /// When it fired, RFC 3339.
    pub started_at: String,
    /// When it resolved, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// The silence that kept it from being notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silenced_by: Option<String>,
    /// Stable id of (rule, tenant, subject); PagerDuty's `dedup_key`.
    pub fingerprint: String,
    /// This alert in the API.
    pub url: String,
}

/// `GET /v1/alerts`: newest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertPage {
    /// The alerts.
    pub alerts: Vec<AlertView>,
    /// Pass as `cursor` for older alerts; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A notification that could not be delivered (the dead-letter list).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FailedNotification {
    /// Id, for `POST /v1/alerts/failed/{id}/retry`.
    pub id: i64,
    /// The receiver's name in the alert rule file.
    pub receiver: String,
    /// `fired` or `resolved`.
    pub transition: String,
    /// Attempts made.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: String,
    /// When it was queued, RFC 3339.
    pub queued_at: String,
    /// When it was given up, RFC 3339.
    pub failed_at: String,
    /// The alert.
    pub alert: AlertView,
}

/// `GET /v1/alerts/failed`: newest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct FailedNotifications {
    /// Up to 500.
    pub notifications: Vec<FailedNotification>,
}

/// `POST /v1/silences`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSilence {
    /// Label to value; an alert is silenced when it has every one.
    /// Labels: `alertname`, `severity`, `agent_id`, `user_id`.
    pub matchers: BTreeMap<String, String>,
    /// How long, seconds (1 to 30 days).
    pub duration_secs: u64,
    /// Why (1 to 1024 bytes).
    pub comment: String,
}

/// A silence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SilenceView {
    /// `sil_...`.
    pub id: String,
    /// Label to value.
    pub matchers: BTreeMap<String, String>,
    /// From, RFC 3339.
    pub starts_at: String,
    /// Until, RFC 3339.
    pub ends_at: String,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// `GET /v1/silences`: the silences in force.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SilenceList {
    /// By id.
    pub silences: Vec<SilenceView>,
}

/// `GET /v1/agents/{id}/baseline`: an agent's behaviour against its
/// baselines, for a person judging an alert.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentBaseline {
    /// The agent.
    pub agent_id: String,
    /// Its owner (the `user` subject).
    pub owner: String,
    /// When this was computed, RFC 3339.
    pub at: String,
    /// Per subject (the agent, its owner) and signal with any history.
    pub signals: Vec<SignalBaseline>,
}

/// One subject's figures for one signal.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SignalBaseline {
    /// `agent` or `user`.
    pub subject: String,
    /// `action`, `privileged_failure`, `external_call`, `file_access`, `export`, `denial`.
    pub signal: String,
    /// Events in the current 15-minute slot so far.
    pub this_slot: u64,
    /// Events in the last 24 hours (96 slots, this one included).
    pub last_24h: u64,
    /// The usual count per 15 minutes for this slot; absent with less than 6 hours of history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_15m: Option<f64>,
    /// How much it usually varies (median absolute deviation per slot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mad: Option<f64>,
    /// Which history, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
}
