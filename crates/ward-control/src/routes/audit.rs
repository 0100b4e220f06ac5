//! Reading the audit log, filtered and paginated.

use axum::Json as JsonOut;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use ward_api::{AuditEntry, AuditPage, ErrorBody};
use ward_store::AuditFilter;

use crate::AppState;
use crate::auth::{Credential, Principal};
use crate::error::ApiError;
use crate::extract::Query;
use crate::paging::{page, parse_limit};
use crate::util::parse_rfc3339;
use ward_model::roles::Permission;

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries at or after this RFC 3339 time.
    since: Option<String>,
    /// Entries before this RFC 3339 time.
    until: Option<String>,
    /// Entries where this agent acted or was acted upon.
    agent: Option<String>,
    /// Entries by this actor (e.g. `admin:tok_...`, `agent:agt_...`).
    actor: Option<String>,
    /// Entries with this action (e.g. `token.issue`).
    action: Option<String>,
    /// Entries of this correlation id.
    correlation_id: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
}

/// Read the audit log: a tenant admin sees its tenant, the bootstrap token all.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<AuditQuery>,
) -> Result<JsonOut<AuditPage>, ApiError> {
    let time = |field: &str, value: Option<String>| -> Result<Option<String>, ApiError> {
        value
            .map(|text| {
                parse_rfc3339(&text).ok_or_else(|| {
                    ApiError::invalid(
                        field,
                        format!("`{text}` is not an RFC 3339 time such as `2026-01-17T14:23:05Z`"),
                    )
                })
            })
            .transpose()
    };
    let after_seq = query
        .cursor
        .map(|text| {
            text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::invalid(
                    "cursor",
                    format!("`{text}` is not a cursor from a previous page"),
                )
            })
        })
        .transpose()?;
    let limit = parse_limit(query.limit.as_deref(), 100, 1000)?;
    let filter = AuditFilter {
        tenant: match principal.credential {
            Credential::Bootstrap => None,
            _ => Some(principal.require(Permission::ReadAudit)?.to_owned()),
        },
        since: time("since", query.since)?,
        until: time("until", query.until)?,
        agent: query.agent,
        actor: query.actor,
        action: query.action,
        correlation_id: query.correlation_id,
        after_seq,
        limit: limit + 1,
    };
    let rows = state
        .store
        .read(move |conn| ward_store::query_audit(conn, &filter))
        .await?;
    let (entries, next_cursor) = page(rows, limit, AuditEntry::from, |e: &AuditEntry| {
        e.seq.to_string()
    });
    Ok(JsonOut(AuditPage {
        entries,
        next_cursor,
    }))
}
