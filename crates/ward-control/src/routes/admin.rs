//! Instance administration: tenants, admin API tokens and signing-key
//! rotation. Tenants and tokens are the bootstrap token's job.

use axum::Json as JsonOut;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use ward_api::{
    ApiTokenCreated, CreateApiToken, CreateTenant, ErrorBody, KeyRotated, Tenant, TenantList,
};
use ward_model::feed::{Event, KeyRotation};
use ward_store::{ApiTokenRow, TenantRow};

use crate::AppState;
use crate::audit::{DraftExt, emit, entry};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Json;
use crate::fields::{check_name, text_field};
use crate::keys::KeyRing;
use crate::util::{new_id, new_secret, now_ms, rfc3339, secret_hash};

fn tenant_out(row: TenantRow) -> Tenant {
    Tenant {
        id: row.id,
        name: row.name,
        created_at: row.created_at,
    }
}

/// Create a tenant (bootstrap token only).
#[utoipa::path(post, path = "/v1/tenants", tag = "admin", request_body = CreateTenant,
    security(("bearer" = [])),
    responses((status = 201, body = Tenant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateTenant>,
) -> Result<(StatusCode, JsonOut<Tenant>), ApiError> {
    principal.require_bootstrap()?;
    check_name("name", &body.name)?;
    if body.name.starts_with("ten_") {
        return Err(ApiError::invalid(
            "name",
            "tenant names may not start with `ten_`, which tenant ids use",
        ));
    }
    let row = TenantRow {
        id: new_id("ten")?,
        name: body.name,
        created_at: rfc3339(now_ms()),
    };
    let draft = entry(&principal.actor(), "tenant.create", &row.id)
        .tenant(Some(&row.id))
        .details(json!({ "name": row.name }));
    let stored = row.clone();
    state
        .store
        .write(move |ctx| {
            ward_store::insert_tenant(ctx.conn(), &stored)?;
            ctx.audit(draft);
            Ok(())
        })
        .await?;
    Ok((StatusCode::CREATED, JsonOut(tenant_out(row))))
}

/// List tenants (bootstrap token: all; tenant admin: its own).
#[utoipa::path(get, path = "/v1/tenants", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = TenantList), (status = 401, body = ErrorBody)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<JsonOut<TenantList>, ApiError> {
    let own = principal.tenant.clone();
    let rows = state.store.read(ward_store::list_tenants).await?;
    let tenants = rows
        .into_iter()
        .filter(|row| own.as_ref().is_none_or(|t| *t == row.id))
        .map(tenant_out)
        .collect();
    Ok(JsonOut(TenantList { tenants }))
}

/// Create a per-tenant admin API token (bootstrap token only).
#[utoipa::path(post, path = "/v1/api-tokens", tag = "admin", request_body = CreateApiToken,
    security(("bearer" = [])),
    responses((status = 201, body = ApiTokenCreated), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_api_token(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateApiToken>,
) -> Result<(StatusCode, JsonOut<ApiTokenCreated>), ApiError> {
    principal.require_bootstrap()?;
    body.role
        .parse::<ward_model::roles::Role>()
        .map_err(|e| ApiError::invalid("role", e))?;
    if let Some(description) = &body.description {
        text_field("description", description, 200)?;
    }
    let wanted = body.tenant.clone();
    let tenant = state
        .store
        .read(move |conn| ward_store::tenant(conn, &wanted))
        .await?
        .ok_or_else(|| ApiError::not_found("tenant", &body.tenant))?;
    let secret = new_secret("ward_at")?;
    let row = ApiTokenRow {
        id: new_id("tok")?,
        tenant_id: Some(tenant.id.clone()),
        role: body.role,
        description: body.description,
        created_by: principal.actor(),
        created_at: rfc3339(now_ms()),
        revoked_at: None,
    };
    let hash = secret_hash(&secret);
    let draft = entry(&principal.actor(), "api_token.create", &row.id)
        .tenant(Some(&tenant.id))
        .details(json!({ "role": row.role }));
    let stored = row.clone();
    state
        .store
        .write(move |ctx| {
            ward_store::insert_api_token(ctx.conn(), &stored, &hash)?;
            ctx.audit(draft);
            Ok(())
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        JsonOut(ApiTokenCreated {
            id: row.id,
            token: secret,
            tenant: tenant.id,
            role: row.role,
            created_at: row.created_at,
        }),
    ))
}

/// Rotate the token signing key (bootstrap token only). The old key stays
/// in the JWKS until every token it signed has expired.
#[utoipa::path(post, path = "/v1/keys/rotate", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = KeyRotated), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rotate_key(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<JsonOut<KeyRotated>, ApiError> {
    principal.require_bootstrap()?;
    let now = now_ms();
    let kid = new_id("key")?;
    let (row, pair) = KeyRing::generate(&state.config.data_dir, &kid, &rfc3339(now))
        .map_err(ApiError::internal)?;
    let previous = state.keys.current_kid();
    // Tokens live at most max_token_secs; allow a minute of clock skew.
    let until = now + (state.config.max_token_secs as i64 + 60) * 1000;
    let draft = entry(&principal.actor(), "key.rotate", &kid)
        .details(json!({ "previous_kid": previous, "previous_published_until": rfc3339(until) }));
    let retiring = previous.clone();
    state
        .store
        .write(move |ctx| {
            if !ward_store::retire_signing_key(ctx.conn(), &retiring, now, until)? {
                return Err(ward_store::StoreError::Rejected("rotation raced".into()));
            }
            ward_store::insert_signing_key(ctx.conn(), &row)?;
            emit(
                ctx,
                &Event::KeyRotation(KeyRotation {
                    kid: row.kid.clone(),
                    previous_kid: retiring.clone(),
                    previous_published_until_ms: until,
                }),
            )?;
            ctx.audit(draft);
            Ok(())
        })
        .await
        .map_err(|e| match e {
            ward_store::StoreError::Rejected(_) => ApiError::conflict(
                "conflict",
                "another rotation happened at the same time; retry",
            ),
            other => other.into(),
        })?;
    state.keys.rotate(&kid, pair, until);
    state.published();
    Ok(JsonOut(KeyRotated {
        kid,
        previous_kid: previous,
        previous_published_until: rfc3339(until),
    }))
}
