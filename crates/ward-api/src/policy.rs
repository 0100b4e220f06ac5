//! Rego policy bundles.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One file of a policy bundle.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Relative path, ending in `.rego`.
    pub path: String,
    /// The Rego text.
    pub text: String,
}

/// `POST /v1/policy/bundles`: a bundle of Rego files to test and activate.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushPolicy {
    /// The files.
    pub files: Vec<PolicyFile>,
}

/// A stored policy bundle.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyBundle {
    /// Bundle id (`pol_...`).
    pub id: String,
    /// Tenant id.
    pub tenant: String,
    /// SHA-256 of the bundle, recorded with every decision it makes.
    pub hash: String,
    /// Who pushed it.
    pub pushed_by: String,
    /// When, RFC 3339.
    pub pushed_at: String,
    /// The file paths.
    pub files: Vec<String>,
    /// The `test_` rules that passed when it was pushed.
    #[serde(default)]
    pub tests_passed: Vec<String>,
}
