//! The token broker: issuing device-bound scoped tokens against a DPoP
//! proof, introspection (RFC 7662) and revocation.
//!
//! INVARIANT: a token is returned only after its `token.issue` audit entry
//! is durable; every refusal after the body parses is audited too.

use axum::Json as JsonOut;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use ward_api::{
    Confirmation, ErrorBody, IntrospectRequest, IntrospectResponse, Revocation, RevokeTokens,
    TokenRequest, TokenResponse,
};
use ward_auth::ProofExpectations;
use ward_model::lifecycle::AgentState;
use ward_model::roles::Permission;
use ward_model::scope::Scope;
use ward_store::{RevocationRow, StoreError};

use crate::AppState;
use crate::audit::{DraftExt, entry};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{Json, is_json, parse_json, read_limited};
use crate::revocation::TokenFacts;
use crate::routes::text_field;
use crate::util::{new_id, now_ms, rfc3339};

/// The most scopes one token request may ask for.
const MAX_SCOPES: usize = 32;

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
    let denial = entry(
        &format!("agent:{}", body.agent_id),
        "token.issue",
        &body.agent_id,
    );
    match decide(&state, &headers, &body).await {
        Ok(granted) => Ok(JsonOut(granted)),
        Err((error, tenant)) => Err(state.deny(denial.tenant(tenant.as_deref()), error).await),
    }
}

type Refusal = (ApiError, Option<String>);

