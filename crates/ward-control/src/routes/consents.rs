//! Consent: the agent's owner consents to (or refuses) the scopes of
//! features the matrix marks `consent: required`, on the device; the broker
//! refuses such scopes until a consent covers them. Records are never
//! deleted.

use axum::Json as JsonOut;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use ward_api::{Consent, ConsentList, ErrorBody, RecordConsent};
use ward_model::lifecycle::AgentState;
use ward_model::roles::Permission;
use ward_model::scope::Scope;
use ward_store::{ConsentRow, Store};

use crate::AppState;
use crate::audit::{DraftExt, entry};
use crate::auth::Principal;
use crate::error::{ApiError, correlation_id};
use crate::extract::{Json, Query};
use crate::routes::agents::parse_limit;
use crate::routes::device;
use crate::routes::text_field;
use crate::util::{new_id, now_ms, rfc3339};

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

/// Record the owner's consent or refusal, sent by the agent with a `DPoP`
/// proof of its device key.
#[utoipa::path(post, path = "/v1/consents", tag = "consent", request_body = RecordConsent,
    params(("DPoP" = String, Header, description = "RFC 9449 proof signed by the enrolled device key")),
    responses((status = 201, body = Consent), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn record(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<RecordConsent>,
) -> Result<(StatusCode, JsonOut<Consent>), ApiError> {
    super::id_field("agent_id", &body.agent_id)?;
    let now = now_ms();
    let denial = entry(
        &format!("agent:{}", body.agent_id),
        "consent.record",
        &body.agent_id,
    );
    let agent =
        match device::authenticate(&state, &headers, &body.agent_id, "/v1/consents", now / 1000)
            .await
        {
            Ok(agent) => agent,
            Err((error, tenant)) => {
                return Err(state.deny(denial.tenant(tenant.as_deref()), error).await);
            }
        };
    if body.decision != "granted" && body.decision != "refused" {
        return Err(ApiError::invalid(
            "decision",
            format!(
                "unknown decision `{}`; use `granted` or `refused`",
                body.decision
            ),
        ));
    }
    text_field("text_version", &body.text_version, 64)?;
    if body.scopes.is_empty() || body.scopes.len() > 64 {
        return Err(ApiError::invalid(
            "scopes",
            "`scopes` must list 1 to 64 scopes",
        ));
    }
    let mut scopes = Vec::with_capacity(body.scopes.len());
    for (index, text) in body.scopes.iter().enumerate() {
        let scope: Scope = text.parse().map_err(|e: ward_model::scope::ScopeError| {
            ApiError::invalid(format!("scopes[{index}]"), e.to_string())
        })?;
        scopes.push(scope.to_string());
    }
    let agent = &agent.row;
    if matches!(agent.state, AgentState::Revoked | AgentState::Uninstalled) {
        let error = ApiError::forbidden(
            "agent_not_active",
            format!("agent `{}` is {}", agent.id, agent.state),
        );
        return Err(state
            .deny(denial.tenant(Some(&agent.tenant_id)), error)
            .await);
    }
    let row = ConsentRow {
        id: new_id("con")?,
        tenant_id: agent.tenant_id.clone(),
        agent_id: agent.id.clone(),
        owner: agent.owner.clone(),
        scopes: serde_json::to_string(&scopes).map_err(ApiError::internal)?,
        decision: body.decision.clone(),
        text_version: body.text_version.clone(),
        device_id: agent.host_id.clone(),
        correlation_id: correlation_id(),
        recorded_at: rfc3339(now),
    };
    let draft = entry(&format!("user:{}", agent.owner), "consent.record", &row.id)
        .tenant(Some(&agent.tenant_id))
        .reason(format!("consent {}", body.decision))
        .details(json!({
            "agent_id": agent.id, "scopes": scopes, "decision": body.decision,
            "text_version": body.text_version, "device_id": agent.host_id,
        }));
    let stored = row.clone();
    state
        .store
        .write(move |ctx| {
            ward_store::insert_consent(ctx.conn(), &stored)?;
            ctx.audit(draft);
            Ok(())
        })
        .await?;
    Ok((StatusCode::CREATED, JsonOut(consent_out(row))))
}

/// Query of `GET /v1/consents`.
#[derive(Debug, Deserialize, IntoParams)]
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

/// Checks that the owner's latest consent covers every scope in `needed`
/// (index in the request, scope). A refusal, no record, or a scope wider
/// than what was consented to answers 403 `consent_required`.
pub async fn check(
    store: &Store,
    agent_id: &str,
    needed: &[(usize, Scope)],
) -> Result<Option<String>, ApiError> {
    if needed.is_empty() {
        return Ok(None);
    }
    let wanted = agent_id.to_owned();
    let latest = store
        .read(move |conn| ward_store::latest_consent(conn, &wanted))
        .await?;
    let refuse = |index: usize, message: String| {
        Err(ApiError::forbidden("consent_required", message)
            .field(format!("requested_scopes[{index}]")))
    };
    let Some(record) = latest else {
        let (index, scope) = &needed[0];
        return refuse(
            *index,
            format!("scope `{scope}` needs the owner's consent; none is recorded"),
        );
    };
    if record.decision != "granted" {
        let (index, scope) = &needed[0];
        return refuse(
            *index,
            format!(
                "the owner refused consent (`{}`); scope `{scope}` cannot be granted",
                record.id
            ),
        );
    }
    let consented: Vec<Scope> = serde_json::from_str::<Vec<String>>(&record.scopes)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    for (index, scope) in needed {
        if !consented.iter().any(|c| c.covers(scope)) {
            return refuse(
                *index,
                format!(
                    "scope `{scope}` is wider than the owner consented to; ask for consent again"
                ),
            );
        }
    }
    Ok(Some(record.id))
}
