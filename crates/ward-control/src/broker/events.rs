//! Accepting a device's batch of events (`POST /v1/events`), stage by
//! stage: authenticate device -> read the batch (size, identity, fields)
//! -> store. Knows nothing of HTTP: the handler passes the proof it read.
//!
//! The events are the agent's own log, not the control plane's audit: an
//! accepted batch writes no audit entry (a refused one is audited by the
//! caller, like every refusal). Events of agents that are quarantined,
//! revoked or uninstalled are accepted: what a device ships on its way out
//! is evidence.
//!
//! INVARIANT: a batch is stored whole or not at all (one write
//! transaction), and only when every event names the sending agent and the
//! key that signed the proof.

use std::sync::Arc;

use ward_redact::Redactor;

use ward_api::{AgentEvent, EVENT_BATCH_MAX_EVENTS, EventBatch, EventsAccepted};
use ward_store::{AgentEventRow, AgentRow};

use ward_telemetry::signal::Signals;

use crate::AppState;
use crate::alerts;
use crate::broker::device::{self, Refusal};
use crate::error::ApiError;
use crate::util::{now_ms, rfc3339};

/// The path DPoP proofs for shipping events are made for.
const EVENTS_PATH: &str = "/v1/events";

/// Accepts a batch carrying `proof` (the request's `DPoP` header, or why it
/// has none): how many events were stored and how many were already held,
/// or the refusal and the tenant it is attributed to.
pub async fn accept(
    state: &AppState,
    proof: Result<&str, ApiError>,
    batch: EventBatch,
) -> Result<EventsAccepted, Refusal> {
    let now = now_ms();
    let cached =
        device::authenticate(state, proof, &batch.agent_id, EVENTS_PATH, now / 1000).await?;
    let agent = &cached.row;
    store_batch(state, agent, batch.events, &state.redactor)
        .await
        .map_err(|error| (error, Some(agent.tenant_id.clone())))
}

/// Stores an authenticated `agent`'s batch (checked, redacted with
/// `redactor`, classified, with its history counts, in one transaction),
/// then counts it in the metrics and the engine: everything
/// `POST /v1/events` does after the proof. Public so the ingest benchmark
/// measures this very path (with `ward_redact::Redactor::disabled()` as
/// its baseline); the server always passes its own redactor.
pub async fn store_batch(
    state: &AppState,
    agent: &AgentRow,
    events: Vec<AgentEvent>,
    redactor: &Redactor,
) -> Result<EventsAccepted, ApiError> {
    let now = now_ms();
    let rows = read_batch(agent, events, &rfc3339(now), redactor)?;
    let signals: Vec<Signals> = rows
        .iter()
        .map(|row| alerts::classify(state, row))
        .collect();
    let (rows, signals) = (Arc::new(rows), Arc::new(signals));
    let (written, counted, owner) = (Arc::clone(&rows), Arc::clone(&signals), agent.owner.clone());
    let stored = state
        .store
        .write(move |ctx| {
            let stored = ward_store::insert_agent_events(ctx.conn(), &written)?;
            let slots = alerts::history::slot_counts(&written, &counted, &stored.fresh, &owner);
            ward_store::add_signal_slots(ctx.conn(), &slots)?;
            Ok(stored)
        })
        .await?;
    if stored.stored > 0 {
        state
            .agent_events
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }
    // Counted in a task of its own: once the batch is durable, a client
    // that hangs up cannot keep its events from the engine (a resend would
    // be a duplicate and never counted).
    let (counting, owner, fresh) = (state.clone(), agent.owner.clone(), stored.fresh.clone());
    let observed = tokio::spawn(async move {
        alerts::observe(&counting, &owner, &rows, &signals, &fresh).await;
    });
    // The answer waits for it, so a caller that reads alerts after shipping
    // sees what its events fired; dropping this wait does not cancel it.
    let _ = observed.await;
    Ok(EventsAccepted {
        stored: stored.stored,
        duplicates: stored.duplicates,
    })
}

/// Reads the batch into rows: 1 to [`EVENT_BATCH_MAX_EVENTS`] events, each
/// naming `agent` and its device key, each field within its bounds.
fn read_batch(
    agent: &AgentRow,
    events: Vec<AgentEvent>,
    received_at: &str,
    redactor: &Redactor,
) -> Result<Vec<AgentEventRow>, ApiError> {
    if events.is_empty() || events.len() > EVENT_BATCH_MAX_EVENTS {
        return Err(ApiError::invalid(
            "events",
            format!(
                "a batch holds 1 to {EVENT_BATCH_MAX_EVENTS} events, this one {}; split it",
                events.len()
            ),
        ));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| read_event(agent, index, event, received_at, redactor))
        .collect()
}

