//! Compact JWS with EdDSA (Ed25519), JWK thumbprints (RFC 7638) and DPoP
//! proofs (RFC 9449). Pure: no I/O; callers own clocks and replay caches.
//!
//! - [`jwk`]: Ed25519 public keys as JWKs (RFC 8037), their thumbprints, and
//!   the [`Keypair`] that signs.
//! - [`jws`]: strict compact JWS signing and verification, and
//!   [`verify_jwt`] for access tokens.
//! - [`dpop`]: creating and checking DPoP proofs.
//!
//! Every failure is an [`AuthError`] whose [`AuthError::code`] is a stable
//! snake_case string for the wire.

mod b64;
pub mod dpop;
mod error;
pub mod issuer;
pub mod json;
pub mod jwk;
pub mod jws;

pub use dpop::{ProofExpectations, VerifiedProof};
pub use ed25519_dalek::VerifyingKey;
pub use error::AuthError;
pub use jwk::{Jwk, Keypair};
pub use jws::{Decoded, MAX_TOKEN_BYTES, verify_jwt};

/// Untrusted text made safe to embed in an error message: escaped (no
/// control characters reach logs) and cut to 128 characters.
pub(crate) fn shown(untrusted: &str) -> String {
    const MAX: usize = 128;
    let mut out: String = untrusted
        .chars()
        .take(MAX)
        .flat_map(char::escape_default)
        .collect();
    if untrusted.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    out
}
