//! The token decision: a request for a device-bound scoped token goes
//! through its stages in order, each a function from typed input to a typed
//! outcome, and any stage can end it with a refusal:
//! authenticate device -> read the request -> agent state -> kill switch ->
//! matrix -> policy -> action -> consent -> approval -> mint -> audit.
//!
//! INVARIANT: a token is returned only after its `token.issue` audit entry
//! is durable; every refusal after the body parses is audited too (by the
//! caller, with the tenant the refusal carries).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ward_api::{TokenRequest, TokenResponse};
use ward_model::audit::hex;
use ward_model::lifecycle::AgentState;
use ward_model::matrix::{Matrix, Risk};
use ward_model::scope::Scope;
use ward_store::{AgentRow, ApprovalRow};

use crate::audit::{DraftExt, entry};
use crate::broker::approval::{self, Gate, Needed, TokenAsk};
use crate::broker::consent;
use crate::broker::device::{self, Refusal};
use crate::error::ApiError;
use crate::policy::Decision;
use crate::switches::Mode;
use crate::util::{new_id, now_ms};
use crate::{AppState, Config};

/// The path DPoP proofs for a token request are made for.
const TOKEN_PATH: &str = "/v1/tokens";

/// The most scopes one token request may ask for.
const MAX_SCOPES: usize = 32;

/// The most bytes of a canonical action a token may be bound to.
const MAX_ACTION_BYTES: usize = 16 * 1024;

/// Decides a token request carrying `proof` (the request's `DPoP` header,
/// or why it has none): the token, or the refusal and the tenant it is
/// attributed to.
pub async fn issue(
    state: &AppState,
    proof: Result<&str, ApiError>,
    request: &TokenRequest,
) -> Result<TokenResponse, Refusal> {
    let now = now_ms() / 1000;
    let cached = device::authenticate(state, proof, &request.agent_id, TOKEN_PATH, now).await?;
    let agent = &cached.row;
    let tenant = Some(agent.tenant_id.clone());
    let fail = |error: ApiError| (error, tenant.clone());
    let asked = read_request(&state.config, request).map_err(fail)?;
    agent_state(agent).map_err(fail)?;
    kill_switch(state, agent, &asked.scopes).map_err(fail)?;
    let granted = matrix(&state.matrix.matrix, agent, asked.scopes).map_err(fail)?;
    let mut narrowed = policy(state, agent, granted, asked.duration, request, now)
        .await
        .map_err(fail)?;
    let action_hash = action_hash(request.action.as_ref()).map_err(fail)?;
    let consent_id = consent::check(&state.store, &agent.id, &narrowed.consent_needed)
        .await
        .map_err(fail)?;
    let redeemed = approval(
        state,
        agent,
        &mut narrowed,
        request,
        action_hash.as_deref(),
        now,
    )
    .await
    .map_err(fail)?;
    let minted = mint(
        state,
        agent,
        &narrowed,
        &redeemed,
        action_hash.as_deref(),
        now,
    )
    .map_err(fail)?;
    let issued = Issued {
        narrowed,
        redeemed,
        consent_id,
        action_hash,
        minted,
    };
    audit(state, agent, issued).await.map_err(fail)
}

/// What the request asks for, checked.
struct Asked {
    /// The scopes, parsed, normalised and without duplicates.
    scopes: Vec<Scope>,
    /// The lifetime, capped at the longest allowed.
    duration: u64,
}

/// Reads the request: its scopes and lifetime.
fn read_request(config: &Config, request: &TokenRequest) -> Result<Asked, ApiError> {
    let scopes = parse_scopes(&request.requested_scopes)?;
    let duration = match request.requested_duration {
        Some(0) => {
            return Err(ApiError::invalid(
                "requested_duration",
                "`requested_duration` must be at least 1 second",
            ));
        }
        Some(secs) => secs.min(config.max_token_secs),
        None => config.default_token_secs.min(config.max_token_secs),
    };
    Ok(Asked { scopes, duration })
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

/// Only active agents get tokens (the cached state; the write transaction
/// checks again).
fn agent_state(agent: &AgentRow) -> Result<(), ApiError> {
    let agent_state = agent.state;
    if !agent_state.may_obtain_tokens() {
        return Err(ApiError::forbidden(
            "agent_not_active",
            format!(
                "agent `{}` is {agent_state}; only active agents get tokens",
                agent.id
            ),
        ));
    }
    Ok(())
}

/// The kill switch comes before everything a grant could add: offline
/// refuses every token, read-only every scope that is not read-style.
fn kill_switch(state: &AppState, agent: &AgentRow, scopes: &[Scope]) -> Result<(), ApiError> {
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
            return Err(ApiError::forbidden(
                "kill_switch_offline",
                format!("{} has this agent offline: no tokens", switch_name()),
            ));
        }
        Mode::ReadOnly => {
            if let Some((index, scope)) = scopes.iter().enumerate().find(|(_, s)| !s.is_read()) {
                return Err(ApiError::forbidden(
                    "kill_switch_read_only",
                    format!(
                        "{} allows read scopes only; `{scope}` is not one",
                        switch_name()
                    ),
                )
                .field(format!("requested_scopes[{index}]")));
            }
        }
        Mode::Normal => {}
    }
    Ok(())
}

