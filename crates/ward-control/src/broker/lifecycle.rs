//! The agent lifecycle: operator actions that move an agent between
//! states (`ward_model::lifecycle`), each revoking the agent's tokens when
//! it may no longer obtain any.

use serde_json::json;
use ward_api::LifecycleChange;
use ward_model::feed::{AgentStateChange, Event};
use ward_model::lifecycle::{AgentAction, AgentState};
use ward_model::roles::Permission;
use ward_store::AgentRow;

use crate::AppState;
use crate::audit::{DraftExt, emit, entry};
use crate::auth::Principal;
use crate::broker::approval;
use crate::error::ApiError;
use crate::fields::text_field;
use crate::revocation::agent_rule;
use crate::util::{new_id, now_ms, rfc3339};

/// Applies an operator's `action` to agent `id` of the principal's tenant:
/// audited, on the change feed, and (unless the agent may still obtain
/// tokens) with a revocation rule for its tokens, all in one transaction.
/// Returns the agent as changed.
pub async fn change(
    state: &AppState,
    principal: &Principal,
    id: String,
    action: AgentAction,
    body: LifecycleChange,
) -> Result<AgentRow, ApiError> {
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
                let error = approval::enrolment_pending(pending);
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
                let row = agent_rule(
                    revocation_id,
                    &tenant,
                    &agent.id,
                    now,
                    format!("agent {}: {}", to, body.reason),
                    actor.clone(),
                );
                ward_store::insert_revocation(ctx.conn(), &row)?;
                emit(ctx, &Event::Revocation(crate::revocation::rule_of(&row)))?;
                revocation = Some(row);
            }
            emit(
                ctx,
                &Event::AgentState(AgentStateChange {
                    agent_id: agent.id.clone(),
                    tenant: tenant.clone(),
                    from,
                    to,
                    at: updated_at.clone(),
                }),
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
    Ok(agent)
}
