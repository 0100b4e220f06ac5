//! Fixtures shared by the integration tests: fixed keys and a forger that
//! builds arbitrary (possibly hostile) compact JWS strings.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ward_auth::Keypair;

/// A fixed key so failures reproduce.
pub fn alice() -> Keypair {
    Keypair::from_seed(&[7u8; 32])
}

/// A second fixed key, never the expected one.
pub fn mallory() -> Keypair {
    Keypair::from_seed(&[13u8; 32])
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap_or_default()
}

/// Builds `b64(header).b64(payload).b64(sig)` from raw JSON text, signing
/// the input with `key` (Ed25519) regardless of what the header claims.
pub fn forge(header_json: &str, payload_json: &str, key: &Keypair) -> String {
    use ed25519_dalek::Signer as _;
    let signing = ed25519_dalek::SigningKey::from_bytes(&key.seed_bytes());
    let input = format!("{}.{}", b64(header_json), b64(payload_json));
    let sig = signing.sign(input.as_bytes()).to_bytes();
    format!("{input}.{}", b64(sig))
}

/// Splits a token into its three segments (tests only ever pass 3-part ones).
pub fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}
