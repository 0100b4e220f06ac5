//! Who is calling the admin API: the bootstrap token, a tenant's API
//! token (looked up by hash), or a person with a token from the company's
//! OpenID provider; and what their roles allow.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde_json::json;
use ward_model::roles::{Permission, Role};

use crate::AppState;
use crate::audit::{DraftExt, entry};
use crate::error::ApiError;
use crate::util::{now_ms, secret_hash};

/// The header a person uses to pick the tenant they act in.
pub const TENANT_HEADER: &str = "x-ward-tenant";

/// What the caller authenticated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The instance's break-glass token; every use is audited.
    Bootstrap,
    /// A tenant's API token.
    ApiToken,
    /// A person signed in with the OpenID provider.
    Person,
}

/// An authenticated admin caller.
#[derive(Clone, Debug)]
pub struct Principal {
    /// How they authenticated.
    pub credential: Credential,
    /// The API token id, or the person's `sub`.
    pub id: String,
    /// The person's email (or `sub`); the token id for tokens.
    pub name: String,
    /// The tenant acted in; `None` for the bootstrap token.
    pub tenant: Option<String>,
    /// Roles in that tenant.
    pub roles: Vec<Role>,
    /// Whether the sign-in used multi-factor authentication.
    pub mfa: bool,
    /// The person's email, lowercased, if the provider verified it.
    pub verified_email: Option<String>,
}

impl Principal {
    /// Who this is, for rules that compare people (the requester of an
    /// approval, approvers): stable, unlike a display name or an email.
    /// People are their provider `sub`, tokens their id.
    pub fn identity(&self) -> String {
        match self.credential {
            Credential::Bootstrap => format!("bootstrap:{}", self.id),
            Credential::ApiToken => format!("token:{}", self.id),
            Credential::Person => format!("person:{}", self.id),
        }
    }

    /// The actor recorded in audit entries.
    pub fn actor(&self) -> String {
        match self.credential {
            Credential::Bootstrap => format!("bootstrap:{}", self.id),
            Credential::ApiToken => format!("token:{}", self.id),
            Credential::Person => format!("user:{}", self.name),
        }
    }

    /// The tenant to act in if the caller's roles allow `permission` there.
    pub fn require(&self, permission: Permission) -> Result<&str, ApiError> {
        let tenant = self.tenant()?;
        if self.roles.iter().any(|role| role.allows(permission)) {
            return Ok(tenant);
        }
        let held: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::forbidden(
            "forbidden",
            format!(
                "your roles ({}) do not allow you to {permission}",
                if held.is_empty() {
                    "none".to_owned()
                } else {
                    held.join(", ")
                }
            ),
        ))
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
        if self.credential == Credential::Bootstrap {
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
        if secret.starts_with("ward_") {
            return api_token(parts, state, secret).await;
        }
        person(parts, state, secret).await
    }
}

async fn api_token(parts: &Parts, state: &AppState, secret: &str) -> Result<Principal, ApiError> {
    let hash = secret_hash(secret);
    let row = state
        .store
        .read(move |conn| ward_store::api_token_by_hash(conn, &hash))
        .await?
        .filter(|row| row.revoked_at.is_none())
        .ok_or_else(|| ApiError::unauthenticated("unknown or revoked API token"))?;
    if row.role == "bootstrap" {
        // Break-glass: every use is on the record before it is served.
        let draft = entry(
            &format!("bootstrap:{}", row.id),
            "bootstrap.use",
            parts.uri.path(),
        )
        .details(json!({ "method": parts.method.as_str() }));
        state
            .store
            .write(move |ctx| {
                ctx.audit(draft);
                Ok(())
            })
            .await?;
        return Ok(Principal {
            credential: Credential::Bootstrap,
            name: row.id.clone(),
            id: row.id,
            tenant: None,
            roles: Vec::new(),
            mfa: false,
            verified_email: None,
        });
    }
    let role: Role = row
        .role
        .parse()
        .map_err(|e: String| ApiError::internal(format!("stored api token role: {e}")))?;
    Ok(Principal {
        credential: Credential::ApiToken,
        name: row.id.clone(),
        id: row.id,
        tenant: row.tenant_id,
        roles: vec![role],
        mfa: false,
        verified_email: None,
    })
}

async fn person(parts: &Parts, state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let Some(oidc) = &state.oidc else {
        return Err(ApiError::unauthenticated("unknown or revoked API token"));
    };
    let identity = oidc.verify(token, now_ms() / 1000).await.map_err(|e| match e {
        crate::oidc::OidcError::Rejected(message) => ApiError::unauthenticated(message),
        crate::oidc::OidcError::Unavailable(message) => {
            tracing::warn!(%message, "OpenID provider unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "identity_provider_unavailable",
                "cannot check the token with the OpenID provider now; retry, or use an API token",
            )
        }
    })?;
    let wanted = parts
        .headers
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let no_role = |what: String| ApiError::forbidden("no_role", what);
    let tenant_name = match wanted {
        Some(name) => name,
        None => {
            let mut names = identity.roles.keys();
            match (names.next(), names.next()) {
                (Some(only), None) => only.clone(),
                (None, _) => {
                    return Err(no_role(format!(
                        "`{}` holds no Ward role: ask for a `{}:<tenant>:<role>` group",
                        identity.name(),
                        oidc.config().group_prefix
                    )));
                }
                (Some(_), Some(_)) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "tenant_required",
                        "you hold roles in several tenants; name one in the `X-Ward-Tenant` header",
                    ));
                }
            }
        }
    };
    let lookup = tenant_name.clone();
    let tenant = state
        .store
        .read(move |conn| ward_store::tenant(conn, &lookup))
        .await?;
    let roles = tenant
        .as_ref()
        .and_then(|t| identity.roles.get(&t.name).cloned())
        .unwrap_or_default();
    let Some(tenant) = tenant.filter(|_| !roles.is_empty()) else {
        return Err(no_role(format!(
            "you hold no role in tenant `{tenant_name}`"
        )));
    };
    Ok(Principal {
        credential: Credential::Person,
        id: identity.subject.clone(),
        name: identity.name().to_owned(),
        tenant: Some(tenant.id),
        roles,
        mfa: identity.mfa,
        verified_email: identity.verified_email.clone(),
    })
}
