//! The owner's consent records.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/consents`: the agent's owner consented to (or refused) scopes
/// of the agent's profile. Sent by the owner signed in with the OpenID
/// provider, or by an admin of the agent's tenant acting for them.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordConsent {
    /// The agent.
    pub agent_id: String,
    /// The scopes the consent text listed.
    pub scopes: Vec<String>,
    /// `granted` or `refused`.
    pub decision: String,
    /// Version of the consent text shown.
    pub text_version: String,
    /// Why an admin records this for the owner; required unless the owner
    /// records it.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A consent record.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Consent {
    /// Consent id (`con_...`).
    pub id: String,
    /// Tenant id.
    pub tenant: String,
    /// The agent.
    pub agent_id: String,
    /// The person who decided.
    pub owner: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// `granted` or `refused`.
    pub decision: String,
    /// Version of the text shown.
    pub text_version: String,
    /// Device it was given on.
    pub device_id: String,
    /// Correlation id.
    pub correlation_id: String,
    /// RFC 3339.
    pub recorded_at: String,
}

/// A list of consent records.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsentList {
    /// Newest first.
    pub consents: Vec<Consent>,
}
