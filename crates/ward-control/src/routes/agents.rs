//! Agents over HTTP: enrolment tokens and enrolling a device (decided in
//! [`crate::broker::enrolment`]), listing agents, and the operator actions
//! that move them between states ([`crate::broker::lifecycle`]).

use axum::Json as JsonOut;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use ward_api::{
    Agent, AgentList, CreateEnrollToken, DeviceInfo, EnrollAgent, EnrollTokenCreated, ErrorBody,
    LifecycleChange,
};
use ward_model::lifecycle::{AgentAction, AgentState};
use ward_model::roles::Permission;
use ward_store::AgentRow;

use crate::AppState;
use crate::auth::Principal;
use crate::broker::{enrolment, lifecycle, staleness};
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::paging::{page, parse_limit};
use crate::util::{now_ms, rfc3339};
use ward_model::timestamp::parse_rfc3339;

/// Create a single-use enrolment token for an owner and a profile.
#[utoipa::path(post, path = "/v1/enroll-tokens", tag = "agents", request_body = CreateEnrollToken,
    security(("bearer" = [])),
    responses((status = 201, body = EnrollTokenCreated), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_enroll_token(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateEnrollToken>,
) -> Result<(StatusCode, JsonOut<EnrollTokenCreated>), ApiError> {
    let created = enrolment::create_token(&state, &principal, body).await?;
    Ok((StatusCode::CREATED, JsonOut(created)))
}

/// Enrol a device with an enrolment token (no other credential).
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = EnrollAgent,
    responses((status = 201, body = Agent), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn enroll(
    State(state): State<AppState>,
    Json(body): Json<EnrollAgent>,
) -> Result<(StatusCode, JsonOut<Agent>), ApiError> {
    let row = enrolment::enrol(&state, body).await?;
    Ok((StatusCode::CREATED, JsonOut(agent_out(row))))
}

/// The wire form of an agent.
pub fn agent_out(row: AgentRow) -> Agent {
    Agent {
        id: row.id,
        tenant: row.tenant_id,
        owner: row.owner,
        profile: row.profile,
        state: row.state.as_str().to_owned(),
        device: DeviceInfo {
            os: row.os,
            agent_version: row.agent_version,
            host_id: row.host_id,
        },
        device_jkt: row.device_jkt,
        created_at: row.created_at,
        updated_at: row.updated_at,
        last_heartbeat_at: None,
        heartbeat_age_secs: None,
        stale: false,
        mode: None,
        runtime_version: None,
    }
}

/// Fills in what the agents' heartbeats say: last heartbeat, its age, the
/// device's mode and runtime version, and whether the agent is stale (an
/// active or quarantined agent silent for three of its tenant's intervals;
/// one that never sent a heartbeat counts from its enrolment).
pub async fn with_contact(
    state: &AppState,
    mut agents: Vec<Agent>,
) -> Result<Vec<Agent>, ApiError> {
    let ids: Vec<(String, String)> = agents
        .iter()
        .map(|a| (a.id.clone(), a.tenant.clone()))
        .collect();
    let (heartbeats, policies) = state
        .store
        .read(move |conn| {
            let mut heartbeats = Vec::with_capacity(ids.len());
            let mut policies = std::collections::HashMap::new();
            for (id, tenant) in &ids {
                heartbeats.push(ward_store::heartbeat(conn, id)?);
                if !policies.contains_key(tenant) {
                    policies.insert(tenant.clone(), ward_store::agent_policy(conn, tenant)?);
                }
            }
            Ok((heartbeats, policies))
        })
        .await?;
    let now = now_ms();
    for (agent, heartbeat) in agents.iter_mut().zip(heartbeats) {
        let interval = staleness::effective(
            policies.get(&agent.tenant).and_then(Option::as_ref),
            state.config.default_token_secs,
        )
        .heartbeat_interval_secs;
        let last_contact = heartbeat
            .as_ref()
            .map(|h| h.received_at_ms)
            .or_else(|| parse_rfc3339(&agent.created_at));
        agent.stale = match (agent.state.parse::<AgentState>(), last_contact) {
            (Ok(current), Some(at)) => staleness::is_stale(current, at, interval, now),
            _ => false,
        };
        if let Some(h) = heartbeat {
            agent.last_heartbeat_at = Some(rfc3339(h.received_at_ms));
            agent.heartbeat_age_secs =
                Some(u64::try_from((now - h.received_at_ms).max(0) / 1000).unwrap_or(0));
            agent.mode = Some(h.mode);
            agent.runtime_version = Some(h.version);
        }
    }
    Ok(agents)
}

/// Query of `GET /v1/agents`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only agents in this state.
    state: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 500 (default 100).
    limit: Option<String>,
}

/// List the tenant's agents.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = AgentList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<JsonOut<AgentList>, ApiError> {
    let tenant = principal.require(Permission::ReadAgents)?.to_owned();
    let limit = parse_limit(query.limit.as_deref(), 100, 500)?;
    let wanted = query
        .state
        .as_deref()
        .map(str::parse::<AgentState>)
        .transpose()
        .map_err(|e| ApiError::invalid("state", e))?;
    let rows = state
        .store
        .read(move |conn| {
            ward_store::list_agents(conn, &tenant, wanted, query.cursor.as_deref(), limit + 1)
        })
        .await?;
    let (agents, next_cursor) = page(rows, limit, agent_out, |a: &Agent| a.id.clone());
    Ok(JsonOut(AgentList {
        agents: with_contact(&state, agents).await?,
        next_cursor,
    }))
}

/// Show one agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path, description = "agent id")),
    security(("bearer" = [])),
    responses((status = 200, body = Agent), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<JsonOut<Agent>, ApiError> {
    let tenant = principal.require(Permission::ReadAgents)?.to_owned();
    let wanted = id.clone();
    let row = state
        .store
        .read(move |conn| ward_store::agent(conn, Some(&tenant), &wanted))
        .await?
        .ok_or_else(|| ApiError::not_found("agent", &id))?;
    let mut shown = with_contact(&state, vec![agent_out(row)]).await?;
    shown
        .pop()
        .map(JsonOut)
        .ok_or_else(|| ApiError::internal("agent view lost"))
}

macro_rules! lifecycle_route {
    ($name:ident, $action:expr, $path:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "agents", params(("id" = String, Path, description = "agent id")),
            request_body = LifecycleChange, security(("bearer" = [])),
            responses((status = 200, body = Agent), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
                (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
        pub async fn $name(
            State(state): State<AppState>,
            principal: Principal,
            Path(id): Path<String>,
            Json(body): Json<LifecycleChange>,
        ) -> Result<JsonOut<Agent>, ApiError> {
            let row = lifecycle::change(&state, &principal, id, $action, body).await?;
            let mut shown = with_contact(&state, vec![agent_out(row)]).await?;
            shown.pop().map(JsonOut).ok_or_else(|| ApiError::internal("agent view lost"))
        }
    };
}

lifecycle_route!(
    activate,
    AgentAction::Activate,
    "/v1/agents/{id}/activate",
    "Activate a pending or quarantined agent (audited)."
);
lifecycle_route!(
    quarantine,
    AgentAction::Quarantine,
    "/v1/agents/{id}/quarantine",
    "Quarantine an active agent; its tokens are revoked."
);
lifecycle_route!(
    revoke,
    AgentAction::Revoke,
    "/v1/agents/{id}/revoke",
    "Revoke an agent for good; its tokens are revoked."
);
lifecycle_route!(
    uninstall,
    AgentAction::Uninstall,
    "/v1/agents/{id}/uninstall",
    "Ask the device to uninstall the agent; its tokens are revoked."
);
