//! Tokens over HTTP: issuing (the decision is [`crate::broker::token`]),
//! introspection (RFC 7662) and revocation.

use axum::Json as JsonOut;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use ward_api::{
    ErrorBody, IntrospectRequest, IntrospectResponse, Revocation, RevokeTokens, TokenRequest,
    TokenResponse,
};
use ward_model::roles::Permission;

use crate::AppState;
use crate::audit::{DraftExt, entry};
use crate::auth::Principal;
use crate::broker::{introspect, revoke, token};
use crate::error::ApiError;
use crate::extract::{Json, dpop_proof, is_json, parse_json, read_limited};
use crate::fields::id_field;
use crate::util::rfc3339;

/// Issue a scoped, device-bound token. The request must carry a `DPoP`
/// header: a proof signed by the agent's enrolled device key.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = TokenRequest,
    params(("DPoP" = String, Header, description = "RFC 9449 proof signed by the enrolled device key")),
    responses((status = 200, body = TokenResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn issue(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<TokenRequest>,
) -> Result<JsonOut<TokenResponse>, ApiError> {
    id_field("agent_id", &body.agent_id)?;
    if let Some(id) = &body.approval_id {
        id_field("approval_id", id)?;
    }
    let denial = entry(
        &format!("agent:{}", body.agent_id),
        "token.issue",
        &body.agent_id,
    );
    match token::issue(&state, dpop_proof(&headers), &body).await {
        Ok(granted) => Ok(JsonOut(granted)),
        Err((error, tenant)) => Err(state.deny(denial.tenant(tenant.as_deref()), error).await),
    }
}

/// Introspect a token (RFC 7662). JSON or form-encoded `token=...`. Tokens of
/// other tenants answer `{"active": false}`.
#[utoipa::path(post, path = "/v1/tokens/introspect", tag = "tokens", request_body = IntrospectRequest,
    security(("bearer" = [])),
    responses((status = 200, body = IntrospectResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn introspect(
    State(state): State<AppState>,
    principal: Principal,
    request: Request,
) -> Result<JsonOut<IntrospectResponse>, ApiError> {
    let tenant = principal.require(Permission::IntrospectTokens)?.to_owned();
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let form = content_type.split(';').next().is_some_and(|e| {
        e.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !form && !is_json(&content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "expected `application/json` or `application/x-www-form-urlencoded`, got `{content_type}`"
            ),
        ));
    }
    let bytes = read_limited(request, state.config.max_body_bytes).await?;
    let body: IntrospectRequest = if form {
        let mut token = None;
        for (key, value) in form_urlencoded::parse(&bytes) {
            match key.as_ref() {
                "token" if token.is_none() => token = Some(value.into_owned()),
                "token" => {
                    return Err(ApiError::invalid(
                        "token",
                        "`token` is given more than once",
                    ));
                }
                "token_type_hint" => {}
                other => return Err(ApiError::invalid(other, format!("unknown field `{other}`"))),
            }
        }
        IntrospectRequest {
            token: token.ok_or_else(|| ApiError::invalid("token", "missing field `token`"))?,
            token_type_hint: None,
        }
    } else {
        parse_json(&bytes)?
    };
    Ok(JsonOut(
        introspect::introspect(&state, &tenant, &body.token).unwrap_or_default(),
    ))
}

/// Revoke tokens by id, by agent, or by scope prefix. Takes effect at once
/// for introspection and for every token issued up to now.
#[utoipa::path(post, path = "/v1/tokens/revoke", tag = "tokens", request_body = RevokeTokens,
    security(("bearer" = [])),
    responses((status = 201, body = Revocation), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<RevokeTokens>,
) -> Result<(StatusCode, JsonOut<Revocation>), ApiError> {
    let row = revoke::revoke(&state, &principal, body).await?;
    Ok((
        StatusCode::CREATED,
        JsonOut(Revocation {
            id: row.id,
            tenant: row.tenant_id,
            kind: row.kind,
            value: row.value,
            revoked_at: rfc3339(row.revoked_at_ms),
        }),
    ))
}
