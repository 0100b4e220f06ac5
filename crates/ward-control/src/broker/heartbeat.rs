//! Heartbeats and directive acknowledgements from desktop runtimes: the
//! device proves its key, its report is stored (the latest per agent), and
//! the answer tells it what to do: the kill switches, quarantine,
//! uninstall and re-consent in force, its features, flags and the bounds
//! it tightens at on its own.
//!
//! INVARIANT: `feed_seq` is read before anything the answer is computed
//! from, and kill switches and flags are read from the database after it,
//! so a device that follows the change feed from `feed_seq` misses no
//! change the answer does not already reflect.
//! INVARIANT: heartbeats are counted, not audited (too frequent);
//! acknowledgements of kill switch, quarantine and uninstall directives
//! are audited (incident evidence), each once.

use serde_json::json;
use ward_api::{
    AcksStored, AgentFeature, Directive, DirectiveAck, DirectiveAcks, Heartbeat, HeartbeatResponse,
};
use ward_model::enforcement::{Flags, KillSwitches};
use ward_model::feed::directive_for_state;
use ward_model::lifecycle::AgentState;
use ward_model::matrix::Risk;
use ward_model::timestamp::parse_rfc3339;
use ward_store::{AckRow, AgentRow, ConsentRow, HeartbeatRow};

use crate::AppState;
use crate::audit::{DraftExt, entry};
use crate::broker::consent;
use crate::broker::device::{Refusal, authenticate_for};
use crate::broker::staleness;
use crate::error::ApiError;
use crate::fields::{id_field, text_field};
use crate::util::{now_ms, rfc3339};

/// The most acknowledgements one request may carry.
const MAX_ACKS: usize = 100;

/// The most problems one heartbeat may list.
const MAX_PROBLEMS: usize = 32;

/// Directive kinds a device may acknowledge (the first part of an id).
const ACK_KINDS: [&str; 7] = [
    "killswitch",
    "quarantine",
    "uninstall",
    "revoke",
    "activate",
    "reconsent",
    "version",
];

/// Kinds whose acknowledgement is incident evidence, so audited.
const AUDITED_KINDS: [&str; 3] = ["killswitch", "quarantine", "uninstall"];

/// The path a heartbeat's proof is made for.
pub fn heartbeat_path(agent_id: &str) -> String {
    format!("/v1/agents/{agent_id}/heartbeat")
}

/// The path an acknowledgement's proof is made for.
pub fn acks_path(agent_id: &str) -> String {
    format!("/v1/agents/{agent_id}/acks")
}

/// Handles a heartbeat of `agent_id` carrying `proof`: checks the report,
/// authenticates the device, stores the report and its acknowledgements,
/// and answers what the device must do.
pub async fn heartbeat(
    state: &AppState,
    proof: Result<&str, ApiError>,
    agent_id: &str,
    body: Heartbeat,
) -> Result<HeartbeatResponse, Refusal> {
    id_field("id", agent_id).map_err(|e| (e, None))?;
    let acks = read_heartbeat(&body).map_err(|e| (e, None))?;
    let now = now_ms();
    let cached = authenticate_for(
        state,
        proof,
        agent_id,
        "POST",
        &heartbeat_path(agent_id),
        now / 1000,
    )
    .await?;
    let agent = cached.row.clone();
    let tenant = Some(agent.tenant_id.clone());
    let fail = |error: ApiError| (error, tenant.clone());
    let report = HeartbeatRow {
        agent_id: agent.id.clone(),
        tenant_id: agent.tenant_id.clone(),
        received_at_ms: now,
        version: body.version,
        uptime_secs: body.uptime_secs,
        os: body.os,
        health: body.health,
        problems: serde_json::to_string(&body.problems).map_err(|e| fail(ApiError::internal(e)))?,
        mode: body.mode,
        spool_depth: body.spool_depth,
        spool_bytes: body.spool_bytes,
        spool_dropped: body.spool_dropped,
    };
    let version = report.version.clone();
    let stored = store(state, &agent, Some(report), acks)
        .await
        .map_err(fail)?;
    state.counters.heartbeat(&agent.tenant_id);
    count_acks(state, &agent.tenant_id, &stored);
    answer(state, &agent.id, &version, now).await.map_err(fail)
}

