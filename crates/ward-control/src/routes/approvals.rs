//! Approval requests over HTTP: listing, showing, and the approvers'
//! decisions (made in [`crate::broker::approval`]).

use axum::Json as JsonOut;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::IntoParams;
use ward_api::{Approval, ApprovalDecision, ApprovalList, DecideApproval, ErrorBody};
use ward_model::roles::Permission;
use ward_store::{ApprovalRow, DecisionRow, StoreError};

use crate::AppState;
use crate::auth::Principal;
use crate::broker::approval;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::paging::{page, parse_limit};
use crate::util::{now_ms, rfc3339};

/// The wire form of an approval.
pub fn approval_out(row: ApprovalRow, decisions: Vec<DecisionRow>, now: i64) -> Approval {
    let list = |text: &str| serde_json::from_str::<Vec<String>>(text).unwrap_or_default();
    let status = if matches!(row.status.as_str(), "pending" | "approved") && row.expires_at <= now {
        "expired".to_owned()
    } else {
        row.status.clone()
    };
    Approval {
        id: row.id,
        tenant: row.tenant_id,
        kind: row.kind,
        agent_id: row.agent_id,
        owner: row.owner,
        requested_by: row.requested_by,
        scopes: list(&row.scopes),
        duration: row.duration.max(0) as u64,
        action: row
            .action
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok()),
        action_hash: row.action_hash,
        required_approvals: row.required.max(0) as u32,
        decisions: decisions
            .into_iter()
            .map(|d| ApprovalDecision {
                approver: d.approver,
                decision: d.decision,
                reason: d.reason,
                mfa: d.mfa,
                decided_at: d.decided_at,
            })
            .collect(),
        status,
        reasons: serde_json::from_str(&row.reasons).unwrap_or_default(),
        correlation_id: row.correlation_id,
        created_at: row.created_at,
        expires_at: rfc3339(row.expires_at * 1000),
        approved_scopes: row.approved_scopes.as_deref().map(list),
        approved_duration: row.approved_duration.map(|d| d.max(0) as u64),
    }
}

/// Query of `GET /v1/approvals`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApprovalQuery {
    /// `pending`, `approved`, `denied` or `used`.
    status: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 500 (default 100).
    limit: Option<String>,
}

fn reader(principal: &Principal) -> Result<&str, ApiError> {
    principal
        .require(Permission::Approve)
        .or_else(|_| principal.require(Permission::ReadAudit))
}

/// List the tenant's approval requests, newest first.
#[utoipa::path(get, path = "/v1/approvals", tag = "approvals", params(ApprovalQuery), security(("bearer" = [])),
    responses((status = 200, body = ApprovalList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ApprovalQuery>,
) -> Result<JsonOut<ApprovalList>, ApiError> {
    let tenant = reader(&principal)?.to_owned();
    let limit = parse_limit(query.limit.as_deref(), 100, 500)?;
    if let Some(status) = &query.status
        && !["pending", "approved", "denied", "used"].contains(&status.as_str())
    {
        return Err(ApiError::invalid(
            "status",
            format!("unknown status `{status}`; use pending, approved, denied or used"),
        ));
    }
    let rows = state
        .store
        .read(move |conn| {
            let rows = ward_store::list_approvals(
                conn,
                &tenant,
                query.status.as_deref(),
                query.cursor.as_deref(),
                limit + 1,
            )?;
            rows.into_iter()
                .map(|row| {
                    let decisions = ward_store::decisions(conn, &row.id)?;
                    Ok((row, decisions))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await?;
    let now = now_ms() / 1000;
    let (approvals, next_cursor) = page(
        rows,
        limit,
        |(row, decisions)| approval_out(row, decisions, now),
        |a: &Approval| a.id.clone(),
    );
    Ok(JsonOut(ApprovalList {
        approvals,
        next_cursor,
    }))
}

/// Show one approval request with its decisions.
#[utoipa::path(get, path = "/v1/approvals/{id}", tag = "approvals", params(("id" = String, Path, description = "approval id")),
    security(("bearer" = [])),
    responses((status = 200, body = Approval), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<JsonOut<Approval>, ApiError> {
    let tenant = reader(&principal)?.to_owned();
    let wanted = id.clone();
    let found = state
        .store
        .read(move |conn| {
            let Some(row) = ward_store::approval(conn, Some(&tenant), &wanted)? else {
                return Ok(None);
            };
            let decisions = ward_store::decisions(conn, &row.id)?;
            Ok(Some((row, decisions)))
        })
        .await?;
    let (row, decisions) = found.ok_or_else(|| ApiError::not_found("approval", &id))?;
    Ok(JsonOut(approval_out(row, decisions, now_ms() / 1000)))
}

/// Approve a request: a different person from the requester and the
/// agent's owner, signed in with multi-factor authentication.
#[utoipa::path(post, path = "/v1/approvals/{id}/approve", tag = "approvals", request_body = DecideApproval,
    params(("id" = String, Path, description = "approval id")), security(("bearer" = [])),
    responses((status = 200, body = Approval), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<DecideApproval>,
) -> Result<JsonOut<Approval>, ApiError> {
    let (row, decisions) = approval::decide(&state, &principal, id, true, body).await?;
    Ok(JsonOut(approval_out(row, decisions, now_ms() / 1000)))
}

/// Deny a request (same rules as approving).
#[utoipa::path(post, path = "/v1/approvals/{id}/deny", tag = "approvals", request_body = DecideApproval,
    params(("id" = String, Path, description = "approval id")), security(("bearer" = [])),
    responses((status = 200, body = Approval), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn deny(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<DecideApproval>,
) -> Result<JsonOut<Approval>, ApiError> {
    let (row, decisions) = approval::decide(&state, &principal, id, false, body).await?;
    Ok(JsonOut(approval_out(row, decisions, now_ms() / 1000)))
}
