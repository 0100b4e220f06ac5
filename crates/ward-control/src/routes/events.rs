//! The events devices ship: `POST /v1/events` (the decision is
//! [`crate::broker::events`]) and reading them back, filtered and paged,
//! in the order the server received them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json as JsonOut;
use axum::extract::{Request, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use ward_api::{
    AgentEvent, EVENT_ACTION_MAX_BYTES, EVENT_BATCH_MAX_BYTES, EVENT_USER_MAX_BYTES, ErrorBody,
    EventBatch, EventPage, EventsAccepted, StoredEvent,
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
    /// Events naming this user.
    user: Option<String>,
    /// Events of this action, e.g. `files:write`.
    action: Option<String>,
    /// Events whose target or reason contains this text (1 to 256 bytes).
    q: Option<String>,
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
        ..filter_of(
            tenant,
            Filters {
                agent: query.agent,
                correlation_id: query.correlation_id,
                feature: query.feature,
                result: query.result,
                class: query.class,
                user: query.user,
                action: query.action,
                q: query.q,
            },
        )?
    };
    let read = filter.clone();
    let rows = state
        .store
        .read(move |conn| ward_store::query_agent_events(conn, &read))
        .await?;
    let (rows, next_cursor) = page(
        rows,
        limit,
        |row| row,
        |row: &AgentEventRow| row.id.to_string(),
    );
    audit_read(&state, &principal, "events.read", &filter, rows.len()).await?;
    let events = rows
        .into_iter()
        .map(|row| stored_event(&state, row))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(JsonOut(EventPage {
        events,
        next_cursor,
    }))
}

/// The filters `GET /v1/events` and its stream share.
struct Filters {
    agent: Option<String>,
    correlation_id: Option<String>,
    feature: Option<String>,
    result: Option<String>,
    class: Option<String>,
    user: Option<String>,
    action: Option<String>,
    q: Option<String>,
}

/// A label: 1 to `max` bytes without control characters.
fn label(max: usize) -> impl Fn(&str) -> bool {
    move |v: &str| !v.is_empty() && v.len() <= max && !v.chars().any(char::is_control)
}

/// The store filter of `tenant` for `filters`, each checked.
fn filter_of(tenant: String, filters: Filters) -> Result<AgentEventFilter, ApiError> {
    Ok(AgentEventFilter {
        tenant,
        agent: checked("agent", filters.agent, |v| id_field("agent", v).is_ok())?,
        correlation_id: checked(
            "correlation_id",
            filters.correlation_id,
            ward_model::audit::valid_correlation_id,
        )?,
        feature: checked(
            "feature",
            filters.feature,
            ward_model::matrix::is_valid_name,
        )?,
        result: checked("result", filters.result, ward_model::matrix::is_valid_name)?,
        class: checked("class", filters.class, |v| {
            matches!(v, "audit" | "telemetry")
        })?,
        user: checked("user", filters.user, label(EVENT_USER_MAX_BYTES))?,
        action: checked("action", filters.action, label(EVENT_ACTION_MAX_BYTES))?,
        text: checked("q", filters.q, label(256))?,
        ..AgentEventFilter::default()
    })
}

/// Records who read which events, with what filter and how many: every
/// read of the agents' logs is itself in the audit log.
async fn audit_read(
    state: &AppState,
    principal: &Principal,
    action: &str,
    filter: &AgentEventFilter,
    count: usize,
) -> Result<(), ApiError> {
    let draft = entry(&principal.actor(), action, "events")
        .tenant(Some(&filter.tenant))
        .details(json!({
            "filter": {
                "agent": filter.agent, "correlation_id": filter.correlation_id,
                "feature": filter.feature, "result": filter.result, "class": filter.class,
                "user": filter.user, "action": filter.action, "q": filter.text,
                "since_ms": filter.since_ms, "until_ms": filter.until_ms, "after": filter.after_id,
            },
            "count": count,
        }));
    state
        .store
        .write(move |ctx| {
            ctx.audit(draft);
            Ok(())
        })
        .await?;
    Ok(())
}