/// Handles acknowledgements of `agent_id` carrying `proof`; a directive
/// acknowledged twice is stored once.
pub async fn acknowledge(
    state: &AppState,
    proof: Result<&str, ApiError>,
    agent_id: &str,
    body: DirectiveAcks,
) -> Result<AcksStored, Refusal> {
    id_field("id", agent_id).map_err(|e| (e, None))?;
    if body.acks.is_empty() || body.acks.len() > MAX_ACKS {
        return Err((
            ApiError::invalid(
                "acks",
                format!("`acks` must list 1 to {MAX_ACKS} acknowledgements"),
            ),
            None,
        ));
    }
    let acks = read_acks(&body.acks, "acks").map_err(|e| (e, None))?;
    let now = now_ms();
    let cached = authenticate_for(
        state,
        proof,
        agent_id,
        "POST",
        &acks_path(agent_id),
        now / 1000,
    )
    .await?;
    let agent = cached.row.clone();
    let stored = store(state, &agent, None, acks)
        .await
        .map_err(|e| (e, Some(agent.tenant_id.clone())))?;
    count_acks(state, &agent.tenant_id, &stored);
    Ok(AcksStored {
        stored: stored.len() as u64,
    })
}

/// An acknowledgement as checked: the directive, its kind, when applied.
struct Ack {
    directive: String,
    kind: String,
    applied_at: String,
    applied_at_ms: i64,
}

/// Checks a heartbeat's fields; returns its acknowledgements.
fn read_heartbeat(body: &Heartbeat) -> Result<Vec<Ack>, ApiError> {
    text_field("version", &body.version, 64)?;
    text_field("os", &body.os, 128)?;
    if body.health != "ok" && body.health != "degraded" {
        return Err(ApiError::invalid(
            "health",
            format!(
                "unknown health `{}`; use `ok` or `degraded`",
                shown(&body.health)
            ),
        ));
    }
    if body.problems.len() > MAX_PROBLEMS {
        return Err(ApiError::invalid(
            "problems",
            format!("`problems` lists more than {MAX_PROBLEMS} entries"),
        ));
    }
    for (index, problem) in body.problems.iter().enumerate() {
        text_field(&format!("problems[{index}]"), problem, 500)?;
    }
    if ward_model::enforcement::Mode::parse(&body.mode).is_none() {
        return Err(ApiError::invalid(
            "mode",
            format!(
                "unknown mode `{}`; use `normal`, `read-only` or `offline`",
                shown(&body.mode)
            ),
        ));
    }
    if body.acks.len() > MAX_ACKS {
        return Err(ApiError::invalid(
            "acks",
            format!(
                "`acks` lists more than {MAX_ACKS} acknowledgements; send the rest to /v1/agents/{{id}}/acks"
            ),
        ));
    }
    read_acks(&body.acks, "acks")
}

