//! Behaviour history and baselines. Every stored event adds to its
//! subjects' 15-minute slot counts (`signal_slots`, in the events'
//! transaction); a task recomputes the baselines the rules need from that
//! history at start and every minute, holds them in memory for the engine
//! (which must not wait on the database; only the slots a baseline reads,
//! about 112 per subject, are loaded, with each subject's first slot from
//! `signal_subjects`), publishes them as
//! `ward_alert_baseline` for the Prometheus rules `ward alerts export`
//! writes, and prunes slots older than the history used (four weeks and an
//! hour). `ward baselines show` reads one agent's history on demand.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::RwLock;
use std::time::Duration;

use ward_store::{AgentEventRow, SlotKey};
use ward_telemetry::baseline::{self, Baseline, HISTORY_SLOTS, slot_of};
use ward_telemetry::engine::Baselines;
use ward_telemetry::rules::{By, Condition};
use ward_telemetry::signal::{Signal, Signals};

use crate::AppState;
use crate::util::now_ms;

/// How late an event may arrive and still count in the history.
const MAX_HISTORY_LAG_MS: i64 = 24 * 3600 * 1000;

/// How often the baselines are recomputed.
const REFRESH: Duration = Duration::from_secs(60);

/// The `kind` of `signal_slots` for a rule's subject.
pub fn kind(by: By) -> &'static str {
    match by {
        By::Agent => "agent",
        By::User => "user",
        By::Tenant => "tenant",
    }
}

/// The slot counts a batch adds: for each event stored now (`fresh`), each
/// of its signals, for its agent, its owner and its tenant, in its slot.
pub fn slot_counts(
    rows: &[AgentEventRow],
    signals: &[Signals],
    fresh: &[usize],
    owner: &str,
) -> Vec<(SlotKey, i64)> {
    let mut counts: BTreeMap<SlotKey, i64> = BTreeMap::new();
    for &index in fresh {
        let (Some(row), Some(signals)) = (rows.get(index), signals.get(index)) else {
            continue;
        };
        // History is what happened, dated no later than it arrived; an
        // event older than a day when it arrived shapes no baseline (a
        // device cannot backdate events to raise its own usual rate).
        let at = super::effective_ms(row);
        let received = ward_model::timestamp::parse_rfc3339(&row.received_at).unwrap_or(at);
        if at < received - MAX_HISTORY_LAG_MS {
            continue;
        }
        let slot = slot_of(at);
        for signal in signals.iter() {
            for (kind, subject) in [
                ("agent", row.agent_id.as_str()),
                ("user", owner),
                ("tenant", row.tenant_id.as_str()),
            ] {
                let key = SlotKey {
                    tenant_id: row.tenant_id.clone(),
                    kind,
                    subject: subject.to_owned(),
                    signal: signal.name(),
                    slot,
                };
                *counts.entry(key).or_default() += 1;
            }
        }
    }
    counts.into_iter().collect()
}

/// (signal, subject kind, window) of a baseline rule.
type RuleKey = (Signal, By, u32);

/// Baselines by tenant, then subject (looked up by `&str`, no allocation).
type BySubject = HashMap<String, HashMap<String, Baseline>>;

/// The baselines in force, by rule shape and (tenant, subject).
#[derive(Default)]
pub struct History {
    baselines: RwLock<HashMap<RuleKey, BySubject>>,
}

impl Baselines for History {
    fn baseline(
        &self,
        signal: Signal,
        by: By,
        tenant: &str,
        subject: &str,
        window_secs: u32,
    ) -> Option<Baseline> {
        let baselines = self
            .baselines
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        baselines
            .get(&(signal, by, window_secs))?
            .get(tenant)?
            .get(subject)
            .cloned()
    }
}

/// The baselines of every subject with history for a rule shape, at slot
/// `now_slot`, from its rows (tenant, subject, slot, count; grouped by
/// subject, slots ascending). A subject is first seen at its first slot.
pub fn compute(
    rows: &[(String, String, i64, i64)],
    first_seen: &HashMap<(String, String), i64>,
    now_slot: i64,
    window_secs: u32,
) -> BySubject {
    let mut out: BySubject = HashMap::new();
    let mut start = 0;
    while start < rows.len() {
        let (tenant, subject) = (&rows[start].0, &rows[start].1);
        let end = rows[start..]
            .iter()
            .position(|(t, s, _, _)| t != tenant || s != subject)
            .map_or(rows.len(), |offset| start + offset);
        let counts: BTreeMap<i64, u64> = rows[start..end]
            .iter()
            .map(|(_, _, slot, count)| (*slot, u64::try_from(*count).unwrap_or(0)))
            .collect();
        let first_seen = first_seen
            .get(&(tenant.clone(), subject.clone()))
            .copied()
            .or_else(|| counts.keys().next().copied())
            .unwrap_or(now_slot);
        if let Some(found) = baseline::baseline(&counts, first_seen, now_slot, window_secs) {
            out.entry(tenant.clone())
                .or_default()
                .insert(subject.clone(), found);
        }
        start = end;
    }
    out
}

