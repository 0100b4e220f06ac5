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
use crate::oidc::Identity;
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

/// A verified bearer credential before it is placed in a tenant. Endpoints
/// a person may use without a role in the tenant (the agent's owner
/// recording consent) take this instead of a [`Principal`].
pub enum Caller {
    /// The bootstrap token or a tenant's API token.
    Token(Principal),
    /// A person signed in with the OpenID provider.
    Person(Identity),
}

impl Caller {
    /// The actor recorded in audit entries.
    pub fn actor(&self) -> String {
        match self {
            Caller::Token(principal) => principal.actor(),
            Caller::Person(identity) => format!("user:{}", identity.name()),
        }
    }

    /// The person's email, lowercased, if the provider verified it.
    pub fn verified_email(&self) -> Option<&str> {
        match self {
            Caller::Token(_) => None,
            Caller::Person(identity) => identity.verified_email.as_deref(),
        }
    }

    /// This caller as a principal of the tenant with id `tenant`, or `None`
    /// when it holds no role there. The bootstrap token acts in no tenant
    /// (403 `tenant_required`).
    pub async fn in_tenant(
        &self,
        state: &AppState,
        tenant: &str,
    ) -> Result<Option<Principal>, ApiError> {
        match self {
            Caller::Token(principal) => {
                let own = principal.tenant()?;
                Ok((own == tenant).then(|| principal.clone()))
            }
            Caller::Person(identity) => {
                let lookup = tenant.to_owned();
                let row = state
                    .store
                    .read(move |conn| ward_store::tenant(conn, &lookup))
                    .await?;
                Ok(row
                    .filter(|row| row.id == tenant)
                    .and_then(|row| identity.roles.get(&row.name).cloned())
                    .filter(|roles| !roles.is_empty())
                    .map(|roles| person_in(identity, tenant.to_owned(), roles)))
            }
        }
    }
}

impl FromRequestParts<AppState> for Caller {
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
            return api_token(parts, state, secret).await.map(Caller::Token);
        }
        person(state, secret).await.map(Caller::Person)
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Token(principal) => Ok(principal),
            Caller::Person(identity) => person_principal(parts, state, &identity).await,
        }
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

async fn person(state: &AppState, token: &str) -> Result<Identity, ApiError> {
    let Some(oidc) = &state.oidc else {
        return Err(ApiError::unauthenticated("unknown or revoked API token"));
    };
    oidc.verify(token, now_ms() / 1000).await.map_err(|e| match e {
        crate::oidc::OidcError::Rejected(message) => ApiError::unauthenticated(message),
        crate::oidc::OidcError::Unavailable(message) => {
            tracing::warn!(%message, "OpenID provider unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "identity_provider_unavailable",
                "cannot check the token with the OpenID provider now; retry, or use an API token",
            )
        }
    })
}

/// The person as a principal of the tenant named in `X-Ward-Tenant`, or of
/// the only tenant they hold roles in.
async fn person_principal(
    parts: &Parts,
    state: &AppState,
    identity: &Identity,
) -> Result<Principal, ApiError> {
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
                    let prefix = state
                        .oidc
                        .as_ref()
                        .map(|oidc| oidc.config().group_prefix.clone())
                        .unwrap_or_default();
                    return Err(no_role(format!(
                        "`{}` holds no Ward role: ask for a `{prefix}:<tenant>:<role>` group",
                        identity.name(),
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
    Ok(person_in(identity, tenant.id, roles))
}

fn person_in(identity: &Identity, tenant: String, roles: Vec<Role>) -> Principal {
    Principal {
        credential: Credential::Person,
        id: identity.subject.clone(),
        name: identity.name().to_owned(),
        tenant: Some(tenant),
        roles,
        mfa: identity.mfa,
        verified_email: identity.verified_email.clone(),
    }
}
