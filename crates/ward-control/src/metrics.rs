//! Prometheus metrics of the control plane in the text exposition format:
//! agents by tenant and state, stale agents, heartbeats and directive
//! acknowledgements received. Counters live in memory (they restart at 0
//! with the process, as Prometheus counters may); agent gauges are read
//! from the database on each scrape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Counters of what devices sent, by tenant (and directive kind).
#[derive(Default)]
pub struct Counters {
    heartbeats: Mutex<BTreeMap<String, u64>>,
    acks: Mutex<BTreeMap<(String, String), u64>>,
}

impl Counters {
    /// Counts a heartbeat of an agent of `tenant`.
    pub fn heartbeat(&self, tenant: &str) {
        if let Ok(mut heartbeats) = self.heartbeats.lock() {
            *heartbeats.entry(tenant.to_owned()).or_default() += 1;
        }
    }

    /// Counts a newly stored acknowledgement of a directive of `kind`.
    pub fn ack(&self, tenant: &str, kind: &str) {
        if let Ok(mut acks) = self.acks.lock() {
            *acks
                .entry((tenant.to_owned(), kind.to_owned()))
                .or_default() += 1;
        }
    }
}

/// The agent gauges of one scrape: agents by (tenant, state), stale agents
/// by tenant.
#[derive(Default)]
pub struct AgentGauges {
    /// Agents by tenant and lifecycle state.
    pub agents: BTreeMap<(String, String), u64>,
    /// Stale agents by tenant (every tenant with agents has an entry).
    pub stale: BTreeMap<String, u64>,
}

/// The exposition text for the series of `tenant` (`None`: every tenant).
pub fn render(gauges: &AgentGauges, counters: &Counters, tenant: Option<&str>) -> String {
    let shown = |t: &str| tenant.is_none_or(|wanted| wanted == t);
    let mut out = String::new();
    out.push_str("# HELP ward_agents Enrolled agents by tenant and lifecycle state.\n");
    out.push_str("# TYPE ward_agents gauge\n");
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
    out.push_str(
        "# HELP ward_agents_stale Active or quarantined agents that missed three heartbeat intervals.\n",
    );
    out.push_str("# TYPE ward_agents_stale gauge\n");
    for (t, count) in &gauges.stale {
        if shown(t) {
            let _ = writeln!(out, "ward_agents_stale{{tenant=\"{}\"}} {count}", escape(t));
        }
    }
    out.push_str("# HELP ward_heartbeats_total Heartbeats received from agents.\n");
    out.push_str("# TYPE ward_heartbeats_total counter\n");
    if let Ok(heartbeats) = counters.heartbeats.lock() {
        for (t, count) in heartbeats.iter() {
            if shown(t) {
                let _ = writeln!(
                    out,
                    "ward_heartbeats_total{{tenant=\"{}\"}} {count}",
                    escape(t)
                );
            }
        }
    }
    out.push_str(
        "# HELP ward_directive_acks_total Directive acknowledgements stored, by directive kind.\n",
    );
    out.push_str("# TYPE ward_directive_acks_total counter\n");
    if let Ok(acks) = counters.acks.lock() {
        for ((t, kind), count) in acks.iter() {
            if shown(t) {
                let _ = writeln!(
                    out,
                    "ward_directive_acks_total{{tenant=\"{}\",kind=\"{}\"}} {count}",
                    escape(t),
                    escape(kind)
                );
            }
        }
    }
    out
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_sees_only_its_own_series() {
        let counters = Counters::default();
        counters.heartbeat("ten_a");
        counters.heartbeat("ten_b");
        counters.ack("ten_a", "killswitch");
        let mut gauges = AgentGauges::default();
        gauges.agents.insert(("ten_a".into(), "active".into()), 2);
        gauges.agents.insert(("ten_b".into(), "active".into()), 1);
        gauges.stale.insert("ten_a".into(), 1);
        let text = render(&gauges, &counters, Some("ten_a"));
        assert!(text.contains("ward_agents{tenant=\"ten_a\",state=\"active\"} 2\n"));
        assert!(text.contains("ward_agents_stale{tenant=\"ten_a\"} 1\n"));
        assert!(text.contains("ward_heartbeats_total{tenant=\"ten_a\"} 1\n"));
        assert!(
            text.contains("ward_directive_acks_total{tenant=\"ten_a\",kind=\"killswitch\"} 1\n")
        );
        assert!(!text.contains("ten_b"), "{text}");
        assert!(render(&gauges, &counters, None).contains("ten_b"));
    }
}
