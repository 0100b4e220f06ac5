//! Policy bundles: push (parsed, compiled and tested before it becomes
//! active; a refused bundle leaves the old one deciding) and show.

use axum::Json as JsonOut;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use ward_api::{ErrorBody, PolicyBundle, PushPolicy};
use ward_model::roles::Permission;
use ward_policy::sandbox::Response as SandboxResponse;
use ward_policy::{Bundle, PolicyError};
use ward_store::PolicyBundleRow;

use crate::AppState;
use crate::audit::{DraftExt, entry};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::json_body;
use crate::policy::Refusal;
use crate::policy::sandbox::Failure;
use crate::util::{new_id, now_ms, rfc3339};

/// Largest policy bundle accepted, bytes of JSON.
const MAX_BUNDLE_BYTES: usize = 1024 * 1024;

fn bundle_out(row: &PolicyBundleRow, tests_passed: Vec<String>) -> PolicyBundle {
    let files: Vec<(String, String)> = serde_json::from_str(&row.files).unwrap_or_default();
    PolicyBundle {
        id: row.id.clone(),
        tenant: row.tenant_id.clone(),
        hash: row.hash.clone(),
        pushed_by: row.pushed_by.clone(),
        pushed_at: row.pushed_at.clone(),
        files: files.into_iter().map(|(path, _)| path).collect(),
        tests_passed,
    }
}

fn refused(error: &PolicyError) -> ApiError {
    let code = match error {
        PolicyError::TestsFailed { .. } => "policy_tests_failed",
        _ => "policy_invalid",
    };
    refusal(code, error)
}

fn refusal(code: &'static str, why: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        format!("bundle refused, the active one stays: {why}"),
    )
    .field("files")
}

/// Seconds a push refused as busy is told to wait.
const BUSY_RETRY_SECS: u64 = 5;

/// 429 with `Retry-After`: the bounds on concurrent pushes are reached.
fn busy(why: &str) -> Response {
    (
        [(header::RETRY_AFTER, BUSY_RETRY_SECS.to_string())],
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "policy_push_busy",
            format!("{why}; retry after the time in `Retry-After`"),
        ),
    )
        .into_response()
}

/// Push a policy bundle: it becomes active only if every file parses, the
/// `ward.broker` package compiles and every `test_` rule passes.
///
/// The tests run in a sandbox process bounded in memory and time (a bundle
/// that exceeds a bound is refused with `policy_limit_exceeded`), one push
/// per tenant at a time and two in all; a push beyond that is answered 429
/// `policy_push_busy` with `Retry-After`.
#[utoipa::path(post, path = "/v1/policy/bundles", tag = "policy", request_body = PushPolicy,
    security(("bearer" = [])),
    responses((status = 201, body = PolicyBundle), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn push(
    State(state): State<AppState>,
    principal: Principal,
    request: Request,
) -> Result<(StatusCode, JsonOut<PolicyBundle>), Response> {
    let tenant = principal
        .require(Permission::ManagePolicy)
        .map_err(IntoResponse::into_response)?
        .to_owned();
    let body: PushPolicy = json_body(request, MAX_BUNDLE_BYTES)
        .await
        .map_err(IntoResponse::into_response)?;
    let files: Vec<(String, String)> = body.files.into_iter().map(|f| (f.path, f.text)).collect();
    let slot = match state.policies.start_push(&tenant) {
        Ok(slot) => slot,
        Err(Refusal::Busy(why)) => return Err(busy(&why)),
        Err(Refusal::Failed(failure)) => return Err(ApiError::internal(failure).into_response()),
    };
    let draft = entry(&principal.actor(), "policy.push", &tenant).tenant(Some(&tenant));
    let passed = match slot.check(files.clone()).await {
        Ok(SandboxResponse::Checked { passed }) => passed,
        Ok(SandboxResponse::Refused { error }) => {
            return Err(state.deny(draft, refused(&error)).await.into_response());
        }
        Ok(other) => {
            return Err(
                ApiError::internal(format!("unexpected sandbox answer `{other:?}`"))
                    .into_response(),
            );
        }
        Err(Refusal::Failed(failure)) if !matches!(failure, Failure::Unavailable(_)) => {
            let code = if failure.is_limit() {
                "policy_limit_exceeded"
            } else {
                "policy_invalid"
            };
            let why = format!("checking it in the policy sandbox failed: {failure}");
            return Err(state.deny(draft, refusal(code, &why)).await.into_response());
        }
        Err(Refusal::Failed(failure)) => return Err(ApiError::internal(failure).into_response()),
        Err(Refusal::Busy(why)) => return Err(busy(&why)),
    };
    let row = PolicyBundleRow {
        id: new_id("pol").map_err(IntoResponse::into_response)?,
        tenant_id: tenant.clone(),
        hash: Bundle::hash_of(&files),
        files: serde_json::to_string(&files).map_err(|e| ApiError::internal(e).into_response())?,
        pushed_by: principal.actor(),
        pushed_at: rfc3339(now_ms()),
        active: true,
    };
    let draft = draft.details(json!({
        "bundle": row.hash, "bundle_id": row.id, "files": files.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        "tests_passed": passed,
    }));
    let stored = row.clone();
    state
        .store
        .write(move |ctx| {
            ward_store::activate_policy_bundle(ctx.conn(), &stored)?;
            ctx.audit(draft);
            Ok(())
        })
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    state.policies.set(&tenant, &row.id, files);
    drop(slot);
    Ok((StatusCode::CREATED, JsonOut(bundle_out(&row, passed))))
}

/// Show the tenant's active policy bundle.
#[utoipa::path(get, path = "/v1/policy", tag = "policy", security(("bearer" = [])),
    responses((status = 200, body = PolicyBundle), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<JsonOut<PolicyBundle>, ApiError> {
    let tenant = principal
        .require(Permission::ManagePolicy)
        .or_else(|_| principal.require(Permission::ReadAudit))?
        .to_owned();
    let row = state
        .store
        .read(move |conn| ward_store::active_policy_bundle(conn, &tenant))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_policy",
                "this tenant has no policy bundle; push one with `ward policy push DIR`",
            )
        })?;
    Ok(JsonOut(bundle_out(&row, Vec::new())))
}
