//! What desktop runtimes call (heartbeats, acknowledgements, their watch
//! stream; each authenticated by a DPoP proof of the device key) and what
//! admins read about them (the staleness policy, kill-switch reach,
//! `/metrics`). The decisions are in [`crate::broker::heartbeat`],
//! [`crate::broker::staleness`] and [`crate::broker::reach`].

use axum::Json as JsonOut;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use std::convert::Infallible;
use ward_api::{
    AcksStored, DirectiveAcks, ErrorBody, Heartbeat, HeartbeatResponse, KillSwitchStatus,
    SetAgentPolicy, StalenessBounds,
};
use ward_model::lifecycle::AgentState;
use ward_model::roles::Permission;

use crate::AppState;
use crate::audit::{DraftExt, entry};
use crate::auth::{Credential, Principal};
use crate::broker::device::authenticate_for;
use crate::broker::{heartbeat, reach, staleness};
use crate::error::ApiError;
use crate::extract::{Json, dpop_proof};
use crate::fields::id_field;
use crate::metrics;
use crate::routes::watch::follow;
use crate::util::now_ms;

/// Report how the device is doing; the answer says what it must do
/// (directives), its features and flags, and the bounds it tightens at on
/// its own. Answered for quarantined, revoked and uninstalled agents too.
#[utoipa::path(post, path = "/v1/agents/{id}/heartbeat", tag = "desktop", request_body = Heartbeat,
    params(("id" = String, Path, description = "agent id"),
        ("DPoP" = String, Header, description = "RFC 9449 proof signed by the enrolled device key")),
    responses((status = 200, body = HeartbeatResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Heartbeat>,
) -> Result<JsonOut<HeartbeatResponse>, ApiError> {
    id_field("id", &id)?;
    let denial = entry(&format!("agent:{id}"), "agent.heartbeat", &id);
    match heartbeat::heartbeat(&state, dpop_proof(&headers), &id, body).await {
        Ok(answer) => Ok(JsonOut(answer)),
        Err((error, tenant)) => Err(state.deny(denial.tenant(tenant.as_deref()), error).await),
    }
}

/// Acknowledge directives the device applied, with when each took effect.
/// A directive acknowledged again is not stored twice.
#[utoipa::path(post, path = "/v1/agents/{id}/acks", tag = "desktop", request_body = DirectiveAcks,
    params(("id" = String, Path, description = "agent id"),
        ("DPoP" = String, Header, description = "RFC 9449 proof signed by the enrolled device key")),
    responses((status = 200, body = AcksStored), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn acks(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<DirectiveAcks>,
) -> Result<JsonOut<AcksStored>, ApiError> {
    id_field("id", &id)?;
    let denial = entry(&format!("agent:{id}"), "directive.ack", &id);
    match heartbeat::acknowledge(&state, dpop_proof(&headers), &id, body).await {
        Ok(stored) => Ok(JsonOut(stored)),
        Err((error, tenant)) => Err(state.deny(denial.tenant(tenant.as_deref()), error).await),
    }
}

/// Follow the change feed of the agent's tenant (and instance-wide
/// changes) as server-sent events, as `GET /v1/watch` does: a kill switch,
/// revocation or state change reaches the device at once. The proof is
/// for `GET` on this path, signed by this agent's device key.
#[utoipa::path(get, path = "/v1/agents/{id}/watch", tag = "desktop",
    params(("id" = String, Path, description = "agent id"),
        ("DPoP" = String, Header, description = "RFC 9449 proof for GET on this path, signed by the enrolled device key"),
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this event")),
    responses((status = 200, description = "text/event-stream"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn watch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    id_field("id", &id)?;
    let path = format!("/v1/agents/{id}/watch");
    let denial = entry(&format!("agent:{id}"), "agent.watch", &id);
    let agent = match authenticate_for(
        &state,
        dpop_proof(&headers),
        &id,
        "GET",
        &path,
        now_ms() / 1000,
    )
    .await
    {
        Ok(agent) => agent,
        Err((error, tenant)) => {
            return Err(state.deny(denial.tenant(tenant.as_deref()), error).await);
        }
    };
    let current = state
        .store
        .read(move |conn| ward_store::agent_state(conn, &id))
        .await?;
    if matches!(
        current,
        None | Some(AgentState::Revoked | AgentState::Uninstalled)
    ) {
        return Err(ApiError::forbidden(
            "agent_not_active",
            format!(
                "agent `{}` is revoked or uninstalled; its heartbeat answer says what to do",
                agent.row.id
            ),
        ));
    }
    follow(state.clone(), Some(agent.row.tenant_id.clone()), &headers).await
}

/// The staleness bounds in force for the caller's tenant (the defaults
/// until an admin sets them).
#[utoipa::path(get, path = "/v1/agent-policy", tag = "desktop", security(("bearer" = [])),
    responses((status = 200, body = StalenessBounds), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn agent_policy(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<JsonOut<StalenessBounds>, ApiError> {
    let tenant = principal.require(Permission::ReadAgents)?;
    Ok(JsonOut(staleness::bounds_for(&state, tenant).await?))
}

/// Set the caller's tenant's staleness bounds (tenant admins; audited with
/// the reason). Rules: `1 <= heartbeat_interval_secs < high_risk_after_secs
/// <= read_only_after_secs <= offline_after_secs <=` the server's default
/// token lifetime.
#[utoipa::path(put, path = "/v1/agent-policy", tag = "desktop", request_body = SetAgentPolicy,
    security(("bearer" = [])),
    responses((status = 200, body = StalenessBounds), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn set_agent_policy(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<SetAgentPolicy>,
) -> Result<JsonOut<StalenessBounds>, ApiError> {
    Ok(JsonOut(staleness::set(&state, &principal, body).await?))
}

/// The tenant a reader of instance-wide views reads: every tenant for the
/// bootstrap token, else the caller's own (agent readers).
fn reader_tenant(principal: &Principal) -> Result<Option<String>, ApiError> {
    Ok(match principal.credential {
        Credential::Bootstrap => None,
        _ => Some(principal.require(Permission::ReadAgents)?.to_owned()),
    })
}

/// For each engaged kill switch visible to the caller, the agents it
/// covers that acknowledged it (with time to apply) and, for the others,
/// their last contact and the time by which each is in safe mode on its own.
#[utoipa::path(get, path = "/v1/killswitch/status", tag = "killswitch", security(("bearer" = [])),
    responses((status = 200, body = KillSwitchStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn killswitch_status(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<JsonOut<KillSwitchStatus>, ApiError> {
    let tenant = reader_tenant(&principal)?;
    Ok(JsonOut(reach::status(&state, tenant.as_deref()).await?))
}

/// Prometheus metrics (text exposition format). Scraped with a bearer
/// credential: the bootstrap token sees every tenant's series, a tenant
/// token that may read agents (e.g. an `auditor` API token) only its own.
#[utoipa::path(get, path = "/metrics", tag = "meta", security(("bearer" = [])),
    responses((status = 200, description = "text/plain; version=0.0.4"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn metrics(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let tenant = reader_tenant(&principal)?;
    let gauges = reach::gauges(&state, tenant.as_deref()).await?;
    let mut text = metrics::render(&gauges, &state.counters, tenant.as_deref());
    crate::alerts::history::render(&state, tenant.as_deref(), &mut text);
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
