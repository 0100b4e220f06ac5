//! How far the control plane's word has reached the devices: for each
//! engaged kill switch, the agents that acknowledged it (and how long it
//! took) and, for the rest, the time by which each is in safe mode on its
//! own (last contact + the tenant's bound for the switch's mode); and the
//! agent gauges of `/metrics` (agents by state, stale agents, each live
//! agent's heartbeat age, interval, version and last report).

use std::collections::HashMap;
use ward_api::{DeviceAck, DevicePending, KillSwitchReach, KillSwitchStatus};
use ward_model::enforcement::{KillSwitch, Mode};
use ward_model::lifecycle::AgentState;
use ward_model::timestamp::parse_rfc3339;
use ward_store::{AgentContact, AgentHealth, AgentPolicyRow};

use crate::AppState;
use crate::broker::staleness;
use crate::error::ApiError;
use crate::metrics::{AgentGauges, AgentHealth as Health, Reported};
use crate::util::{now_ms, rfc3339};

/// Every engaged kill switch visible to `tenant` (`None`: all) and its
/// reach among the agents it covers.
pub async fn status(state: &AppState, tenant: Option<&str>) -> Result<KillSwitchStatus, ApiError> {
    let switches = state.switches.kills.visible(tenant);
    let directives: Vec<String> = switches.iter().map(KillSwitch::directive_id).collect();
    let wanted = tenant.map(str::to_owned);
    let (contacts, policies, acks) = state
        .store
        .read(move |conn| {
            let contacts = ward_store::agent_contacts(conn, wanted.as_deref())?;
            let policies = ward_store::agent_policies(conn)?;
            let mut acks = Vec::with_capacity(directives.len());
            for directive in &directives {
                acks.push(ward_store::acks_of_directive(conn, directive)?);
            }
            Ok((contacts, policies, acks))
        })
        .await?;
    let token_secs = state.config.default_token_secs;
    let switches = switches
        .into_iter()
        .zip(acks)
        .map(|(switch, acks)| reach(switch, &contacts, &policies, &acks, token_secs))
        .collect();
    Ok(KillSwitchStatus { switches })
}

fn reach(
    switch: KillSwitch,
    contacts: &[AgentContact],
    policies: &HashMap<String, AgentPolicyRow>,
    acks: &HashMap<String, ward_store::AckRow>,
    token_secs: u64,
) -> KillSwitchReach {
    let set_at_ms = parse_rfc3339(&switch.set_at);
    let mut acknowledged = Vec::new();
    let mut pending = Vec::new();
    for agent in contacts.iter().filter(|a| covers(&switch, a)) {
        if let Some(ack) = acks.get(&agent.agent_id) {
            acknowledged.push(DeviceAck {
                agent_id: agent.agent_id.clone(),
                applied_at: ack.applied_at.clone(),
                time_to_apply_ms: set_at_ms.map_or(0, |set| ack.applied_at_ms - set),
            });
            continue;
        }
        let bounds = staleness::effective(policies.get(&agent.tenant_id), token_secs);
        let bound = match switch.mode {
            Mode::ReadOnly => bounds.read_only_after_secs,
            Mode::Offline | Mode::Normal => bounds.offline_after_secs,
        };
        let bound_ms = i64::try_from(bound.saturating_mul(1000)).unwrap_or(i64::MAX);
        pending.push(DevicePending {
            agent_id: agent.agent_id.clone(),
            last_contact: agent.last_heartbeat_ms.map(rfc3339),
            safe_by: agent
                .last_heartbeat_ms
                .map(|at| rfc3339(at.saturating_add(bound_ms))),
        });
    }
    KillSwitchReach {
        directive: switch.directive_id(),
        switch: switch.into(),
        acknowledged,
        pending,
    }
}

/// Whether the switch covers a live (not revoked, not uninstalled) agent,
/// judged by the version of its latest heartbeat, else its enrolled one.
fn covers(switch: &KillSwitch, agent: &AgentContact) -> bool {
    let live = !matches!(
        agent.state.parse::<AgentState>(),
        Ok(AgentState::Revoked | AgentState::Uninstalled)
    );
    let version = agent
        .heartbeat_version
        .as_deref()
        .unwrap_or(&agent.enrolled_version);
    live && switch.applies_to(&agent.tenant_id, &agent.agent_id, version)
}

/// The agent gauges for `tenant` (`None`: every tenant), as of now: agents
/// by state, stale agents, and the health of each active or quarantined
/// agent (its heartbeat's age by the rule that makes it stale).
pub async fn gauges(state: &AppState, tenant: Option<&str>) -> Result<AgentGauges, ApiError> {
    let wanted = tenant.map(str::to_owned);
    let (agents, policies) = state
        .store
        .read(move |conn| {
            Ok((
                ward_store::agent_health(conn, wanted.as_deref())?,
                ward_store::agent_policies(conn)?,
            ))
        })
        .await?;
    let now = now_ms();
    let token_secs = state.config.default_token_secs;
    let mut gauges = AgentGauges::default();
    for agent in agents {
        *gauges
            .agents
            .entry((agent.tenant_id.clone(), agent.state.clone()))
            .or_default() += 1;
        let stale = gauges.stale.entry(agent.tenant_id.clone()).or_default();
        let interval = staleness::effective(policies.get(&agent.tenant_id), token_secs)
            .heartbeat_interval_secs;
        let contact = contact_ms(
            agent.heartbeat.as_ref().map(|h| h.received_at_ms),
            &agent.created_at,
        );
        let Ok(agent_state @ (AgentState::Active | AgentState::Quarantined)) =
            agent.state.parse::<AgentState>()
        else {
            continue;
        };
        if contact.is_some_and(|at| staleness::is_stale(agent_state, at, interval, now)) {
            *stale += 1;
        }
        gauges.health.push(health(agent, contact, interval, now));
    }
    Ok(gauges)
}

/// An agent's last contact: its latest heartbeat (received at
/// `last_heartbeat_ms`), else its enrolment (`created_at`).
fn contact_ms(last_heartbeat_ms: Option<i64>, created_at: &str) -> Option<i64> {
    last_heartbeat_ms.or_else(|| parse_rfc3339(created_at))
}

/// What `/metrics` says of a live agent last heard of at `contact`.
fn health(agent: AgentHealth, contact: Option<i64>, interval_secs: u64, now: i64) -> Health {
    let (version, os, reported) = match agent.heartbeat {
        Some(h) => (
            h.version,
            h.os,
            Some(Reported {
                uptime_secs: h.uptime_secs,
                spool_depth: h.spool_depth,
                spool_bytes: h.spool_bytes,
                spool_dropped: h.spool_dropped,
            }),
        ),
        None => (agent.enrolled_version, agent.enrolled_os, None),
    };
    Health {
        tenant: agent.tenant_id,
        agent_id: agent.agent_id,
        age_ms: contact.map(|at| now.saturating_sub(at)),
        interval_secs,
        version,
        os,
        reported,
    }
}