/// `GET /v1/events/stream` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Events of this agent.
    agent: Option<String>,
    /// Events of this correlation id.
    correlation_id: Option<String>,
    /// Events of this feature.
    feature: Option<String>,
    /// Events with this result.
    result: Option<String>,
    /// `audit` or `telemetry`.
    class: Option<String>,
    /// Events naming this user.
    user: Option<String>,
    /// Events of this action.
    action: Option<String>,
    /// Events whose target or reason contains this text.
    q: Option<String>,
}

/// Follow the events devices ship, live, as server-sent events (`event:
/// event`, `id`: the event's position, `data`: the stored event, redacted),
/// from now or after `Last-Event-ID`. Opening one is audited
/// (`events.tail`, with the filter).
#[utoipa::path(get, path = "/v1/events/stream", tag = "events", params(StreamQuery), security(("bearer" = [])),
    responses((status = 200, description = "Server-sent events", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    principal: Principal,
    headers: axum::http::HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let tenant = principal.require(Permission::ReadAudit)?.to_owned();
    let mut filter = filter_of(
        tenant.clone(),
        Filters {
            agent: query.agent,
            correlation_id: query.correlation_id,
            feature: query.feature,
            result: query.result,
            class: query.class,
            user: query.user,
            action: query.action,
            q: query.q,
        },
    )?;
    let after = match super::watch::last_event_id(&headers)? {
        Some(after) => after,
        None => {
            state
                .store
                .read(move |conn| ward_store::last_agent_event(conn, &tenant))
                .await?
        }
    };
    filter.after_id = Some(after);
    filter.limit = 500;
    audit_read(&state, &principal, "events.tail", &filter, 0).await?;
    let stopped = state.streams_stopped();
    let tail = Tail {
        signal: state.agent_events.subscribe(),
        state,
        filter,
        buffer: VecDeque::new(),
    };
    let events = futures_util::stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        Some((Ok(event), tail))
    })
    .take_until(stopped);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A live tail: stored events matching the filter after its position,
/// read from the database (the signal only wakes it), in received order.
struct Tail {
    state: AppState,
    filter: AgentEventFilter,
    signal: tokio::sync::watch::Receiver<u64>,
    buffer: VecDeque<AgentEventRow>,
}

impl Tail {
    /// The next event, waiting for one; `None` ends the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(row) = self.buffer.pop_front() {
                self.filter.after_id = Some(row.id);
                let id = row.id.to_string();
                let Ok(event) = stored_event(&self.state, row) else {
                    continue;
                };
                let data = serde_json::to_string(&event).ok()?;
                return Some(SseEvent::default().id(id).event("event").data(data));
            }
            // Mark the signal seen before reading, so a batch stored after
            // the read wakes the wait below.
            self.signal.borrow_and_update();
            let filter = self.filter.clone();
            match self
                .state
                .store
                .read(move |conn| {
                    // The newest position first: every event up to it was
                    // committed before the query runs, so if none matches,
                    // the tail moves past them all and never scans them
                    // again (a rare filter stays cheap however long it runs).
                    let newest = ward_store::last_agent_event(conn, &filter.tenant)?;
                    Ok((newest, ward_store::query_agent_events(conn, &filter)?))
                })
                .await
            {
                Ok((_, rows)) if !rows.is_empty() => self.buffer.extend(rows),
                Ok((newest, _)) => {
                    let after = self.filter.after_id.unwrap_or(0);
                    self.filter.after_id = Some(after.max(newest));
                    if self.signal.changed().await.is_err() {
                        return None;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "event tail cannot read events; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

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

/// A stored event as it is read back: `target` and `reason` redacted
/// again with the server's redactor (the edge redacted them; a device with
/// older rules, or a client that is not Ward's runtime, may not have).
fn stored_event(state: &AppState, row: AgentEventRow) -> Result<StoredEvent, ApiError> {
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
            target: state.redactor.redact(&row.target).into_owned(),
            result: row.result,
            reason: row.reason.map(|r| state.redactor.redact(&r).into_owned()),
            duration_ms,
            sampling: row.sampling,
        },
        tenant: row.tenant_id,
        received_at: row.received_at,
    })
}
