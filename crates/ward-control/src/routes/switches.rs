//! The kill switch (`PUT /v1/killswitch`) and feature flags
//! (`PUT /v1/flags/{key}`): runtime switches operators flip, each change
//! audited with its reason. The broker refuses tokens a kill switch forbids;
//! gateways enforce both.

use axum::Json as JsonOut;
use axum::extract::{Path, State};
use serde_json::json;
use ward_api::{ErrorBody, Flag, FlagList, KillSwitch, KillSwitchList, SetFlag, SetKillSwitch};
use ward_model::enforcement::{self, Mode, SwitchScope};
use ward_model::feed::Event;
use ward_model::roles::Permission;

use crate::AppState;
use crate::audit::{DraftExt, emit, entry};
use crate::auth::{Credential, Principal};
use crate::error::ApiError;
use crate::extract::Json;
use crate::fields::text_field;
use crate::util::{now_ms, rfc3339};

/// The tenant a switch is scoped to: empty for instance-wide switches,
/// which only the bootstrap token may flip.
fn switch_tenant(principal: &Principal, global: bool) -> Result<String, ApiError> {
    if global {
        principal.require_bootstrap()?;
        return Ok(String::new());
    }
    Ok(principal.require(Permission::KillSwitch)?.to_owned())
}

/// Engage, change or release (`mode: normal`) a kill switch.
#[utoipa::path(put, path = "/v1/killswitch", tag = "killswitch", request_body = SetKillSwitch,
    security(("bearer" = [])),
    responses((status = 200, body = KillSwitch), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_killswitch(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<SetKillSwitch>,
) -> Result<JsonOut<KillSwitch>, ApiError> {
    let mode = Mode::parse(&body.mode).ok_or_else(|| {
        ApiError::invalid(
            "mode",
            format!(
                "unknown mode `{}`; use `normal`, `read-only` or `offline`",
                body.mode
            ),
        )
    })?;
    text_field("reason", &body.reason, 1000)?;
    let scope = SwitchScope::parse(&body.scope);
    let tenant = switch_tenant(&principal, scope == Some(SwitchScope::Global))?;
    let target = match (scope, &body.target) {
        (Some(SwitchScope::Global), None) => String::new(),
        (Some(SwitchScope::Tenant), None) => tenant.clone(),
        (Some(SwitchScope::Tenant), Some(t)) if *t == tenant => tenant.clone(),
        (Some(SwitchScope::Tenant), Some(t)) => return Err(ApiError::not_found("tenant", t)),
        (Some(SwitchScope::Agent | SwitchScope::AgentVersion), Some(t)) => {
            text_field("target", t, 128)?;
            t.clone()
        }
        (Some(SwitchScope::Global), Some(_)) => {
            return Err(ApiError::invalid(
                "target",
                format!("scope `{}` takes no `target`", body.scope),
            ));
        }
        (Some(SwitchScope::Agent | SwitchScope::AgentVersion), None) => {
            return Err(ApiError::invalid(
                "target",
                format!("scope `{}` needs a `target`", body.scope),
            ));
        }
        (None, _) => {
            return Err(ApiError::invalid(
                "scope",
                format!(
                    "unknown scope `{}`; use `global`, `tenant`, `agent` or `agent_version`",
                    body.scope
                ),
            ));
        }
    };
    let switch = enforcement::KillSwitch {
        scope: scope.unwrap_or(SwitchScope::Global),
        tenant: tenant.clone(),
        target,
        mode,
        reason: body.reason.clone(),
        set_by: principal.actor(),
        set_at: rfc3339(now_ms()),
    };
    let draft = entry(
        &principal.actor(),
        "killswitch.set",
        &format!("{}:{}", switch.scope, switch.target),
    )
    .tenant((!tenant.is_empty()).then_some(tenant.as_str()))
    .reason(body.reason)
    .details(
        json!({"scope": switch.scope.as_str(), "target": switch.target, "mode": mode.as_str()}),
    );
    let stored = switch.clone();
    state
        .store
        .write(move |ctx| {
            if stored.scope == SwitchScope::Agent
                && ward_store::agent(ctx.conn(), Some(&stored.tenant), &stored.target)?.is_none()
            {
                return Ok(Err(ApiError::not_found("agent", &stored.target)));
            }
            if mode == Mode::Normal {
                ward_store::clear_killswitch(
                    ctx.conn(),
                    stored.scope,
                    &stored.tenant,
                    &stored.target,
                )?;
            } else {
                ward_store::upsert_killswitch(ctx.conn(), &stored)?;
            }
            emit(ctx, &Event::Killswitch(stored))?;
            ctx.audit(draft);
            Ok(Ok(()))
        })
        .await??;
    state.switches.kills.set(switch.clone());
    state.published();
    Ok(JsonOut(switch.into()))
}

/// The engaged kill switches that apply to the caller's tenant.
#[utoipa::path(get, path = "/v1/killswitch", tag = "killswitch", security(("bearer" = [])),
    responses((status = 200, body = KillSwitchList), (status = 401, body = ErrorBody)))]
