//! The configuration file as written: the serde shape of the gateway's
//! YAML, with its defaults. Knows nothing about checking or compiling it.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The configuration file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on, e.g. `127.0.0.1:8443`.
    pub listen: String,
    /// The URL clients use to reach the gateway; DPoP proofs' `htu` must
    /// start with it. Defaults to `http://` + the listening address.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The control plane to follow.
    pub control_plane: ControlPlane,
    /// The protected service routes go to unless they name another, e.g.
    /// `http://127.0.0.1:9000` or `https://files.internal`.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Speak HTTP/2 to the default upstream (`h2c` over `http://`, ALPN
    /// over `https://`) instead of HTTP/1.1.
    #[serde(default)]
    pub upstream_http2: bool,
    /// Trust anchors (PEM) for an `https://` default upstream instead of
    /// the system's roots.
    #[serde(default)]
    pub upstream_ca_file: Option<String>,
    /// Further protected services, by name; a route picks one with
    /// `upstream: <name>`.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Serve agents over TLS with this certificate and key.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Seconds without the push stream after which sensitive routes fail closed.
    #[serde(default = "default_staleness")]
    pub staleness_secs: u64,
    /// Tolerated clock difference for `exp`, `nbf` and proof `iat`.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// How old a DPoP proof may be.
    #[serde(default = "default_proof_age")]
    pub proof_max_age_secs: u64,
    /// Largest accepted request body.
    #[serde(default = "default_body")]
    pub max_body_bytes: usize,
    /// A separate address for `/healthz`, `/readyz` and `/metrics`. With
    /// it, the proxy listener answers none of them (they cannot shadow
    /// upstream paths and agents cannot read the metrics); without it, the
    /// proxy listener answers them.
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// A limit per client IP address, checked before anything else.
    #[serde(default)]
    pub ip_rate_limit: Option<RateLimitConfig>,
    /// The allowlist of routes; anything else is refused with 404.
    pub routes: Vec<RouteConfig>,
}

fn default_staleness() -> u64 {
    30
}
fn default_skew() -> u64 {
    5
}
fn default_proof_age() -> u64 {
    60
}
fn default_body() -> usize {
    64 * 1024
}

/// Where the control plane is and how to read its push stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlane {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// A token that may read `/v1/watch`: the bootstrap token or a tenant token.
    pub token: String,
    /// With a tenant token: that tenant's id. Tokens of other tenants are
    /// refused, because their revocations are not in this stream.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// A protected service the gateway forwards to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL, `http://` or `https://`.
    pub url: String,
    /// Speak HTTP/2 (`h2c` over `http://`, ALPN over `https://`).
    #[serde(default)]
    pub http2: bool,
    /// Trust anchors (PEM) for `https://` instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// A client certificate chain (PEM) the gateway presents to the
    /// upstream, so the upstream can trust the identity headers only from
    /// the gateway (mutual TLS).
    #[serde(default)]
    pub client_cert_file: Option<String>,
    /// The private key (PEM) of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<String>,
}

/// The gateway's own certificate for serving agents over TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM), leaf first.
    pub cert_file: String,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

/// One allowed route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name, used in logs.
    pub name: String,
    /// Allowed methods, upper case.
    pub methods: Vec<String>,
    /// Path template, e.g. `/spreadsheets/{team}/rows`.
    pub path: String,
    /// Scope template the token must cover, e.g. `spreadsheets:write:/team/{team}`.
    pub scope: String,
    /// The name of an entry of `upstreams`; without it, `upstream`.
    #[serde(default)]
    pub upstream: Option<String>,
    /// JSON Schema file for the request body, relative to the config file.
    #[serde(default)]
    pub schema: Option<String>,
    /// OpenAPI 3.0/3.1 document (YAML or JSON) describing this route: each
    /// of the route's methods must be an operation on its path there, and
    /// that operation's JSON request body is the contract.
    #[serde(default)]
    pub openapi: Option<String>,
    /// With `openapi`: the operation's `operationId`, when the route has
    /// one method and the path alone is ambiguous or named differently.
    #[serde(default)]
    pub operation_id: Option<String>,
    /// Keep unknown object members allowed where the schema does not say;
    /// by default `additionalProperties: false` is applied.
    #[serde(default)]
    pub allow_unknown_fields: bool,
    /// Needs an approval-bound token and fresh control plane state.
    #[serde(default)]
    pub sensitive: bool,
    /// A feature flag that must not be off.
    #[serde(default)]
    pub flag: Option<String>,
    /// Per-agent rate limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Per-user (token `owner`) rate limit.
    #[serde(default)]
    pub user_rate_limit: Option<RateLimitConfig>,
    /// Requests per agent per UTC day.
    #[serde(default)]
    pub daily_quota: Option<u64>,
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained rate.
    pub per_second: f64,
    /// Bucket size.
    pub burst: u32,
}
