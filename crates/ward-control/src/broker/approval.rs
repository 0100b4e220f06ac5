//! Approvals: high-risk access waits for a second person. The token
//! decision and enrolment create requests; approvers (never the requester
//! or the agent's owner, always with multi-factor sign-in) decide them; an
//! approved token request is redeemed once.

use serde_json::{Value, json};
use ward_api::DecideApproval;
use ward_model::feed::{AgentStateChange, Event};
use ward_model::lifecycle::AgentState;
use ward_model::roles::Permission;
use ward_model::scope::Scope;
use ward_store::{AgentRow, ApprovalRow, DecisionRow, StoreError};

use crate::AppState;
use crate::audit::{DraftExt, emit, entry};
use crate::auth::Principal;
use crate::error::{ApiError, correlation_id};
use crate::fields::text_field;
use crate::util::{new_id, now_ms, rfc3339};

/// Why a grant needs approval, and by how many people.
pub struct Needed {
    /// 2 when a `two_person` feature is involved, else 1.
    pub required: i64,
    /// The matrix entries that made it high risk.
    pub reasons: Vec<Value>,
}

/// What the approval gate decided for a token request.
pub enum Gate {
    /// Redeem this approved request (mark it used with the token).
    Redeem(Box<ApprovalRow>),
    /// Refuse with `approval_required` naming the (new or pending) request.
    Ask(ApiError),
}

/// What an approval request asks for: a token (by the agent) or an
/// enrolment (by whoever made the enrolment token).
pub struct Ask<'a> {
    /// `token` or `enrolment`.
    pub kind: &'a str,
    /// The agent the access is for.
    pub agent: &'a AgentRow,
    /// Who asks (compared with approvers: they may not decide).
    pub requested_by: &'a str,
    /// The scopes asked for.
    pub scopes: &'a [String],
    /// Token lifetime asked for, seconds (0 for enrolment).
    pub duration: u64,
    /// The action a token is to be bound to, and its hash.
    pub action: Option<&'a Value>,
    /// SHA-256 of the canonical action.
    pub action_hash: Option<&'a str>,
    /// Why, and by how many approvers.
    pub needed: &'a Needed,
    /// Unix seconds.
    pub now: i64,
}

/// A new approval request (not yet stored).
pub fn new_request(state: &AppState, ask: &Ask<'_>) -> Result<ApprovalRow, ApiError> {
    let Ask {
        kind,
        agent,
        requested_by,
        scopes,
        duration,
        action,
        action_hash,
        needed,
        now,
    } = *ask;
    Ok(ApprovalRow {
        id: new_id("apr")?,
        tenant_id: agent.tenant_id.clone(),
        kind: kind.to_owned(),
        agent_id: agent.id.clone(),
        requested_by: requested_by.to_owned(),
        owner: agent.owner.clone(),
        scopes: serde_json::to_string(scopes).map_err(ApiError::internal)?,
        duration: duration as i64,
        action_hash: action_hash.map(str::to_owned),
        action: action.map(Value::to_string),
        required: needed.required,
        status: "pending".into(),
        reasons: Value::Array(needed.reasons.clone()).to_string(),
        correlation_id: correlation_id(),
        created_at: rfc3339(now * 1000),
        expires_at: now + state.config.approval_ttl_secs as i64,
        approved_scopes: None,
        approved_duration: None,
        decided_at: None,
    })
}

fn approval_required(id: &str, fresh: bool) -> ApiError {
    let mut error = ApiError::forbidden(
        "approval_required",
        format!(
            "this access is high risk and needs approval: {} approval request `{id}`, then retry with `approval_id`",
            if fresh { "created" } else { "wait for" }
        ),
    );
    error.approval_id = Some(id.to_owned());
    error
}

