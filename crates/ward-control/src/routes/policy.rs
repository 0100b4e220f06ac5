//! Policy bundles: push (parsed, compiled and tested before it becomes
//! active; a refused bundle leaves the old one deciding) and show.

use axum::Json as JsonOut;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde_json::json;
use ward_api::{ErrorBody, PolicyBundle, PushPolicy};
use ward_model::roles::Permission;
use ward_policy::{Bundle, PolicyError};
use ward_store::PolicyBundleRow;

use crate::AppState;
use crate::audit::{DraftExt, entry};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::json_body;
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
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        format!("bundle refused, the active one stays: {error}"),
    )
    .field("files")
}

/// Push a policy bundle: it becomes active only if every file parses, the
/// `ward.broker` package compiles and every `test_` rule passes.
#[utoipa::path(post, path = "/v1/policy/bundles", tag = "policy", request_body = PushPolicy,
    security(("bearer" = [])),
    responses((status = 201, body = PolicyBundle), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn push(
    State(state): State<AppState>,
    principal: Principal,
    request: Request,
) -> Result<(StatusCode, JsonOut<PolicyBundle>), ApiError> {
    let tenant = principal.require(Permission::ManagePolicy)?.to_owned();
    let body: PushPolicy = json_body(request, MAX_BUNDLE_BYTES).await?;
    let files: Vec<(String, String)> = body.files.into_iter().map(|f| (f.path, f.text)).collect();
    let draft = entry(&principal.actor(), "policy.push", &tenant).tenant(Some(&tenant));
    let checked = Bundle::from_files(files.clone()).and_then(|bundle| {
        let report = bundle.run_tests()?;
        report.check()?;
        let policy = bundle.compile()?;
        Ok((bundle, report, policy))
    });
    let (bundle, report, policy) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            let refusal = refused(&error);
            return Err(state.deny(draft, refusal).await);
        }
    };
    let row = PolicyBundleRow {
        id: new_id("pol")?,
        tenant_id: tenant.clone(),
        hash: bundle.hash().to_owned(),
        files: serde_json::to_string(&files).map_err(ApiError::internal)?,
        pushed_by: principal.actor(),
        pushed_at: rfc3339(now_ms()),
        active: true,
    };
    let draft = draft.details(json!({
        "bundle": row.hash, "bundle_id": row.id, "files": files.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        "tests_passed": report.passed,
    }));
    let stored = row.clone();
    state
        .store
        .write(move |ctx| {
            ward_store::activate_policy_bundle(ctx.conn(), &stored)?;
            ctx.audit(draft);
            Ok(())
        })
        .await?;
    state.policies.set(&tenant, &row.id, policy);
    Ok((
        StatusCode::CREATED,
        JsonOut(bundle_out(&row, report.passed)),
    ))
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
