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
        let entry = Entry {
            class,
            ts_ms,
            correlation_id: event.correlation_id,
            feature: event.feature,
            action: event.action,
            target: event.target,
            result: event.result,
            reason: event.reason,
            duration_ms: event.duration_ms,
            sampling: event.sampling.unwrap_or(1.0),
        };
        // The server's own rule, on the event as it would be sent; the
        // identity the daemon fills in later is not the producer's to get
        // wrong, so stand-ins take its place here.
        let correlation_id = entry
            .correlation_id
            .clone()
            .unwrap_or_else(|| "corr_check".to_owned());
        let mut probe = entry.event(String::new(), "check".into(), String::new(), correlation_id);
        probe.seq = 1;
        match probe.problem() {
            None => Ok(entry),
            Some(problem) => {
                let name = field(problem.field);
                let reason = format!("`{name}` {}", problem.rule);
                Err((name, reason))
            }
        }
    }

    /// The event in the log schema, unredacted, before its sequence number.
    fn event(
        &self,
        agent_id: String,
        user_id: String,
        device_id: String,
        correlation_id: String,
    ) -> AgentEvent {
        AgentEvent {
            seq: 0,
            ts: rfc3339(self.ts_ms),
            correlation_id,
            agent_id,
            user_id,
            device_id,
            class: match self.class {
                Class::Audit => "audit",
                Class::Telemetry => "telemetry",
            }
            .to_owned(),
            feature: self.feature.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            result: self.result.clone(),
            reason: self.reason.clone(),
            duration_ms: self.duration_ms,
            sampling: self.sampling,
        }
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
        let correlation_id = entry
            .correlation_id
            .clone()
            .unwrap_or_else(new_correlation_id);
        let mut event = entry.event(
            agent_id.clone(),
            owner.clone(),
            device_id.clone(),
            correlation_id.clone(),
        );
        event.rewrite_text(|text| runtime.redactor.redact(text).into_owned());
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

/// When each recent allowed call was decided, by correlation id, so that
/// the event of its result (`tool.result` from a hook's `PostToolUse`,
/// any `*.result`) carries how long the call took when its producer did
/// not say. Bounded: past [`Decided::MAX`] the oldest is forgotten.
#[derive(Debug, Default)]
pub struct Decided {
    at: std::collections::HashMap<String, std::time::Instant>,
    order: std::collections::VecDeque<String>,
}

impl Decided {
    /// Calls remembered at most.
    pub const MAX: usize = 4096;

    /// Notes that the call `id` was allowed at `at` (the first question of
    /// a call is its start).
    pub fn remember(&mut self, id: &str, at: std::time::Instant) {
        if self.at.contains_key(id) {
            return;
        }
        if self.order.len() >= Self::MAX
            && let Some(oldest) = self.order.pop_front()
        {
            self.at.remove(&oldest);
        }
        self.at.insert(id.to_owned(), at);
        self.order.push_back(id.to_owned());
    }

    /// When the call `id` was allowed, forgetting it.
    pub fn take(&mut self, id: &str) -> Option<std::time::Instant> {
        let at = self.at.remove(id)?;
        self.order.retain(|known| known != id);
        Some(at)
    }
}

#[cfg(test)]
mod decided_tests {
    use super::Decided;
    use std::time::Instant;

    #[test]
    fn the_first_question_starts_a_call_and_the_oldest_is_forgotten_first() {
        let mut decided = Decided::default();
        let first = Instant::now();
        decided.remember("a", first);
        decided.remember("a", Instant::now());
        assert_eq!(decided.take("a"), Some(first));
        assert_eq!(decided.take("a"), None);
        for n in 0..=Decided::MAX {
            decided.remember(&n.to_string(), first);
        }
        assert_eq!(decided.take("0"), None, "the oldest stays past the bound");
        assert!(decided.take(&Decided::MAX.to_string()).is_some());
    }
}
