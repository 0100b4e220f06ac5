//! Enrolment and the agent lifecycle: enrolment tokens, enrolling a device,
//! listing agents and the operator actions that move them between states.

use axum::Json as JsonOut;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use ward_api::{
    Agent, AgentList, CreateEnrollToken, DeviceInfo, EnrollAgent, EnrollTokenCreated, ErrorBody,
    LifecycleChange,
};
use ward_auth::Jwk;
use ward_model::feed::{AgentStateChange, Event};
use ward_model::lifecycle::{AgentAction, AgentState};
use ward_model::roles::Permission;
use ward_store::{AgentRow, EnrollTokenRow, RevocationRow};

use crate::AppState;
use crate::audit::{DraftExt, emit, entry};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::routes::{approvals, text_field};
use crate::util::{new_id, new_secret, now_ms, rfc3339, secret_hash};

/// Create a single-use enrolment token for an owner and a profile.
#[utoipa::path(post, path = "/v1/enroll-tokens", tag = "agents", request_body = CreateEnrollToken,
    security(("bearer" = [])),
    responses((status = 201, body = EnrollTokenCreated), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_enroll_token(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateEnrollToken>,
) -> Result<(StatusCode, JsonOut<EnrollTokenCreated>), ApiError> {
    let tenant = principal.require(Permission::Enrol)?.to_owned();
    check_email("owner", &body.owner)?;
    if state.matrix.matrix.profile(&body.profile).is_none() {
        let known: Vec<String> = state
            .matrix
            .matrix
            .profiles()
            .map(|p| format!("`{}`", p.name))
            .collect();
        return Err(ApiError::invalid(
            "profile",
            format!(
                "unknown profile `{}`; the matrix defines: {}",
                body.profile,
                if known.is_empty() {
                    "no profiles (start the server with --matrix FILE)".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    let ttl = body
        .ttl_seconds
        .unwrap_or(state.config.enroll_default_ttl_secs);
    if ttl == 0 || ttl > state.config.enroll_max_ttl_secs {
        return Err(ApiError::invalid(
            "ttl_seconds",
            format!(
                "`ttl_seconds` must be between 1 and {}",
                state.config.enroll_max_ttl_secs
            ),
        ));
    }
    let now = now_ms();
    let secret = new_secret("ward_et")?;
    let row = EnrollTokenRow {
        id: new_id("enr")?,
        tenant_id: tenant.clone(),
        // Emails compare case-insensitively (the owner may not approve).
        owner: body.owner.to_lowercase(),
        profile: body.profile,
        // Compared with approvers later, so the stable identity.
        created_by: principal.identity(),
        created_at: rfc3339(now),
        expires_at: now / 1000 + ttl as i64,
        used_at: None,
        agent_id: None,
    };
    let hash = secret_hash(&secret);
    let draft = entry(&principal.actor(), "enroll_token.create", &row.id)
        .tenant(Some(&tenant))
        .details(
            json!({ "owner": row.owner, "profile": row.profile, "expires_at": row.expires_at }),
        );
    let stored = row.clone();
    state
        .store
        .write(move |ctx| {
            ward_store::insert_enroll_token(ctx.conn(), &stored, &hash)?;
            ctx.audit(draft);
            Ok(())
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        JsonOut(EnrollTokenCreated {
            id: row.id,
            token: secret,
            tenant,
            owner: row.owner,
            profile: row.profile,
            expires_at: rfc3339(row.expires_at * 1000),
        }),
    ))
}

fn check_email(field: &str, value: &str) -> Result<(), ApiError> {
    let valid = value.len() <= 254
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("`{value}` is not an email address"),
        ))
    }
}

/// Enrol a device with an enrolment token (no other credential).
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = EnrollAgent,
    responses((status = 201, body = Agent), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn enroll(
    State(state): State<AppState>,
    Json(body): Json<EnrollAgent>,
) -> Result<(StatusCode, JsonOut<Agent>), ApiError> {
    let jwk = Jwk {
        kty: body.device_key.kty.clone(),
        crv: body.device_key.crv.clone(),
        x: body.device_key.x.clone(),
    };
    jwk.verifying_key()
        .map_err(|e| ApiError::invalid("device_key", format!("device key rejected: {e}")))?;
    text_field("device.os", &body.device.os, 128)?;
    text_field("device.agent_version", &body.device.agent_version, 64)?;
    text_field("device.host_id", &body.device.host_id, 256)?;
    text_field("enroll_token", &body.enroll_token, 256)?;
    let hash = secret_hash(&body.enroll_token);
    let token = state
        .store
        .read(move |conn| ward_store::enroll_token_by_hash(conn, &hash))
        .await?;
    let Some(token) = token else {
        let error = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_enroll_token",
            "unknown enrolment token",
        );
        return Err(state
            .deny(entry("anonymous", "agent.enroll", "unknown"), error)
            .await);
    };
    let actor = format!("enroll_token:{}", token.id);
    let denial = entry(&actor, "agent.enroll", &token.id).tenant(Some(&token.tenant_id));
    let now = now_ms();
    if token.used_at.is_some() {
        let error = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "enroll_token_used",
            "this enrolment token was used already; ask for a new one",
        );
        return Err(state.deny(denial, error).await);
    }
    if now / 1000 >= token.expires_at {
        let error = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "enroll_token_expired",
            "this enrolment token has expired; ask for a new one",
        );
        return Err(state.deny(denial, error).await);
    }
    let Some(_) = state.matrix.matrix.profile(&token.profile) else {
        let error = ApiError::conflict(
            "unknown_profile",
            format!(
                "profile `{}` is no longer in the capability matrix",
                token.profile
            ),
        );
        return Err(state.deny(denial, error).await);
    };
    let matrix_high_risk = state.matrix.matrix.profile_is_high_risk(&token.profile);
    let mut row = AgentRow {
        id: new_id("agt")?,
        tenant_id: token.tenant_id.clone(),
        owner: token.owner.clone(),
        profile: token.profile.clone(),
        state: if matrix_high_risk {
            AgentState::PendingApproval
        } else {
            AgentState::Active
        },
        os: body.device.os.clone(),
        agent_version: body.device.agent_version.clone(),
        host_id: body.device.host_id.clone(),
        device_jwk: serde_json::to_string(&jwk).map_err(ApiError::internal)?,
        device_jkt: jwk.thumbprint(),
        enroll_token_id: token.id.clone(),
        created_at: rfc3339(now),
        updated_at: rfc3339(now),
    };
    let matrix = &state.matrix.matrix;
    let features: Vec<&ward_model::matrix::Feature> = matrix
        .profile(&token.profile)
        .map(|p| {
            p.features
                .iter()
                .filter_map(|f| matrix.feature(f))
                .collect()
        })
        .unwrap_or_default();
    let profile_scopes: Vec<String> = features
        .iter()
        .flat_map(|f| f.scopes.iter().map(ToString::to_string))
        .collect();
    let policy = match state
        .policies
        .evaluate(
            &state.store,
            "agent.enroll",
            &row,
            json!({"scopes": profile_scopes, "duration": 0}),
            json!({
                "profile_high_risk": matrix_high_risk,
                "grants": features.iter().flat_map(|f| f.scopes.iter().map(move |s| json!({
                    "scope": s.to_string(), "feature": f.name, "granted_by": s.to_string(),
                    "risk": if f.risk == ward_model::matrix::Risk::High { "high" } else { "low" },
                }))).collect::<Vec<_>>(),
            }),
            now / 1000,
        )
        .await
    {
        Ok(policy) => policy,
        Err(error) => return Err(state.deny(denial, error).await),
    };
    if let Some(refusal) = policy.as_ref().and_then(|p| p.refusal()) {
        return Err(state.deny(denial, refusal).await);
    }
    let policy_approval: Vec<serde_json::Value> = policy
        .as_ref()
        .map(|p| {
            p.decision
                .require_approval
                .iter()
                .map(|r| json!({"policy_rule": r.rule, "message": r.message}))
                .collect()
        })
        .unwrap_or_default();
    let high_risk = matrix_high_risk || !policy_approval.is_empty();
    if high_risk {
        row.state = AgentState::PendingApproval;
    }
    // Enrolment into a high-risk profile waits for a second person.
    let approval = if high_risk {
        let mut reasons: Vec<serde_json::Value> = features
            .iter()
            .filter(|f| f.risk == ward_model::matrix::Risk::High)
            .map(|f| json!({"feature": f.name, "risk": "high", "two_person": f.two_person}))
            .collect();
        reasons.extend(policy_approval);
        let needed = approvals::Needed {
            required: if features.iter().any(|f| f.two_person) {
                2
            } else {
                1
            },
            reasons,
        };
        Some(approvals::new_request(
            &state,
            "enrolment",
            &row,
            &token.created_by,
            &profile_scopes,
            0,
            None,
            None,
            &needed,
            now / 1000,
        )?)
    } else {
        None
    };
    let draft = entry(&actor, "agent.enroll", &row.id)
        .tenant(Some(&row.tenant_id))
        .reason(if high_risk {
            "profile holds a high-risk feature: approval required"
        } else {
            ""
        })
        .details(json!({
            "owner": row.owner, "profile": row.profile, "state": row.state,
            "device": { "os": row.os, "agent_version": row.agent_version, "host_id": row.host_id },
            "device_jkt": row.device_jkt, "matrix_digest": state.matrix.digest,
            "approval_id": approval.as_ref().map(|a| a.id.clone()),
            "policy": policy.as_ref().map(|p| p.log()),
        }));
    let stored = row.clone();
    let used_at = rfc3339(now);
    let outcome = state
        .store
        .write(move |ctx| {
            if !ward_store::consume_enroll_token(
                ctx.conn(),
                &stored.enroll_token_id,
                &used_at,
                &stored.id,
            )? {
                return Ok(false);
            }
            ward_store::insert_agent(ctx.conn(), &stored)?;
            if let Some(approval) = &approval {
                ward_store::insert_approval(ctx.conn(), approval)?;
            }
            ctx.audit(draft);
            Ok(true)
        })
        .await?;
    if !outcome {
        let error = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "enroll_token_used",
            "this enrolment token was used already; ask for a new one",
        );
        return Err(state.deny(denial, error).await);
    }
    Ok((StatusCode::CREATED, JsonOut(agent_out(row))))
}

