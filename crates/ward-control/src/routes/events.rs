//! The events devices ship: `POST /v1/events` (the decision is
//! [`crate::broker::events`]) and reading them back, filtered and paged,
//! in the order the server received them.

use axum::Json as JsonOut;
use axum::extract::{Request, State};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use ward_api::{
    AgentEvent, EVENT_BATCH_MAX_BYTES, ErrorBody, EventBatch, EventPage, EventsAccepted,
    StoredEvent,
};
use ward_model::roles::Permission;
use ward_store::{AgentEventFilter, AgentEventRow};

use crate::AppState;
use crate::audit::{DraftExt, entry};
use crate::auth::Principal;
use crate::broker::events;
use crate::error::ApiError;
use crate::extract::{Query, dpop_proof, json_body};
use crate::fields::id_field;
use crate::paging::{page, parse_limit};

/// Ship a batch of a device's events (1 to 1000, at most 4 MiB of JSON).
/// The request must carry a `DPoP` header: a proof signed by the enrolled
/// device key of `agent_id`. Every event must name that agent and that
/// key's thumbprint (403 naming the event otherwise; nothing of the batch
/// is stored). An event the server already holds (same agent, device and
/// `seq`) is not stored again and is counted in `duplicates`, so resending
/// after a crash is safe. Agents that are quarantined, revoked or
/// uninstalled may still ship.
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = EventBatch,
    params(("DPoP" = String, Header, description = "RFC 9449 proof signed by the enrolled device key")),
    responses((status = 200, body = EventsAccepted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 408, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody)))]
pub async fn ship(
    State(state): State<AppState>,
    request: Request,
) -> Result<JsonOut<EventsAccepted>, ApiError> {
    let headers = request.headers().clone();
    let batch: EventBatch = json_body(request, EVENT_BATCH_MAX_BYTES).await?;
    id_field("agent_id", &batch.agent_id)?;
    let denial = entry(
        &format!("agent:{}", batch.agent_id),
        "events.ship",
        &batch.agent_id,
    )
    .details(json!({"events": batch.events.len()}));
    match events::accept(&state, dpop_proof(&headers), batch).await {
        Ok(accepted) => Ok(JsonOut(accepted)),
        Err((error, tenant)) => Err(state.deny(denial.tenant(tenant.as_deref()), error).await),
    }
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events of this agent (another tenant's agent matches nothing).
    agent: Option<String>,
    /// Events of this correlation id.
    correlation_id: Option<String>,
    /// Events of this feature.
    feature: Option<String>,
    /// Events with this result (e.g. `deny`).
    result: Option<String>,
    /// `audit` or `telemetry`.
    class: Option<String>,
    /// Events whose `ts` is at or after this RFC 3339 time.
    since: Option<String>,
    /// Events whose `ts` is before this RFC 3339 time.
    until: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Read the events devices shipped to the caller's tenant, oldest received
/// first (the order is the server's: a device that was offline for a day
/// ships its events after others received meanwhile; `since`/`until`
/// select by the event's own `ts`). Needs the right to read the audit log.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery), security(("bearer" = [])),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<EventsQuery>,
) -> Result<JsonOut<EventPage>, ApiError> {
    let tenant = principal.require(Permission::ReadAudit)?.to_owned();
    let limit = parse_limit(query.limit.as_deref(), 100, 1000)?;
    let filter = AgentEventFilter {
        tenant,
        agent: checked("agent", query.agent, |v| id_field("agent", v).is_ok())?,
        correlation_id: checked(
            "correlation_id",
            query.correlation_id,
            ward_model::audit::valid_correlation_id,
        )?,
        feature: checked("feature", query.feature, ward_model::matrix::is_valid_name)?,
        result: checked("result", query.result, ward_model::matrix::is_valid_name)?,
        class: checked("class", query.class, |v| matches!(v, "audit" | "telemetry"))?,
        since_ms: time("since", query.since)?,
        until_ms: time("until", query.until)?,
        after_id: query
            .cursor
            .map(|text| {
                text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    ApiError::invalid(
                        "cursor",
                        format!("`{text}` is not a cursor from a previous page"),
                    )
                })
            })
            .transpose()?,
        limit: limit + 1,
    };
    let rows = state
        .store
        .read(move |conn| ward_store::query_agent_events(conn, &filter))
        .await?;
    let (rows, next_cursor) = page(
        rows,
        limit,
        |row| row,
        |row: &AgentEventRow| row.id.to_string(),
    );
    let events = rows
        .into_iter()
        .map(stored_event)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(JsonOut(EventPage {
        events,
        next_cursor,
    }))
}

/// A filter value, kept if `valid` says it could match a stored event;
/// otherwise 400 naming the parameter.
fn checked(
    field: &str,
    value: Option<String>,
    valid: impl Fn(&str) -> bool,
) -> Result<Option<String>, ApiError> {
    match value {
        Some(text) if !valid(&text) => Err(ApiError::invalid(
            field,
            format!(
                "`{text}` is not a valid `{field}`; see the API description of `GET /v1/events`"
            ),
        )),
        other => Ok(other),
    }
}

/// An RFC 3339 time parameter as unix milliseconds.
fn time(field: &str, value: Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            ward_model::timestamp::parse_rfc3339(&text).ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!("`{text}` is not an RFC 3339 time such as `2026-01-17T14:23:05Z`"),
                )
            })
        })
        .transpose()
}

fn stored_event(row: AgentEventRow) -> Result<StoredEvent, ApiError> {
    let id = row.id;
    let corrupt = |what: &str| ApiError::internal(format!("stored event {id} has a bad {what}"));
    let seq = u64::try_from(row.seq).map_err(|_| corrupt("seq"))?;
    let duration_ms = row
        .duration_ms
        .map(u64::try_from)
        .transpose()
        .map_err(|_| corrupt("duration_ms"))?;
    Ok(StoredEvent {
        event: AgentEvent {
            seq,
            ts: row.ts,
            correlation_id: row.correlation_id,
            agent_id: row.agent_id,
            user_id: row.user_id,
            device_id: row.device_id,
            class: row.class,
            feature: row.feature,
            action: row.action,
            target: row.target,
            result: row.result,
            reason: row.reason,
            duration_ms,
            sampling: row.sampling,
        },
        tenant: row.tenant_id,
        received_at: row.received_at,
    })
}
