//! Who is calling the admin API: bearer API tokens, looked up by hash.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::AppState;
use crate::error::ApiError;
use crate::util::secret_hash;

/// An authenticated admin caller.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The API token's id.
    pub token_id: String,
    /// The tenant it acts in; `None` for the bootstrap token.
    pub tenant: Option<String>,
    /// `bootstrap` or `admin`.
    pub role: String,
}

impl Principal {
    /// The actor recorded in audit entries.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role, self.token_id)
    }

    /// The tenant this caller acts in, or 403 for the bootstrap token, which
    /// manages tenants and their tokens but acts in no tenant.
    pub fn tenant(&self) -> Result<&str, ApiError> {
        self.tenant.as_deref().ok_or_else(|| {
            ApiError::forbidden(
                "tenant_required",
                "the bootstrap token acts in no tenant; create a tenant admin token with `ward admin api-tokens create --tenant T --role admin`",
            )
        })
    }

    /// 403 unless this is the bootstrap token.
    pub fn require_bootstrap(&self) -> Result<(), ApiError> {
        if self.role == "bootstrap" {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "forbidden",
                "only the bootstrap admin token may do this",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthenticated("missing `Authorization: Bearer <token>` header")
        })?;
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("the `Authorization` header must be `Bearer <token>`")
            })?;
        let hash = secret_hash(secret);
        let row = state
            .store
            .read(move |conn| ward_store::api_token_by_hash(conn, &hash))
            .await?
            .ok_or_else(|| ApiError::unauthenticated("unknown or revoked API token"))?;
        if row.revoked_at.is_some() {
            return Err(ApiError::unauthenticated("unknown or revoked API token"));
        }
        Ok(Principal {
            token_id: row.id,
            tenant: row.tenant_id,
            role: row.role,
        })
    }
}