/// Checks acknowledgements: a directive id of a known kind, an RFC 3339 time.
fn read_acks(acks: &[DirectiveAck], field: &str) -> Result<Vec<Ack>, ApiError> {
    let mut checked = Vec::with_capacity(acks.len());
    for (index, ack) in acks.iter().enumerate() {
        let at = format!("{field}[{index}]");
        text_field(&format!("{at}.directive"), &ack.directive, 512)?;
        let kind = ack.directive.split(':').next().unwrap_or_default();
        if !ACK_KINDS.contains(&kind) {
            return Err(ApiError::invalid(
                format!("{at}.directive"),
                format!(
                    "`{}` is not a directive id; acknowledge the `id` of a directive the server sent or of a change-feed event",
                    shown(&ack.directive)
                ),
            ));
        }
        let Some(applied_at_ms) = parse_rfc3339(&ack.applied_at) else {
            return Err(ApiError::invalid(
                format!("{at}.applied_at"),
                format!(
                    "`{}` is not an RFC 3339 time such as `2026-12-02T10:00:00.000Z`",
                    shown(&ack.applied_at)
                ),
            ));
        };
        checked.push(Ack {
            directive: ack.directive.clone(),
            kind: kind.to_owned(),
            applied_at: rfc3339(applied_at_ms),
            applied_at_ms,
        });
    }
    Ok(checked)
}