pub async fn killswitches(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<JsonOut<KillSwitchList>, ApiError> {
    let tenant = match principal.credential {
        Credential::Bootstrap => None,
        _ => Some(principal.require(Permission::ReadAgents)?.to_owned()),
    };
    let switches = state
        .switches
        .kills
        .visible(tenant.as_deref())
        .into_iter()
        .map(KillSwitch::from)
        .collect();
    Ok(JsonOut(KillSwitchList { switches }))
}

/// Turn a feature flag on or off for the caller's tenant or for everyone.
#[utoipa::path(put, path = "/v1/flags/{key}", tag = "killswitch", request_body = SetFlag,
    params(("key" = String, Path, description = "flag key")), security(("bearer" = [])),
    responses((status = 200, body = Flag), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn set_flag(
    State(state): State<AppState>,
    principal: Principal,
    Path(key): Path<String>,
    Json(body): Json<SetFlag>,
) -> Result<JsonOut<Flag>, ApiError> {
    if !ward_model::matrix::is_valid_name(&key) {
        return Err(ApiError::invalid(
            "key",
            format!("`{key}` is not a valid flag key: lowercase letters, digits, `.`, `_`, `-`"),
        ));
    }
    text_field("reason", &body.reason, 1000)?;
    let tenant = match body.scope.as_str() {
        "global" => switch_tenant(&principal, true)?,
        "tenant" => switch_tenant(&principal, false)?,
        other => {
            return Err(ApiError::invalid(
                "scope",
                format!("unknown scope `{other}`; use `tenant` or `global`"),
            ));
        }
    };
    let flag = enforcement::Flag {
        key: key.clone(),
        tenant: tenant.clone(),
        enabled: body.enabled,
        reason: body.reason.clone(),
        set_by: principal.actor(),
        set_at: rfc3339(now_ms()),
    };
    let draft = entry(&principal.actor(), "flag.set", &key)
        .tenant((!tenant.is_empty()).then_some(tenant.as_str()))
        .reason(body.reason)
        .details(json!({"enabled": body.enabled, "scope": body.scope}));
    let stored = flag.clone();
    state
        .store
        .write(move |ctx| {
            ward_store::upsert_flag(ctx.conn(), &stored)?;
            emit(ctx, &Event::Flag(stored))?;
            ctx.audit(draft);
            Ok(())
        })
        .await?;
    state.switches.flags.set(flag.clone());
    state.published();
    Ok(JsonOut(flag.into()))
}

/// Feature flag values for everyone and for the caller's tenant.
#[utoipa::path(get, path = "/v1/flags", tag = "killswitch", security(("bearer" = [])),
    responses((status = 200, body = FlagList), (status = 401, body = ErrorBody)))]
pub async fn flags(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<JsonOut<FlagList>, ApiError> {
    let tenant = match principal.credential {
        Credential::Bootstrap => None,
        _ => Some(principal.require(Permission::ReadAgents)?.to_owned()),
    };
    let flags = state
        .switches
        .flags
        .visible(tenant.as_deref())
        .into_iter()
        .map(Flag::from)
        .collect();
    Ok(JsonOut(FlagList { flags }))
}
