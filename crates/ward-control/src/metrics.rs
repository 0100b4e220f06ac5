//! Prometheus metrics of the control plane in the text exposition format.
//! Every series names its tenant; a tenant's scrape shows only its own.
//!
//! Read from the database at each scrape:
//! - `ward_agents{tenant,state}`, `ward_agents_stale{tenant}`;
//! - per active or quarantined agent: `agent_heartbeat_age_seconds`
//!   (since its latest heartbeat, else its enrolment: the rule that makes
//!   it stale), `agent_heartbeat_interval_seconds` (its tenant's),
//!   `agent_info{version,os}` (of its latest heartbeat, else as enrolled),
//!   and, from its latest heartbeat only, `agent_uptime_seconds`,
//!   `agent_spool_depth`, `agent_spool_bytes`, `agent_spool_dropped`; each
//!   labelled `{tenant,agent_id}`.
//!
//! Counted in memory (restarting at 0 with the process, as Prometheus
//! counters may):
//! - `ward_heartbeats_total{tenant}`, `ward_directive_acks_total{tenant,kind}`;
//! - per stored device event, through [`Counters::signal`]:
//!   `agent_actions_total{tenant,agent_id,user_id,result}` (`result` one of
//!   `allow`, `deny`, `ok`, `error`) and the other signals'
//!   `agent_privileged_failures_total`, `agent_external_calls_total`,
//!   `agent_file_accesses_total`, `agent_exports_total`,
//!   `agent_denials_total`, each `{tenant,agent_id,user_id}`
//!   (`ward_telemetry::signal` says what each counts);
//! - `ward_metrics_overflow_total{tenant}`: events counted under
//!   `_overflow` because a bound below was reached.
//!
//! INVARIANT: the signal counters' cardinality is bounded. At most
//! [`MAX_AGENTS`] (tenant, agent) pairs are tracked, instance-wide; events of
//! any further agent are counted under `agent_id="_overflow",
//! user_id="_overflow"` of its tenant, and in `ward_metrics_overflow_total`.
//! `user_id` is the agent's owner as enrolled (one per agent), never the
//! value a device writes in its events, so it adds no series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use ward_telemetry::signal::{Signal, Signals, outcome};

/// At most this many (tenant, agent) pairs have their own signal series;
/// at ~10 series each, a scrape stays around 100,000 lines.
pub const MAX_AGENTS: usize = 10_000;

/// The `agent_id` and `user_id` of events counted past a bound.
pub const OVERFLOW: &str = "_overflow";

/// The values of `agent_actions_total`'s `result` label, in order.
const OUTCOMES: [&str; 4] = ["allow", "deny", "ok", "error"];

/// Counters of what devices sent, by tenant (and directive kind, agent,
/// user). One lock: an update or a scrape takes it once.
#[derive(Default)]
pub struct Counters {
    tallies: Mutex<Tallies>,
}

#[derive(Default)]
struct Tallies {
    heartbeats: BTreeMap<String, u64>,
    acks: BTreeMap<(String, String), u64>,
    /// By (tenant, agent id): the owner and the counts; at most
    /// [`MAX_AGENTS`] entries.
    agents: BTreeMap<(String, String), (String, Tally)>,
    /// Events of agents past [`MAX_AGENTS`], by tenant.
    overflowed: BTreeMap<String, Tally>,
    /// Events counted under `_overflow`, by tenant.
    overflow: BTreeMap<String, u64>,
}

/// One series set's counts.
#[derive(Default)]
struct Tally {
    /// `agent_actions_total` by [`OUTCOMES`] index.
    actions: [u64; OUTCOMES.len()],
    /// Every other signal, by [`Signal::ALL`] index (the action's is unused).
    signals: [u64; Signal::ALL.len()],
}

impl Tally {
    fn add(&mut self, result: Option<&str>, signals: Signals) {
        for signal in signals.iter() {
            if signal == Signal::Action {
                if let Some(i) = result.and_then(|r| OUTCOMES.iter().position(|o| *o == r)) {
                    self.actions[i] += 1;
                }
            } else if let Some(i) = Signal::ALL.iter().position(|s| *s == signal) {
                self.signals[i] += 1;
            }
        }
    }
}

