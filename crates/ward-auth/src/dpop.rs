//! DPoP proofs (RFC 9449): creating them on the client and checking them on
//! the server (§4.3).
//!
//! What this module does not do: remember `jti`s (the caller's replay cache)
//! or decide whether the proof key is the enrolled one (the caller compares
//! [`VerifiedProof::jkt`]). Server nonces are not supported.

use ed25519_dalek::VerifyingKey;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::jws::{self, DPOP_TYP as TYP, int_claim};
use crate::{AuthError, Jwk, Keypair, b64};

/// Shortest accepted `jti`, in characters.
pub const MIN_JTI_CHARS: usize = 8;
/// Longest accepted `jti`, in characters.
pub const MAX_JTI_CHARS: usize = 128;

/// Creates a DPoP proof for one request: header `typ: dpop+jwt`,
/// `alg: EdDSA`, `jwk` (the public key); claims `jti`, `htm`, `htu`, `iat`
/// and, when presenting an access token, `ath` (see [`ath_for`]).
pub fn create_proof(
    key: &Keypair,
    htm: &str,
    htu: &str,
    iat: i64,
    jti: &str,
    ath: Option<&str>,
) -> Result<String, AuthError> {
    let jwk = serde_json::to_value(key.public_jwk())
        .map_err(|e| AuthError::InvalidKey(format!("cannot encode the public key: {e}")))?;
    let mut header = Map::new();
    header.insert("typ".to_owned(), Value::String(TYP.to_owned()));
    header.insert("jwk".to_owned(), jwk);
    let mut claims = Map::new();
    claims.insert("jti".to_owned(), Value::String(jti.to_owned()));
    claims.insert("htm".to_owned(), Value::String(htm.to_owned()));
    claims.insert("htu".to_owned(), Value::String(htu.to_owned()));
    claims.insert("iat".to_owned(), Value::from(iat));
    if let Some(ath) = ath {
        claims.insert("ath".to_owned(), Value::String(ath.to_owned()));
    }
    jws::sign(key, &header, &Value::Object(claims))
}

/// The `ath` claim for an access token: base64url(SHA-256(token)).
pub fn ath_for(access_token: &str) -> String {
    b64::encode(Sha256::digest(access_token.as_bytes()))
}

/// A fresh `jti`: 16 random bytes, base64url (22 characters).
pub fn new_jti() -> Result<String, AuthError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(b64::encode(bytes))
}

/// What the server expects of a proof for the request it is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofExpectations<'a> {
    /// The request method, e.g. `POST`; compared case-sensitively.
    pub htm: &'a str,
    /// The absolute request URI as the client addressed it.
    pub htu: &'a str,
    /// The current time, unix seconds.
    pub now: i64,
    /// How many seconds old `iat` may be.
    pub max_age_secs: i64,
    /// How many seconds ahead of `now` `iat` may be (clock skew).
    pub max_future_secs: i64,
    /// If `Some`, the access token presented with the proof: `ath` must be
    /// present and equal [`ath_for`] of it.
    pub access_token: Option<&'a str>,
}

/// A proof that passed [`verify_proof`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof's `jwk`; compare with the enrolled key.
    pub jkt: String,
    /// The proof's public key.
    pub jwk: Jwk,
    /// The proof's `jti`; check it against the replay cache.
    pub jti: String,
    /// The proof's `iat`.
    pub iat: i64,
}

/// Checks a DPoP proof per RFC 9449 §4.3, except the `jti` replay check and
/// the binding of the key, which are the caller's.
///
/// In order: a single well-formed JWS with `alg: EdDSA`; `typ` exactly
/// `dpop+jwt`; `jwk` present, public only and a valid Ed25519 key; the
/// signature verifies with that key; `jti` a string of 8..=128 characters;
/// `htm` equal to the method; `htu` equal to the expected URI after
/// [`normalize_htu`] of both; `iat` within
/// `[now - max_age_secs, now + max_future_secs]`; `ath` when expected.
pub fn verify_proof(
    proof: &str,
    expected: &ProofExpectations<'_>,
) -> Result<VerifiedProof, AuthError> {
    verify(proof, expected, None)
}

/// Like [`verify_proof`], for a proof expected to be signed by a key the
/// caller already holds decoded (an enrolled device key): when the proof's
/// `jwk` equals `known`, `known_key` verifies it without decoding the key
/// again. A proof carrying any other key is checked in full, and its `jkt`
/// then differs from `known`'s.
pub fn verify_proof_known(
    proof: &str,
    expected: &ProofExpectations<'_>,
    known: &Jwk,
    known_key: &VerifyingKey,
) -> Result<VerifiedProof, AuthError> {
    verify(proof, expected, Some((known, known_key)))
}