/// The facts of a token request the approval gate decides on.
pub struct TokenAsk<'a> {
    /// The agent asking.
    pub agent: &'a AgentRow,
    /// The scopes it would get.
    pub scopes: &'a [Scope],
    /// The lifetime it would get, seconds.
    pub duration: u64,
    /// The action the token is to be bound to.
    pub action: Option<&'a Value>,
    /// SHA-256 of the canonical action.
    pub action_hash: Option<&'a str>,
    /// The approved request the agent redeems, if it names one.
    pub approval_id: Option<&'a str>,
    /// Why approval is needed, and by how many people.
    pub needed: Needed,
    /// Unix seconds.
    pub now: i64,
}

/// The approval gate of a token request for high-risk scopes.
pub async fn token_gate(state: &AppState, ask: TokenAsk<'_>) -> Result<Gate, ApiError> {
    let TokenAsk {
        agent,
        scopes,
        duration,
        action,
        action_hash,
        approval_id,
        needed,
        now,
    } = ask;
    if let Some(id) = approval_id {
        let (tenant, wanted) = (agent.tenant_id.clone(), id.to_owned());
        let row = state
            .store
            .read(move |conn| ward_store::approval(conn, Some(&tenant), &wanted))
            .await?
            .filter(|row| row.agent_id == agent.id && row.kind == "token")
            .ok_or_else(|| ApiError::not_found("approval", id).field("approval_id"))?;
        let refuse = |code: &'static str, message: String| {
            Err(ApiError::forbidden(code, message).field("approval_id"))
        };
        if row.expires_at <= now {
            return refuse(
                "approval_expired",
                format!("approval `{id}` has expired; ask again"),
            );
        }
        match row.status.as_str() {
            "approved" => {}
            "pending" => return Ok(Gate::Ask(approval_required(id, false))),
            "denied" => return refuse("approval_denied", format!("approval `{id}` was denied")),
            _ => {
                return Err(ApiError::conflict(
                    "approval_used",
                    format!("approval `{id}` was used already; an approval grants one token"),
                )
                .field("approval_id"));
            }
        }
        if row.required < needed.required {
            return refuse(
                "approval_insufficient",
                format!(
                    "approval `{id}` had {} approver(s) but these scopes now need {}; ask again",
                    row.required, needed.required
                ),
            );
        }
        if row.action_hash.as_deref() != action_hash {
            return refuse(
                "action_mismatch",
                format!("approval `{id}` was given for another action"),
            );
        }
        let approved_text = row.approved_scopes.as_deref().unwrap_or(&row.scopes);
        let approved: Vec<Scope> = serde_json::from_str::<Vec<String>>(approved_text)
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        for (index, scope) in scopes.iter().enumerate() {
            if !approved.iter().any(|granted| granted.covers(scope)) {
                return Err(ApiError::forbidden(
                    "scope_not_approved",
                    format!("scope `{scope}` is not among the scopes approval `{id}` granted"),
                )
                .field(format!("requested_scopes[{index}]")));
            }
        }
        return Ok(Gate::Redeem(Box::new(row)));
    }
    let scope_strings: Vec<String> = scopes.iter().map(ToString::to_string).collect();
    let scopes_json = serde_json::to_string(&scope_strings).map_err(ApiError::internal)?;
    let row = new_request(
        state,
        &Ask {
            kind: "token",
            agent,
            requested_by: &format!("agent:{}", agent.id),
            scopes: &scope_strings,
            duration,
            action,
            action_hash,
            needed: &needed,
            now,
        },
    )?;
    let draft = entry(&format!("agent:{}", agent.id), "approval.request", &row.id)
        .tenant(Some(&agent.tenant_id))
        .details(json!({
            "agent_id": agent.id, "scopes": scope_strings, "duration": duration,
            "action_hash": action_hash, "required": needed.required, "reasons": needed.reasons,
        }));
    let (agent_id, hash) = (agent.id.clone(), action_hash.map(str::to_owned));
    let (id, fresh) = state
        .store
        .write(move |ctx| {
            if let Some(pending) = ward_store::pending_approval(
                ctx.conn(),
                &agent_id,
                "token",
                &scopes_json,
                hash.as_deref(),
                now,
            )? {
                return Ok((pending.id, false));
            }
            ward_store::insert_approval(ctx.conn(), &row)?;
            ctx.audit(draft);
            Ok((row.id, true))
        })
        .await?;
    Ok(Gate::Ask(approval_required(&id, fresh)))
}

