//! Consent records over HTTP: recording one (the decision is
//! [`crate::broker::consent`]) and listing them.

use axum::Json as JsonOut;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use ward_api::{Consent, ConsentList, ErrorBody, RecordConsent};
use ward_model::roles::Permission;
use ward_store::ConsentRow;

use crate::AppState;
use crate::auth::{Caller, Principal};
use crate::broker::consent;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::paging::parse_limit;

fn consent_out(row: ConsentRow) -> Consent {
    Consent {
        id: row.id,
        tenant: row.tenant_id,
        agent_id: row.agent_id,
        owner: row.owner,
        scopes: serde_json::from_str(&row.scopes).unwrap_or_default(),
        decision: row.decision,
        text_version: row.text_version,
        device_id: row.device_id,
        correlation_id: row.correlation_id,
        recorded_at: row.recorded_at,
    }
}

/// Record the owner's consent or refusal for scopes of the agent's profile:
/// the owner signed in (matched by verified email), or an admin of the
/// agent's tenant acting for them with a `reason`. A record that no longer
/// covers what the owner had granted withdraws consent: the agent's tokens
/// issued until then are revoked.
#[utoipa::path(post, path = "/v1/consents", tag = "consent", request_body = RecordConsent,
    security(("bearer" = [])),
    responses((status = 201, body = Consent), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn record(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<RecordConsent>,
) -> Result<(StatusCode, JsonOut<Consent>), ApiError> {
    let row = consent::record(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, JsonOut(consent_out(row))))
}

/// Query of `GET /v1/consents`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsentQuery {
    /// Only this agent's records.
    agent: Option<String>,
    /// Most records, 1 to 1000 (default 100).
    limit: Option<String>,
}

/// List consent records, newest first.
#[utoipa::path(get, path = "/v1/consents", tag = "consent", params(ConsentQuery), security(("bearer" = [])),
    responses((status = 200, body = ConsentList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ConsentQuery>,
) -> Result<JsonOut<ConsentList>, ApiError> {
    let tenant = principal
        .require(Permission::ManageConsent)
        .or_else(|_| principal.require(Permission::ReadAudit))?
        .to_owned();
    let limit = parse_limit(query.limit.as_deref(), 100, 1000)?;
    let rows = state
        .store
        .read(move |conn| ward_store::list_consents(conn, &tenant, query.agent.as_deref(), limit))
        .await?;
    Ok(JsonOut(ConsentList {
        consents: rows.into_iter().map(consent_out).collect(),
    }))
}