/// Recomputes the baselines of every baseline rule and prunes old slots.
pub async fn refresh(state: &AppState) -> Result<(), crate::ApiError> {
    let now_slot = slot_of(now_ms());
    let since = now_slot - HISTORY_SLOTS;
    let shapes: Vec<RuleKey> = state
        .alerting
        .rules
        .rules
        .iter()
        .filter_map(|rule| match rule.condition {
            Condition::Baseline {
                signal,
                by,
                window_secs,
                ..
            } => Some((signal, by, window_secs)),
            _ => None,
        })
        .collect();
    let mut fresh = HashMap::new();
    for (signal, by, window_secs) in shapes {
        // Only the slots a baseline reads: a few per subject, not weeks.
        let ranges = baseline::slots_used(now_slot);
        let (rows, first) = state
            .store
            .read(move |conn| {
                Ok((
                    ward_store::signal_slots_in(conn, kind(by), signal.name(), &ranges)?,
                    ward_store::first_slots(conn, kind(by), signal.name())?,
                ))
            })
            .await?;
        fresh.insert(
            (signal, by, window_secs),
            compute(&rows, &first, now_slot, window_secs),
        );
    }
    *state
        .alerting
        .history
        .baselines
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    state
        .store
        .write(move |ctx| ward_store::prune_signal_slots(ctx.conn(), since))
        .await?;
    Ok(())
}