/// An approver's decision on request `id`: a different person from the
/// requester and the agent's owner (told apart by verified email), signed
/// in with multi-factor authentication. Approving the last needed time
/// approves the request (an enrolment's activates the agent). Returns the
/// request and its decisions.
pub async fn decide(
    state: &AppState,
    principal: &Principal,
    id: String,
    approve: bool,
    body: DecideApproval,
) -> Result<(ApprovalRow, Vec<DecisionRow>), ApiError> {
    let tenant = principal.require(Permission::Approve)?.to_owned();
    text_field("reason", &body.reason, 1000)?;
    if !approve && (body.duration.is_some() || body.scopes.is_some()) {
        return Err(ApiError::invalid(
            "scopes",
            "a denial takes only a `reason`",
        ));
    }
    let narrowed: Option<Vec<Scope>> = body
        .scopes
        .as_ref()
        .map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, s)| {
                    s.parse::<Scope>()
                        .map_err(|e| ApiError::invalid(format!("scopes[{i}]"), e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    if body.duration == Some(0) {
        return Err(ApiError::invalid(
            "duration",
            "`duration` must be at least 1 second",
        ));
    }
    let actor = principal.actor();
    let identity = principal.identity();
    let verified_email = principal.verified_email.clone();
    let mfa = principal.mfa;
    let action = if approve {
        "approval.approve"
    } else {
        "approval.deny"
    };
    let request_correlation = correlation_id();
    let draft = entry(&actor, action, &id)
        .tenant(Some(&tenant))
        .reason(body.reason.clone());
    let outcome = state
        .store
        .write(move |ctx| {
            let conn = ctx.conn();
            let Some(row) = ward_store::approval(conn, Some(&tenant), &id)? else {
                return Ok(Err(ApiError::not_found("approval", &id)));
            };
            // Every step of an approval carries the original request's id.
            let mut draft = draft;
            draft.correlation_id.clone_from(&row.correlation_id);
            let refuse = |ctx: &mut ward_store::WriteCtx<'_>, error: ApiError, draft: ward_model::audit::AuditRecord| {
                ctx.audit(draft.denied(&error));
                Ok(Err(error))
            };
            let now = now_ms() / 1000;
            if row.kind == "enrolment" && (narrowed.is_some() || body.duration.is_some()) {
                return Ok(Err(ApiError::invalid(
                    "scopes",
                    "an enrolment approval grants the whole profile; `scopes` and `duration` apply to token approvals",
                )));
            }
            if row.status != "pending" {
                let error = ApiError::conflict("approval_decided", format!("approval `{id}` is {} already", row.status));
                return refuse(ctx, error, draft);
            }
            if row.expires_at <= now {
                let error = ApiError::conflict("approval_expired", format!("approval `{id}` has expired"));
                return refuse(ctx, error, draft);
            }
            // People are compared by their stable identity, and the owner
            // (an email) only against a verified email, case-insensitively:
            // without one we cannot tell the approver is not the owner.
            let is_owner = match &verified_email {
                Some(email) => row.owner.to_lowercase() == *email,
                None => true,
            };
            if row.requested_by == identity || row.requested_by == actor || is_owner {
                let error = ApiError::forbidden(
                    "self_approval",
                    "the requester and the agent's owner cannot decide this approval (approvers need a verified email); ask another approver",
                );
                return refuse(ctx, error, draft);
            }
            if ward_store::decisions(conn, &row.id)?.iter().any(|d| d.approver == identity) {
                let error = ApiError::conflict("already_decided", format!("you decided approval `{id}` already"));
                return refuse(ctx, error, draft);
            }
            if !mfa {
                let error = ApiError::forbidden(
                    "step_up_required",
                    "high-risk approvals need a multi-factor sign-in; sign in again with MFA",
                );
                return refuse(ctx, error, draft);
            }
            let requested: Vec<String> = serde_json::from_str(&row.scopes).unwrap_or_default();
            let current: Vec<String> = row
                .approved_scopes
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_else(|| requested.clone());
            let granted: Vec<String> = match &narrowed {
                None => current,
                Some(wanted) => {
                    let mut kept = Vec::new();
                    for scope in wanted {
                        let text = scope.to_string();
                        if !requested.contains(&text) {
                            let error = ApiError::invalid(
                                "scopes",
                                format!("scope `{text}` was not requested; an approver can only narrow"),
                            );
                            return Ok(Err(error));
                        }
                        if current.contains(&text) {
                            kept.push(text);
                        }
                    }
                    kept
                }
            };
            let duration = body
                .duration
                .map(|d| d as i64)
                .into_iter()
                .chain(row.approved_duration)
                .chain(Some(row.duration))
                .min()
                .unwrap_or(row.duration);
            ward_store::insert_decision(
                conn,
                &DecisionRow {
                    approval_id: row.id.clone(),
                    approver: identity.clone(),
                    decision: if approve { "approve" } else { "deny" }.into(),
                    reason: body.reason.clone(),
                    mfa,
                    decided_at: rfc3339(now * 1000),
                },
            )?;
            let approvals = ward_store::decisions(conn, &row.id)?
                .iter()
                .filter(|d| d.decision == "approve")
                .count() as i64;
            let decided_at = rfc3339(now * 1000);
            let granted_json = serde_json::to_string(&granted).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let (status, activated) = if !approve {
                ward_store::set_approval_status(conn, &row.id, "pending", "denied", Some(&decided_at), None, None)?;
                ("denied", false)
            } else if approvals >= row.required {
                let final_status = if row.kind == "enrolment" { "used" } else { "approved" };
                ward_store::set_approval_status(
                    conn, &row.id, "pending", final_status, Some(&decided_at), Some(&granted_json), Some(duration),
                )?;
                let activated = row.kind == "enrolment"
                    && ward_store::set_agent_state(
                        conn,
                        &row.agent_id,
                        AgentState::PendingApproval,
                        AgentState::Active,
                        &decided_at,
                    )?;
                if activated {
                    emit(
                        ctx,
                        &Event::AgentState(AgentStateChange {
                            agent_id: row.agent_id.clone(),
                            tenant: row.tenant_id.clone(),
                            from: AgentState::PendingApproval,
                            to: AgentState::Active,
                            at: decided_at.clone(),
                        }),
                    )?;
                }
                (final_status, activated)
            } else {
                ward_store::set_approval_status(
                    conn, &row.id, "pending", "pending", None, Some(&granted_json), Some(duration),
                )?;
                ("pending", false)
            };
            draft.details = json!({
                "agent_id": row.agent_id, "kind": row.kind, "approvals": approvals, "required": row.required,
                "status": status, "mfa": mfa, "approved_scopes": granted, "approved_duration": duration,
                "agent_activated": activated, "decision_correlation_id": request_correlation,
            })
            .to_string();
            ctx.audit(draft);
            let row = ward_store::approval(conn, None, &row.id)?
                .ok_or_else(|| StoreError::Corrupt("approval vanished".into()))?;
            let decisions = ward_store::decisions(conn, &row.id)?;
            Ok(Ok((row, decisions, activated)))
        })
        .await??;
    let (row, decisions, activated) = outcome;
    if activated {
        state.agents.invalidate(&row.agent_id);
        state.published();
    }
    Ok((row, decisions))
}

/// 409 for activating an agent whose enrolment waits for approval.
pub fn enrolment_pending(approval: Option<String>) -> ApiError {
    let mut error = ApiError::conflict(
        "approval_required",
        match &approval {
            Some(id) => format!(
                "this agent's enrolment waits for approval request `{id}`; approvers decide it"
            ),
            None => "this agent's enrolment waits for approval; approvers decide it".to_owned(),
        },
    );
    error.approval_id = approval;
    error
}
