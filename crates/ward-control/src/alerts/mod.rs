//! Alerts in the control plane: the engine of `ward_telemetry` fed with
//! every event devices ship, ticked every second (heartbeat rules every
//! five), its transitions stored with their notifications in one
//! transaction, silences applied, and the notifications delivered by
//! [`deliver`] with retries and a dead-letter list.
//!
//! INVARIANT: an event is counted once: only events stored now (not
//! resends of stored ones) reach the engine, and at start the engine is
//! rebuilt from the stored events within its longest window (firing alerts
//! restored first, so a condition that still holds does not fire again).
//! INVARIANT: a transition is durable (alert row, notifications, audit
//! entry) before anyone is notified of it.

pub mod deliver;
pub mod history;
pub mod silence;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use ward_model::lifecycle::AgentState;
use ward_model::matrix::Risk;
use ward_store::{AgentEventRow, AlertRow};
use ward_telemetry::engine::{Alert, Contact, Engine, Event, Transition};
use ward_telemetry::rules::RuleSet;
use ward_telemetry::signal::Signals;

use crate::AppState;
use crate::audit::DraftExt;
use crate::broker::staleness;
use crate::util::now_ms;

/// The rules in force and where alerts go, as read at start.
pub struct Alerting {
    rules: RuleSet,
    history: history::History,
    /// Held from changing the engine until its transitions are stored, so
    /// transitions reach the store in the order the engine made them.
    order: tokio::sync::Mutex<()>,
    targets: Vec<deliver::Target>,
    engine: Mutex<Engine>,
    wake: tokio::sync::Notify,
}

