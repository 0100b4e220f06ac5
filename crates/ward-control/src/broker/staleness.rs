//! The staleness policy: per tenant, how often devices send heartbeats and
//! after how long without contact they tighten on their own (high-risk
//! features stop, then read-only, then offline); whether an agent is stale
//! (it missed three heartbeats). Setting it is audited with who and why.
//!
//! INVARIANT: the bounds a device is given never let it stay in normal
//! mode longer than a token lives: `offline_after_secs` is capped at the
//! server's default token lifetime, whatever was stored.

use serde_json::json;
use ward_api::{SetAgentPolicy, StalenessBounds};
use ward_model::lifecycle::AgentState;
use ward_model::roles::Permission;
use ward_store::AgentPolicyRow;

use crate::AppState;
use crate::audit::{DraftExt, entry};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::fields::text_field;
use crate::util::{now_ms, rfc3339};

/// The bounds of a tenant that never set any.
pub const DEFAULT_BOUNDS: StalenessBounds = StalenessBounds {
    heartbeat_interval_secs: 30,
    high_risk_after_secs: 90,
    read_only_after_secs: 300,
    offline_after_secs: 900,
};

/// An agent is stale after this many heartbeat intervals without one.
pub const MISSED_INTERVALS: u64 = 3;

/// The bounds in force for a stored policy (or the defaults), capped so
/// that none is longer than `token_secs` and their order holds.
pub fn effective(stored: Option<&AgentPolicyRow>, token_secs: u64) -> StalenessBounds {
    let wanted = stored.map_or(DEFAULT_BOUNDS, |row| StalenessBounds {
        heartbeat_interval_secs: row.heartbeat_interval_secs,
        high_risk_after_secs: row.high_risk_after_secs,
        read_only_after_secs: row.read_only_after_secs,
        offline_after_secs: row.offline_after_secs,
    });
    let offline = wanted.offline_after_secs.min(token_secs).max(1);
    let read_only = wanted.read_only_after_secs.min(offline);
    let high_risk = wanted.high_risk_after_secs.min(read_only);
    StalenessBounds {
        heartbeat_interval_secs: wanted
            .heartbeat_interval_secs
            .min(high_risk.saturating_sub(1))
            .max(1),
        high_risk_after_secs: high_risk,
        read_only_after_secs: read_only,
        offline_after_secs: offline,
    }
}

/// The bounds in force for `tenant`.
pub async fn bounds_for(state: &AppState, tenant: &str) -> Result<StalenessBounds, ApiError> {
    let wanted = tenant.to_owned();
    let stored = state
        .store
        .read(move |conn| ward_store::agent_policy(conn, &wanted))
        .await?;
    Ok(effective(stored.as_ref(), state.config.default_token_secs))
}

/// Whether an agent in `state` last heard of at `last_contact_ms` (its
/// latest heartbeat, or its enrolment if it never sent one) is stale at
/// `now_ms`: an active or quarantined agent that missed three intervals.
pub fn is_stale(state: AgentState, last_contact_ms: i64, interval_secs: u64, now_ms: i64) -> bool {
    let limit =
        i64::try_from(interval_secs.saturating_mul(MISSED_INTERVALS * 1000)).unwrap_or(i64::MAX);
    matches!(state, AgentState::Active | AgentState::Quarantined)
        && now_ms.saturating_sub(last_contact_ms) > limit
}

/// Checks the rules of [`SetAgentPolicy`]:
/// `1 <= interval < high_risk <= read_only <= offline <= token lifetime`.
/// A refusal names the field and the rule it breaks.
pub fn check(body: &SetAgentPolicy, token_secs: u64) -> Result<StalenessBounds, ApiError> {
    let b = body.bounds();
    let rule = |field: &str, text: String| Err(ApiError::invalid(field, text));
    if b.heartbeat_interval_secs < 1 {
        return rule(
            "heartbeat_interval_secs",
            "`heartbeat_interval_secs` must be at least 1".to_owned(),
        );
    }
    if b.high_risk_after_secs <= b.heartbeat_interval_secs {
        return rule(
            "high_risk_after_secs",
            format!(
                "`high_risk_after_secs` ({}) must be longer than `heartbeat_interval_secs` ({}): a device must get a chance to send a heartbeat before it tightens",
                b.high_risk_after_secs, b.heartbeat_interval_secs
            ),
        );
    }
    if b.read_only_after_secs < b.high_risk_after_secs {
        return rule(
            "read_only_after_secs",
            format!(
                "`read_only_after_secs` ({}) must be at least `high_risk_after_secs` ({})",
                b.read_only_after_secs, b.high_risk_after_secs
            ),
        );
    }
    if b.offline_after_secs < b.read_only_after_secs {
        return rule(
            "offline_after_secs",
            format!(
                "`offline_after_secs` ({}) must be at least `read_only_after_secs` ({})",
                b.offline_after_secs, b.read_only_after_secs
            ),
        );
    }
    if b.offline_after_secs > token_secs {
        return rule(
            "offline_after_secs",
            format!(
                "`offline_after_secs` ({}) must not be longer than the token lifetime ({token_secs} s): a device must not outlive its tokens in normal mode",
                b.offline_after_secs
            ),
        );
    }
    text_field("reason", &body.reason, 1000)?;
    Ok(b)
}

