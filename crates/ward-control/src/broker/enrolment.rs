//! Enrolment: single-use enrolment tokens for an owner and a profile, and
//! enrolling a device with one. Enrolment into a high-risk profile waits
//! for approval.

use serde_json::json;
use ward_api::{CreateEnrollToken, EnrollAgent, EnrollTokenCreated};
use ward_auth::Jwk;
use ward_model::lifecycle::AgentState;
use ward_model::roles::Permission;
use ward_store::{AgentRow, EnrollTokenRow};

use crate::AppState;
use crate::audit::{DraftExt, entry};
use crate::auth::Principal;
use crate::broker::approval;
use crate::error::ApiError;
use crate::fields::{check_email, text_field};
use crate::util::{new_id, new_secret, now_ms, rfc3339, secret_hash};

/// Creates a single-use enrolment token for an owner and a profile of the
/// matrix; the secret is shown once and stored as a hash.
pub async fn create_token(
    state: &AppState,
    principal: &Principal,
    body: CreateEnrollToken,
) -> Result<EnrollTokenCreated, ApiError> {
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
    Ok(EnrollTokenCreated {
        id: row.id,
        token: secret,
        tenant,
        owner: row.owner,
        profile: row.profile,
        expires_at: rfc3339(row.expires_at * 1000),
    })
}

/// Enrols a device with an enrolment token (no other credential): the
/// agent starts active, or pending approval when its profile (or policy)
/// is high risk. Returns the agent.
pub async fn enrol(state: &AppState, body: EnrollAgent) -> Result<AgentRow, ApiError> {
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
        let error = ApiError::unauthorized("invalid_enroll_token", "unknown enrolment token");
        return Err(state
            .deny(entry("anonymous", "agent.enroll", "unknown"), error)
            .await);
    };
    let actor = format!("enroll_token:{}", token.id);
    let denial = entry(&actor, "agent.enroll", &token.id).tenant(Some(&token.tenant_id));
    let now = now_ms();
    if token.used_at.is_some() {
        let error = ApiError::unauthorized(
            "enroll_token_used",
            "this enrolment token was used already; ask for a new one",
        );
        return Err(state.deny(denial, error).await);
    }
    if now / 1000 >= token.expires_at {
        let error = ApiError::unauthorized(
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
        let needed = approval::Needed {
            required: if features.iter().any(|f| f.two_person) {
                2
            } else {
                1
            },
            reasons,
        };
        Some(approval::new_request(
            state,
            &approval::Ask {
                kind: "enrolment",
                agent: &row,
                requested_by: &token.created_by,
                scopes: &profile_scopes,
                duration: 0,
                action: None,
                action_hash: None,
                needed: &needed,
                now: now / 1000,
            },
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
        let error = ApiError::unauthorized(
            "enroll_token_used",
            "this enrolment token was used already; ask for a new one",
        );
        return Err(state.deny(denial, error).await);
    }
    Ok(row)
}
