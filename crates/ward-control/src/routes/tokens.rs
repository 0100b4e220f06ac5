//! The token broker: issuing device-bound scoped tokens against a DPoP
//! proof, introspection (RFC 7662) and revocation.
//!
//! INVARIANT: a token is returned only after its `token.issue` audit entry
//! is durable; every refusal after the body parses is audited too.

use axum::Json as JsonOut;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ward_api::{
    Confirmation, ErrorBody, IntrospectRequest, IntrospectResponse, Revocation, RevokeTokens,
    TokenRequest, TokenResponse,
};
use ward_model::audit::hex;
use ward_model::feed::Event;
use ward_model::lifecycle::AgentState;
use ward_model::matrix::Risk;
use ward_model::roles::Permission;
use ward_model::scope::Scope;
use ward_store::{RevocationRow, StoreError};

use crate::AppState;
use crate::audit::{DraftExt, emit, entry};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{Json, is_json, parse_json, read_limited};
use crate::revocation::TokenFacts;
use crate::routes::device::{self, Refusal};
use crate::routes::{approvals, consents, text_field};
use crate::switches::Mode;
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
    super::id_field("agent_id", &body.agent_id)?;
    if let Some(id) = &body.approval_id {
        super::id_field("approval_id", id)?;
    }
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

/// The most bytes of a canonical action a token may be bound to.
const MAX_ACTION_BYTES: usize = 16 * 1024;