/// The wire form of an agent.
pub fn agent_out(row: AgentRow) -> Agent {
    Agent {
        id: row.id,
        tenant: row.tenant_id,
        owner: row.owner,
        profile: row.profile,
        state: row.state.as_str().to_owned(),
        device: DeviceInfo {
            os: row.os,
            agent_version: row.agent_version,
            host_id: row.host_id,
        },
        device_jkt: row.device_jkt,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// Query of `GET /v1/agents`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only agents in this state.
    state: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 500 (default 100).
    limit: Option<String>,
}

/// Parses a `limit` query parameter.
pub fn parse_limit(limit: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("`limit` must be a number from 1 to {max}, got `{text}`"),
                )
            }),
    }
}

/// List the tenant's agents.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = AgentList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<JsonOut<AgentList>, ApiError> {
    let tenant = principal.require(Permission::ReadAgents)?.to_owned();
    let limit = parse_limit(query.limit.as_deref(), 100, 500)?;
    let wanted = query
        .state
        .as_deref()
        .map(str::parse::<AgentState>)
        .transpose()
        .map_err(|e| ApiError::invalid("state", e))?;
    let rows = state
        .store
        .read(move |conn| {
            ward_store::list_agents(conn, &tenant, wanted, query.cursor.as_deref(), limit + 1)
        })
        .await?;
    let (agents, next_cursor) = super::page(rows, limit, agent_out, |a: &Agent| a.id.clone());
    Ok(JsonOut(AgentList {
        agents,
        next_cursor,
    }))
}

