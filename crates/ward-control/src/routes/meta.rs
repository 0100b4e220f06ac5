//! Health, readiness, the JWKS and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use ward_api::{AuthConfig, ErrorBody, Health, Jwks, OidcInfo};

use crate::AppState;
use crate::error::ApiError;
use crate::util::now_ms;

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "meta", responses(
    (status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state
        .store
        .read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "not ready");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database does not answer",
            )
        })?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// The token signing keys (current first, then keys still verifying unexpired tokens).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "meta", responses((status = 200, body = Jwks)))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(state.keys.jwks(now_ms())),
    )
}

/// How people sign in (for `ward login`).
#[utoipa::path(get, path = "/v1/auth/config", tag = "meta", responses((status = 200, body = AuthConfig)))]
pub async fn auth_config(State(state): State<AppState>) -> Json<AuthConfig> {
    Json(AuthConfig {
        oidc: state.oidc.as_ref().map(|oidc| {
            let config = oidc.config();
            OidcInfo {
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
                client_id: config.cli_client_id.clone(),
            }
        }),
    })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi_json(),
    )
}

/// Any path that is not a route.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such endpoint; see /openapi.json",
    )
}

/// A route called with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method; see /openapi.json",
    )
}