/// A requested scope the matrix grants, kept with its position in the
/// request so refusals name the field.
struct Granted {
    index: usize,
    scope: Scope,
    log: Value,
    consent: bool,
    high: bool,
    two_person: bool,
}

/// Default deny: every scope must be covered by a feature of the agent's
/// profile.
fn matrix(matrix: &Matrix, agent: &AgentRow, scopes: Vec<Scope>) -> Result<Vec<Granted>, ApiError> {
    let mut granted = Vec::with_capacity(scopes.len());
    for (index, scope) in scopes.into_iter().enumerate() {
        let Some(grant) = matrix.authorize(&agent.profile, &scope) else {
            return Err(ApiError::forbidden(
                "scope_not_allowed",
                format!(
                    "scope `{scope}` is not granted to profile `{}` by the capability matrix",
                    agent.profile
                ),
            )
            .field(format!("requested_scopes[{index}]")));
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
    Ok(granted)
}

/// The grant after policy, and what it still needs.
struct Narrowed {
    /// The scopes granted.
    scopes: Vec<Scope>,
    /// Their decision log entries (feature, granting scope, risk).
    grants: Vec<Value>,
    /// The lifetime, capped by policy.
    duration: u64,
    /// The policy's decision, if the tenant has a bundle.
    policy: Option<Decision>,
    /// Scopes of `consent: required` features, with their request index.
    consent_needed: Vec<(usize, Scope)>,
    /// Why approval is needed: high-risk grants and policy rules.
    high_risk: Vec<Value>,
    /// Whether a `two_person` high-risk feature is involved.
    two_person: bool,
}

/// Policy comes after the matrix and can only narrow what it granted:
/// deny, drop scopes, cap the lifetime, or require approval.
async fn policy(
    state: &AppState,
    agent: &AgentRow,
    mut granted: Vec<Granted>,
    mut duration: u64,
    request: &TokenRequest,
    now: i64,
) -> Result<Narrowed, ApiError> {
    let matrix = &state.matrix.matrix;
    let policy = state
        .policies
        .evaluate(
            &state.store,
            "token.issue",
            agent,
            json!({
                "scopes": granted.iter().map(|g| g.scope.to_string()).collect::<Vec<_>>(),
                "duration": duration,
                "approval_id": request.approval_id,
            }),
            json!({
                "profile_high_risk": matrix.profile_is_high_risk(&agent.profile),
                "grants": granted.iter().map(|g| g.log.clone()).collect::<Vec<_>>(),
            }),
            now,
        )
        .await?;
    let mut policy_approval = Vec::new();
    if let Some(decision) = &policy {
        if let Some(refusal) = decision.refusal() {
            return Err(refusal);
        }
        let removed: Vec<&str> = decision
            .decision
            .remove_scopes
            .iter()
            .map(|(scope, _)| scope.as_str())
            .collect();
        granted.retain(|g| !removed.contains(&g.scope.to_string().as_str()));
        if granted.is_empty() {
            return Err(ApiError::forbidden(
                "policy_denied",
                "the policy removed every requested scope",
            ));
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
    Ok(Narrowed {
        scopes,
        grants,
        duration,
        policy,
        consent_needed,
        high_risk,
        two_person,
    })
}

/// The hash a token is bound to when the request names one action.
fn action_hash(action: Option<&Value>) -> Result<Option<String>, ApiError> {
    match action {
        None => Ok(None),
        Some(action) if action.is_object() => {
            let canonical = action.to_string();
            if canonical.len() > MAX_ACTION_BYTES {
                return Err(ApiError::invalid(
                    "action",
                    format!("`action` is over {MAX_ACTION_BYTES} bytes"),
                ));
            }
            Ok(Some(hex(&Sha256::digest(canonical.as_bytes()))))
        }
        Some(_) => Err(ApiError::invalid(
            "action",
            "`action` must be an object such as {\"tool\": ..., \"arguments\": {...}}",
        )),
    }
}

/// The approval a token redeems, if any.
#[derive(Default)]
struct Redeemed {
    /// The approval request's id.
    approval: Option<String>,
    /// The correlation id of the request that asked for it.
    correlation: Option<String>,
    /// The lifetime, capped by what the approvers granted.
    duration: u64,
}

/// High-risk grants (or a policy asking) need an approved request: without
/// one, a request is created or reused and the answer is
/// `approval_required`.
async fn approval(
    state: &AppState,
    agent: &AgentRow,
    narrowed: &mut Narrowed,
    request: &TokenRequest,
    action_hash: Option<&str>,
    now: i64,
) -> Result<Redeemed, ApiError> {
    let mut redeemed = Redeemed {
        duration: narrowed.duration,
        ..Redeemed::default()
    };
    if narrowed.high_risk.is_empty() && request.approval_id.is_none() {
        return Ok(redeemed);
    }
    let needed = Needed {
        required: if narrowed.two_person { 2 } else { 1 },
        reasons: std::mem::take(&mut narrowed.high_risk),
    };
    let ask = TokenAsk {
        agent,
        scopes: &narrowed.scopes,
        duration: narrowed.duration,
        action: request.action.as_ref(),
        action_hash,
        approval_id: request.approval_id.as_deref(),
        needed,
        now,
    };
    match approval::token_gate(state, ask).await? {
        Gate::Ask(error) => Err(error),
        Gate::Redeem(row) => {
            let ApprovalRow {
                id,
                correlation_id,
                approved_duration,
                duration,
                ..
            } = *row;
            let granted = approved_duration.unwrap_or(duration).max(1) as u64;
            redeemed.duration = redeemed.duration.min(granted);
            redeemed.correlation = Some(correlation_id);
            redeemed.approval = Some(id);
            Ok(redeemed)
        }
    }
}

/// A signed token and the facts recorded with it.
struct Minted {
    token: String,
    jti: String,
    exp: i64,
    scopes: Vec<String>,
}

/// Signs the JWT (`typ: at+jwt`, EdDSA), bound to the device key; an
/// action-bound token is single-use.
fn mint(
    state: &AppState,
    agent: &AgentRow,
    narrowed: &Narrowed,
    redeemed: &Redeemed,
    action_hash: Option<&str>,
    now: i64,
) -> Result<Minted, ApiError> {
    let scope_strings: Vec<String> = narrowed.scopes.iter().map(ToString::to_string).collect();
    let jti = new_id("tok")?;
    let exp = now + redeemed.duration as i64;
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
    if let Some(id) = &redeemed.approval {
        claims["approval_id"] = json!(id);
    }
    if let Some(hash) = action_hash {
        // A token bound to one action is for that action only, once.
        claims["action_hash"] = json!(hash);
        claims["single_use"] = json!(true);
    }
    let token = state.keys.sign(&claims).map_err(ApiError::internal)?;
    Ok(Minted {
        token,
        jti,
        exp,
        scopes: scope_strings,
    })
}

/// Everything the audit stage records and answers with.
struct Issued {
    narrowed: Narrowed,
    redeemed: Redeemed,
    consent_id: Option<String>,
    action_hash: Option<String>,
    minted: Minted,
}

/// Records the token: in one write transaction, re-checks the agent's
/// state and the consent, marks the approval used and appends `token.issue`
/// with the decision log; answers once it is durable.
async fn audit(
    state: &AppState,
    agent: &AgentRow,
    issued: Issued,
) -> Result<TokenResponse, ApiError> {
    let Issued {
        narrowed,
        redeemed,
        consent_id,
        action_hash,
        minted,
    } = issued;
    let Minted {
        token,
        jti,
        exp,
        scopes: scope_strings,
    } = minted;
    let (duration, approval) = (redeemed.duration, redeemed.approval);
    let draft = entry(&format!("agent:{}", agent.id), "token.issue", &jti)
        .tenant(Some(&agent.tenant_id))
        .details(json!({
            "scopes": scope_strings, "exp": exp, "duration": duration, "grants": narrowed.grants,
            "kid": state.keys.current_kid(), "device_jkt": agent.device_jkt,
            "matrix_digest": state.matrix.digest, "consent_id": consent_id,
            "approval_id": approval, "action_hash": action_hash,
            "policy": narrowed.policy.as_ref().map(|p| p.log()),
            "request_correlation_id": crate::error::correlation_id(),
        }));
    // Redeeming an approval is one of its steps: it carries the correlation
    // id of the request that asked for it.
    let mut draft = draft;
    if let Some(original) = redeemed.correlation {
        draft.correlation_id = original;
    }
    // The cached state above is a fast path; this check, in the transaction
    // that records the token, is the one that counts: a lifecycle change
    // committed before it refuses the token, one committed after it finds
    // the token's `iat` covered by its revocation rule. The approval is
    // marked used in the same transaction, so it grants one token only.
    let agent_id = agent.id.clone();
    let consent_id_checked = consent_id;
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
        .await??;
    Ok(TokenResponse {
        token,
        expires_in: duration,
        scopes: scope_strings,
        token_type: "DPoP".into(),
    })
}
