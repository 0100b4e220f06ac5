//! The local API on the Unix socket: `POST /v1/authorize`, `GET
//! /v1/status`, `POST /v1/events`, `POST /v1/refresh` and `GET
//! /openapi.json`, for processes of the admitted users only (the kernel
//! says who connected; the peer cannot claim another uid).
//!
//! INVARIANT: a decision is answered only after its event is durable in
//! the spool; if it cannot be recorded, the answer is deny.

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UnixListener;
use utoipa::OpenApi;
use ward_api::{
    AuthorizeRequest, AuthorizeResponse, FeatureToken, LocalEvents, LocalEventsAccepted,
    LocalStatus,
};
use ward_model::timestamp::rfc3339;
use ward_serve::UnixPeer;

use super::Runtime;
use super::record::{self, Entry};
use crate::decide::{self, Request};
use crate::error::AgentError;

/// Largest request body the local API reads.
const MAX_BODY: usize = 1024 * 1024;

/// Binds the socket at `path`, refusing one another daemon is serving and
/// replacing a stale one. The socket is 0600, or 0666 when other users are
/// admitted (the peer check is then what keeps strangers out).
pub fn bind(path: &Path, others_admitted: bool) -> Result<UnixListener, AgentError> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(AgentError::Invalid(format!(
                "the socket `{}` is in use by another `ward agent run`; stop it or pass another --socket",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(AgentError::io("remove", path))?;
    }
    let listener = UnixListener::bind(path).map_err(AgentError::io("bind", path))?;
    let mode = if others_admitted { 0o666 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(AgentError::io("write", path))?;
    Ok(listener)
}

/// Serves the local API until `stop` completes.
pub async fn serve(
    runtime: Arc<Runtime>,
    listener: UnixListener,
    stop: impl std::future::Future<Output = ()>,
) {
    let app = router(Arc::clone(&runtime));
    ward_serve::serve(
        listener,
        None,
        ward_serve::Limits::DEFAULT,
        move |peer: Option<UnixPeer>| {
            TowerToHyperService::new(app.clone().layer(Extension(Peer(peer))))
        },
        stop,
    )
    .await;
}

/// Who is on the other end of a connection.
#[derive(Clone, Copy)]
struct Peer(Option<UnixPeer>);

/// The local API's routes.
pub fn router(runtime: Arc<Runtime>) -> Router {
    Router::new()
        .route("/v1/authorize", post(authorize))
        .route("/v1/status", get(status))
        .route("/v1/events", post(events))
        .route("/v1/refresh", post(refresh))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&runtime),
            admit,
        ))
        .with_state(runtime)
}

/// Refuses peers whose uid is not admitted, before any handler runs.
async fn admit(
    State(runtime): State<Arc<Runtime>>,
    Extension(Peer(peer)): Extension<Peer>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match peer {
        Some(peer) if runtime.allowed_uids.contains(&peer.uid) => next.run(request).await,
        Some(peer) => {
            tracing::warn!(uid = peer.uid, pid = ?peer.pid, path = %request.uri().path(), "refused a peer with another uid");
            error(
                StatusCode::FORBIDDEN,
                "peer_not_allowed",
                &format!(
                    "uid {} may not use this socket; the daemon admits uids {:?} (see --allow-uid)",
                    peer.uid, runtime.allowed_uids
                ),
                None,
            )
        }
        None => error(
            StatusCode::FORBIDDEN,
            "peer_unknown",
            "the system did not say who connected; refused",
            None,
        ),
    }
}

fn error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    let mut body = json!({ "error": { "code": code, "message": message } });
    if let Some(field) = field {
        body["error"]["field"] = json!(field);
    }
    (status, axum::Json(body)).into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see GET /openapi.json",
        None,
    )
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes within
/// [`ward_serve::BODY_READ_DEADLINE`]; errors name the field.
async fn body<T: serde::de::DeserializeOwned>(
    request: axum::extract::Request,
) -> Result<T, Response> {
    let bytes = ward_serve::read_body(request.into_body(), MAX_BODY)
        .await
        .map_err(|e| error(e.status(), e.code(), &e.message(MAX_BODY), None))?;
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        error(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            &e.inner().to_string(),
            (path != ".").then_some(path.as_str()),
        )
    })
}

#[utoipa::path(post, path = "/v1/authorize", request_body = AuthorizeRequest,
    responses((status = 200, body = AuthorizeResponse), (status = 400), (status = 403)))]
