//! The token signing keys: the published JWKS and key rotation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