/// Checks one event and makes its row. Identity comes first: an event of
/// another agent or device is refused (403) whatever else is wrong with it.
fn read_event(
    agent: &AgentRow,
    index: usize,
    mut event: AgentEvent,
    received_at: &str,
    redactor: &Redactor,
) -> Result<AgentEventRow, ApiError> {
    let field = |name: &str| format!("events[{index}].{name}");
    if event.agent_id != agent.id {
        return Err(ApiError::forbidden(
            "event_identity_mismatch",
            format!(
                "`{}` names agent `{}`, but the proof is signed by the device key of agent `{}`; ship only this agent's events",
                field("agent_id"),
                event.agent_id,
                agent.id
            ),
        )
        .field(field("agent_id")));
    }
    if event.device_id != agent.device_jkt {
        return Err(ApiError::forbidden(
            "event_identity_mismatch",
            format!(
                "`{}` is `{}`, but the proof is signed by device key `{}`; set it to the thumbprint of the key that signs the batch",
                field("device_id"),
                event.device_id,
                agent.device_jkt
            ),
        )
        .field(field("device_id")));
    }
    if let Some(problem) = event.problem() {
        let name = field(problem.field);
        return Err(ApiError::invalid(
            name.clone(),
            format!("`{name}` {}", problem.rule),
        ));
    }
    // The server redacts too (the same library as the edge): what reaches
    // it from a device with older rules, or from a client that is not
    // Ward's runtime, is not stored with secrets in it.
    event.rewrite_text(|text| redactor.redact(text).into_owned());
    // Both hold after `problem`; the fallbacks are never taken.
    let seq = i64::try_from(event.seq).unwrap_or(i64::MAX);
    let ts_ms = ward_model::timestamp::parse_rfc3339(&event.ts).unwrap_or_default();
    let duration_ms = event.duration_ms.and_then(|ms| i64::try_from(ms).ok());
    Ok(AgentEventRow {
        id: 0,
        tenant_id: agent.tenant_id.clone(),
        agent_id: event.agent_id,
        device_id: event.device_id,
        seq,
        ts: event.ts,
        ts_ms,
        correlation_id: event.correlation_id,
        user_id: event.user_id,
        class: event.class,
        feature: event.feature,
        action: event.action,
        target: event.target,
        result: event.result,
        reason: event.reason,
        duration_ms,
        sampling: event.sampling,
        received_at: received_at.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;
    use ward_model::lifecycle::AgentState;

    fn agent() -> AgentRow {
        AgentRow {
            id: "agt_a".into(),
            tenant_id: "ten_a".into(),
            owner: "alice@example.com".into(),
            profile: "p".into(),
            state: AgentState::Active,
            os: "linux".into(),
            agent_version: "1".into(),
            host_id: "h".into(),
            device_jwk: "{}".into(),
            device_jkt: "jkt_a".into(),
            enroll_token_id: "enr_a".into(),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn event() -> AgentEvent {
        AgentEvent {
            seq: 1,
            ts: "2026-01-17T14:23:05.123+01:00".into(),
            correlation_id: "corr_1".into(),
            agent_id: "agt_a".into(),
            user_id: "alice@example.com".into(),
            device_id: "jkt_a".into(),
            class: "audit".into(),
            feature: Some("code-edit".into()),
            action: "files:read".into(),
            target: "/home/alice/notes\nline two".into(),
            result: "allow".into(),
            reason: None,
            duration_ms: Some(4),
            sampling: 1.0,
        }
    }

    /// The field a refusal names, or `ok` with the stored `ts_ms`.
    fn check(change: impl FnOnce(&mut AgentEvent)) -> String {
        let mut e = event();
        change(&mut e);
        match read_event(&agent(), 2, e, "now", &Redactor::new()) {
            Ok(row) => format!("ok {}", row.ts_ms),
            Err(error) => format!(
                "{} {}",
                error.status.as_u16(),
                error.field.unwrap_or_default()
            ),
        }
    }

    #[test]
    fn each_field_is_checked_and_named() {
        assert_eq!(check(|_| {}), "ok 1768656185123");
        assert_eq!(
            check(|e| e.agent_id = "agt_b".into()),
            "403 events[2].agent_id"
        );
        assert_eq!(
            check(|e| e.device_id = "jkt_b".into()),
            "403 events[2].device_id"
        );
        assert_eq!(check(|e| e.seq = 0), "400 events[2].seq");
        assert_eq!(check(|e| e.seq = u64::MAX), "400 events[2].seq");
        assert_eq!(check(|e| e.ts = "yesterday".into()), "400 events[2].ts");
        assert_eq!(
            check(|e| e.correlation_id = "a b".into()),
            "400 events[2].correlation_id"
        );
        assert_eq!(check(|e| e.class = "debug".into()), "400 events[2].class");
        assert_eq!(check(|e| e.sampling = 0.0), "400 events[2].sampling");
        assert_eq!(check(|e| e.sampling = 1.5), "400 events[2].sampling");
        assert_eq!(check(|e| e.sampling = 0.01), "ok 1768656185123");
        assert_eq!(
            check(|e| e.duration_ms = Some(u64::MAX)),
            "400 events[2].duration_ms"
        );
        assert_eq!(
            check(|e| e.feature = Some("Bad Name".into())),
            "400 events[2].feature"
        );
        assert_eq!(check(|e| e.result = String::new()), "400 events[2].result");
        assert_eq!(check(|e| e.result = "a".repeat(33)), "400 events[2].result");
        assert_eq!(
            check(|e| e.user_id = "a\u{7}".into()),
            "400 events[2].user_id"
        );
        assert_eq!(check(|e| e.action = String::new()), "400 events[2].action");
        assert_eq!(
            check(|e| e.target = "x".repeat(2049)),
            "400 events[2].target"
        );
        assert_eq!(check(|e| e.target = "x".repeat(2048)), "ok 1768656185123");
        assert_eq!(check(|e| e.target = "a\0b".into()), "400 events[2].target");
        assert_eq!(
            check(|e| e.reason = Some("r".repeat(1025))),
            "400 events[2].reason"
        );
    }

    #[test]
    fn a_batch_holds_one_to_a_thousand_events() {
        let field = |n: usize| {
            read_batch(&agent(), vec![event(); n], "now", &Redactor::new())
                .err()
                .and_then(|e| e.field)
        };
        assert_eq!(field(0).as_deref(), Some("events"));
        assert_eq!(field(1001).as_deref(), Some("events"));
        assert_eq!(field(1000), None);
    }
}