impl Counters {
    /// Counts a heartbeat of an agent of `tenant`.
    pub fn heartbeat(&self, tenant: &str) {
        *self.lock().heartbeats.entry(tenant.to_owned()).or_default() += 1;
    }

    /// Counts a newly stored acknowledgement of a directive of `kind`.
    pub fn ack(&self, tenant: &str, kind: &str) {
        *self
            .lock()
            .acks
            .entry((tenant.to_owned(), kind.to_owned()))
            .or_default() += 1;
    }

    /// Counts the `signals` of a newly stored event of `agent_id` of
    /// `tenant`, owned by `user_id`, with `result` (an outcome such as
    /// `deny` labels `agent_actions_total`; another result counts no
    /// action). Past the bounds of the module doc, under `_overflow`.
    pub fn signal(
        &self,
        tenant: &str,
        agent_id: &str,
        user_id: &str,
        result: &str,
        signals: Signals,
    ) {
        if signals.is_empty() {
            return;
        }
        let result = outcome(result);
        let mut tallies = self.lock();
        let tallies = &mut *tallies;
        let key = (tenant.to_owned(), agent_id.to_owned());
        if !tallies.agents.contains_key(&key) && tallies.agents.len() >= MAX_AGENTS {
            *tallies.overflow.entry(tenant.to_owned()).or_default() += 1;
            tallies
                .overflowed
                .entry(tenant.to_owned())
                .or_default()
                .add(result, signals);
            return;
        }
        tallies
            .agents
            .entry(key)
            .or_insert_with(|| (user_id.to_owned(), Tally::default()))
            .1
            .add(result, signals);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tallies> {
        // A panic while counting leaves counts that are still counts.
        self.tallies.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The agent gauges of one scrape: agents by (tenant, state), stale agents
/// by tenant, and the health of each active or quarantined agent.
#[derive(Default)]
pub struct AgentGauges {
    /// Agents by tenant and lifecycle state.
    pub agents: BTreeMap<(String, String), u64>,
    /// Stale agents by tenant (every tenant with agents has an entry).
    pub stale: BTreeMap<String, u64>,
    /// Active and quarantined agents, by tenant and agent id.
    pub health: Vec<AgentHealth>,
}

/// What one scrape says of one active or quarantined agent.
pub struct AgentHealth {
    /// Its tenant.
    pub tenant: String,
    /// The agent.
    pub agent_id: String,
    /// Milliseconds since its latest heartbeat, else its enrolment (`None`:
    /// neither is known).
    pub age_ms: Option<i64>,
    /// Its tenant's heartbeat interval in force.
    pub interval_secs: u64,
    /// Runtime version of its latest heartbeat, else as enrolled.
    pub version: String,
    /// Operating system of its latest heartbeat, else as enrolled.
    pub os: String,
    /// From its latest heartbeat, if it sent one.
    pub reported: Option<Reported>,
}

/// What an agent's latest heartbeat reported.
pub struct Reported {
    /// Seconds since the runtime started.
    pub uptime_secs: u64,
    /// Events waiting in the spool.
    pub spool_depth: u64,
    /// Spool bytes on disk.
    pub spool_bytes: u64,
    /// Telemetry events dropped.
    pub spool_dropped: u64,
}

/// A gauge of what the latest heartbeat reported: name, help, value.
type ReportedGauge = (&'static str, &'static str, fn(&Reported) -> u64);

/// The gauges of [`Reported`], in exposition order.
const REPORTED: [ReportedGauge; 4] = [
    (
        "agent_uptime_seconds",
        "Seconds the agent's runtime had been up at its latest heartbeat.",
        |r| r.uptime_secs,
    ),
    (
        "agent_spool_depth",
        "Events waiting in the agent's spool at its latest heartbeat.",
        |r| r.spool_depth,
    ),
    (
        "agent_spool_bytes",
        "Bytes of the agent's spool on disk at its latest heartbeat.",
        |r| r.spool_bytes,
    ),
    (
        "agent_spool_dropped",
        "Telemetry events the agent had dropped, as of its latest heartbeat.",
        |r| r.spool_dropped,
    ),
];

/// The exposition text for the series of `tenant` (`None`: every tenant).
pub fn render(gauges: &AgentGauges, counters: &Counters, tenant: Option<&str>) -> String {
    let shown = |t: &str| tenant.is_none_or(|wanted| wanted == t);
    let mut out = String::new();
    family(
        &mut out,
        "ward_agents",
        "gauge",
        "Enrolled agents by tenant and lifecycle state.",
    );
    for ((t, state), count) in &gauges.agents {
        if shown(t) {
            let _ = writeln!(
                out,
                "ward_agents{{tenant=\"{}\",state=\"{}\"}} {count}",
                escape(t),
                escape(state)
            );
        }
    }
    family(
        &mut out,
        "ward_agents_stale",
        "gauge",
        "Active or quarantined agents that missed three heartbeat intervals.",
    );
    for (t, count) in &gauges.stale {
        if shown(t) {
            let _ = writeln!(out, "ward_agents_stale{{tenant=\"{}\"}} {count}", escape(t));
        }
    }
    render_health(&mut out, &gauges.health, &shown);
    let tallies = counters.lock();
    family(
        &mut out,
        "ward_heartbeats_total",
        "counter",
        "Heartbeats received from agents.",
    );
    for (t, count) in &tallies.heartbeats {
        if shown(t) {
            let _ = writeln!(
                out,
                "ward_heartbeats_total{{tenant=\"{}\"}} {count}",
                escape(t)
            );
        }
    }
    family(
        &mut out,
        "ward_directive_acks_total",
        "counter",
        "Directive acknowledgements stored, by directive kind.",
    );
    for ((t, kind), count) in &tallies.acks {
        if shown(t) {
            let _ = writeln!(
                out,
                "ward_directive_acks_total{{tenant=\"{}\",kind=\"{}\"}} {count}",
                escape(t),
                escape(kind)
            );
        }
    }
    render_signals(&mut out, &tallies, &shown);
    family(
        &mut out,
        "ward_metrics_overflow_total",
        "counter",
        "Agent events counted under `_overflow` labels because a cardinality bound was reached.",
    );
    for (t, count) in &tallies.overflow {
        if shown(t) {
            let _ = writeln!(
                out,
                "ward_metrics_overflow_total{{tenant=\"{}\"}} {count}",
                escape(t)
            );
        }
    }
    out
}

/// The per-agent gauges, one family after another.
fn render_health(out: &mut String, health: &[AgentHealth], shown: &dyn Fn(&str) -> bool) {
    let agents = || health.iter().filter(|a| shown(&a.tenant));
    let labels = |a: &AgentHealth| {
        format!(
            "tenant=\"{}\",agent_id=\"{}\"",
            escape(&a.tenant),
            escape(&a.agent_id)
        )
    };
    family(
        out,
        "agent_heartbeat_age_seconds",
        "gauge",
        "Seconds since the agent's latest heartbeat, or since its enrolment if it never sent one.",
    );
    for a in agents() {
        if let Some(age_ms) = a.age_ms {
            let age_ms = age_ms.max(0);
            let _ = writeln!(
                out,
                "agent_heartbeat_age_seconds{{{}}} {}.{:03}",
                labels(a),
                age_ms / 1000,
                age_ms % 1000
            );
        }
    }
    family(
        out,
        "agent_heartbeat_interval_seconds",
        "gauge",
        "The heartbeat interval in force for the agent's tenant.",
    );
    for a in agents() {
        let _ = writeln!(
            out,
            "agent_heartbeat_interval_seconds{{{}}} {}",
            labels(a),
            a.interval_secs
        );
    }
    family(
        out,
        "agent_info",
        "gauge",
        "Runtime version and operating system of the agent's latest heartbeat (as enrolled if none).",
    );
    for a in agents() {
        let _ = writeln!(
            out,
            "agent_info{{{},version=\"{}\",os=\"{}\"}} 1",
            labels(a),
            escape(&a.version),
            escape(&a.os)
        );
    }
    for (name, help, value) in REPORTED {
        family(out, name, "gauge", help);
        for a in agents() {
            if let Some(r) = &a.reported {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(a), value(r));
            }
        }
    }
}

/// The signal counters, one family after another.
fn render_signals(out: &mut String, tallies: &Tallies, shown: &dyn Fn(&str) -> bool) {
    // (tenant, agent, user, tally) of every series set shown.
    let sets = || {
        let tracked =
            tallies.agents.iter().filter(|((t, _), _)| shown(t)).map(
                |((t, agent), (user, tally))| (t.as_str(), agent.as_str(), user.as_str(), tally),
            );
        let overflowed = tallies
            .overflowed
            .iter()
            .filter(|(t, _)| shown(t))
            .map(|(t, tally)| (t.as_str(), OVERFLOW, OVERFLOW, tally));
        tracked.chain(overflowed)
    };
    for (i, signal) in Signal::ALL.into_iter().enumerate() {
        let name = signal.metric();
        family(
            out,
            name,
            "counter",
            &format!("Agent events that were {}.", help_noun(signal)),
        );
        for (t, agent, user, tally) in sets() {
            let labels = format!(
                "tenant=\"{}\",agent_id=\"{}\",user_id=\"{}\"",
                escape(t),
                escape(agent),
                escape(user)
            );
            if signal == Signal::Action {
                for (result, count) in OUTCOMES.iter().zip(tally.actions) {
                    if count > 0 {
                        let _ = writeln!(out, "{name}{{{labels},result=\"{result}\"}} {count}");
                    }
                }
            } else if tally.signals[i] > 0 {
                let _ = writeln!(out, "{name}{{{labels}}} {}", tally.signals[i]);
            }
        }
    }
}

/// What the events a signal counts are, for its HELP line.
fn help_noun(signal: Signal) -> &'static str {
    match signal {
        Signal::Action => "outcomes of actions, by outcome",
        Signal::PrivilegedFailure => "privileged actions denied or failed",
        Signal::ExternalCall => "calls to external APIs",
        Signal::FileAccess => "file accesses",
        Signal::Export => "data sent off the device",
        Signal::Denial => "actions denied",
    }
}

/// The HELP and TYPE lines of a family.
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_telemetry::signal::signals;

