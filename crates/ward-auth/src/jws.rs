//! Strict compact JWS (RFC 7515) with `EdDSA` only, and [`verify_jwt`] for
//! access tokens.
//!
//! Strictness is deliberate: exactly three segments of canonical unpadded
//! base64url, `alg` exactly `EdDSA`, no `crit`, header and payload JSON
//! objects without duplicate top-level members, at most
//! [`MAX_TOKEN_BYTES`]. Anything else is rejected before any key is used.

use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{Map, Value};

use crate::{AuthError, Keypair, b64};

/// The largest token accepted or produced, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The only accepted `alg`.
const ALG: &str = "EdDSA";
/// The header `typ` of every DPoP proof (RFC 9449), which is never an
/// access token.
pub const DPOP_TYP: &str = "dpop+jwt";
/// What this verifier accepts, for the refusal's message.
const ACCEPTED: &str = "only `EdDSA` (Ed25519)";

/// A compact JWS split and decoded, signature not yet checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The protected header (contains `"alg":"EdDSA"`, no `crit`).
    pub header: Map<String, Value>,
    /// The payload; always a JSON object.
    pub claims: Value,
    /// `b64url(header) "." b64url(payload)`, the bytes that were signed.
    pub signing_input: String,
    /// The raw Ed25519 signature.
    pub signature: [u8; 64],
}

impl Decoded {
    /// A string member of the header, if present and a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }
}

/// Signs `claims` (a JSON object) as a compact JWS. The header is `header`
/// with `alg` set to `EdDSA`; `crit` is refused because [`decode_unverified`]
/// would reject it.
pub fn sign(
    key: &Keypair,
    header: &Map<String, Value>,
    claims: &Value,
) -> Result<String, AuthError> {
    if header.contains_key("crit") {
        return Err(AuthError::Malformed(
            "header member `crit` is not supported; remove it".to_owned(),
        ));
    }
    if !claims.is_object() {
        return Err(AuthError::Malformed(
            "claims must be a json object".to_owned(),
        ));
    }
    let mut header = header.clone();
    header.insert("alg".to_owned(), Value::String(ALG.to_owned()));
    // Display of a Value is compact JSON and cannot fail.
    let header_json = Value::Object(header).to_string();
    let claims_json = claims.to_string();
    let signing_input = format!("{}.{}", b64::encode(header_json), b64::encode(claims_json));
    let signature = key.sign_bytes(signing_input.as_bytes());
    let token = format!("{signing_input}.{}", b64::encode(signature));
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed(format!(
            "token would be {} bytes, over the {MAX_TOKEN_BYTES}-byte limit; send fewer claims",
            token.len()
        )));
    }
    Ok(token)
}

fn unsupported(alg: &str) -> AuthError {
    AuthError::UnsupportedAlgorithm {
        alg: crate::shown(alg),
        accepted: ACCEPTED,
    }
}

/// Splits and decodes a compact JWS without checking its signature.
///
/// Rejects: over [`MAX_TOKEN_BYTES`]; not exactly three segments; any
/// segment not canonical unpadded base64url; header or payload not a JSON
/// object or with duplicate top-level members; `alg` other than `EdDSA`;
/// any `crit`; a signature that is not 64 bytes.
pub fn decode_unverified(token: &str) -> Result<Decoded, AuthError> {
    let (header, claims, signing_input, signature_bytes) = split(token)?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == ALG => {}
        Some(Value::String(alg)) => return Err(unsupported(alg)),
        Some(other) => return Err(unsupported(&other.to_string())),
        None => {
            return Err(AuthError::Malformed(
                "header has no `alg`; it must be `EdDSA`".to_owned(),
            ));
        }
    }
    let signature: [u8; 64] = signature_bytes.as_slice().try_into().map_err(|_| {
        AuthError::Malformed(format!(
            "signature is {} bytes; an Ed25519 signature is 64 bytes",
            signature_bytes.len()
        ))
    })?;
    Ok(Decoded {
        header,
        claims,
        signing_input,
        signature,
    })
}

/// The parts of a compact JWS: header, claims, signing input and raw
/// signature, with every structural check except the algorithm's.
pub(crate) type Parts = (Map<String, Value>, Value, String, Vec<u8>);