async fn decide(
    state: &AppState,
    headers: &HeaderMap,
    body: &TokenRequest,
) -> Result<TokenResponse, Refusal> {
    let now = now_ms() / 1000;
    let cached = device::authenticate(state, headers, &body.agent_id, "/v1/tokens", now).await?;
    let agent = &cached.row;
    let tenant = Some(agent.tenant_id.clone());
    let fail = |error: ApiError| (error, tenant.clone());
    let scopes = parse_scopes(&body.requested_scopes).map_err(fail)?;
    let mut duration = match body.requested_duration {
        Some(0) => {
            return Err(fail(ApiError::invalid(
                "requested_duration",
                "`requested_duration` must be at least 1 second",
            )));
        }
        Some(secs) => secs.min(state.config.max_token_secs),
        None => state
            .config
            .default_token_secs
            .min(state.config.max_token_secs),
    };
    let agent_state = agent.state;
    if !agent_state.may_obtain_tokens() {
        return Err(fail(ApiError::forbidden(
            "agent_not_active",
            format!(
                "agent `{}` is {agent_state}; only active agents get tokens",
                agent.id
            ),
        )));
    }
    // The kill switch comes before everything a grant could add.
    let (mode, switch) =
        state
            .switches
            .kills
            .mode_for(&agent.tenant_id, &agent.id, &agent.agent_version);
    let switch_name = || {
        switch
            .as_ref()
            .map(|k| {
                format!(
                    "the {} kill switch ({}, reason: {})",
                    k.scope, k.set_by, k.reason
                )
            })
            .unwrap_or_else(|| "a kill switch".to_owned())
    };
    match mode {
        Mode::Offline => {
            return Err(fail(ApiError::forbidden(
                "kill_switch_offline",
                format!("{} has this agent offline: no tokens", switch_name()),
            )));
        }
        Mode::ReadOnly => {
            if let Some((index, scope)) = scopes.iter().enumerate().find(|(_, s)| !s.is_read()) {
                return Err(fail(
                    ApiError::forbidden(
                        "kill_switch_read_only",
                        format!(
                            "{} allows read scopes only; `{scope}` is not one",
                            switch_name()
                        ),
                    )
                    .field(format!("requested_scopes[{index}]")),
                ));
            }
        }
        Mode::Normal => {}
    }
    let matrix = &state.matrix.matrix;
    // One entry per requested scope that the matrix grants, kept with its
    // position in the request so refusals name the field.
    struct Granted {
        index: usize,
        scope: Scope,
        log: Value,
        consent: bool,
        high: bool,
        two_person: bool,
    }
    let mut granted = Vec::with_capacity(scopes.len());
    for (index, scope) in scopes.into_iter().enumerate() {
        let Some(grant) = matrix.authorize(&agent.profile, &scope) else {
            return Err(fail(
                ApiError::forbidden(
                    "scope_not_allowed",
                    format!(
                        "scope `{scope}` is not granted to profile `{}` by the capability matrix",
                        agent.profile
                    ),
                )
                .field(format!("requested_scopes[{index}]")),
            ));
        };
        let feature = grant.feature;
        let high = feature.risk == Risk::High;
        granted.push(Granted {
            log: json!({
                "scope": scope.to_string(), "feature": feature.name, "granted_by": grant.scope.to_string(),
                "risk": if high { "high" } else { "low" },
            }),
            index,
            scope,
            consent: feature.consent_required,
            high,
            two_person: feature.two_person,
        });
    }
    // Policy comes after the matrix and can only narrow what it granted.
    let policy = state
        .policies
        .evaluate(
            &state.store,
            "token.issue",
            agent,
            json!({
                "scopes": granted.iter().map(|g| g.scope.to_string()).collect::<Vec<_>>(),
                "duration": duration,
                "approval_id": body.approval_id,
            }),
            json!({
                "profile_high_risk": matrix.profile_is_high_risk(&agent.profile),
                "grants": granted.iter().map(|g| g.log.clone()).collect::<Vec<_>>(),
            }),
            now,
        )
        .await
        .map_err(fail)?;
    let mut policy_approval = Vec::new();
    if let Some(decision) = &policy {
        if let Some(refusal) = decision.refusal() {
            return Err(fail(refusal));
        }
        let removed: Vec<&str> = decision
            .decision
            .remove_scopes
            .iter()
            .map(|(scope, _)| scope.as_str())
            .collect();
        granted.retain(|g| !removed.contains(&g.scope.to_string().as_str()));
        if granted.is_empty() {
            return Err(fail(ApiError::forbidden(
                "policy_denied",
                "the policy removed every requested scope",
            )));
        }
        if let Some((seconds, _)) = &decision.decision.max_duration {
            duration = duration.min(*seconds).max(1);
        }
        policy_approval = decision
            .decision
            .require_approval
            .iter()
            .map(|r| json!({"policy_rule": r.rule, "message": r.message}))
            .collect();
    }
    let scopes: Vec<Scope> = granted.iter().map(|g| g.scope.clone()).collect();
    let grants: Vec<Value> = granted.iter().map(|g| g.log.clone()).collect();
    let consent_needed: Vec<(usize, Scope)> = granted
        .iter()
        .filter(|g| g.consent)
        .map(|g| (g.index, g.scope.clone()))
        .collect();
    let mut high_risk: Vec<Value> = granted
        .iter()
        .filter(|g| g.high)
        .map(|g| g.log.clone())
        .collect();
    let two_person = granted.iter().any(|g| g.high && g.two_person);
    high_risk.extend(policy_approval);
    let action_hash = match &body.action {
        None => None,
        Some(action) if action.is_object() => {
            let canonical = action.to_string();
            if canonical.len() > MAX_ACTION_BYTES {
                return Err(fail(ApiError::invalid(
                    "action",
                    format!("`action` is over {MAX_ACTION_BYTES} bytes"),
                )));
            }
            Some(hex(&Sha256::digest(canonical.as_bytes())))
        }
        Some(_) => {
            return Err(fail(ApiError::invalid(
                "action",
                "`action` must be an object such as {\"tool\": ..., \"arguments\": {...}}",
            )));
        }
    };
    let consent_id = consents::check(&state.store, &agent.id, &consent_needed)
        .await
        .map_err(fail)?;
    let mut approval = None;
    let mut approval_correlation: Option<String> = None;
    if !high_risk.is_empty() || body.approval_id.is_some() {
        let needed = approvals::Needed {
            required: if two_person { 2 } else { 1 },
            reasons: high_risk,
        };
        match approvals::token_gate(
            state,
            agent,
            &scopes,
            duration,
            body.action.as_ref(),
            action_hash.as_deref(),
            body.approval_id.as_deref(),
            needed,
            now,
        )
        .await
        .map_err(fail)?
        {
            approvals::Gate::Ask(error) => return Err(fail(error)),
            approvals::Gate::Redeem(row) => {
                let granted = row.approved_duration.unwrap_or(row.duration).max(1) as u64;
                duration = duration.min(granted);
                approval_correlation = Some(row.correlation_id.clone());
                approval = Some(row.id);
            }
        }
    }
    let scope_strings: Vec<String> = scopes.iter().map(ToString::to_string).collect();
    let jti = new_id("tok").map_err(fail)?;
    let exp = now + duration as i64;
    let mut claims = json!({
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
    if let Some(id) = &approval {
        claims["approval_id"] = json!(id);
    }
    if let Some(hash) = &action_hash {
        // A token bound to one action is for that action only, once.
        claims["action_hash"] = json!(hash);
        claims["single_use"] = json!(true);
    }
    let token = state
        .keys
        .sign(&claims)
        .map_err(|e| fail(ApiError::internal(e)))?;
    let draft = entry(&format!("agent:{}", agent.id), "token.issue", &jti)
        .tenant(tenant.as_deref())
        .details(json!({
            "scopes": scope_strings, "exp": exp, "duration": duration, "grants": grants,
            "kid": state.keys.current_kid(), "device_jkt": agent.device_jkt,
            "matrix_digest": state.matrix.digest, "consent_id": consent_id,
            "approval_id": approval, "action_hash": action_hash,
            "policy": policy.as_ref().map(|p| p.log()),
            "request_correlation_id": crate::error::correlation_id(),
        }));
    // Redeeming an approval is one of its steps: it carries the correlation
    // id of the request that asked for it.
    let mut draft = draft;
    if let Some(original) = approval_correlation {
        draft.correlation_id = original;
    }
    // The cached state above is a fast path; this check, in the transaction
    // that records the token, is the one that counts: a lifecycle change
    // committed before it refuses the token, one committed after it finds
    // the token's `iat` covered by its revocation rule. The approval is
    // marked used in the same transaction, so it grants one token only.
    let agent_id = agent.id.clone();
    let consent_id_checked = consent_id.clone();
    state
        .store
        .write(move |ctx| {
            let consent_id = consent_id_checked;
            let current = ward_store::agent_state(ctx.conn(), &agent_id)?;
            if current != Some(AgentState::Active) {
                return Ok(Err(ApiError::forbidden(
                    "agent_not_active",
                    format!(
                        "agent `{agent_id}` is {}; only active agents get tokens",
                        current.map_or("gone", AgentState::as_str)
                    ),
                )));
            }
            if let Some(checked) = &consent_id {
                let latest = ward_store::latest_consent(ctx.conn(), &agent_id)?;
                if latest.as_ref().map(|c| &c.id) != Some(checked) {
                    return Ok(Err(ApiError::forbidden(
                        "consent_required",
                        "the owner's consent changed while the token was being issued; ask again",
                    )));
                }
            }
            if let Some(id) = &approval
                && !ward_store::set_approval_status(
                    ctx.conn(),
                    id,
                    "approved",
                    "used",
                    None,
                    None,
                    None,
                )?
            {
                return Ok(Err(ApiError::conflict(
                    "approval_used",
                    format!("approval `{id}` was used already; an approval grants one token"),
                )
                .field("approval_id")));
            }
            ctx.audit(draft);
            Ok(Ok(()))
        })
        .await
        .map_err(|e| fail(e.into()))?
        .map_err(fail)?;
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
            emit(ctx, &Event::Revocation(crate::revocation::rule_of(&stored)))?;
            ctx.audit(draft);
            Ok(Ok(stored))
        })
        .await
        .map_err(|e: StoreError| ApiError::from(e))??;
    state.revocations.add(&crate::revocation::rule_of(&row));
    state.published();
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