async fn decide(
    state: &AppState,
    headers: &HeaderMap,
    body: &TokenRequest,
) -> Result<TokenResponse, Refusal> {
    // Refusals are attributed to the claimed agent's tenant, so its admins
    // see probes against their agents even before the proof is checked.
    let agent_id = body.agent_id.as_str();
    let agent = state
        .agents
        .get(&state.store, agent_id)
        .await
        .map_err(|e| (e.into(), None))?;
    let tenant = agent.as_ref().map(|a| a.row.tenant_id.clone());
    let scopes = parse_scopes(&body.requested_scopes).map_err(|e| (e, tenant.clone()))?;
    let duration = match body.requested_duration {
        Some(0) => {
            return Err((
                ApiError::invalid(
                    "requested_duration",
                    "`requested_duration` must be at least 1 second",
                ),
                tenant,
            ));
        }
        Some(secs) => secs.min(state.config.max_token_secs),
        None => state
            .config
            .default_token_secs
            .min(state.config.max_token_secs),
    };
    let now = now_ms() / 1000;
    let proof = single_header(headers, "dpop").map_err(|e| (e, tenant.clone()))?;
    let Some(cached) = agent else {
        return Err((
            ApiError::dpop(
                "invalid_client",
                format!(
                    "unknown agent `{}` or the proof is not signed by its device key",
                    body.agent_id
                ),
            ),
            None,
        ));
    };
    let htu = format!("{}/v1/tokens", state.config.public_url);
    let verified = ward_auth::dpop::verify_proof_known(
        proof,
        &ProofExpectations {
            htm: "POST",
            htu: &htu,
            now,
            max_age_secs: state.config.dpop_max_age_secs,
            max_future_secs: state.config.dpop_max_future_secs,
            access_token: None,
        },
        &cached.jwk,
        &cached.key,
    )
    .map_err(|e| (ApiError::dpop(e.code(), e.to_string()), tenant.clone()))?;
    if verified.iat < state.started_at {
        return Err((
            ApiError::dpop(
                "dpop_proof_expired",
                "the proof was created before the server started; create a new proof",
            ),
            tenant,
        ));
    }
    let agent = &cached.row;
    if verified.jkt != agent.device_jkt {
        return Err((
            ApiError::dpop(
                "dpop_key_mismatch",
                format!(
                    "unknown agent `{}` or the proof is not signed by its device key",
                    body.agent_id
                ),
            ),
            tenant,
        ));
    }
    let replay_until = verified.iat + state.config.dpop_max_age_secs + 1;
    if !state.replay.first_use(
        format!("{}:{}", verified.jkt, verified.jti),
        now,
        replay_until,
    ) {
        return Err((
            ApiError::dpop(
                "dpop_replay",
                "this DPoP proof was used already; create a new proof for every request",
            ),
            tenant,
        ));
    }
    let agent_state: AgentState = agent
        .state
        .parse()
        .map_err(|e: String| (ApiError::internal(e), tenant.clone()))?;
    if !agent_state.may_obtain_tokens() {
        return Err((
            ApiError::forbidden(
                "agent_not_active",
                format!(
                    "agent `{}` is {agent_state}; only active agents get tokens",
                    agent.id
                ),
            ),
            tenant,
        ));
    }
    let matrix = &state.matrix.matrix;
    let mut grants = Vec::with_capacity(scopes.len());
    for (index, scope) in scopes.iter().enumerate() {
        let Some(grant) = matrix.authorize(&agent.profile, scope) else {
            return Err((
                ApiError::forbidden(
                    "scope_not_allowed",
                    format!(
                        "scope `{scope}` is not granted to profile `{}` by the capability matrix",
                        agent.profile
                    ),
                )
                .field(format!("requested_scopes[{index}]")),
                tenant,
            ));
        };
        grants.push(json!({ "scope": scope.to_string(), "feature": grant.feature.name, "granted_by": grant.scope.to_string() }));
    }
    let scope_strings: Vec<String> = scopes.iter().map(ToString::to_string).collect();
    let jti = new_id("tok").map_err(|e| (e, tenant.clone()))?;
    let exp = now + duration as i64;
    let claims = json!({
        "iss": state.config.public_url,
        "sub": agent.id,
        "scopes": scope_strings,
        "exp": exp,
        "iat": now,
        "nbf": now,
        "jti": jti,
        "tenant": agent.tenant_id,
        "owner": agent.owner,
        "device_id": agent.host_id,
        "agent_version": agent.agent_version,
        "profile": agent.profile,
        "cnf": { "jkt": agent.device_jkt },
    });
    let token = state
        .keys
        .sign(&claims)
        .map_err(|e| (ApiError::internal(e), tenant.clone()))?;
    let draft = entry(&format!("agent:{}", agent.id), "token.issue", &jti)
        .tenant(tenant.as_deref())
        .details(json!({
            "scopes": scope_strings, "exp": exp, "grants": grants,
            "kid": state.keys.current_kid(), "device_jkt": agent.device_jkt,
            "matrix_digest": state.matrix.digest, "dpop_jti": verified.jti,
        }));
    // The cached state above is a fast path; this check, in the transaction
    // that records the token, is the one that counts: a lifecycle change
    // committed before it refuses the token, one committed after it finds
    // the token's `iat` covered by its revocation rule.
    let agent_id = agent.id.clone();
    state
        .store
        .write(move |ctx| {
            let current = ward_store::agent_state(ctx.conn(), &agent_id)?;
            if current.as_deref() != Some(AgentState::Active.as_str()) {
                return Ok(Err(ApiError::forbidden(
                    "agent_not_active",
                    format!(
                        "agent `{agent_id}` is {}; only active agents get tokens",
                        current.as_deref().unwrap_or("gone")
                    ),
                )));
            }
            ctx.audit(draft);
            Ok(Ok(()))
        })
        .await
        .map_err(|e| (e.into(), tenant.clone()))?
        .map_err(|e| (e, tenant.clone()))?;
    Ok(TokenResponse {
        token,
        expires_in: duration,
        scopes: scope_strings,
        token_type: "DPoP".into(),
    })
}

fn parse_scopes(raw: &[String]) -> Result<Vec<Scope>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "requested_scopes",
            "`requested_scopes` must name at least one scope",
        ));
    }
    if raw.len() > MAX_SCOPES {
        return Err(ApiError::invalid(
            "requested_scopes",
            format!("`requested_scopes` may name at most {MAX_SCOPES} scopes"),
        ));
    }
    let mut scopes: Vec<Scope> = Vec::with_capacity(raw.len());
    for (index, text) in raw.iter().enumerate() {
        let scope: Scope = text.parse().map_err(|e: ward_model::scope::ScopeError| {
            ApiError::invalid(format!("requested_scopes[{index}]"), e.to_string())
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, ApiError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().map_err(|_| {
            ApiError::dpop("invalid_dpop_proof", "the `DPoP` header is not valid text")
        }),
        (None, _) => Err(ApiError::dpop(
            "invalid_dpop_proof",
            "missing `DPoP` header: sign a proof with the device key",
        )),
        (Some(_), Some(_)) => Err(ApiError::dpop(
            "invalid_dpop_proof",
            "more than one `DPoP` header",
        )),
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
        inspect(&state, &tenant, &body.token).unwrap_or_default(),
    ))
}

