//! Ward's wire types: the only place that defines the JSON the HTTP API
//! accepts and returns. Requests reject unknown fields.

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

/// Liveness and readiness answer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` when healthy.
    pub status: String,
}

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

/// `POST /v1/enroll-tokens`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollToken {
    /// Email of the person who owns the agent instance.
    pub owner: String,
    /// Capability profile from the matrix.
    pub profile: String,
    /// Lifetime in seconds (default 900, at most 86400).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// A single-use enrolment token; the secret is shown only here.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrollTokenCreated {
    /// Enrolment token id (`enr_...`).
    pub id: String,
    /// The secret to hand to the device. Only its hash is stored.
    pub token: String,
    /// Tenant id.
    pub tenant: String,
    /// Owner email.
    pub owner: String,
    /// Profile.
    pub profile: String,
    /// Expiry, RFC 3339.
    pub expires_at: String,
}

/// A device public key as a JWK (RFC 8037): `kty` `OKP`, `crv` `Ed25519`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceKey {
    /// Key type, `OKP`.
    pub kty: String,
    /// Curve, `Ed25519`.
    pub crv: String,
    /// Public key, base64url.
    pub x: String,
}

/// Metadata the device reports about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo {
    /// Operating system and version, e.g. `macos 15.2`.
    pub os: String,
    /// Version of the agent software.
    pub agent_version: String,
    /// Stable host identifier.
    pub host_id: String,
}

/// `POST /v1/agents`: enrol a device with an enrolment token.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollAgent {
    /// The enrolment token secret.
    pub enroll_token: String,
    /// The device's public key.
    pub device_key: DeviceKey,
    /// Device metadata.
    pub device: DeviceInfo,
}

/// An enrolled agent instance.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    /// Agent id (`agt_...`).
    pub id: String,
    /// Tenant id.
    pub tenant: String,
    /// Owner email.
    pub owner: String,
    /// Capability profile.
    pub profile: String,
    /// Lifecycle state: `pending_approval`, `active`, `quarantined`, `revoked`, `uninstalled`.
    pub state: String,
    /// Device metadata.
    pub device: DeviceInfo,
    /// RFC 7638 thumbprint of the device key (`cnf.jkt` of its tokens).
    pub device_jkt: String,
    /// Enrolment time, RFC 3339.
    pub created_at: String,
    /// Last state change, RFC 3339.
    pub updated_at: String,
}

/// A page of agents.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentList {
    /// The agents, oldest first.
    pub agents: Vec<Agent>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Body of the agent lifecycle actions (activate, quarantine, revoke, uninstall).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleChange {
    /// Why, recorded in the audit log. Required, 1 to 1000 characters.
    pub reason: String,
}

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

/// A signing key as published in the JWKS.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PublicJwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// Public key, base64url.
    pub x: String,
    /// Key id.
    pub kid: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// `GET /.well-known/jwks.json`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Jwks {
    /// Current key first, then keys still verifying unexpired tokens.
    pub keys: Vec<PublicJwk>,
}

/// Result of `POST /v1/keys/rotate`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyRotated {
    /// The new signing key.
    pub kid: String,
    /// The key it replaces, still published until `previous_published_until`.
    pub previous_kid: String,
    /// RFC 3339 time after which the previous key leaves the JWKS.
    pub previous_published_until: String,
}

/// One audit log entry.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Position in the hash chain.
    pub seq: i64,
    /// Time, RFC 3339.
    pub ts: String,
    /// Tenant id, absent for instance-wide actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Who acted.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// `success`, `denied` or `error`.
    pub result: String,
    /// Why.
    pub reason: String,
    /// Correlation id of the request.
    pub correlation_id: String,
    /// Further facts.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

/// A page of audit entries.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Entries in ascending sequence order.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
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

/// `PUT /v1/killswitch`: engage (or release, with mode `normal`) a kill switch.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetKillSwitch {
    /// `global` (bootstrap token only), `tenant`, `agent` or `agent_version`.
    pub scope: String,
    /// The agent id (`agent`) or the agent version (`agent_version`);
    /// absent for `global` and `tenant` (the caller's tenant).
    #[serde(default)]
    pub target: Option<String>,
    /// `normal` (release), `read-only` (only `:read`-style scopes and safe
    /// methods pass) or `offline` (nothing passes).
    pub mode: String,
    /// Why; required, recorded in the audit log.
    pub reason: String,
}

/// An engaged kill switch.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct KillSwitch {
    /// `global`, `tenant`, `agent` or `agent_version`.
    pub scope: String,
    /// Tenant id; absent for instance-wide switches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// What it applies to (see `SetKillSwitch.target`).
    pub target: String,
    /// `read-only` or `offline`; `normal` when just released.
    pub mode: String,
    /// Why.
    pub reason: String,
    /// Who.
    pub set_by: String,
    /// When, RFC 3339.
    pub set_at: String,
}

/// Engaged kill switches.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct KillSwitchList {
    /// Instance-wide ones and the caller's tenant's.
    pub switches: Vec<KillSwitch>,
}

/// `PUT /v1/flags/{key}`: turn a feature flag on or off.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFlag {
    /// On or off.
    pub enabled: bool,
    /// `tenant` (the caller's) or `global` (everyone; bootstrap token only).
    pub scope: String,
    /// Why; required.
    pub reason: String,
}

/// A feature flag value.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Flag {
    /// Flag key.
    pub key: String,
    /// Tenant id; absent for the value for everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// On or off.
    pub enabled: bool,
    /// Why.
    pub reason: String,
    /// Who.
    pub set_by: String,
    /// When, RFC 3339.
    pub set_at: String,
}

/// Feature flag values.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct FlagList {
    /// Values for everyone and for the caller's tenant.
    pub flags: Vec<Flag>,
}

/// `GET /v1/watch/snapshot`: the state a gateway loads before following
/// `GET /v1/watch` from `seq`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WatchSnapshot {
    /// Follow the stream after this event (send it as `Last-Event-ID`).
    pub seq: i64,
    /// Revocation rules still able to revoke an unexpired token.
    pub revocations: Vec<Revocation>,
    /// Engaged kill switches.
    pub killswitches: Vec<KillSwitch>,
    /// Feature flag values.
    pub flags: Vec<Flag>,
    /// The signing keys.
    pub jwks: Jwks,
    /// The scopes of the capability matrix's high-risk features: a gateway
    /// whose state is stale refuses requests needing one of them.
    #[serde(default)]
    pub high_risk_scopes: Vec<String>,
    /// The one tenant this stream covers (a tenant token's), or none for
    /// the whole instance (the bootstrap token). A gateway following one
    /// tenant must refuse every other tenant's tokens: their revocations
    /// are not in its stream.
    #[serde(default)]
    pub tenant: Option<String>,
}
