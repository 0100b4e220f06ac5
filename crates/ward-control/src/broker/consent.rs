//! Consent: the agent's owner consents to (or refuses) the scopes of
//! features the matrix marks `consent: required`, signed in as themselves
//! (or an admin of the agent's tenant records it for them, with a reason),
//! never the agent; the broker refuses such scopes until a consent covers
//! them. Records are never deleted; one that takes back what was granted
//! revokes the agent's tokens issued until then.

use serde_json::json;
use ward_api::RecordConsent;
use ward_model::feed::Event;
use ward_model::lifecycle::AgentState;
use ward_model::roles::Permission;
use ward_model::scope::Scope;
use ward_store::{AgentRow, ConsentRow, Store};

use crate::AppState;
use crate::audit::{DraftExt, emit, entry};
use crate::auth::Caller;
use crate::error::{ApiError, correlation_id};
use crate::fields::{id_field, text_field};
use crate::revocation::{agent_rule, rule_of};
use crate::util::{new_id, now_ms, rfc3339};

/// Records the owner's consent or refusal for scopes of the agent's
/// profile, as the owner (a person whose verified email is the agent's
/// owner) or an admin of the agent's tenant acting for them with a reason.
/// A record that no longer covers what the owner had granted withdraws
/// consent: a revocation rule for the agent's tokens is written, put on the
/// change feed and audited in the same transaction.
pub async fn record(
    state: &AppState,
    caller: &Caller,
    body: RecordConsent,
) -> Result<ConsentRow, ApiError> {
    id_field("agent_id", &body.agent_id)?;
    let actor = caller.actor();
    let denial = entry(&actor, "consent.record", &body.agent_id);
    let wanted = body.agent_id.clone();
    let agent = state
        .store
        .read(move |conn| ward_store::agent(conn, None, &wanted))
        .await?;
    let Some(agent) = agent else {
        return Err(state
            .deny(denial, ApiError::not_found("agent", &body.agent_id))
            .await);
    };
    let denial = denial.tenant(Some(&agent.tenant_id));
    let recorder = match recorder(state, caller, &agent, body.reason.as_deref()).await {
        Ok(recorder) => recorder,
        Err(error) => return Err(state.deny(denial, error).await),
    };
    let scopes = read_record(&body)?;
    if matches!(agent.state, AgentState::Revoked | AgentState::Uninstalled) {
        let error = ApiError::forbidden(
            "agent_not_active",
            format!("agent `{}` is {}", agent.id, agent.state),
        );
        return Err(state.deny(denial, error).await);
    }
    if let Err(error) = in_profile(state, &agent.profile, &scopes) {
        return Err(state.deny(denial, error).await);
    }
    let scopes: Vec<String> = scopes.iter().map(ToString::to_string).collect();
    let now = now_ms();
    let row = ConsentRow {
        id: new_id("con")?,
        tenant_id: agent.tenant_id.clone(),
        agent_id: agent.id.clone(),
        owner: agent.owner.clone(),
        scopes: serde_json::to_string(&scopes).map_err(ApiError::internal)?,
        decision: body.decision.clone(),
        text_version: body.text_version.clone(),
        device_id: agent.host_id.clone(),
        correlation_id: correlation_id(),
        recorded_at: rfc3339(now),
    };
    let reason = match &recorder {
        Recorder::Owner => format!("consent {}", body.decision),
        Recorder::Admin(reason) => format!(
            "consent {} for the owner `{}`: {reason}",
            body.decision, agent.owner
        ),
    };
    let mut draft = entry(&actor, "consent.record", &row.id)
        .tenant(Some(&agent.tenant_id))
        .reason(reason.clone());
    let details = json!({
        "agent_id": agent.id, "scopes": scopes, "decision": body.decision,
        "text_version": body.text_version, "device_id": agent.host_id, "owner": agent.owner,
        "recorded_by": match recorder { Recorder::Owner => "owner", Recorder::Admin(_) => "admin" },
    });
    let revocation_id = new_id("rev")?;
    let stored = row.clone();
    let revocation = state
        .store
        .write(move |ctx| {
            // INVARIANT: taken inside the transaction, so every token whose
            // issue committed before this withdrawal has `iat` at or before it.
            let now = now_ms();
            let previous = ward_store::latest_consent(ctx.conn(), &stored.agent_id)?;
            ward_store::insert_consent(ctx.conn(), &stored)?;
            let mut revocation = None;
            if previous.is_some_and(|previous| withdraws(&previous, &stored)) {
                let rule = agent_rule(
                    revocation_id,
                    &stored.tenant_id,
                    &stored.agent_id,
                    now,
                    format!("consent withdrawn: {reason}"),
                    actor,
                );
                ward_store::insert_revocation(ctx.conn(), &rule)?;
                emit(ctx, &Event::Revocation(rule_of(&rule)))?;
                revocation = Some(rule);
            }
            let mut details = details;
            details["tokens_revoked"] = json!(revocation.is_some());
            details["revocation_id"] = json!(revocation.as_ref().map(|r| &r.id));
            draft.details = details.to_string();
            ctx.audit(draft);
            Ok(revocation)
        })
        .await?;
    if let Some(rule) = revocation {
        state.revocations.add(&rule_of(&rule));
        state.published();
    }
    Ok(row)
}

