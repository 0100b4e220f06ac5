//! Token requests, introspection (RFC 7662) and revocation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use ward_model::enforcement::RevocationRule;
use ward_model::timestamp::parse_rfc3339;

/// `POST /v1/tokens`: ask the broker for a scoped token. Needs a `DPoP` header.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The agent asking.
    pub agent_id: String,
    /// Scopes wanted, `resource:action:pattern`; each must be covered by the profile.
    pub requested_scopes: Vec<String>,
    /// Lifetime in seconds; default 900, capped by the server.
    #[serde(default)]
    pub requested_duration: Option<u64>,
    /// An approved approval request to redeem (single use).
    #[serde(default)]
    pub approval_id: Option<String>,
    /// Binds the token to one action, e.g. `{"tool": "Bash", "arguments":
    /// {...}}`: approvers see it, and the token carries its hash.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub action: Option<serde_json::Value>,
}

/// A granted token.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The access token, a JWT signed with EdDSA.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The scopes granted, normalised.
    pub scopes: Vec<String>,
    /// Always `DPoP`: present it with a proof from the same device key.
    pub token_type: String,
}

/// `POST /v1/tokens/introspect` (RFC 7662); also accepted form-encoded.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    /// The token to inspect.
    pub token: String,
    /// Ignored hint, accepted for RFC 7662 compatibility.
    #[serde(default)]
    pub token_type_hint: Option<String>,
}

/// Token confirmation (RFC 7800).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Confirmation {
    /// JWK thumbprint of the device key.
    pub jkt: String,
}

/// RFC 7662 answer; only `active` is present for an inactive token.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct IntrospectResponse {
    /// Whether the token is valid now.
    pub active: bool,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Agent id the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Owner of the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `DPoP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issue time, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not-before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Subject: the agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Tenant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Device host id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Device binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// `POST /v1/tokens/revoke`: exactly one of `jti`, `agent_id`, `scope_prefix`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokens {
    /// Revoke the one token with this id.
    #[serde(default)]
    pub jti: Option<String>,
    /// Revoke every token issued so far to this agent.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Revoke every token issued so far holding a scope that starts with this.
    #[serde(default)]
    pub scope_prefix: Option<String>,
    /// Why, recorded in the audit log.
    pub reason: String,
}

/// A recorded revocation.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Revocation {
    /// Revocation id (`rev_...`).
    pub id: String,
    /// Tenant id.
    pub tenant: String,
    /// `jti`, `agent` or `scope_prefix`.
    pub kind: String,
    /// The token id, agent id or scope prefix.
    pub value: String,
    /// Tokens issued at or before this time (RFC 3339) are revoked.
    pub revoked_at: String,
}

/// The rule a published revocation makes; an unreadable time revokes every
/// token the rule matches (fails closed).
impl From<&Revocation> for RevocationRule {
    fn from(revocation: &Revocation) -> RevocationRule {
        RevocationRule {
            id: revocation.id.clone(),
            tenant: revocation.tenant.clone(),
            kind: revocation.kind.clone(),
            value: revocation.value.clone(),
            revoked_at_ms: parse_rfc3339(&revocation.revoked_at).unwrap_or(i64::MAX),
        }
    }
}
