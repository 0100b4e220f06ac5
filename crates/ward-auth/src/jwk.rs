//! Ed25519 public keys as JWKs (RFC 8037), their RFC 7638 thumbprints, and
//! the signing [`Keypair`].

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{AuthError, b64};

/// An Ed25519 public key in JWK form: `{"kty":"OKP","crv":"Ed25519","x":..}`.
///
/// Deserialising accepts and drops other public members (`kid`, `alg`,
/// `use`, ...) but rejects a private `d` member, so a leaked private key is
/// never silently accepted. Values of `kty`/`crv`/`x` are checked by
/// [`Jwk::verifying_key`], not on deserialisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawJwk")]
pub struct Jwk {
    /// Key type; `OKP` for Ed25519.
    pub kty: String,
    /// Curve; `Ed25519`.
    pub crv: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
}

/// What is read off the wire before the `d` check.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    crv: String,
    x: String,
    #[serde(default, deserialize_with = "present")]
    d: bool,
}

/// Marks a member as present whatever its value (even `null`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer)?;
    Ok(true)
}

impl TryFrom<RawJwk> for Jwk {
    type Error = String;

    fn try_from(raw: RawJwk) -> Result<Self, Self::Error> {
        if raw.d {
            return Err(PRIVATE_MEMBER.to_owned());
        }
        Ok(Self {
            kty: raw.kty,
            crv: raw.crv,
            x: raw.x,
        })
    }
}

pub(crate) const PRIVATE_MEMBER: &str =
    "jwk contains the private member `d`; publish only the public key (`kty`, `crv`, `x`)";

impl Jwk {
    /// The JWK of an Ed25519 public key.
    pub fn from_verifying_key(key: &VerifyingKey) -> Self {
        Self {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: b64::encode(key.as_bytes()),
        }
    }

    /// Parses a JWK from a JSON value, rejecting private members.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, AuthError> {
        if value.get("d").is_some() {
            return Err(AuthError::InvalidKey(PRIVATE_MEMBER.to_owned()));
        }
        // Deserialised in place: a proof's `jwk` is read on every request.
        Self::deserialize(value).map_err(|e| AuthError::InvalidKey(format!("{e}")))
    }

    /// The Ed25519 verifying key, if this is a valid `OKP`/`Ed25519` JWK whose
    /// `x` is 32 bytes of canonical base64url encoding a usable curve point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, AuthError> {
        if self.kty != "OKP" {
            return Err(AuthError::InvalidKey(format!(
                "jwk `kty` is `{}`; only `OKP` (Ed25519) keys are supported",
                self.kty
            )));
        }
        if self.crv != "Ed25519" {
            return Err(AuthError::InvalidKey(format!(
                "jwk `crv` is `{}`; only `Ed25519` is supported",
                self.crv
            )));
        }
        let bytes =
            b64::decode(&self.x).map_err(|e| AuthError::InvalidKey(format!("jwk `x` {e}")))?;
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            AuthError::InvalidKey(format!(
                "jwk `x` decodes to {} bytes; an Ed25519 public key is 32 bytes",
                bytes.len()
            ))
        })?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
            AuthError::InvalidKey("jwk `x` is not a valid Ed25519 public key".to_owned())
        })?;
        if key.is_weak() {
            return Err(AuthError::InvalidKey(
                "jwk `x` is a weak (small-order) Ed25519 key; generate a new key".to_owned(),
            ));
        }
        Ok(key)
    }

    /// The RFC 7638 thumbprint: base64url (no padding) of SHA-256 over
    /// `{"crv":..,"kty":..,"x":..}` with members in that order and no
    /// whitespace.
    pub fn thumbprint(&self) -> String {
        // Value's Display escapes strings exactly as RFC 7638 §3 requires
        // (JSON string syntax, no whitespace).
        let canonical = format!(
            "{{\"crv\":{},\"kty\":{},\"x\":{}}}",
            serde_json::Value::String(self.crv.clone()),
            serde_json::Value::String(self.kty.clone()),
            serde_json::Value::String(self.x.clone()),
        );
        b64::encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// An Ed25519 signing key. `Debug` shows only the public key's thumbprint.
#[derive(Clone)]
pub struct Keypair(SigningKey);

impl Keypair {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, AuthError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// The key whose 32-byte secret seed (RFC 8032 private key) is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The 32-byte secret seed, for storing the key. Keep it secret.
    pub fn seed_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> Jwk {
        Jwk::from_verifying_key(&self.0.verifying_key())
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    /// Signs raw bytes; crate-internal so that only JWS signing inputs are
    /// ever signed.
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.0.sign(message).to_bytes()
    }
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keypair")
            .field("jkt", &self.public_jwk().thumbprint())
            .finish_non_exhaustive()
    }
}