/// Sets the caller's tenant's policy (tenant admins), audited with who and
/// why; returns the bounds now in force.
pub async fn set(
    state: &AppState,
    principal: &Principal,
    body: SetAgentPolicy,
) -> Result<StalenessBounds, ApiError> {
    let tenant = principal.require(Permission::ManagePolicy)?.to_owned();
    let token_secs = state.config.default_token_secs;
    let bounds = check(&body, token_secs)?;
    let row = AgentPolicyRow {
        tenant_id: tenant.clone(),
        heartbeat_interval_secs: bounds.heartbeat_interval_secs,
        high_risk_after_secs: bounds.high_risk_after_secs,
        read_only_after_secs: bounds.read_only_after_secs,
        offline_after_secs: bounds.offline_after_secs,
        set_by: principal.actor(),
        set_at: rfc3339(now_ms()),
    };
    let draft = entry(&principal.actor(), "agent_policy.set", &tenant)
        .tenant(Some(&tenant))
        .reason(body.reason)
        .details(json!(bounds));
    state
        .store
        .write(move |ctx| {
            ward_store::upsert_agent_policy(ctx.conn(), &row)?;
            ctx.audit(draft);
            Ok(())
        })
        .await?;
    Ok(effective(
        Some(&AgentPolicyRow {
            tenant_id: tenant,
            heartbeat_interval_secs: bounds.heartbeat_interval_secs,
            high_risk_after_secs: bounds.high_risk_after_secs,
            read_only_after_secs: bounds.read_only_after_secs,
            offline_after_secs: bounds.offline_after_secs,
            set_by: String::new(),
            set_at: String::new(),
        }),
        token_secs,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(i: u64, h: u64, r: u64, o: u64) -> SetAgentPolicy {
        SetAgentPolicy {
            heartbeat_interval_secs: i,
            high_risk_after_secs: h,
            read_only_after_secs: r,
            offline_after_secs: o,
            reason: "drill".into(),
        }
    }

    #[test]
    fn rules_name_the_field_they_break() {
        let field = |p: SetAgentPolicy| check(&p, 900).err().and_then(|e| e.field);
        assert_eq!(field(policy(30, 90, 300, 900)), None);
        assert_eq!(field(policy(1, 2, 2, 2)), None);
        assert_eq!(
            field(policy(0, 90, 300, 900)).as_deref(),
            Some("heartbeat_interval_secs")
        );
        assert_eq!(
            field(policy(90, 90, 300, 900)).as_deref(),
            Some("high_risk_after_secs")
        );
        assert_eq!(
            field(policy(30, 90, 60, 900)).as_deref(),
            Some("read_only_after_secs")
        );
        assert_eq!(
            field(policy(30, 90, 300, 200)).as_deref(),
            Some("offline_after_secs")
        );
        assert_eq!(
            field(policy(30, 90, 300, 901)).as_deref(),
            Some("offline_after_secs")
        );
    }

    #[test]
    fn bounds_in_force_never_outlive_the_token() {
        assert_eq!(effective(None, 900), DEFAULT_BOUNDS);
        let short = effective(None, 60);
        assert_eq!(short.offline_after_secs, 60);
        assert!(short.read_only_after_secs <= 60 && short.high_risk_after_secs <= 60);
        assert!(short.heartbeat_interval_secs < short.high_risk_after_secs);
    }

    #[test]
    fn only_live_agents_that_missed_three_intervals_are_stale() {
        assert!(!is_stale(AgentState::Active, 0, 1, 3000));
        assert!(is_stale(AgentState::Active, 0, 1, 3001));
        assert!(is_stale(AgentState::Quarantined, 0, 1, 3001));
        assert!(!is_stale(AgentState::Revoked, 0, 1, 10_000));
        assert!(!is_stale(AgentState::PendingApproval, 0, 1, 10_000));
    }
}
