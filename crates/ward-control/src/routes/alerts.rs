//! Alerts (`GET /v1/alerts`, `/v1/alerts/{id}`), the dead-letter list of
//! notifications (`GET /v1/alerts/failed`, `POST
//! /v1/alerts/failed/{id}/retry`) and silences (`/v1/silences`). Reading
//! needs the right to read the audit log; retrying and silencing, the
//! right to engage kill switches (both change who hears of an incident),
//! and both are audited.

use axum::Json as JsonOut;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use ward_api::{
    AgentBaseline, AlertPage, AlertView, CreateSilence, ErrorBody, FailedNotification,
    FailedNotifications, SilenceList, SilenceView,
};
use ward_model::roles::Permission;
use ward_model::timestamp::rfc3339;
use ward_store::SilenceRow;

use crate::AppState;
use crate::alerts::{deliver::view, silence};
use crate::audit::{DraftExt, entry};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::paging::{page, parse_limit};
use crate::util::{new_id, now_ms};

/// The longest silence, seconds.
const MAX_SILENCE_SECS: u64 = 30 * 24 * 3600;

/// `GET /v1/alerts` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// `firing` (default) or `all`.
    state: Option<String>,
    /// 1 to 500 (default 100).
    limit: Option<String>,
    /// From a previous page's `next_cursor`.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", params(AlertsQuery), security(("bearer" = [])),
    responses((status = 200, body = AlertPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<AlertsQuery>,
) -> Result<JsonOut<AlertPage>, ApiError> {
    let tenant = principal.require(Permission::ReadAudit)?.to_owned();
    let firing = match query.state.as_deref() {
        None | Some("firing") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::invalid(
                "state",
                format!("`{other}` is not a state; use `firing` or `all`"),
            ));
        }
    };
    let limit = parse_limit(query.limit.as_deref(), 100, 500)?;
    let before = query
        .cursor
        .map(|text| {
            text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::invalid(
                    "cursor",
                    format!("`{text}` is not a cursor from a previous page"),
                )
            })
        })
        .transpose()?;
    let rows = state
        .store
        .read(move |conn| ward_store::list_alerts(conn, &tenant, firing, before, limit + 1))
        .await?;
    let public_url = state.config.public_url.clone();
    let (alerts, next_cursor) = page(
        rows,
        limit,
        |row| view(&row, &public_url),
        |alert: &AlertView| alert.id.to_string(),
    );
    Ok(JsonOut(AlertPage {
        alerts,
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/alerts/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Alert id")),
    responses((status = 200, body = AlertView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<JsonOut<AlertView>, ApiError> {
    let tenant = principal.require(Permission::ReadAudit)?.to_owned();
    let missing = || ApiError::not_found("alert", &id);
    let number: i64 = id.parse().map_err(|_| missing())?;
    let row = state
        .store
        .read(move |conn| ward_store::alert(conn, &tenant, number))
        .await?
        .ok_or_else(missing)?;
    Ok(JsonOut(view(&row, &state.config.public_url)))
}

#[utoipa::path(get, path = "/v1/alerts/failed", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = FailedNotifications), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn failed(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<JsonOut<FailedNotifications>, ApiError> {
    let tenant = principal.require(Permission::ReadAudit)?.to_owned();
    let rows = state
        .store
        .read(move |conn| ward_store::notifications(conn, &tenant, "failed", 500))
        .await?;
    let public_url = &state.config.public_url;
    let notifications = rows
        .into_iter()
        .map(|(notification, alert)| FailedNotification {
            id: notification.id,
            receiver: notification.receiver,
            transition: notification.transition,
            attempts: notification.attempts,
            last_error: notification.last_error.unwrap_or_default(),
            queued_at: rfc3339(notification.created_ms),
            failed_at: rfc3339(notification.done_ms.unwrap_or(notification.next_ms)),
            alert: view(&alert, public_url),
        })
        .collect();
    Ok(JsonOut(FailedNotifications { notifications }))
}

#[utoipa::path(post, path = "/v1/alerts/failed/{id}/retry", tag = "alerts", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Failed notification id")),
    responses((status = 202, description = "Queued again, due now"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = principal.require(Permission::KillSwitch)?.to_owned();
    let missing = || ApiError::not_found("failed notification", &id);
    let number: i64 = id.parse().map_err(|_| missing())?;
    let draft = entry(
        &principal.actor(),
        "alert.retry",
        &format!("notification:{number}"),
    )
    .tenant(Some(&tenant));
    let requeued = state
        .store
        .write(move |ctx| {
            let requeued = ward_store::requeue_notification(ctx.conn(), &tenant, number, now_ms())?;
            if requeued {
                ctx.audit(draft);
            }
            Ok(requeued)
        })
        .await?;
    if !requeued {
        return Err(missing());
    }
    state.alerting.wake();
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/v1/silences", tag = "alerts", request_body = CreateSilence, security(("bearer" = [])),
    responses((status = 201, body = SilenceView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn create_silence(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateSilence>,
) -> Result<(StatusCode, JsonOut<SilenceView>), ApiError> {
    let tenant = principal.require(Permission::KillSwitch)?.to_owned();
    if let Some(problem) = silence::problem(&body.matchers) {
        return Err(ApiError::invalid("matchers", problem));
    }
    if !(1..=MAX_SILENCE_SECS).contains(&body.duration_secs) {
        return Err(ApiError::invalid(
            "duration_secs",
            format!("use 1 to {MAX_SILENCE_SECS} seconds (30 days)"),
        ));
    }
    if body.comment.trim().is_empty() || body.comment.len() > 1024 {
        return Err(ApiError::invalid("comment", "say why, in 1 to 1024 bytes"));
    }
    let now = now_ms();
    let duration_ms = i64::try_from(body.duration_secs * 1000).unwrap_or(i64::MAX);
    let row = SilenceRow {
        id: new_id("sil")?,
        tenant_id: tenant.clone(),
        matchers: serde_json::to_string(&body.matchers).unwrap_or_else(|_| "{}".into()),
        starts_ms: now,
        ends_ms: now.saturating_add(duration_ms),
        created_by: principal.actor(),
        comment: body.comment,
        created_ms: now,
    };
    let draft = entry(&principal.actor(), "silence.create", &row.id)
        .tenant(Some(&tenant))
        .reason(row.comment.clone())
        .details(json!({"matchers": body.matchers, "ends_at": rfc3339(row.ends_ms)}));
    let stored = row.clone();
    state
        .store
        .write(move |ctx| {
            ward_store::insert_silence(ctx.conn(), &stored)?;
            ctx.audit(draft);
            Ok(())
        })
        .await?;
    Ok((StatusCode::CREATED, JsonOut(silence_view(row))))
}

#[utoipa::path(get, path = "/v1/silences", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = SilenceList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn silences(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<JsonOut<SilenceList>, ApiError> {
    let tenant = principal.require(Permission::ReadAudit)?.to_owned();
    let rows = state
        .store
        .read(move |conn| ward_store::silences(conn, Some(&tenant), now_ms()))
        .await?;
    Ok(JsonOut(SilenceList {
        silences: rows.into_iter().map(silence_view).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/silences/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Silence id")),
    responses((status = 204, description = "Ended"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn expire_silence(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = principal.require(Permission::KillSwitch)?.to_owned();
    let draft = entry(&principal.actor(), "silence.expire", &id).tenant(Some(&tenant));
    let wanted = id.clone();
    let ended = state
        .store
        .write(move |ctx| {
            let ended = ward_store::expire_silence(ctx.conn(), &tenant, &wanted, now_ms())?;
            if ended {
                ctx.audit(draft);
            }
            Ok(ended)
        })
        .await?;
    if ended {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("silence in force", &id))
    }
}

#[utoipa::path(get, path = "/v1/agents/{id}/baseline", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = AgentBaseline), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn baseline(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<JsonOut<AgentBaseline>, ApiError> {
    let tenant = principal.require(Permission::ReadAudit)?.to_owned();
    Ok(JsonOut(
        crate::alerts::history::show(&state, tenant, &id).await?,
    ))
}

fn silence_view(row: SilenceRow) -> SilenceView {
    SilenceView {
        matchers: serde_json::from_str(&row.matchers).unwrap_or_default(),
        id: row.id,
        starts_at: rfc3339(row.starts_ms),
        ends_at: rfc3339(row.ends_ms),
        created_by: row.created_by,
        comment: row.comment,
    }
}