impl Alerting {
    /// Alerting with `rules`, whose receivers' URLs and secrets were
    /// resolved into `targets`.
    pub fn new(rules: RuleSet, targets: Vec<deliver::Target>) -> Alerting {
        Alerting {
            engine: Mutex::new(Engine::new(rules.rules.clone())),
            history: history::History::default(),
            order: tokio::sync::Mutex::new(()),
            rules,
            targets,
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Wakes the delivery task (a notification was queued again).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn receivers_of(&self, rule: &str) -> Vec<String> {
        self.rules
            .rule(rule)
            .map(|rule| {
                self.rules
                    .receivers_of(rule)
                    .map(|receiver| receiver.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Starts the tick and delivery tasks; both end when the streams stop.
pub async fn start(state: &AppState) -> Result<(), crate::ApiError> {
    let firing = state.store.read(ward_store::firing_alerts).await?;
    let restored: Vec<Alert> = firing.iter().map(alert_of_row).collect();
    let _order = state.alerting.order.lock().await;
    let gone = lock(&state.alerting.engine).restore(restored, now_ms());
    record(state, gone).await;
    drop(_order);
    history::refresh(state).await?;
    replay(state).await?;
    tokio::spawn(tick_loop(state.clone()));
    tokio::spawn(history::run(state.clone()));
    tokio::spawn(deliver::run(state.clone()));
    Ok(())
}

fn lock(engine: &Mutex<Engine>) -> std::sync::MutexGuard<'_, Engine> {
    engine
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts the events of one agent's batch stored now (`fresh` indexes
/// into `rows` and `signals`, each event's [`classify`]) in the metrics and
/// the engine, and records any alert they fire. Per-user figures use
/// `owner`, the agent's owner as enrolled, never the `user_id` the device
/// wrote.
pub async fn observe(
    state: &AppState,
    owner: &str,
    rows: &[AgentEventRow],
    signals: &[Signals],
    fresh: &[usize],
) {
    let now = now_ms();
    let _order = state.alerting.order.lock().await;
    let mut changes = Vec::new();
    {
        let mut engine = lock(&state.alerting.engine);
        for &index in fresh {
            let (Some(row), Some(&signals)) = (rows.get(index), signals.get(index)) else {
                continue;
            };
            if signals.is_empty() {
                continue;
            }
            state
                .counters
                .signal(&row.tenant_id, &row.agent_id, owner, &row.result, signals);
            let event = event(row, owner, signals);
            changes.extend(engine.observe(&event, now, &state.alerting.history));
        }
    }
    record(state, changes).await;
}

/// What `row` signals; its feature's risk comes from the matrix.
pub fn classify(state: &AppState, row: &AgentEventRow) -> Signals {
    let high_risk = row
        .feature
        .as_deref()
        .and_then(|name| state.matrix.matrix.feature(name))
        .is_some_and(|feature| feature.risk == Risk::High);
    ward_telemetry::signal::signals(&row.action, &row.result, high_risk)
}

/// The engine's view of a stored event.
fn event<'a>(row: &'a AgentEventRow, owner: &'a str, signals: Signals) -> Event<'a> {
    Event {
        tenant: &row.tenant_id,
        agent_id: &row.agent_id,
        user_id: owner,
        signals,
        action: &row.action,
        target: &row.target,
        ts_ms: effective_ms(row),
        correlation_id: &row.correlation_id,
    }
}

/// When an event counts: its own time, but never after the server received
/// it (a device clock running ahead, or a forged date, cannot move events
/// into the future, where a restart would replay them all at once).
pub fn effective_ms(row: &AgentEventRow) -> i64 {
    let received = ward_model::timestamp::parse_rfc3339(&row.received_at).unwrap_or(row.ts_ms);
    row.ts_ms.min(received)
}

/// Events read per page when replaying.
const REPLAY_PAGE: u32 = 5000;

/// Rebuilds the windows from the stored events that happened within the
/// longest window, so a restart (or a crash between storing a batch and
/// recording the alert it fired) neither forgets nor loses a condition.
/// Metrics are not replayed: counters restart at 0 with the process.
async fn replay(state: &AppState) -> Result<(), crate::ApiError> {
    let now = now_ms();
    let longest = lock(&state.alerting.engine).longest_window();
    if longest == 0 {
        return Ok(());
    }
    // By the time received: an event counts no later than it arrived.
    let since = ward_model::timestamp::rfc3339(now - i64::from(longest) * 1000);
    let mut after = 0;
    loop {
        let page = state
            .store
            .read({
                let since = since.clone();
                move |conn| {
                    ward_store::agent_events_received_since(conn, &since, after, REPLAY_PAGE)
                }
            })
            .await?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = last.id;
        let _order = state.alerting.order.lock().await;
        let mut changes = Vec::new();
        {
            let mut engine = lock(&state.alerting.engine);
            for (row, owner) in &page {
                let signals = classify(state, row);
                if !signals.is_empty() {
                    let event = event(row, owner, signals);
                    changes.extend(engine.observe(&event, now, &state.alerting.history));
                }
            }
        }
        record(state, changes).await;
    }
}

/// Every second: moves the windows on (resolving what no longer holds);
/// every fifth second also judges heartbeats.
async fn tick_loop(state: AppState) {
    let stopped = state.streams_stopped();
    tokio::pin!(stopped);
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut count: u64 = 0;
    loop {
        tokio::select! {
            () = &mut stopped => return,
            _ = ticks.tick() => {}
        }
        let contacts = if count.is_multiple_of(5) {
            match contacts(&state).await {
                Ok(contacts) => Some(contacts),
                Err(error) => {
                    tracing::warn!(error = %error.message, "cannot read agents for heartbeat alerts");
                    None
                }
            }
        } else {
            None
        };
        count = count.wrapping_add(1);
        let _order = state.alerting.order.lock().await;
        let changes = lock(&state.alerting.engine).tick(now_ms(), contacts.as_deref());
        record(&state, changes).await;
    }
}

/// Every live (active or quarantined) agent's last contact and interval.
async fn contacts(state: &AppState) -> Result<Vec<Contact>, crate::ApiError> {
    let (agents, policies) = state
        .store
        .read(|conn| {
            Ok((
                ward_store::agent_contacts(conn, None)?,
                ward_store::agent_policies(conn)?,
            ))
        })
        .await?;
    let token_secs = state.config.default_token_secs;
    Ok(agents
        .iter()
        .filter(|agent| {
            matches!(
                agent.state.parse::<AgentState>(),
                Ok(AgentState::Active | AgentState::Quarantined)
            )
        })
        .filter_map(|agent| {
            Some(Contact {
                tenant: agent.tenant_id.clone(),
                agent_id: agent.agent_id.clone(),
                last_ms: agent
                    .last_heartbeat_ms
                    .or_else(|| ward_model::timestamp::parse_rfc3339(&agent.created_at))?,
                interval_secs: staleness::effective(policies.get(&agent.tenant_id), token_secs)
                    .heartbeat_interval_secs,
            })
        })
        .collect())
}

/// Stores each transition with its notifications (none for a silenced
/// alert) and an audit entry, then wakes the delivery; an update only
/// stores the alert's new figures. Callers hold [`Alerting::order`]. If
/// the store fails, the engine is put back (a fire forgotten, a resolution
/// undone), so the next event or tick judges the condition again.
async fn record(state: &AppState, changes: Vec<Transition>) {
    if changes.is_empty() {
        return;
    }
    let now = now_ms();
    let silences = match state
        .store
        .read(move |conn| ward_store::silences(conn, None, now))
        .await
    {
        Ok(silences) => silences,
        Err(error) => {
            tracing::error!(%error, "cannot read silences; notifying every alert");
            Vec::new()
        }
    };
    let undo = changes.clone();
    let mut work = Vec::with_capacity(changes.len());
    for change in changes {
        let (alert, kind) = match change {
            Transition::Fired(alert) => (alert, Kind::Fired),
            Transition::Resolved(alert) => (alert, Kind::Resolved),
            Transition::Updated(alert) => (alert, Kind::Updated),
        };
        let mut row = row_of_alert(&alert);
        if kind == Kind::Fired {
            row.silenced_by = silence::covering(&silences, &row, now).map(|s| s.id.clone());
        }
        let receivers = if row.silenced_by.is_some() || kind == Kind::Updated {
            Vec::new()
        } else {
            state.alerting.receivers_of(&alert.rule)
        };
        work.push((row, kind, receivers));
    }
    let written = state
        .store
        .write(move |ctx| {
            for (row, kind, receivers) in work {
                let (action, stored) = if kind == Kind::Updated {
                    ward_store::update_alert(
                        ctx.conn(),
                        &row.fingerprint,
                        row.value,
                        &row.explanation,
                        &row.evidence,
                    )?;
                    continue;
                } else if kind == Kind::Fired {
                    let mut id = ward_store::fire_alert(ctx.conn(), &row, &receivers, now)?;
                    if id.is_none() {
                        // The store still holds an episode the engine no
                        // longer does (its resolution was lost): close it,
                        // notifying, then record this one.
                        ward_store::resolve_alert(ctx.conn(), &row.fingerprint, now, &receivers)?;
                        id = ward_store::fire_alert(ctx.conn(), &row, &receivers, now)?;
                    }
                    ("alert.fire", id.map(|id| (id, row.clone())))
                } else {
                    let resolved = ward_store::resolve_alert(
                        ctx.conn(),
                        &row.fingerprint,
                        row.resolved_ms.unwrap_or(now),
                        &receivers,
                    )?;
                    ("alert.resolve", resolved.map(|alert| (alert.id, alert)))
                };
                let Some((id, stored)) = stored else {
                    continue;
                };
                ctx.audit(
                    crate::audit::entry("ward", action, &format!("alert:{id}"))
                        .tenant(Some(&stored.tenant_id))
                        .reason(stored.explanation.clone())
                        .details(json!({
                            "rule": stored.rule,
                            "severity": stored.severity,
                            stored.subject_label.clone(): stored.subject,
                            "value": stored.value,
                            "threshold": stored.threshold,
                            "silenced_by": stored.silenced_by,
                            "receivers": receivers,
                        })),
                );
            }
            Ok(())
        })
        .await;
    match written {
        Ok(()) => state.alerting.wake.notify_one(),
        Err(error) => {
            tracing::error!(%error, "cannot store alert transitions; undoing them so they are judged again");
            let mut engine = lock(&state.alerting.engine);
            for change in undo {
                match change {
                    Transition::Fired(alert) => engine.forget(&alert.fingerprint),
                    Transition::Resolved(alert) => engine.reinstate(alert),
                    Transition::Updated(_) => {}
                }
            }
        }
    }
}

/// What happened to an alert.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fired,
    Resolved,
    Updated,
}

/// The stored form of an alert.
fn row_of_alert(alert: &Alert) -> AlertRow {
    AlertRow {
        id: 0,
        tenant_id: alert.tenant.clone(),
        fingerprint: alert.fingerprint.clone(),
        rule: alert.rule.clone(),
        severity: alert.severity.as_str().to_owned(),
        subject_label: alert.subject_label.to_owned(),
        subject: alert.subject.clone(),
        summary: alert.summary.clone(),
        explanation: alert.explanation.clone(),
        value: alert.value,
        threshold: alert.threshold,
        evidence: serde_json::to_string(&alert.evidence).unwrap_or_else(|_| "[]".into()),
        started_ms: alert.started_ms,
        resolved_ms: alert.resolved_ms,
        silenced_by: None,
    }
}

/// The engine's form of a stored alert (to restore it at start).
fn alert_of_row(row: &AlertRow) -> Alert {
    let subject_label = match row.subject_label.as_str() {
        "user_id" => "user_id",
        "tenant" => "tenant",
        _ => "agent_id",
    };
    Alert {
        rule: row.rule.clone(),
        severity: ward_telemetry::rules::Severity::parse(&row.severity)
            .unwrap_or(ward_telemetry::rules::Severity::High),
        summary: row.summary.clone(),
        tenant: row.tenant_id.clone(),
        subject_label,
        subject: row.subject.clone(),
        fingerprint: row.fingerprint.clone(),
        started_ms: row.started_ms,
        resolved_ms: row.resolved_ms,
        value: row.value,
        threshold: row.threshold,
        explanation: row.explanation.clone(),
        evidence: serde_json::from_str(&row.evidence).unwrap_or_default(),
    }
}

/// The labels of an alert, as receivers and silences see them.
pub fn labels(alert: &AlertRow) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        ("alertname".to_owned(), alert.rule.clone()),
        ("severity".to_owned(), alert.severity.clone()),
        ("tenant".to_owned(), alert.tenant_id.clone()),
    ]);
    labels.insert(alert.subject_label.clone(), alert.subject.clone());
    labels
}
