//! How far the control plane's word has reached the devices: for each
//! engaged kill switch, the agents that acknowledged it (and how long it
//! took) and, for the rest, the time by which each is in safe mode on its
//! own (last contact + the tenant's bound for the switch's mode); and the
//! agent gauges of `/metrics` (agents by state, stale agents).

use std::collections::{BTreeMap, HashMap};
use ward_api::{DeviceAck, DevicePending, KillSwitchReach, KillSwitchStatus};
use ward_model::enforcement::{KillSwitch, Mode};
use ward_model::lifecycle::AgentState;
use ward_model::timestamp::parse_rfc3339;
use ward_store::{AgentContact, AgentPolicyRow};

use crate::AppState;
use crate::broker::staleness;
use crate::error::ApiError;
use crate::metrics::AgentGauges;
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

/// The agent gauges for `tenant` (`None`: every tenant), as of now.
pub async fn gauges(state: &AppState, tenant: Option<&str>) -> Result<AgentGauges, ApiError> {
    let wanted = tenant.map(str::to_owned);
    let (contacts, policies) = state
        .store
        .read(move |conn| {
            Ok((
                ward_store::agent_contacts(conn, wanted.as_deref())?,
                ward_store::agent_policies(conn)?,
            ))
        })
        .await?;
    let now = now_ms();
    let token_secs = state.config.default_token_secs;
    let mut gauges = AgentGauges {
        agents: BTreeMap::new(),
        stale: BTreeMap::new(),
    };
    for agent in &contacts {
        *gauges
            .agents
            .entry((agent.tenant_id.clone(), agent.state.clone()))
            .or_default() += 1;
        let stale = gauges.stale.entry(agent.tenant_id.clone()).or_default();
        let interval = staleness::effective(policies.get(&agent.tenant_id), token_secs)
            .heartbeat_interval_secs;
        if let (Ok(agent_state), Some(contact)) =
            (agent.state.parse::<AgentState>(), last_contact(agent))
            && staleness::is_stale(agent_state, contact, interval, now)
        {
            *stale += 1;
        }
    }
    Ok(gauges)
}

/// An agent's last contact: its latest heartbeat, else its enrolment.
fn last_contact(agent: &AgentContact) -> Option<i64> {
    agent
        .last_heartbeat_ms
        .or_else(|| parse_rfc3339(&agent.created_at))
}