    fn health(tenant: &str, agent: &str, reported: bool) -> AgentHealth {
        AgentHealth {
            tenant: tenant.into(),
            agent_id: agent.into(),
            age_ms: Some(12_345),
            interval_secs: 30,
            version: "1.5.0".into(),
            os: "macos 15.2".into(),
            reported: reported.then_some(Reported {
                uptime_secs: 42,
                spool_depth: 3,
                spool_bytes: 4096,
                spool_dropped: 1,
            }),
        }
    }

    /// The value of the one line of `text` that starts with `series `.
    fn value(text: &str, series: &str) -> Option<String> {
        let prefix = format!("{series} ");
        let mut found = text.lines().filter_map(|l| l.strip_prefix(&prefix));
        let first = found.next().map(str::to_owned);
        assert!(found.next().is_none(), "{series} twice in\n{text}");
        first
    }

    #[test]
    fn a_tenant_sees_only_its_own_series() {
        let counters = Counters::default();
        counters.heartbeat("ten_a");
        counters.heartbeat("ten_b");
        counters.ack("ten_a", "killswitch");
        counters.signal(
            "ten_a",
            "agt_1",
            "alice",
            "deny",
            signals("files:write", "deny", false),
        );
        counters.signal(
            "ten_b",
            "agt_2",
            "bob",
            "ok",
            signals("http:post", "ok", false),
        );
        let mut gauges = AgentGauges::default();
        gauges.agents.insert(("ten_a".into(), "active".into()), 2);
        gauges.agents.insert(("ten_b".into(), "active".into()), 1);
        gauges.stale.insert("ten_a".into(), 1);
        gauges.health.push(health("ten_a", "agt_1", true));
        gauges.health.push(health("ten_b", "agt_2", true));
        let text = render(&gauges, &counters, Some("ten_a"));
        assert!(text.contains("ward_agents{tenant=\"ten_a\",state=\"active\"} 2\n"));
        assert!(text.contains("ward_agents_stale{tenant=\"ten_a\"} 1\n"));
        assert!(text.contains("ward_heartbeats_total{tenant=\"ten_a\"} 1\n"));
        assert!(
            text.contains("ward_directive_acks_total{tenant=\"ten_a\",kind=\"killswitch\"} 1\n")
        );
        let a = "tenant=\"ten_a\",agent_id=\"agt_1\"";
        assert_eq!(
            value(&text, &format!("agent_heartbeat_age_seconds{{{a}}}")).as_deref(),
            Some("12.345")
        );
        assert!(text.contains(&format!("agent_spool_dropped{{{a}}} 1\n")));
        let au = format!("{a},user_id=\"alice\"");
        assert!(text.contains(&format!("agent_actions_total{{{au},result=\"deny\"}} 1\n")));
        assert!(text.contains(&format!("agent_privileged_failures_total{{{au}}} 1\n")));
        assert!(!text.contains("ten_b"), "{text}");

        let all = render(&gauges, &counters, None);
        assert!(all.contains(
            "agent_exports_total{tenant=\"ten_b\",agent_id=\"agt_2\",user_id=\"bob\"} 1\n"
        ));
        assert!(all.contains("agent_uptime_seconds{tenant=\"ten_b\",agent_id=\"agt_2\"} 42\n"));
        assert!(all.contains(&format!("agent_file_accesses_total{{{au}}} 1\n")));
    }

