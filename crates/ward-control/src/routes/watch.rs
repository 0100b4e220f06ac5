//! The push stream gateways follow: `GET /v1/watch` (server-sent events,
//! resumable with `Last-Event-ID`) and the snapshot to start from.
//!
//! INVARIANT: events are read from the database in sequence order; the
//! in-process signal only wakes readers, so a reader never skips an event
//! committed before the one it sends.

use axum::Json as JsonOut;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use ward_api::{ErrorBody, Revocation, WatchSnapshot};
use ward_model::enforcement::{Flags, KillSwitches};
use ward_model::roles::Permission;
use ward_store::EventRow;

use crate::AppState;
use crate::auth::{Credential, Principal};
use crate::error::ApiError;
use crate::util::{now_ms, rfc3339};

fn watcher_tenant(principal: &Principal) -> Result<Option<String>, ApiError> {
    Ok(match principal.credential {
        Credential::Bootstrap => None,
        _ => Some(principal.require(Permission::ReadAgents)?.to_owned()),
    })
}

/// The state to start following the stream from.
#[utoipa::path(get, path = "/v1/watch/snapshot", tag = "watch", security(("bearer" = [])),
    responses((status = 200, body = WatchSnapshot), (status = 401, body = ErrorBody)))]
pub async fn snapshot(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<JsonOut<WatchSnapshot>, ApiError> {
    let tenant = watcher_tenant(&principal)?;
    let horizon = now_ms() - (state.config.max_token_secs as i64 + 300) * 1000;
    let wanted = tenant.clone();
    let (seq, rows, kills, flags) = state
        .store
        .read(move |conn| {
            // The sequence number first: anything after it is in the stream.
            // Switches and flags come from the database after it, not from
            // the in-memory view (updated only once a commit has returned),
            // so a change committed before `seq` is never missing from both.
            let seq = ward_store::last_event(conn)?;
            let rows = ward_store::revocations_since(conn, horizon)?;
            let kills = ward_store::killswitches(conn)?;
            let flags = ward_store::flags(conn)?;
            Ok((seq, rows, kills, flags))
        })
        .await?;
    let revocations = rows
        .into_iter()
        .filter(|r| wanted.as_ref().is_none_or(|t| *t == r.tenant_id))
        .map(|r| Revocation {
            id: r.id,
            tenant: r.tenant_id,
            kind: r.kind,
            value: r.value,
            revoked_at: rfc3339(r.revoked_at_ms),
        })
        .collect();
    Ok(JsonOut(WatchSnapshot {
        seq,
        revocations,
        killswitches: KillSwitches::new(kills)
            .visible(tenant.as_deref())
            .into_iter()
            .map(ward_api::KillSwitch::from)
            .collect(),
        flags: Flags::new(flags)
            .visible(tenant.as_deref())
            .into_iter()
            .map(ward_api::Flag::from)
            .collect(),
        jwks: state.keys.jwks(now_ms()),
        high_risk_scopes: state
            .matrix
            .matrix
            .features()
            .filter(|f| f.risk == ward_model::matrix::Risk::High)
            .flat_map(|f| f.scopes.iter().map(ToString::to_string))
            .collect(),
        tenant,
    }))
}

/// Follow changes as server-sent events: `id` is the sequence number,
/// `event` the kind (`revocation`, `killswitch`, `flag`, `key_rotation`,
/// `agent_state`), `data` the change as JSON. Resume with `Last-Event-ID`;
/// without it the stream starts after the newest change.
#[utoipa::path(get, path = "/v1/watch", tag = "watch", security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this event")),
    responses((status = 200, description = "text/event-stream"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn watch(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let tenant = watcher_tenant(&principal)?;
    follow(state, tenant, &headers).await
}

/// The position a stream resumes after: the request's `Last-Event-ID`
/// (an id this stream sent), or `None` to start from now.
pub(crate) fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "Last-Event-ID",
                        "`Last-Event-ID` must be an event id from this stream",
                    )
                })
        })
        .transpose()
}

/// The change feed of `tenant` (and instance-wide changes; every tenant's
/// when `None`) as server-sent events, from the request's `Last-Event-ID`
/// or else from now: the stream of `GET /v1/watch` and of an agent's
/// `GET /v1/agents/{id}/watch`.
pub(crate) async fn follow(
    state: AppState,
    tenant: Option<String>,
    headers: &HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    let after = match last_event_id(headers)? {
        Some(after) => after,
        None => state.store.read(ward_store::last_event).await?,
    };
    let signal = state.events.subscribe();
    let stopped = state.streams_stopped();
    let follower = Follower {
        state,
        tenant,
        after,
        signal,
        buffer: VecDeque::new(),
    };
    let events = stream::unfold(follower, |mut follower| async move {
        let event = follower.next().await?;
        Some((Ok(event), follower))
    })
    .take_until(stopped);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Follower {
    state: AppState,
    tenant: Option<String>,
    after: i64,
    signal: tokio::sync::watch::Receiver<u64>,
    buffer: VecDeque<EventRow>,
}

impl Follower {
    /// The next event, waiting for one; `None` ends the stream (shutdown).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(row) = self.buffer.pop_front() {
                self.after = row.seq;
                return Some(
                    Event::default()
                        .id(row.seq.to_string())
                        .event(row.kind)
                        .data(row.payload),
                );
            }
            // Mark the signal seen before reading, so a commit after the
            // read wakes the wait below.
            self.signal.borrow_and_update();
            let (tenant, after) = (self.tenant.clone(), self.after);
            match self
                .state
                .store
                .read(move |conn| ward_store::events_after(conn, tenant.as_deref(), after, 500))
                .await
            {
                Ok(rows) if !rows.is_empty() => self.buffer.extend(rows),
                Ok(_) => {
                    if self.signal.changed().await.is_err() {
                        return None;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "watch stream cannot read events; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