/// Checks the record's decision, text version and scopes (parsed, each
/// naming its position when it does not parse).
fn read_record(body: &RecordConsent) -> Result<Vec<Scope>, ApiError> {
    if body.decision != "granted" && body.decision != "refused" {
        return Err(ApiError::invalid(
            "decision",
            format!(
                "unknown decision `{}`; use `granted` or `refused`",
                body.decision
            ),
        ));
    }
    text_field("text_version", &body.text_version, 64)?;
    if body.scopes.is_empty() || body.scopes.len() > 64 {
        return Err(ApiError::invalid(
            "scopes",
            "`scopes` must list 1 to 64 scopes",
        ));
    }
    let mut scopes = Vec::with_capacity(body.scopes.len());
    for (index, text) in body.scopes.iter().enumerate() {
        let scope: Scope = text.parse().map_err(|e: ward_model::scope::ScopeError| {
            ApiError::invalid(format!("scopes[{index}]"), e.to_string())
        })?;
        scopes.push(scope);
    }
    Ok(scopes)
}

/// Who records a consent.
enum Recorder {
    /// The agent's owner, signed in.
    Owner,
    /// An admin of the agent's tenant acting for the owner, with this reason.
    Admin(String),
}

/// Tells the owner (a person whose verified email is the agent's owner,
/// compared case-insensitively) from an admin of the agent's tenant, who
/// must give a reason. Anyone else gets the answer a missing agent gets.
async fn recorder(
    state: &AppState,
    caller: &Caller,
    agent: &AgentRow,
    reason: Option<&str>,
) -> Result<Recorder, ApiError> {
    if caller
        .verified_email()
        .is_some_and(|email| agent.owner.to_lowercase() == email)
    {
        return Ok(Recorder::Owner);
    }
    let Some(principal) = caller.in_tenant(state, &agent.tenant_id).await? else {
        return Err(ApiError::not_found("agent", &agent.id));
    };
    principal.require(Permission::ManageConsent)?;
    let Some(reason) = reason else {
        return Err(ApiError::invalid(
            "reason",
            format!(
                "consent comes from the owner `{}`; an admin recording it for them must give a `reason`",
                agent.owner
            ),
        ));
    };
    text_field("reason", reason, 1000)?;
    Ok(Recorder::Admin(reason.to_owned()))
}

/// Refuses any scope no feature of `profile` covers: consent is for what
/// the capability matrix could grant the agent, nothing more.
fn in_profile(state: &AppState, profile: &str, scopes: &[Scope]) -> Result<(), ApiError> {
    for (index, scope) in scopes.iter().enumerate() {
        if state.matrix.matrix.authorize(profile, scope).is_none() {
            return Err(ApiError::forbidden(
                "scope_not_allowed",
                format!(
                    "scope `{scope}` is not granted to profile `{profile}` by the capability matrix; consent covers only the profile's scopes"
                ),
            )
            .field(format!("scopes[{index}]")));
        }
    }
    Ok(())
}

/// Whether `next` takes back some of what `previous` granted: a refusal, or
/// a grant that does not cover every scope granted before.
fn withdraws(previous: &ConsentRow, next: &ConsentRow) -> bool {
    if previous.decision != "granted" {
        return false;
    }
    if next.decision != "granted" {
        return true;
    }
    let kept = scopes_of(next);
    !scopes_of(previous)
        .iter()
        .all(|scope| kept.iter().any(|k| k.covers(scope)))
}

/// The scopes of a stored record (unreadable ones are dropped: they grant
/// nothing).
fn scopes_of(record: &ConsentRow) -> Vec<Scope> {
    serde_json::from_str::<Vec<String>>(&record.scopes)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Whether `latest` (the owner's latest record) grants every scope of
/// `scopes`: what [`check`] requires at token time, asked without a
/// request (the heartbeat's feature list and re-consent directive).
pub fn covers(latest: Option<&ConsentRow>, scopes: &[Scope]) -> bool {
    latest.is_some_and(|record| {
        let consented = scopes_of(record);
        record.decision == "granted"
            && scopes
                .iter()
                .all(|scope| consented.iter().any(|c| c.covers(scope)))
    })
}

/// Checks that the owner's latest consent covers every scope in `needed`
/// (index in the request, scope). A refusal, no record, or a scope wider
/// than what was consented to answers 403 `consent_required`.
pub async fn check(
    store: &Store,
    agent_id: &str,
    needed: &[(usize, Scope)],
) -> Result<Option<String>, ApiError> {
    if needed.is_empty() {
        return Ok(None);
    }
    let wanted = agent_id.to_owned();
    let latest = store
        .read(move |conn| ward_store::latest_consent(conn, &wanted))
        .await?;
    let refuse = |index: usize, message: String| {
        Err(ApiError::forbidden("consent_required", message)
            .field(format!("requested_scopes[{index}]")))
    };
    let Some(record) = latest else {
        let (index, scope) = &needed[0];
        return refuse(
            *index,
            format!("scope `{scope}` needs the owner's consent; none is recorded"),
        );
    };
    if record.decision != "granted" {
        let (index, scope) = &needed[0];
        return refuse(
            *index,
            format!(
                "the owner refused consent (`{}`); scope `{scope}` cannot be granted",
                record.id
            ),
        );
    }
    let consented = scopes_of(&record);
    for (index, scope) in needed {
        if !consented.iter().any(|c| c.covers(scope)) {
            return refuse(
                *index,
                format!(
                    "scope `{scope}` is wider than the owner consented to; ask for consent again"
                ),
            );
        }
    }
    Ok(Some(record.id))
}