    #[test]
    fn signals_count_by_family_and_outcome_and_every_family_is_described() {
        let counters = Counters::default();
        let text = render(&AgentGauges::default(), &counters, None);
        for name in Signal::ALL.iter().map(|s| s.metric()).chain([
            "agent_heartbeat_age_seconds",
            "agent_heartbeat_interval_seconds",
            "agent_info",
            "agent_uptime_seconds",
            "agent_spool_depth",
            "agent_spool_bytes",
            "agent_spool_dropped",
            "ward_metrics_overflow_total",
        ]) {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}: {text}");
        }

        for (action, result) in [
            ("files:write", "deny"),
            ("files:write", "deny"),
            ("files:read", "allow"),
            ("http:get", "error"),
            ("session.start", "ok"),
        ] {
            counters.signal("t", "a", "u", result, signals(action, result, false));
        }
        let mut gauges = AgentGauges::default();
        gauges.health.push(health("t", "a", false));
        let text = render(&gauges, &counters, None);
        let l = "tenant=\"t\",agent_id=\"a\",user_id=\"u\"";
        let count = |series: String| value(&text, &series);
        assert_eq!(
            count(format!("agent_actions_total{{{l},result=\"deny\"}}")).as_deref(),
            Some("2")
        );
        assert_eq!(
            count(format!("agent_actions_total{{{l},result=\"allow\"}}")).as_deref(),
            Some("1")
        );
        assert_eq!(
            count(format!("agent_actions_total{{{l},result=\"error\"}}")).as_deref(),
            Some("1")
        );
        assert_eq!(
            count(format!("agent_actions_total{{{l},result=\"ok\"}}")),
            None,
            "not an action"
        );
        assert_eq!(
            count(format!("agent_privileged_failures_total{{{l}}}")).as_deref(),
            Some("2")
        );
        assert_eq!(
            count(format!("agent_file_accesses_total{{{l}}}")).as_deref(),
            Some("3")
        );
        assert_eq!(
            count(format!("agent_external_calls_total{{{l}}}")).as_deref(),
            Some("1")
        );
        assert_eq!(
            count(format!("agent_denials_total{{{l}}}")).as_deref(),
            Some("2")
        );
        assert_eq!(count(format!("agent_exports_total{{{l}}}")), None);
        // No heartbeat: no reported gauges, but age, interval and info.
        assert!(text.contains(
            "agent_info{tenant=\"t\",agent_id=\"a\",version=\"1.5.0\",os=\"macos 15.2\"} 1\n"
        ));
        assert!(
            text.contains("agent_heartbeat_interval_seconds{tenant=\"t\",agent_id=\"a\"} 30\n")
        );
        assert!(!text.contains("agent_uptime_seconds{"), "{text}");
        assert!(!text.contains("agent_spool_depth{"), "{text}");
    }

    #[test]
    fn agents_past_the_bound_are_counted_under_overflow_of_their_tenant() {
        let counters = Counters::default();
        let denied = signals("files:write", "deny", false);
        for i in 0..MAX_AGENTS {
            counters.signal("ten_a", &format!("agt_{i}"), "alice", "deny", denied);
        }
        // A tracked agent is still counted as itself.
        counters.signal("ten_a", "agt_0", "alice", "deny", denied);
        counters.signal("ten_a", "agt_new", "alice", "deny", denied);
        counters.signal("ten_b", "agt_other", "bob", "deny", denied);
        counters.signal("ten_b", "agt_other", "bob", "deny", denied);

        let all = render(&AgentGauges::default(), &counters, None);
        let series = |name: &str| {
            all.lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .count()
        };
        assert_eq!(series("agent_privileged_failures_total"), MAX_AGENTS + 2);
        let failures = |labels: &str| {
            value(
                &all,
                &format!("agent_privileged_failures_total{{{labels}}}"),
            )
        };
        assert_eq!(
            failures("tenant=\"ten_a\",agent_id=\"agt_0\",user_id=\"alice\"").as_deref(),
            Some("2")
        );
        assert_eq!(
            failures("tenant=\"ten_a\",agent_id=\"agt_new\",user_id=\"alice\""),
            None
        );
        assert_eq!(
            failures("tenant=\"ten_a\",agent_id=\"_overflow\",user_id=\"_overflow\"").as_deref(),
            Some("1")
        );
        assert_eq!(
            failures("tenant=\"ten_b\",agent_id=\"_overflow\",user_id=\"_overflow\"").as_deref(),
            Some("2")
        );
        assert_eq!(
            value(&all, "ward_metrics_overflow_total{tenant=\"ten_a\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            value(&all, "ward_metrics_overflow_total{tenant=\"ten_b\"}").as_deref(),
            Some("2")
        );

        // Another tenant's overflow is its own.
        let b = render(&AgentGauges::default(), &counters, Some("ten_b"));
        assert!(!b.contains("ten_a"), "{b}");
        assert!(b.contains("ward_metrics_overflow_total{tenant=\"ten_b\"} 2\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let counters = Counters::default();
        counters.signal(
            "t",
            "a",
            "eve\"},x=\"1\\\nnext",
            "deny",
            signals("files:write", "deny", false),
        );
        let mut gauges = AgentGauges::default();
        let mut odd = health("t", "a", true);
        odd.version = "1.0\"\n".into();
        odd.os = "c:\\os".into();
        gauges.health.push(odd);
        let text = render(&gauges, &counters, None);
        assert!(
            text.contains(
                "agent_denials_total{tenant=\"t\",agent_id=\"a\",user_id=\"eve\\\"},x=\\\"1\\\\\\nnext\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "agent_info{tenant=\"t\",agent_id=\"a\",version=\"1.0\\\"\\n\",os=\"c:\\\\os\"} 1\n"
            ),
            "{text}"
        );
        for line in text.lines() {
            assert!(
                line.starts_with('#') || line.starts_with("agent_") || line.starts_with("ward_"),
                "a value broke out of its line: {line}"
            );
        }
    }
}
