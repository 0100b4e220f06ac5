//! The alert engine: rules evaluated in process on the event stream and
//! on a tick. It fires an alert the moment its condition holds, keeps one
//! alert per rule and subject while it holds (deduplication: repeated
//! conditions update the figures, they do not raise another), resolves it
//! when the condition no longer holds, and says in every alert which
//! feature deviated, by how much, against what.
//!
//! Pure: the caller passes every event, the time, the agents' last contact
//! and the baselines. Counting is by the event's own timestamp (a device's
//! spool ships late; a late event still counts in the window it happened
//! in, one from the future counts now), to the second ([`crate::window`]).
//!
//! - count rules fire when an event makes the count in the window exceed
//!   `above`, and resolve on the first tick where it does not;
//! - baseline rules fire when the count exceeds `factor` times the
//!   subject's baseline (at least the floor), taken when the event
//!   arrives; the threshold is kept with the alert until it resolves;
//! - heartbeat rules fire on a tick where an agent's last contact is more
//!   than `intervals` heartbeat intervals old (the control plane's rule
//!   for a stale agent), and resolve once it is not (or the agent is gone
//!   from the list: revoked, uninstalled).

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

use crate::baseline::{Baseline, round};
use crate::rules::{By, Condition, Rule, Severity, format_duration};
use crate::signal::{Signal, Signals};
use crate::window::Window;

/// How many correlation ids an alert keeps as evidence.
pub const EVIDENCE: usize = 10;

/// One event as the engine needs it.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// The tenant (from the credential that shipped it).
    pub tenant: &'a str,
    /// The agent.
    pub agent_id: &'a str,
    /// The agent's owner as the server knows it (not as the device says:
    /// per-user rules must not be split across made-up users).
    pub user_id: &'a str,
    /// What it signals ([`crate::signal::signals`], computed once by the
    /// caller, which counts the same signals in its metrics).
    pub signals: Signals,
    /// `resource:verb`, for rules that look at paths.
    pub action: &'a str,
    /// What it was done to (a file access's canonical path).
    pub target: &'a str,
    /// When it happened, ms since the epoch.
    pub ts_ms: i64,
    /// Its correlation id, kept as evidence.
    pub correlation_id: &'a str,
}

/// An agent's last contact, for heartbeat rules.
#[derive(Clone, Debug)]
pub struct Contact {
    /// The tenant.
    pub tenant: String,
    /// The agent.
    pub agent_id: String,
    /// Its last heartbeat (or enrolment, if it never sent one), ms.
    pub last_ms: i64,
    /// Its tenant's heartbeat interval, seconds.
    pub interval_secs: u64,
}

/// Where baselines come from.
pub trait Baselines {
    /// The baseline of `signal` for the subject `subject` (by `by`) of
    /// `tenant`, for a window of `window_secs`, if there is enough history.
    fn baseline(
        &self,
        signal: Signal,
        by: By,
        tenant: &str,
        subject: &str,
        window_secs: u32,
    ) -> Option<Baseline>;
}

/// No history at all: every baseline rule uses its floor.
pub struct NoBaselines;

impl Baselines for NoBaselines {
    fn baseline(&self, _: Signal, _: By, _: &str, _: &str, _: u32) -> Option<Baseline> {
        None
    }
}

/// An alert, firing or resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The rule's name.
    pub rule: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The rule's summary.
    pub summary: String,
    /// The tenant.
    pub tenant: String,
    /// The label naming the subject: `agent_id`, `user_id` or `tenant`.
    pub subject_label: &'static str,
    /// The agent, user or tenant.
    pub subject: String,
    /// Stable id of (rule, tenant, subject): one alert at a time each.
    pub fingerprint: String,
    /// When it fired, ms.
    pub started_ms: i64,
    /// When it resolved, ms.
    pub resolved_ms: Option<i64>,
    /// The figure that crossed (a count, or seconds since a heartbeat),
    /// then the highest it reached while firing.
    pub value: f64,
    /// The figure it crossed.
    pub threshold: f64,
    /// Which feature deviated, by how much, against what, in one line, as
    /// it fired (a heartbeat alert's as of its latest tick).
    pub explanation: String,
    /// Correlation ids of the latest events counted.
    pub evidence: Vec<String>,
}