/// The introspection answer for an active token of `tenant`, or `None`.
fn inspect(state: &AppState, tenant: &str, token: &str) -> Option<IntrospectResponse> {
    let now_ms = now_ms();
    let (_, claims) = ward_auth::verify_jwt(token, now_ms / 1000, 0, |kid| {
        state.keys.lookup(kid, now_ms)
    })
    .ok()?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    if text("tenant").as_deref() != Some(tenant)
        || text("iss").as_deref() != Some(state.config.public_url.as_str())
    {
        return None;
    }
    let scopes: Vec<String> = claims
        .get("scopes")?
        .as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect::<Option<_>>()?;
    let jti = text("jti")?;
    let sub = text("sub")?;
    let iat = number("iat")?;
    let facts = TokenFacts {
        tenant,
        jti: &jti,
        agent: &sub,
        scopes: &scopes,
        iat,
    };
    if state.revocations.check(&facts).is_some() {
        return None;
    }
    Some(IntrospectResponse {
        active: true,
        scope: Some(scopes.join(" ")),
        client_id: Some(sub.clone()),
        username: text("owner"),
        token_type: Some("DPoP".into()),
        exp: number("exp"),
        iat: Some(iat),
        nbf: number("nbf"),
        sub: Some(sub),
        iss: text("iss"),
        jti: Some(jti),
        tenant: Some(tenant.to_owned()),
        device_id: text("device_id"),
        cnf: claims
            .get("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str)
            .map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
    })
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
    let tenant = principal.require(Permission::RevokeTokens)?.to_owned();
    text_field("reason", &body.reason, 1000)?;
    let (kind, value) = match (&body.jti, &body.agent_id, &body.scope_prefix) {
        (Some(jti), None, None) => ("jti", jti.clone()),
        (None, Some(agent), None) => ("agent", agent.clone()),
        (None, None, Some(prefix)) => {
            text_field("scope_prefix", prefix, 1024)?;
            ("scope_prefix", prefix.clone())
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_field",
                "give exactly one of `jti`, `agent_id`, `scope_prefix`",
            ));
        }
    };
    let row = RevocationRow {
        id: new_id("rev")?,
        tenant_id: tenant.clone(),
        kind: kind.into(),
        value: value.clone(),
        revoked_at_ms: 0,
        reason: body.reason.clone(),
        created_by: principal.actor(),
    };
    let draft = entry(&principal.actor(), "token.revoke", &value)
        .tenant(Some(&tenant))
        .reason(body.reason)
        .details(json!({ "kind": kind, "revocation_id": row.id }));
    let mut stored = row;
    let row = state
        .store
        .write(move |ctx| {
            // INVARIANT: taken inside the transaction, so every token whose
            // issue committed before this revocation has `iat` at or before it.
            stored.revoked_at_ms = now_ms();
            let exists = match stored.kind.as_str() {
                "agent" => {
                    ward_store::agent(ctx.conn(), Some(&stored.tenant_id), &stored.value)?.is_some()
                }
                "jti" => ward_store::token_issued_in(ctx.conn(), &stored.tenant_id, &stored.value)?,
                _ => true,
            };
            if !exists {
                let what = if stored.kind == "agent" {
                    "agent"
                } else {
                    "token"
                };
                return Ok(Err(ApiError::not_found(what, &stored.value)));
            }
            ward_store::insert_revocation(ctx.conn(), &stored)?;
            ctx.audit(draft);
            Ok(Ok(stored))
        })
        .await
        .map_err(|e: StoreError| ApiError::from(e))??;
    state.revocations.add(&row);
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
