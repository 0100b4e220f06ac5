//! Events on their way to the spool: the daemon fills the identity fields
//! itself (agent, owner, device), redacts every text field, and appends
//! them in the checklist's log schema. Sequence numbers are the spool's:
//! the shipper puts them in when it sends.

use ward_api::{AgentEvent, LocalEvent};
use ward_model::timestamp::{parse_rfc3339, rfc3339};

use super::Runtime;
use crate::error::AgentError;
use crate::spool::Class;

/// An event before identity, redaction and sequence are added.
pub struct Entry {
    /// `audit` or `telemetry`.
    pub class: Class,
    /// When, unix milliseconds.
    pub ts_ms: i64,
    /// Correlation id; made when absent.
    pub correlation_id: Option<String>,
    /// The feature, if any.
    pub feature: Option<String>,
    /// What was done.
    pub action: String,
    /// To what.
    pub target: String,
    /// Outcome.
    pub result: String,
    /// Why.
    pub reason: Option<String>,
    /// How long it took.
    pub duration_ms: Option<u64>,
    /// Kept at this sampling rate.
    pub sampling: f64,
}

impl Entry {
    /// An audit-class event happening now.
    pub fn audit(action: &str, target: &str, result: &str, reason: Option<&str>) -> Entry {
        Entry {
            class: Class::Audit,
            ts_ms: Runtime::now_ms(),
            correlation_id: None,
            feature: None,
            action: action.to_owned(),
            target: target.to_owned(),
            result: result.to_owned(),
            reason: reason.map(str::to_owned),
            duration_ms: None,
            sampling: 1.0,
        }
    }

    /// A local producer's event, checked; the error names the field.
    pub fn from_local(index: usize, event: LocalEvent) -> Result<Entry, (String, String)> {
        let field = |name: &str| format!("events[{index}].{name}");
        let class = match event.class.as_deref() {
            None | Some("telemetry") => Class::Telemetry,
            Some("audit") => Class::Audit,
            Some(other) => {
                return Err((
                    field("class"),
                    format!("unknown class `{other}`; use `audit` or `telemetry`"),
                ));
            }
        };
        let ts_ms = match event.ts.as_deref() {
            None => Runtime::now_ms(),
            Some(ts) => parse_rfc3339(ts).ok_or_else(|| {
                (
                    field("ts"),
                    format!("`{ts}` is not an RFC 3339 time, e.g. 2026-12-02T10:00:00Z"),
                )
            })?,
        };
        if let Some(id) = &event.correlation_id
            && !ward_model::audit::valid_correlation_id(id)
        {
            return Err((
                field("correlation_id"),
                "use 1 to 128 letters, digits, `-`, `_`, `.` or `:`".to_owned(),
            ));
        }
        let sampling = event.sampling.unwrap_or(1.0);
        if !(sampling > 0.0 && sampling <= 1.0) {
            return Err((field("sampling"), "must be in (0, 1]".to_owned()));
        }
        for (name, value, max) in [
            ("action", event.action.as_str(), 128),
            ("target", event.target.as_str(), 4096),
            ("result", event.result.as_str(), 64),
        ] {
            if value.is_empty() || value.len() > max {
                return Err((field(name), format!("must be 1 to {max} bytes")));
            }
        }
        if event.reason.as_ref().is_some_and(|r| r.len() > 4096) {
            return Err((field("reason"), "must be at most 4096 bytes".to_owned()));
        }
        if event.feature.as_ref().is_some_and(|f| f.len() > 128) {
            return Err((field("feature"), "must be at most 128 bytes".to_owned()));
        }
        Ok(Entry {
            class,
            ts_ms,
            correlation_id: event.correlation_id,
            feature: event.feature,
            action: event.action,
            target: event.target,
            result: event.result,
            reason: event.reason,
            duration_ms: event.duration_ms,
            sampling,
        })
    }
}

/// A new correlation id.
pub fn new_correlation_id() -> String {
    format!("corr_{:016x}", super::control::random_u64())
}

/// Whether an environment variable's name says its value is a secret.
pub fn is_sensitive_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
        "AUTH",
        "SESSION",
        "COOKIE",
    ]
    .iter()
    .any(|word| upper.contains(word))
}

/// Redacts and appends entries; returns once they are durable. The
/// correlation ids used, in order (made for entries without one).
pub async fn append(runtime: &Runtime, entries: Vec<Entry>) -> Result<Appended, AgentError> {
    let (agent_id, owner) = {
        let view = runtime.read();
        (view.agent_id.clone(), view.owner.clone())
    };
    let device_id = runtime.record.device_jkt.clone();
    let mut records = Vec::with_capacity(entries.len());
    let mut correlation_ids = Vec::with_capacity(entries.len());
    for entry in entries {
        let correlation_id = entry.correlation_id.unwrap_or_else(new_correlation_id);
        let redact = |text: &str| runtime.redactor.redact(text).into_owned();
        let event = AgentEvent {
            seq: 0,
            ts: rfc3339(entry.ts_ms),
            correlation_id: correlation_id.clone(),
            agent_id: agent_id.clone(),
            user_id: owner.clone(),
            device_id: device_id.clone(),
            class: match entry.class {
                Class::Audit => "audit",
                Class::Telemetry => "telemetry",
            }
            .to_owned(),
            feature: entry.feature.as_deref().map(redact),
            action: redact(&entry.action),
            target: redact(&entry.target),
            result: redact(&entry.result),
            reason: entry.reason.as_deref().map(redact),
            duration_ms: entry.duration_ms,
            sampling: entry.sampling,
        };
        let payload = serde_json::to_vec(&event)
            .map_err(|e| AgentError::Invalid(format!("cannot encode an event: {e}")))?;
        records.push((entry.class, payload));
        correlation_ids.push(correlation_id);
    }
    let appended = runtime.spool.append(records).await?;
    runtime.wake_shipper.notify_one();
    Ok(Appended {
        correlation_ids,
        dropped: appended.dropped,
    })
}

/// What [`append`] did.
pub struct Appended {
    /// The correlation id of each entry.
    pub correlation_ids: Vec<String>,
    /// Telemetry entries dropped because the spool was full.
    pub dropped: u64,
}
