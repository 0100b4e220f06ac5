//! Approval requests for high-risk access and their decisions.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One approver's decision.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalDecision {
    /// Who decided.
    pub approver: String,
    /// `approve` or `deny`.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// Whether the approver's sign-in showed multi-factor authentication.
    pub mfa: bool,
    /// When, RFC 3339.
    pub decided_at: String,
}

/// A request for a second person's approval of high-risk access.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    /// Approval id (`apr_...`).
    pub id: String,
    /// Tenant id.
    pub tenant: String,
    /// `enrolment` (into a high-risk profile) or `token` (high-risk scopes).
    pub kind: String,
    /// The agent.
    pub agent_id: String,
    /// Its owner.
    pub owner: String,
    /// Who asked.
    pub requested_by: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Lifetime asked for, seconds.
    pub duration: u64,
    /// The one action the token would be bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub action: Option<serde_json::Value>,
    /// SHA-256 of the canonical action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_hash: Option<String>,
    /// Approvals needed (2 for `two_person` features).
    pub required_approvals: u32,
    /// Decisions so far.
    pub decisions: Vec<ApprovalDecision>,
    /// `pending`, `approved`, `denied`, `used` or `expired`.
    pub status: String,
    /// Why approval is needed.
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<serde_json::Value>,
    /// Correlation id of the request that asked.
    pub correlation_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Scopes the approvers granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_scopes: Option<Vec<String>>,
    /// Lifetime the approvers granted, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_duration: Option<u64>,
}

/// A page of approvals.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalList {
    /// Newest first.
    pub approvals: Vec<Approval>,
    /// Pass as `cursor` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /v1/approvals/{id}/approve` or `/deny`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideApproval {
    /// Why; required.
    pub reason: String,
    /// Approve only: shorten the lifetime, seconds.
    #[serde(default)]
    pub duration: Option<u64>,
    /// Approve only: grant only these of the requested scopes.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}
