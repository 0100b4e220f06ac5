//! Liveness, readiness and how people sign in.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Liveness and readiness answer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` when healthy.
    pub status: String,
}

/// `GET /v1/auth/config`: how people sign in, for `ward login`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthConfig {
    /// The OpenID provider, absent when only API tokens are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcInfo>,
}

/// The OpenID provider people sign in with.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OidcInfo {
    /// Issuer URL.
    pub issuer: String,
    /// Audience (resource) to ask tokens for.
    pub audience: String,
    /// Public client id of the command line.
    pub client_id: String,
}