/// Recomputes the baselines every minute until the server stops.
pub async fn run(state: AppState) {
    let stopped = state.streams_stopped();
    tokio::pin!(stopped);
    let mut ticks = tokio::time::interval(REFRESH);
    ticks.tick().await;
    loop {
        tokio::select! {
            () = &mut stopped => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = refresh(&state).await {
            tracing::warn!(error = %error.message, "cannot recompute behaviour baselines; keeping the previous ones");
        }
    }
}

/// `ward_alert_baseline{rule,tenant,<subject label>}`: each baseline rule's
/// usual count per window for each subject with enough history, for
/// `tenant` (`None`: every tenant).
pub fn render(state: &AppState, tenant: Option<&str>, out: &mut String) {
    crate::metrics::family(
        out,
        "ward_alert_baseline",
        "gauge",
        "The usual count per rule window of each subject with enough history (median of its 15-minute slots, same hour of the week when there are two weeks).",
    );
    let baselines = state
        .alerting
        .history
        .baselines
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for rule in &state.alerting.rules.rules {
        let Condition::Baseline {
            signal,
            by,
            window_secs,
            ..
        } = rule.condition
        else {
            continue;
        };
        let Some(subjects) = baselines.get(&(signal, by, window_secs)) else {
            continue;
        };
        let mut sorted: Vec<(&String, &String, &Baseline)> = subjects
            .iter()
            .filter(|(t, _)| tenant.is_none_or(|wanted| wanted == t.as_str()))
            .flat_map(|(t, of)| of.iter().map(move |(subject, b)| (t, subject, b)))
            .collect();
        sorted.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (t, subject, found) in sorted {
            let subject_label = if by == By::Tenant {
                String::new()
            } else {
                format!(",{}=\"{}\"", by.label(), crate::metrics::escape(subject))
            };
            let _ = writeln!(
                out,
                "ward_alert_baseline{{rule=\"{}\",tenant=\"{}\"{subject_label}}} {}",
                crate::metrics::escape(&rule.name),
                crate::metrics::escape(t),
                found.per_window
            );
        }
    }
}

/// One agent's figures against its baselines (and its owner's), now.
pub async fn show(
    state: &AppState,
    tenant: String,
    agent_id: &str,
) -> Result<ward_api::AgentBaseline, crate::ApiError> {
    let wanted = agent_id.to_owned();
    let scope = tenant.clone();
    let agent = state
        .store
        .read(move |conn| ward_store::agent(conn, Some(&scope), &wanted))
        .await?
        .ok_or_else(|| crate::ApiError::not_found("agent", agent_id))?;
    let now = now_ms();
    let now_slot = slot_of(now);
    let since = now_slot - HISTORY_SLOTS;
    let (id, owner) = (agent.id.clone(), agent.owner.clone());
    let (of_agent, of_owner) = state
        .store
        .read(move |conn| {
            Ok((
                ward_store::subject_slots(conn, &tenant, "agent", &id, since)?,
                ward_store::subject_slots(conn, &tenant, "user", &owner, since)?,
            ))
        })
        .await?;
    let mut signals = Vec::new();
    for (subject, rows) in [("agent", of_agent), ("user", of_owner)] {
        for signal in Signal::ALL {
            let counts: BTreeMap<i64, u64> = rows
                .iter()
                .filter(|(name, _, _)| name == signal.name())
                .map(|(_, slot, count)| (*slot, u64::try_from(*count).unwrap_or(0)))
                .collect();
            let Some(&first_seen) = counts.keys().next() else {
                continue;
            };
            let found = baseline::baseline(&counts, first_seen, now_slot, 900);
            signals.push(ward_api::SignalBaseline {
                subject: subject.to_owned(),
                signal: signal.name().to_owned(),
                this_slot: counts.get(&now_slot).copied().unwrap_or(0),
                last_24h: counts.range(now_slot - 95..=now_slot).map(|(_, n)| n).sum(),
                per_15m: found.as_ref().map(|b| b.per_window),
                mad: found.as_ref().map(|b| b.mad),
                basis: found.as_ref().map(Baseline::describe),
            });
        }
    }
    Ok(ward_api::AgentBaseline {
        agent_id: agent.id,
        owner: agent.owner,
        at: ward_model::timestamp::rfc3339(now),
        signals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_telemetry::signal::signals;

    fn row(agent: &str, action: &str, ts_ms: i64) -> AgentEventRow {
        AgentEventRow {
            id: 0,
            tenant_id: "ten_a".into(),
            agent_id: agent.into(),
            device_id: "jkt".into(),
            seq: 1,
            ts: String::new(),
            ts_ms,
            correlation_id: "c".into(),
            user_id: "mallory@example.com".into(),
            class: "audit".into(),
            feature: None,
            action: action.into(),
            target: String::new(),
            result: "allow".into(),
            reason: None,
            duration_ms: None,
            sampling: 1.0,
            received_at: String::new(),
        }
    }

    #[test]
    fn a_batch_counts_each_signal_for_agent_owner_and_tenant_in_its_slot() {
        let rows = vec![
            row("agt_1", "http:get", 1_000),
            row("agt_1", "http:get", 2_000),
            row("agt_1", "http:get", 900_000),
            row("agt_1", "files:read", 3_000),
        ];
        let sigs: Vec<Signals> = rows
            .iter()
            .map(|r| signals(&r.action, &r.result, false))
            .collect();
        // The third is a resend: not counted.
        let counts = slot_counts(&rows, &sigs, &[0, 1, 3], "alice@example.com");
        let get = |kind: &str, subject: &str, signal: &str, slot: i64| {
            counts
                .iter()
                .find(|(k, _)| {
                    k.kind == kind && k.subject == subject && k.signal == signal && k.slot == slot
                })
                .map(|(_, n)| *n)
        };
        assert_eq!(
            get("user", "alice@example.com", "external_call", 0),
            Some(2)
        );
        assert_eq!(get("agent", "agt_1", "action", 0), Some(3));
        assert_eq!(get("tenant", "ten_a", "file_access", 0), Some(1));
        assert_eq!(get("user", "alice@example.com", "external_call", 1), None);
        assert!(
            counts
                .iter()
                .all(|(k, _)| k.subject != "mallory@example.com")
        );
    }

    #[test]
    fn late_and_future_dated_events_do_not_shape_the_history() {
        let received = "2026-12-08T12:00:00.000Z";
        let received_ms = ward_model::timestamp::parse_rfc3339(received).unwrap_or_default();
        let mut rows = vec![
            row("agt_1", "http:get", received_ms - 25 * 3600 * 1000),
            row("agt_1", "http:get", received_ms + 3600 * 1000),
        ];
        for row in &mut rows {
            row.received_at = received.into();
        }
        let sigs: Vec<Signals> = rows
            .iter()
            .map(|r| signals(&r.action, &r.result, false))
            .collect();
        let counts = slot_counts(&rows, &sigs, &[0, 1], "alice@example.com");
        let slots: Vec<i64> = counts.iter().map(|(k, _)| k.slot).collect();
        assert!(
            slots.iter().all(|s| *s == slot_of(received_ms)),
            "{slots:?}"
        );
        assert!(
            !counts.is_empty(),
            "the future-dated one counts when received"
        );
    }

    #[test]
    fn baselines_are_computed_per_subject() {
        let mut rows = Vec::new();
        for slot in 70..100 {
            rows.push(("ten_a".to_owned(), "alice".to_owned(), slot, 4));
        }
        rows.push(("ten_a".to_owned(), "bob".to_owned(), 99, 50));
        let found = compute(&rows, &HashMap::new(), 100, 900);
        assert_eq!(found["ten_a"].len(), 1, "bob has too little history");
        assert_eq!(found["ten_a"]["alice"].per_window, 4.0);
    }
}