/// What changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    /// A new alert.
    Fired(Alert),
    /// A firing alert's figures grew (its value, evidence, or a heartbeat
    /// alert's age); reported at most once per tick, never notified.
    Updated(Alert),
    /// An alert that no longer holds (with `resolved_ms`).
    Resolved(Alert),
}

/// Whether `event` is on one of `rule`'s paths (every event is when the
/// rule names none). A target no scope can name (the runtime refused it)
/// matches none.
fn on_paths(rule: &Rule, event: &Event<'_>) -> bool {
    if rule.paths.is_empty() {
        return true;
    }
    let Some(("files", verb)) = event.action.split_once(':') else {
        return false;
    };
    // The runtime records the literal path; the scope grammar reads it
    // once written in the pattern language.
    let Ok(literal) = ward_model::scope::literal_path(event.target) else {
        return false;
    };
    rule.paths
        .iter()
        .any(|pattern| pattern.matches("files", verb, &literal))
}

/// The fingerprint of (rule, tenant, subject).
pub fn fingerprint(rule: &str, tenant: &str, subject: &str) -> String {
    let mut hash = Sha256::new();
    for part in [rule, tenant, subject] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One subject's window under one rule.
struct Tracked {
    window: Window,
    evidence: VecDeque<String>,
    /// The alert's fingerprint, computed once.
    print: String,
}

/// The rules and what they have seen.
pub struct Engine {
    rules: Vec<Rule>,
    /// Per rule (by index), the windows by `tenant NUL subject`.
    windows: Vec<HashMap<String, Tracked>>,
    /// Reused to build window keys without allocating per event.
    scratch: String,
    active: HashMap<String, Alert>,
    /// Firing alerts whose figures changed since the last tick.
    changed: std::collections::HashSet<String>,
}

impl Engine {
    /// An engine for `rules`, having seen nothing.
    pub fn new(rules: Vec<Rule>) -> Engine {
        Engine {
            windows: rules.iter().map(|_| HashMap::new()).collect(),
            rules,
            scratch: String::new(),
            active: HashMap::new(),
            changed: std::collections::HashSet::new(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The longest window of the counting rules, seconds (0: none), so a
    /// restarted server knows how far back to replay stored events.
    pub fn longest_window(&self) -> u32 {
        self.rules
            .iter()
            .filter_map(|rule| match rule.condition {
                Condition::Count { window_secs, .. } | Condition::Baseline { window_secs, .. } => {
                    Some(window_secs)
                }
                Condition::HeartbeatMissed { .. } => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Takes back alerts that were firing before a restart, so they are
    /// resolved (not raised again) when their condition is gone. Alerts of
    /// rules no longer configured are returned resolved at `now_ms`.
    pub fn restore(&mut self, alerts: Vec<Alert>, now_ms: i64) -> Vec<Transition> {
        let mut gone = Vec::new();
        for alert in alerts {
            if self.rules.iter().any(|rule| rule.name == alert.rule) {
                self.active.insert(alert.fingerprint.clone(), alert);
            } else {
                gone.push(Transition::Resolved(Alert {
                    resolved_ms: Some(now_ms),
                    ..alert
                }));
            }
        }
        gone
    }

    /// Undoes a fire whose record failed: the alert is forgotten, so the
    /// next event or tick that meets its condition fires it again.
    pub fn forget(&mut self, fingerprint: &str) {
        self.active.remove(fingerprint);
        self.changed.remove(fingerprint);
    }

    /// Undoes a resolution whose record failed: the alert fires again in
    /// memory, so the next tick resolves it again.
    pub fn reinstate(&mut self, mut alert: Alert) {
        alert.resolved_ms = None;
        self.active.insert(alert.fingerprint.clone(), alert);
    }

    /// The alerts firing now.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// Subjects tracked in windows, and an estimate of the bytes they hold.
    pub fn footprint(&self) -> (usize, usize) {
        let tracked = || self.windows.iter().flat_map(HashMap::iter);
        let bytes = tracked()
            .map(|(key, tracked)| {
                std::mem::size_of::<(String, Tracked)>()
                    + key.len()
                    + tracked.print.len()
                    + tracked.window.heap_bytes()
                    + tracked.evidence.iter().map(String::capacity).sum::<usize>()
            })
            .sum();
        (tracked().count(), bytes)
    }

    /// Counts one event at `now_ms`; returns the alerts it fired.
    pub fn observe(
        &mut self,
        event: &Event<'_>,
        now_ms: i64,
        baselines: &dyn Baselines,
    ) -> Vec<Transition> {
        let signals = event.signals;
        if signals.is_empty() {
            return Vec::new();
        }
        let now = now_ms.div_euclid(1000);
        let at = event.ts_ms.div_euclid(1000);
        let mut fired = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let (signal, by, window_secs) = match rule.condition {
                Condition::Count {
                    signal,
                    by,
                    window_secs,
                    ..
                }
                | Condition::Baseline {
                    signal,
                    by,
                    window_secs,
                    ..
                } => (signal, by, window_secs),
                Condition::HeartbeatMissed { .. } => continue,
            };
            if !signals.contains(signal) || !on_paths(rule, event) {
                continue;
            }
            let subject = match by {
                By::Agent => event.agent_id,
                By::User => event.user_id,
                By::Tenant => event.tenant,
            };
            self.scratch.clear();
            self.scratch.push_str(event.tenant);
            self.scratch.push('\0');
            self.scratch.push_str(subject);
            let Some(windows) = self.windows.get_mut(index) else {
                continue;
            };
            if !windows.contains_key(self.scratch.as_str()) {
                windows.insert(
                    self.scratch.clone(),
                    Tracked {
                        window: Window::new(window_secs),
                        evidence: VecDeque::with_capacity(EVIDENCE),
                        print: fingerprint(&rule.name, event.tenant, subject),
                    },
                );
            }
            let Some(tracked) = windows.get_mut(self.scratch.as_str()) else {
                continue;
            };
            if !tracked.window.add(at, 1, now) {
                continue;
            }
            // The oldest id's buffer is reused for the newest.
            let mut id = if tracked.evidence.len() == EVIDENCE {
                tracked.evidence.pop_front().unwrap_or_default()
            } else {
                String::new()
            };
            id.clear();
            id.push_str(event.correlation_id);
            tracked.evidence.push_back(id);
            let count = tracked.window.count(now) as f64;
            if let Some(alert) = self.active.get_mut(&tracked.print) {
                if count > alert.value {
                    alert.value = count;
                    alert.evidence = tracked.evidence.iter().cloned().collect();
                    self.changed.insert(tracked.print.clone());
                }
                continue;
            }
            let (threshold, against) = match rule.condition {
                Condition::Count { above, .. } => (above as f64, format!("more than {above}")),
                Condition::Baseline { factor, floor, .. } => {
                    let baseline =
                        baselines.baseline(signal, by, event.tenant, subject, window_secs);
                    let usual = baseline.as_ref().map_or(floor, |b| b.per_window.max(floor));
                    let basis = match &baseline {
                        Some(b) if b.per_window >= floor => format!(
                            "{}x the baseline of {} per {} ({})",
                            round(count / usual),
                            round(usual),
                            format_duration(window_secs),
                            b.describe()
                        ),
                        Some(b) => format!(
                            "{}x the floor of {floor} per {} (baseline {}: {})",
                            round(count / usual),
                            format_duration(window_secs),
                            round(b.per_window),
                            b.describe()
                        ),
                        None => format!(
                            "{}x the floor of {floor} per {} (no baseline yet: less than 6 hours of history)",
                            round(count / usual),
                            format_duration(window_secs)
                        ),
                    };
                    (factor * usual, format!("{basis}; fires above {factor}x"))
                }
                Condition::HeartbeatMissed { .. } => continue,
            };
            if count <= threshold {
                continue;
            }
            let mut explanation = format!(
                "{} {}{} from {} `{subject}` in the last {}: {against}",
                count,
                signal.noun(),
                if rule.paths.is_empty() {
                    ""
                } else {
                    " to the rule's paths"
                },
                by.as_str(),
                format_duration(window_secs)
            );
            if !rule.paths.is_empty() {
                explanation.push_str(&format!("; latest: {} {}", event.action, event.target));
            }
            let alert = Alert {
                rule: rule.name.clone(),
                severity: rule.severity,
                summary: rule.summary.clone(),
                tenant: event.tenant.to_owned(),
                subject_label: by.label(),
                subject: subject.to_owned(),
                fingerprint: tracked.print.clone(),
                started_ms: now_ms,
                resolved_ms: None,
                value: count,
                threshold,
                explanation,
                evidence: tracked.evidence.iter().cloned().collect(),
            };
            self.active.insert(tracked.print.clone(), alert.clone());
            fired.push(Transition::Fired(alert));
        }
        fired
    }

    /// Moves windows to `now_ms`, resolving count and baseline alerts
    /// whose condition no longer holds; with `contacts` (every live agent),
    /// evaluates the heartbeat rules too.
    pub fn tick(&mut self, now_ms: i64, contacts: Option<&[Contact]>) -> Vec<Transition> {
        let now = now_ms.div_euclid(1000);
        let mut changes = Vec::new();
        // Count and baseline alerts hold while their window is above the
        // threshold; one without a window (restored, or emptied) does not.
        let mut holding = std::collections::HashSet::new();
        for windows in &mut self.windows {
            windows.retain(|_, tracked| {
                let count = tracked.window.count(now) as f64;
                if self
                    .active
                    .get(&tracked.print)
                    .is_some_and(|alert| count > alert.threshold)
                {
                    holding.insert(tracked.print.clone());
                }
                !tracked.window.is_empty()
            });
        }
        let heartbeat_rules: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|rule| matches!(rule.condition, Condition::HeartbeatMissed { .. }))
            .collect();
        let mut resolved = Vec::new();
        for (print, alert) in &self.active {
            let counting = self.rules.iter().any(|rule| {
                rule.name == alert.rule
                    && !matches!(rule.condition, Condition::HeartbeatMissed { .. })
            });
            if counting && !holding.contains(print) {
                resolved.push(print.clone());
            }
        }
        if let Some(contacts) = contacts {
            let mut holding = std::collections::HashSet::new();
            for rule in &heartbeat_rules {
                let Condition::HeartbeatMissed { intervals } = rule.condition else {
                    continue;
                };
                for contact in contacts {
                    let interval_ms = contact.interval_secs.max(1).saturating_mul(1000);
                    let limit_ms = interval_ms.saturating_mul(u64::from(intervals));
                    let age_ms = now_ms.saturating_sub(contact.last_ms).max(0);
                    if (age_ms as u64) <= limit_ms {
                        continue;
                    }
                    let print = fingerprint(&rule.name, &contact.tenant, &contact.agent_id);
                    holding.insert(print.clone());
                    let age = age_ms as f64 / 1000.0;
                    let explanation = format!(
                        "no heartbeat from agent `{}` for {}s: {} missed intervals of {}s (fires at {intervals}); last contact {}",
                        contact.agent_id,
                        round(age),
                        age_ms as u64 / interval_ms,
                        contact.interval_secs,
                        ward_model::timestamp::rfc3339(contact.last_ms)
                    );
                    if let Some(alert) = self.active.get_mut(&print) {
                        // Stored again only when another interval is missed.
                        let missed = |secs: f64| (secs * 1000.0) as u64 / interval_ms;
                        if missed(alert.value) != missed(age) {
                            self.changed.insert(print);
                        }
                        alert.value = age;
                        alert.explanation = explanation;
                        continue;
                    }
                    let alert = Alert {
                        rule: rule.name.clone(),
                        severity: rule.severity,
                        summary: rule.summary.clone(),
                        tenant: contact.tenant.clone(),
                        subject_label: By::Agent.label(),
                        subject: contact.agent_id.clone(),
                        fingerprint: print.clone(),
                        started_ms: now_ms,
                        resolved_ms: None,
                        value: age,
                        threshold: limit_ms as f64 / 1000.0,
                        explanation,
                        evidence: Vec::new(),
                    };
                    self.active.insert(print, alert.clone());
                    changes.push(Transition::Fired(alert));
                }
            }
            for (print, alert) in &self.active {
                if heartbeat_rules.iter().any(|rule| rule.name == alert.rule)
                    && !holding.contains(print)
                {
                    resolved.push(print.clone());
                }
            }
        }
        for print in resolved {
            self.changed.remove(&print);
            if let Some(mut alert) = self.active.remove(&print) {
                alert.resolved_ms = Some(now_ms);
                changes.push(Transition::Resolved(alert));
            }
        }
        for print in self.changed.drain() {
            if let Some(alert) = self.active.get(&print) {
                changes.push(Transition::Updated(alert.clone()));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::Basis;
    use crate::rules::RuleSet;

    const T0: i64 = 1_800_000_000_000;

    fn event<'a>(agent: &'a str, action: &'a str, result: &'a str, ts_ms: i64) -> Event<'a> {
        Event {
            tenant: "ten_a",
            agent_id: agent,
            user_id: "alice@example.com",
            signals: crate::signal::signals(action, result, false),
            action,
            target: "/home/alice/projects/notes.md",
            ts_ms,
            correlation_id: "corr-1",
        }
    }

    fn engine() -> Engine {
        Engine::new(RuleSet::defaults().rules)
    }

    fn fired(changes: &[Transition]) -> Vec<&Alert> {
        changes
            .iter()
            .filter_map(|change| match change {
                Transition::Fired(alert) => Some(alert),
                Transition::Resolved(_) | Transition::Updated(_) => None,
            })
            .collect()
    }

    #[test]
    fn privileged_failures_fire_on_the_sixth_in_five_minutes_and_not_before() {
        let mut engine = engine();
        for i in 0..5 {
            let at = T0 + i * 50_000;
            let changes =
                engine.observe(&event("agt_1", "files:write", "deny", at), at, &NoBaselines);
            assert!(changes.is_empty(), "fired on failure {}", i + 1);
        }
        // A denied read and another agent's failure do not count.
        let at = T0 + 250_000;
        assert!(
            engine
                .observe(&event("agt_1", "files:read", "deny", at), at, &NoBaselines)
                .is_empty()
        );
        assert!(
            engine
                .observe(&event("agt_2", "exec:run", "deny", at), at, &NoBaselines)
                .is_empty()
        );
        let at = T0 + 299_000;
        let changes = engine.observe(&event("agt_1", "exec:run", "error", at), at, &NoBaselines);
        let alerts = fired(&changes);
        assert_eq!(alerts.len(), 1);
        let alert = alerts[0];
        assert_eq!(alert.rule, "privileged-failures");
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(
            (alert.subject_label, alert.subject.as_str()),
            ("agent_id", "agt_1")
        );
        assert_eq!((alert.value, alert.threshold), (6.0, 5.0));
        assert_eq!(
            alert.explanation,
            "6 failed privileged operations from agent `agt_1` in the last 5m: more than 5"
        );
        // A seventh updates the alert; it does not raise another.
        let at = T0 + 299_500;
        assert!(
            engine
                .observe(
                    &event("agt_1", "files:delete", "deny", at),
                    at,
                    &NoBaselines
                )
                .is_empty()
        );
        assert_eq!(engine.active().next().map(|a| a.value), Some(7.0));
        // The next tick reports the new figure once, to be stored.
        let changes = engine.tick(at, None);
        assert!(
            matches!(changes.as_slice(), [Transition::Updated(a)] if a.value == 7.0 && a.evidence.len() == 7)
        );
        assert_eq!(engine.tick(at, None), []);
    }

    #[test]
    fn failures_spread_over_more_than_five_minutes_never_fire() {
        let mut engine = engine();
        for i in 0..20 {
            let at = T0 + i * 61_000;
            assert!(
                engine
                    .observe(&event("agt_1", "files:write", "deny", at), at, &NoBaselines)
                    .is_empty()
            );
            assert!(engine.tick(at, None).is_empty());
        }
    }

    #[test]
    fn a_count_alert_resolves_on_the_first_tick_its_count_is_back_at_the_limit() {
        let mut engine = engine();
        for i in 0..6 {
            let at = T0 + i * 1000;
            engine.observe(&event("agt_1", "files:write", "deny", at), at, &NoBaselines);
        }
        assert_eq!(engine.active().count(), 1);
        // The first failure (second T0) leaves the window at T0 + 300 s.
        assert!(engine.tick(T0 + 299_999, None).is_empty());
        let changes = engine.tick(T0 + 300_000, None);
        let [Transition::Resolved(alert)] = changes.as_slice() else {
            panic!("{changes:?}");
        };
        assert_eq!(alert.resolved_ms, Some(T0 + 300_000));
        assert_eq!(engine.active().count(), 0);
        // Windows that emptied are dropped.
        assert_eq!(engine.tick(T0 + 600_000, None), []);
        assert_eq!(engine.footprint().0, 0);
    }

    #[test]
    fn late_events_count_in_the_window_they_happened_in() {
        let mut engine = engine();
        let now = T0 + 1_000_000;
        // Five failures from ten minutes ago arrive now: outside the window.
        for i in 0..6 {
            assert!(
                engine
                    .observe(
                        &event("agt_1", "files:write", "deny", now - 600_000 + i),
                        now,
                        &NoBaselines
                    )
                    .is_empty()
            );
        }
        // Six from four minutes ago, shipped late, fire.
        let mut changes = Vec::new();
        for i in 0..6 {
            changes.extend(engine.observe(
                &event("agt_1", "files:write", "deny", now - 240_000 + i * 1000),
                now,
                &NoBaselines,
            ));
        }
        assert_eq!(fired(&changes).len(), 1);
    }

    struct Fixed(f64);

    impl Baselines for Fixed {
        fn baseline(
            &self,
            signal: Signal,
            by: By,
            tenant: &str,
            subject: &str,
            window_secs: u32,
        ) -> Option<Baseline> {
            assert_eq!(
                (signal, by, tenant, subject, window_secs),
                (
                    Signal::ExternalCall,
                    By::User,
                    "ten_a",
                    "alice@example.com",
                    900
                )
            );
            Some(Baseline {
                per_window: self.0,
                median: self.0,
                mad: 1.0,
                samples: 16,
                basis: Basis::HourOfWeek { weeks: 4 },
            })
        }
    }

    #[test]
    fn external_calls_fire_above_three_times_the_users_baseline() {
        let mut engine = engine();
        let mut changes = Vec::new();
        // Baseline 10 per 15 minutes: the 30th call is not above 3x, the 31st is.
        for i in 0..30 {
            let at = T0 + i * 10_000;
            let agent = if i % 2 == 0 { "agt_1" } else { "agt_2" };
            changes.extend(engine.observe(
                &event(agent, "http:get", "allow", at),
                at,
                &Fixed(10.0),
            ));
        }
        assert!(changes.is_empty());
        let at = T0 + 300_000;
        let changes = engine.observe(&event("agt_3", "http:post", "allow", at), at, &Fixed(10.0));
        let alerts = fired(&changes);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].rule, "external-call-surge");
        assert_eq!(alerts[0].subject, "alice@example.com");
        assert_eq!(alerts[0].threshold, 30.0);
        assert_eq!(
            alerts[0].explanation,
            "31 external API calls from user `alice@example.com` in the last 15m: 3.1x the baseline of 10 per 15m (median of 16 same-hour-of-week 15m slots over 4 weeks: 10 per slot, MAD 1); fires above 3x"
        );
    }

    #[test]
    fn without_history_the_floor_is_the_baseline() {
        let mut engine = engine();
        let mut changes = Vec::new();
        for i in 0..16 {
            let at = T0 + i * 1000;
            changes.extend(engine.observe(&event("agt_1", "http:get", "ok", at), at, &NoBaselines));
        }
        let alerts = fired(&changes);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].value, 16.0);
        assert!(
            alerts[0].explanation.contains("floor of 5"),
            "{}",
            alerts[0].explanation
        );
    }

    #[test]
    fn heartbeats_missed_for_three_intervals_fire_and_resolve() {
        let mut engine = engine();
        let contact = |last_ms| Contact {
            tenant: "ten_a".into(),
            agent_id: "agt_1".into(),
            last_ms,
            interval_secs: 30,
        };
        assert!(engine.tick(T0 + 90_000, Some(&[contact(T0)])).is_empty());
        let changes = engine.tick(T0 + 90_001, Some(&[contact(T0)]));
        let alerts = fired(&changes);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].rule, "heartbeat-missed");
        assert_eq!(alerts[0].severity, Severity::Low);
        assert!(
            alerts[0]
                .explanation
                .starts_with("no heartbeat from agent `agt_1` for 90s: 3 missed intervals of 30s"),
            "{}",
            alerts[0].explanation
        );
        let changes = engine.tick(T0 + 120_000, Some(&[contact(T0)]));
        assert!(
            matches!(changes.as_slice(), [Transition::Updated(a)] if a.value == 120.0),
            "deduplicated, its age updated: {changes:?}"
        );
        let changes = engine.tick(T0 + 121_000, Some(&[contact(T0 + 120_500)]));
        assert!(
            matches!(changes.as_slice(), [Transition::Resolved(a)] if a.rule == "heartbeat-missed")
        );
        // An agent gone from the list (revoked) resolves too.
        engine.tick(T0 + 400_000, Some(&[contact(T0 + 120_500)]));
        let changes = engine.tick(T0 + 401_000, Some(&[]));
        assert!(matches!(changes.as_slice(), [Transition::Resolved(_)]));
        // Without contacts the heartbeat rule is not evaluated.
        engine.tick(T0 + 800_000, Some(&[contact(T0)]));
        assert!(engine.tick(T0 + 801_000, None).is_empty());
    }

    #[test]
    fn restored_alerts_resolve_instead_of_firing_again() {
        let mut first = engine();
        for i in 0..6 {
            let at = T0 + i * 1000;
            first.observe(&event("agt_1", "files:write", "deny", at), at, &NoBaselines);
        }
        let held: Vec<Alert> = first.active().cloned().collect();
        let mut stale = held[0].clone();
        stale.rule = "removed-rule".into();
        let mut second = engine();
        let gone = second.restore(vec![held[0].clone(), stale], T0 + 10_000);
        assert!(matches!(gone.as_slice(), [Transition::Resolved(a)] if a.rule == "removed-rule"));
        let changes = second.tick(T0 + 10_000, None);
        assert!(
            matches!(changes.as_slice(), [Transition::Resolved(a)] if a.rule == "privileged-failures")
        );
    }

    #[test]
    fn a_path_rule_fires_on_the_first_access_to_its_paths_only() {
        let set = RuleSet::from_yaml("version: 1\nrules:\n  - name: ssh\n    severity: high\n    signal: file_access\n    by: agent\n    window: 15m\n    above: 0\n    paths: [\"/home/*/.ssh/**\"]\n").unwrap();
        let mut engine = Engine::new(set.rules);
        let mut e = event("agt_1", "files:read", "allow", T0);
        assert!(
            engine.observe(&e, T0, &NoBaselines).is_empty(),
            "another path"
        );
        e.target = "/home/alice/.ssh/id_ed25519";
        e.action = "http:get";
        e.signals = crate::signal::signals("http:get", "allow", false);
        assert!(
            engine.observe(&e, T0, &NoBaselines).is_empty(),
            "not a file access"
        );
        e.action = "files:read";
        e.signals = crate::signal::signals("files:read", "deny", false);
        let changes = engine.observe(&e, T0, &NoBaselines);
        let alerts = fired(&changes);
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            alerts[0].explanation,
            "1 file accesses to the rule's paths from agent `agt_1` in the last 15m: more than 0; latest: files:read /home/alice/.ssh/id_ed25519"
        );
        // A literal path with a space matches a pattern that encodes it.
        let set = RuleSet::from_yaml("version: 1\nrules:\n  - name: chrome\n    severity: high\n    signal: file_access\n    by: agent\n    window: 15m\n    above: 0\n    paths: [\"/home/*/Application%20Support/**\"]\n").unwrap();
        let mut engine = Engine::new(set.rules);
        e.target = "/home/alice/Application Support/Chrome/Cookies";
        assert_eq!(fired(&engine.observe(&e, T0, &NoBaselines)).len(), 1);
    }

    #[test]
    fn the_longest_window_is_the_surge_rules() {
        assert_eq!(engine().longest_window(), 900);
        assert_eq!(Engine::new(Vec::new()).longest_window(), 0);
    }

    #[test]
    fn a_failed_record_is_undone_so_the_condition_is_judged_again() {
        let mut engine = engine();
        let mut changes = Vec::new();
        for i in 0..6 {
            let at = T0 + i * 1000;
            changes.extend(engine.observe(
                &event("agt_1", "files:write", "deny", at),
                at,
                &NoBaselines,
            ));
        }
        let [Transition::Fired(alert)] = changes.as_slice() else {
            panic!("{changes:?}");
        };
        engine.forget(&alert.fingerprint);
        let at = T0 + 6000;
        let again = engine.observe(&event("agt_1", "files:write", "deny", at), at, &NoBaselines);
        assert!(
            matches!(again.as_slice(), [Transition::Fired(_)]),
            "fires again"
        );
        let resolved = engine.tick(T0 + 400_000, None);
        let [Transition::Resolved(alert)] = resolved.as_slice() else {
            panic!("{resolved:?}");
        };
        engine.reinstate(alert.clone());
        assert!(matches!(
            engine.tick(T0 + 401_000, None).as_slice(),
            [Transition::Resolved(_)]
        ));
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint("a", "bc", "d"), fingerprint("ab", "c", "d"));
        assert_eq!(fingerprint("a", "b", "c").len(), 16);
    }
}