async fn authorize(
    State(runtime): State<Arc<Runtime>>,
    request: axum::extract::Request,
) -> Response {
    let started = Instant::now();
    let asked: AuthorizeRequest = match body(request).await {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    if let Some(id) = &asked.correlation_id
        && !ward_model::audit::valid_correlation_id(id)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "use 1 to 128 letters, digits, `-`, `_`, `.` or `:`",
            Some("correlation_id"),
        );
    }
    let correlation_id = asked
        .correlation_id
        .clone()
        .unwrap_or_else(record::new_correlation_id);
    let decision = {
        let view = runtime.read();
        let now = Runtime::now_ms();
        let (mode, reason) = view.switch_mode();
        let flags_off = view.flags_off();
        let situation = view.situation(now, &reason, mode, &flags_off);
        let grants = view.grants();
        decide::authorize(
            &Request {
                feature: asked.feature.as_deref(),
                action: &asked.action,
                resource: &asked.resource,
                cwd: asked.cwd.as_deref(),
                search_path: None,
            },
            &runtime.protected,
            &grants,
            &situation,
        )
    };
    let mut entry = Entry::audit(
        &asked.action,
        &decision.resource,
        if decision.allow { "allow" } else { "deny" },
        Some(&decision.reason),
    );
    entry.correlation_id = Some(correlation_id.clone());
    entry.feature = decision.feature.clone().or(asked
        .feature
        .clone()
        .filter(|name| ward_model::matrix::is_valid_name(name)));
    entry.duration_ms = Some(started.elapsed().as_millis() as u64);
    if decision.allow && asked.correlation_id.is_some() {
        runtime
            .decided
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remember(&correlation_id, started);
    }
    let recorded = record::append(&runtime, vec![entry]).await;
    let answer = match recorded {
        Ok(_) => AuthorizeResponse {
            decision: if decision.allow { "allow" } else { "deny" }.to_owned(),
            reason: decision.reason,
            scope: decision.scope,
            feature: decision.feature,
            resource: decision.resource,
            correlation_id,
        },
        Err(failure) => {
            tracing::error!(error = %failure, "a decision could not be recorded; denied");
            AuthorizeResponse {
                decision: "deny".to_owned(),
                reason: format!("the decision could not be recorded ({failure}); denied"),
                scope: None,
                feature: None,
                resource: decision.resource,
                correlation_id,
            }
        }
    };
    tracing::info!(
        correlation_id = %answer.correlation_id,
        action = %asked.action,
        decision = %answer.decision,
        "authorize"
    );
    axum::Json(answer).into_response()
}

#[utoipa::path(get, path = "/v1/status", responses((status = 200, body = LocalStatus), (status = 403)))]
async fn status(State(runtime): State<Arc<Runtime>>) -> Response {
    let view = runtime.read();
    let now = Runtime::now_ms();
    let (mode, mode_reason) = view.mode_now(now);
    let tokens = view
        .features
        .iter()
        .map(|feature| FeatureToken {
            feature: feature.name.clone(),
            expires_at: view
                .tokens
                .get(&feature.name)
                .map(|held| rfc3339(held.expires_at_ms)),
            refused: if view.tokens.contains_key(&feature.name) {
                None
            } else {
                view.refused.get(&feature.name).cloned()
            },
            scopes: view
                .tokens
                .get(&feature.name)
                .map(|held| held.scopes.clone())
                .unwrap_or_default(),
        })
        .collect();
    axum::Json(LocalStatus {
        agent_id: view.agent_id.clone(),
        server: runtime.record.server.clone(),
        mode: mode.as_str().to_owned(),
        mode_reason,
        agent_state: view
            .state
            .map_or("unknown", |state| state.as_str())
            .to_owned(),
        tokens,
        last_contact: view.last_contact_ms.map(rfc3339),
        bounds: view.bounds,
        features: view.features.clone(),
        reconsent: view.reconsent.clone(),
        spool: runtime.spool.status(),
        version: runtime.config.version.clone(),
    })
    .into_response()
}

#[utoipa::path(post, path = "/v1/events", request_body = LocalEvents,
    responses((status = 200, body = LocalEventsAccepted), (status = 400), (status = 403), (status = 503)))]
async fn events(State(runtime): State<Arc<Runtime>>, request: axum::extract::Request) -> Response {
    let asked: LocalEvents = match body(request).await {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    if asked.events.is_empty() || asked.events.len() > 1000 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "send 1 to 1000 events",
            Some("events"),
        );
    }
    let count = asked.events.len() as u64;
    let mut entries = Vec::with_capacity(asked.events.len());
    for (index, event) in asked.events.into_iter().enumerate() {
        match Entry::from_local(index, event) {
            Ok(mut entry) => {
                // A call's result: how long since it was allowed, unless
                // its producer said.
                if entry.action.ends_with(".result")
                    && let Some(id) = &entry.correlation_id
                {
                    let allowed = runtime
                        .decided
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take(id);
                    if entry.duration_ms.is_none()
                        && let Some(at) = allowed
                    {
                        entry.duration_ms = Some(at.elapsed().as_millis() as u64);
                    }
                }
                entries.push(entry);
            }
            Err((field, reason)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_field",
                    &reason,
                    Some(&field),
                );
            }
        }
    }
    match record::append(&runtime, entries).await {
        Ok(appended) => axum::Json(LocalEventsAccepted {
            accepted: count - appended.dropped,
            dropped: appended.dropped,
        })
        .into_response(),
        Err(failure) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "spool_unavailable",
            &format!("the events were not recorded: {failure}"),
            None,
        ),
    }
}

/// Asks the daemon to contact the control plane now (after consent was
/// given, for instance) and answers with the status before that contact.
#[utoipa::path(post, path = "/v1/refresh", responses((status = 202), (status = 403)))]
async fn refresh(State(runtime): State<Arc<Runtime>>) -> Response {
    runtime.wake_heartbeat.notify_one();
    runtime.wake_tokens.notify_one();
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "refreshing": true })),
    )
        .into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ward desktop runtime local API",
        description = "Served by `ward agent run` on its Unix socket to the admitted users' processes."
    ),
    paths(authorize, status, events, refresh, openapi),
    components(schemas(
        AuthorizeRequest,
        AuthorizeResponse,
        LocalStatus,
        FeatureToken,
        LocalEvents,
        ward_api::LocalEvent,
        LocalEventsAccepted,
        ward_api::SpoolStatus,
        ward_api::StalenessBounds,
        ward_api::AgentFeature
    ))
)]
struct LocalApi;

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200)))]
async fn openapi() -> Response {
    axum::Json(LocalApi::openapi()).into_response()
}