fn verify(
    proof: &str,
    expected: &ProofExpectations<'_>,
    known: Option<(&Jwk, &VerifyingKey)>,
) -> Result<VerifiedProof, AuthError> {
    let expected_htu = normalize_htu(expected.htu).ok_or_else(|| {
        AuthError::InvalidExpectation(format!(
            "expected htu `{}` is not an absolute http(s) uri",
            expected.htu
        ))
    })?;

    let decoded = jws::decode_unverified(proof)?;
    if decoded.header_str("typ") != Some(TYP) {
        return Err(AuthError::ProofType);
    }
    let jwk_value = decoded.header.get("jwk").ok_or_else(|| {
        AuthError::InvalidProof("header has no `jwk`; include the public key".to_owned())
    })?;
    let jwk = Jwk::from_json(jwk_value)?;
    match known {
        Some((known, key)) if *known == jwk => jws::verify(&decoded, key)?,
        _ => jws::verify(&decoded, &jwk.verifying_key()?)?,
    }

    let claims = &decoded.claims;
    let jti = string_claim(claims, "jti")?;
    let jti_chars = jti.chars().count();
    if !(MIN_JTI_CHARS..=MAX_JTI_CHARS).contains(&jti_chars) {
        return Err(AuthError::InvalidProof(format!(
            "claim `jti` is {jti_chars} characters; it must be {MIN_JTI_CHARS} to {MAX_JTI_CHARS}"
        )));
    }

    let htm = string_claim(claims, "htm")?;
    if htm != expected.htm {
        return Err(AuthError::ProofMethod {
            expected: expected.htm.to_owned(),
            got: crate::shown(htm),
        });
    }

    let htu = string_claim(claims, "htu")?;
    let got_htu = normalize_htu(htu);
    if got_htu.as_deref() != Some(expected_htu.as_str()) {
        return Err(AuthError::ProofUrl {
            expected: expected_htu,
            got: got_htu.unwrap_or_else(|| crate::shown(htu)),
        });
    }

    let iat = int_claim(claims, "iat")
        .map_err(|_| AuthError::InvalidProof("claim `iat` must be an integer".to_owned()))?
        .ok_or_else(|| AuthError::InvalidProof("claims have no `iat`".to_owned()))?;
    let earliest = expected.now.saturating_sub(expected.max_age_secs.max(0));
    let latest = expected.now.saturating_add(expected.max_future_secs.max(0));
    if iat < earliest || iat > latest {
        return Err(AuthError::ProofTime);
    }

    if let Some(token) = expected.access_token {
        match claims.get("ath") {
            Some(Value::String(ath)) if *ath == ath_for(token) => {}
            _ => return Err(AuthError::ProofAth),
        }
    }

    Ok(VerifiedProof {
        jkt: jwk.thumbprint(),
        jti: jti.to_owned(),
        jwk,
        iat,
    })
}

/// A required string claim of a proof.
fn string_claim<'v>(claims: &'v Value, name: &str) -> Result<&'v str, AuthError> {
    match claims.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(AuthError::InvalidProof(format!(
            "claim `{name}` must be a string"
        ))),
        None => Err(AuthError::InvalidProof(format!("claims have no `{name}`"))),
    }
}

/// Normalises an `htu` (or request URI) for comparison; `None` if it is not
/// an absolute `http`/`https` URI.
///
/// Scheme and host are lowercased, the default port (80/443) and an empty
/// port are dropped, an empty path becomes `/`, query and fragment are
/// removed. The path is kept byte for byte: no dot-segment removal and no
/// percent-decoding, so `/v1/tokens/../x` never equals `/v1/x`. URIs with
/// user info, whitespace, control or non-ASCII characters are refused.
pub fn normalize_htu(uri: &str) -> Option<String> {
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let without_fragment = uri.split('#').next().unwrap_or_default();
    let without_query = without_fragment.split('?').next().unwrap_or_default();
    let (scheme, rest) = without_query.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, after) = authority.split_at(end + 1);
        match after {
            "" => (host, ""),
            _ => (host, after.strip_prefix(':')?),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, port),
            None => (authority, ""),
        }
    };
    if host.is_empty() || host.len() > 255 || (!host.starts_with('[') && host.contains(['[', ']']))
    {
        return None;
    }
    let port = match port {
        "" => None,
        digits if digits.bytes().all(|b| b.is_ascii_digit()) => {
            let n: u16 = digits.parse().ok()?;
            (n != default_port).then_some(n)
        }
        _ => return None,
    };
    let host = host.to_ascii_lowercase();
    Some(match port {
        Some(port) => format!("{scheme}://{host}:{port}{path}"),
        None => format!("{scheme}://{host}{path}"),
    })
}