/// Splits and decodes a compact JWS of any algorithm: size limit, three
/// canonical base64url segments, JSON object header and payload without
/// duplicate members, no `crit`.
pub(crate) fn split(token: &str) -> Result<Parts, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed(format!(
            "token is {} bytes, over the {MAX_TOKEN_BYTES}-byte limit",
            token.len()
        )));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts.as_slice() else {
        return Err(AuthError::Malformed(format!(
            "expected 3 dot-separated segments (compact jws), found {}",
            parts.len()
        )));
    };
    let header_bytes =
        b64::decode(header_b64).map_err(|e| AuthError::Malformed(format!("header {e}")))?;
    let payload_bytes =
        b64::decode(payload_b64).map_err(|e| AuthError::Malformed(format!("payload {e}")))?;
    let signature_bytes =
        b64::decode(signature_b64).map_err(|e| AuthError::Malformed(format!("signature {e}")))?;
    let header = parse_object(&header_bytes, "header")?;
    if header.contains_key("crit") {
        return Err(AuthError::Malformed(
            "header member `crit` is not supported".to_owned(),
        ));
    }
    let claims = Value::Object(parse_object(&payload_bytes, "payload")?);
    Ok((
        header,
        claims,
        format!("{header_b64}.{payload_b64}"),
        signature_bytes,
    ))
}

/// Checks the signature of a decoded JWS with `verify_strict` (rejects
/// small-order keys and non-canonical signatures).
pub fn verify(decoded: &Decoded, key: &VerifyingKey) -> Result<(), AuthError> {
    let signature = Signature::from_bytes(&decoded.signature);
    key.verify_strict(decoded.signing_input.as_bytes(), &signature)
        .map_err(|_| AuthError::BadSignature)
}

/// Verifies an access token (a JWT signed by a server key) at time `now`.
///
/// The header must carry a string `kid`, which `key_lookup` resolves (unknown
/// → [`AuthError::UnknownKey`]); `typ: dpop+jwt` is refused so a DPoP proof
/// can never pass as an access token. After the signature, claims are
/// checked: integer `exp` required, expired when `now >= exp + leeway`;
/// integer `nbf` and `iat` optional, not yet valid when `> now + leeway`.
/// A negative leeway counts as zero. Returns the header and the claims.
pub fn verify_jwt(
    token: &str,
    now: i64,
    leeway_secs: i64,
    key_lookup: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<(Map<String, Value>, Value), AuthError> {
    let decoded = decode_unverified(token)?;
    if decoded.header_str("typ") == Some(DPOP_TYP) {
        return Err(AuthError::Malformed(
            "a dpop proof is not an access token".to_owned(),
        ));
    }
    let kid = match decoded.header.get("kid") {
        Some(Value::String(kid)) => kid,
        Some(_) => {
            return Err(AuthError::Malformed(
                "header `kid` must be a string".to_owned(),
            ));
        }
        None => {
            return Err(AuthError::Malformed(
                "header has no `kid`; access tokens must name their signing key".to_owned(),
            ));
        }
    };
    let key = key_lookup(kid).ok_or_else(|| AuthError::UnknownKey(crate::shown(kid)))?;
    verify(&decoded, &key)?;

    let leeway = leeway_secs.max(0);
    let exp = int_claim(&decoded.claims, "exp")?
        .ok_or_else(|| AuthError::Malformed("claims have no `exp`".to_owned()))?;
    if now >= exp.saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    for name in ["nbf", "iat"] {
        if let Some(t) = int_claim(&decoded.claims, name)?
            && t > now.saturating_add(leeway)
        {
            return Err(AuthError::NotYetValid);
        }
    }
    Ok((decoded.header, decoded.claims))
}

/// An optional integer claim; present but not an integer is malformed.
pub(crate) fn int_claim(claims: &Value, name: &str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or_else(|| {
            AuthError::Malformed(format!(
                "claim `{name}` must be an integer number of seconds, found `{}`",
                crate::shown(&value.to_string())
            ))
        }),
    }
}

/// Parses a JSON object, rejecting duplicate members (RFC 7515 §5.2 allows
/// rejecting them; accepting "last wins" invites confusion).
fn parse_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, AuthError> {
    match crate::json::parse_unique(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AuthError::Malformed(format!("{what} is not a json object"))),
        Err(e) => Err(AuthError::Malformed(format!(
            "{what} is not a json object: {e}"
        ))),
    }
}
