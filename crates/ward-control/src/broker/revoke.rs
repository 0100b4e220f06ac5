//! Revoking tokens by id, by agent, or by scope prefix: a rule written,
//! put on the change feed and audited in one transaction, in force at once
//! for introspection and for every token issued up to now.

use serde_json::json;
use ward_api::RevokeTokens;
use ward_model::feed::Event;
use ward_model::roles::Permission;
use ward_store::{RevocationRow, StoreError};

use crate::AppState;
use crate::audit::{DraftExt, emit, entry};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::fields::text_field;
use crate::util::{new_id, now_ms};

/// Revokes what `body` names in the principal's tenant; returns the rule.
pub async fn revoke(
    state: &AppState,
    principal: &Principal,
    body: RevokeTokens,
) -> Result<RevocationRow, ApiError> {
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
            return Err(ApiError::bad_request(
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
    Ok(row)
}