/// Show one agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path, description = "agent id")),
    security(("bearer" = [])),
    responses((status = 200, body = Agent), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<JsonOut<Agent>, ApiError> {
    let tenant = principal.require(Permission::ReadAgents)?.to_owned();
    let wanted = id.clone();
    let row = state
        .store
        .read(move |conn| ward_store::agent(conn, Some(&tenant), &wanted))
        .await?
        .ok_or_else(|| ApiError::not_found("agent", &id))?;
    Ok(JsonOut(agent_out(row)))
}

macro_rules! lifecycle_route {
    ($name:ident, $action:expr, $path:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "agents", params(("id" = String, Path, description = "agent id")),
            request_body = LifecycleChange, security(("bearer" = [])),
            responses((status = 200, body = Agent), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
                (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
        pub async fn $name(
            State(state): State<AppState>,
            principal: Principal,
            Path(id): Path<String>,
            Json(body): Json<LifecycleChange>,
        ) -> Result<JsonOut<Agent>, ApiError> {
            change(state, principal, id, $action, body).await
        }
    };
}

lifecycle_route!(
    activate,
    AgentAction::Activate,
    "/v1/agents/{id}/activate",
    "Activate a pending or quarantined agent (audited)."
);
lifecycle_route!(
    quarantine,
    AgentAction::Quarantine,
    "/v1/agents/{id}/quarantine",
    "Quarantine an active agent; its tokens are revoked."
);
lifecycle_route!(
    revoke,
    AgentAction::Revoke,
    "/v1/agents/{id}/revoke",
    "Revoke an agent for good; its tokens are revoked."
);
lifecycle_route!(
    uninstall,
    AgentAction::Uninstall,
    "/v1/agents/{id}/uninstall",
    "Ask the device to uninstall the agent; its tokens are revoked."
);

async fn change(
    state: AppState,
    principal: Principal,
    id: String,
    action: AgentAction,
    body: LifecycleChange,
) -> Result<JsonOut<Agent>, ApiError> {
    let tenant = principal
        .require(if action == AgentAction::Activate {
            Permission::ActivateAgent
        } else {
            Permission::ContainAgent
        })?
        .to_owned();
    text_field("reason", &body.reason, 1000)?;
    let actor = principal.actor();
    let revocation_id = new_id("rev")?;
    let audit_action = format!("agent.{action}");
    let mut draft = entry(&actor, &audit_action, &id)
        .tenant(Some(&tenant))
        .reason(body.reason.clone());
    let outcome = state
        .store
        .write(move |ctx| {
            // INVARIANT: taken inside the transaction, so every token whose
            // issue committed before this change has `iat` at or before it.
            let now = now_ms();
            let Some(mut agent) = ward_store::agent(ctx.conn(), Some(&tenant), &id)? else {
                return Ok(Err(ApiError::not_found("agent", &id)));
            };
            let from = agent.state;
            if from == AgentState::PendingApproval && action == AgentAction::Activate {
                let pending = ward_store::list_approvals(ctx.conn(), &tenant, Some("pending"), None, 500)?
                    .into_iter()
                    .find(|a| a.agent_id == agent.id && a.kind == "enrolment")
                    .map(|a| a.id);
                let error = approvals::enrolment_pending(pending);
                ctx.audit(draft.denied(&error));
                return Ok(Err(error));
            }
            let to = match from.apply(action) {
                Ok(to) => to,
                Err(illegal) => {
                    let error = ApiError::conflict("illegal_transition", illegal.to_string());
                    ctx.audit(draft.denied(&error));
                    return Ok(Err(error));
                }
            };
            let updated_at = rfc3339(now);
            if !ward_store::set_agent_state(ctx.conn(), &agent.id, from, to, &updated_at)? {
                return Ok(Err(ApiError::conflict("conflict", "the agent changed meanwhile; retry")));
            }
            let mut revocation = None;
            if !to.may_obtain_tokens() {
                let row = RevocationRow {
                    id: revocation_id,
                    tenant_id: tenant.clone(),
                    kind: "agent".into(),
                    value: agent.id.clone(),
                    revoked_at_ms: now,
                    reason: format!("agent {}: {}", to, body.reason),
                    created_by: actor.clone(),
                };
                ward_store::insert_revocation(ctx.conn(), &row)?;
                emit(ctx, &Event::Revocation(crate::revocation::rule_of(&row)))?;
                revocation = Some(row);
            }
            emit(
                ctx,
                &Event::AgentState(AgentStateChange { agent_id: agent.id.clone(), tenant: tenant.clone(), from, to }),
            )?;
            draft.details = json!({ "from": from.as_str(), "to": to.as_str(), "tokens_revoked": revocation.is_some() }).to_string();
            ctx.audit(draft);
            agent.state = to;
            agent.updated_at = updated_at;
            Ok(Ok((agent, revocation)))
        })
        .await??;
    let (agent, revocation) = outcome;
    if let Some(row) = revocation {
        state.revocations.add(&crate::revocation::rule_of(&row));
    }
    state.agents.invalidate(&agent.id);
    state.published();
    Ok(JsonOut(agent_out(agent)))
}
