//! The one shape of every error response.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The one shape of every error response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// Details of an error.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, snake_case (e.g. `invalid_field`).
    pub code: String,
    /// Human-readable explanation, naming the offending value.
    pub message: String,
    /// JSON path of the offending request field, when one is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's correlation id, also in the `X-Correlation-Id` header.
    pub correlation_id: String,
    /// With `approval_required`: the approval request to wait for, then to
    /// name in the retried request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}