/// User input as shown in a message: at most 64 characters.
fn shown(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Stores the report (if any) and the acknowledgements in one durable
/// write; returns the acknowledgements stored now (not repeats).
async fn store(
    state: &AppState,
    agent: &AgentRow,
    report: Option<HeartbeatRow>,
    acks: Vec<Ack>,
) -> Result<Vec<AckRow>, ApiError> {
    let actor = format!("agent:{}", agent.id);
    let (agent_id, tenant) = (agent.id.clone(), agent.tenant_id.clone());
    let drafts: Vec<_> = acks
        .iter()
        .map(|ack| {
            entry(&actor, "directive.ack", &ack.directive)
                .tenant(Some(&tenant))
                .reason(format!("{} applied on the device", ack.kind))
                .details(
                    json!({"agent_id": agent_id, "kind": ack.kind, "applied_at": ack.applied_at}),
                )
        })
        .collect();
    Ok(state
        .store
        .write(move |ctx| {
            if let Some(report) = &report {
                ward_store::upsert_heartbeat(ctx.conn(), report)?;
            }
            let received_at = rfc3339(now_ms());
            let mut stored = Vec::new();
            for (ack, draft) in acks.into_iter().zip(drafts) {
                let row = AckRow {
                    agent_id: agent_id.clone(),
                    tenant_id: tenant.clone(),
                    directive: ack.directive,
                    kind: ack.kind,
                    applied_at: ack.applied_at,
                    applied_at_ms: ack.applied_at_ms,
                    received_at: received_at.clone(),
                };
                if ward_store::insert_ack(ctx.conn(), &row)? {
                    if AUDITED_KINDS.contains(&row.kind.as_str()) {
                        ctx.audit(draft);
                    }
                    stored.push(row);
                }
            }
            Ok(stored)
        })
        .await?)
}

fn count_acks(state: &AppState, tenant: &str, stored: &[AckRow]) {
    for ack in stored {
        state.counters.ack(tenant, &ack.kind);
    }
}

/// What the agent must do and know now, as of `now`; `version` is the
/// runtime version the device reported.
async fn answer(
    state: &AppState,
    agent_id: &str,
    version: &str,
    now: i64,
) -> Result<HeartbeatResponse, ApiError> {
    let wanted = agent_id.to_owned();
    let (feed_seq, agent, consent, policy, kills, flags) = state
        .store
        .read(move |conn| {
            // The sequence number first: anything after it is in the feed.
            let seq = ward_store::last_event(conn)?;
            let agent = ward_store::agent(conn, None, &wanted)?;
            let consent = ward_store::latest_consent(conn, &wanted)?;
            let tenant = agent
                .as_ref()
                .map(|a| a.tenant_id.clone())
                .unwrap_or_default();
            let policy = ward_store::agent_policy(conn, &tenant)?;
            let kills = ward_store::killswitches(conn)?;
            let flags = ward_store::flags(conn)?;
            Ok((seq, agent, consent, policy, kills, flags))
        })
        .await?;
    let agent = agent.ok_or_else(|| ApiError::internal(format!("agent `{agent_id}` vanished")))?;
    let bounds = staleness::effective(policy.as_ref(), state.config.default_token_secs);
    let features = features(state, &agent, consent.as_ref());
    let directives = directives(
        &agent,
        version,
        &KillSwitches::new(kills),
        &features,
        consent.as_ref(),
    );
    Ok(HeartbeatResponse {
        interval_secs: bounds.heartbeat_interval_secs,
        server_time: rfc3339(now),
        state: agent.state.as_str().to_owned(),
        owner: agent.owner.clone(),
        tenant: agent.tenant_id.clone(),
        feed_seq,
        directives,
        bounds,
        features,
        flags: Flags::new(flags)
            .visible(Some(&agent.tenant_id))
            .into_iter()
            .map(ward_api::Flag::from)
            .collect(),
    })
}

/// The features of the agent's profile, each with whether the owner's
/// consent to its scopes is on record.
fn features(state: &AppState, agent: &AgentRow, consent: Option<&ConsentRow>) -> Vec<AgentFeature> {
    let matrix = &state.matrix.matrix;
    let Some(profile) = matrix.profile(&agent.profile) else {
        return Vec::new();
    };
    profile
        .features
        .iter()
        .filter_map(|name| matrix.feature(name))
        .map(|feature| AgentFeature {
            name: feature.name.clone(),
            description: feature.description.clone(),
            risk: match feature.risk {
                Risk::Low => "low",
                Risk::High => "high",
            }
            .to_owned(),
            scopes: feature.scopes.iter().map(ToString::to_string).collect(),
            consent_required: feature.consent_required,
            consented: consent::covers(consent, &feature.scopes),
        })
        .collect()
}

/// The directives in force for the agent: one `mode` per kill switch that
/// applies (to the version it reported, or else the one it enrolled with),
/// `quarantine` or `uninstall` for those states, and `reconsent` for the
/// features that need consent the owner has not given for their scopes.
fn directives(
    agent: &AgentRow,
    version: &str,
    kills: &KillSwitches,
    features: &[AgentFeature],
    consent: Option<&ConsentRow>,
) -> Vec<Directive> {
    let version = if version.is_empty() {
        agent.agent_version.as_str()
    } else {
        version
    };
    let mut directives: Vec<Directive> = kills
        .applying(&agent.tenant_id, &agent.id, version)
        .into_iter()
        .map(|switch| Directive {
            id: switch.directive_id(),
            kind: "mode".to_owned(),
            mode: Some(switch.mode.as_str().to_owned()),
            features: Vec::new(),
            version: None,
            issued_at: switch.set_at.clone(),
            switch: Some(ward_api::KillSwitch::from(switch)),
        })
        .collect();
    let kind = match agent.state {
        AgentState::Quarantined => Some("quarantine"),
        AgentState::Uninstalled => Some("uninstall"),
        AgentState::Active | AgentState::PendingApproval | AgentState::Revoked => None,
    };
    if let Some(kind) = kind
        && let Some(id) = directive_for_state(&agent.id, agent.state, &agent.updated_at)
    {
        directives.push(Directive {
            id,
            kind: kind.to_owned(),
            mode: None,
            features: Vec::new(),
            version: None,
            issued_at: agent.updated_at.clone(),
            switch: None,
        });
    }
    let missing: Vec<String> = features
        .iter()
        .filter(|f| f.consent_required && !f.consented)
        .map(|f| f.name.clone())
        .collect();
    if !missing.is_empty() && matches!(agent.state, AgentState::Active | AgentState::Quarantined) {
        let (basis, at) = consent.map_or(("none", agent.created_at.as_str()), |c| {
            (c.id.as_str(), c.recorded_at.as_str())
        });
        directives.push(Directive {
            id: format!("reconsent:{}:{basis}:{}", agent.id, missing.join(",")),
            kind: "reconsent".to_owned(),
            mode: None,
            features: missing,
            version: None,
            issued_at: at.to_owned(),
            switch: None,
        });
    }
    directives
}
