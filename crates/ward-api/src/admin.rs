//! Tenants and their admin API tokens.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/tenants`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Unique name: lowercase letters, digits, `-`, `_`, `.`; 1 to 64 characters.
    pub name: String,
}

/// A tenant: every record belongs to exactly one.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    /// Tenant id (`ten_...`).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// A list of tenants.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TenantList {
    /// The tenants, oldest first.
    pub tenants: Vec<Tenant>,
}

/// `POST /v1/api-tokens`: a per-tenant admin API token.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    /// Tenant id or name.
    pub tenant: String,
    /// Role: `admin`.
    pub role: String,
    /// What the token is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// A newly created API token; the secret is shown only here.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiTokenCreated {
    /// Token id (`tok_...`), used in audit records.
    pub id: String,
    /// The bearer secret. Only its hash is stored.
    pub token: String,
    /// Tenant id.
    pub tenant: String,
    /// Role.
    pub role: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
}
