//! Tokens from another issuer, such as the company's OpenID provider:
//! parsing its JWKS and verifying JWTs signed with RS256, ES256 or EdDSA.
//! Issuer and audience checks are the caller's; this checks the signature
//! and the token's time claims.

use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use serde_json::{Map, Value};

use crate::jws::{int_claim, split};
use crate::{AuthError, b64};

/// A signature algorithm an issuer may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (keys of 2048 bits or more).
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// Reads a header's `alg`, refusing any this verifier does not accept.
    fn parse(name: &str) -> Result<Alg, AuthError> {
        match name {
            "RS256" => Ok(Alg::Rs256),
            "ES256" => Ok(Alg::Es256),
            "EdDSA" => Ok(Alg::EdDsa),
            _ => Err(AuthError::UnsupportedAlgorithm {
                alg: crate::shown(name),
                accepted: "`RS256`, `ES256` or `EdDSA`",
            }),
        }
    }
}

#[derive(Clone, Debug)]
enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl Material {
    fn alg(&self) -> Alg {
        match self {
            Material::Rsa { .. } => Alg::Rs256,
            Material::P256(_) => Alg::Es256,
            Material::Ed25519(_) => Alg::EdDsa,
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Material::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            Material::P256(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok(),
            Material::Ed25519(x) => UnparsedPublicKey::new(&ED25519, x)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

#[derive(Clone, Debug)]
struct IssuerKey {
    kid: Option<String>,
    material: Material,
}

/// The signing keys an issuer publishes (its JWKS).
#[derive(Clone, Debug, Default)]
pub struct IssuerKeys {
    keys: Vec<IssuerKey>,
}

impl IssuerKeys {
    /// Reads a JWKS document. Keys for encryption (`use: enc`) and of
    /// unsupported types are skipped; a JWKS with no usable key is an error.
    pub fn from_jwks(jwks: &Value) -> Result<IssuerKeys, AuthError> {
        let list = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| AuthError::InvalidKey("jwks has no `keys` array".to_owned()))?;
        let mut keys = Vec::new();
        for key in list {
            if key
                .get("use")
                .and_then(Value::as_str)
                .is_some_and(|u| u != "sig")
            {
                continue;
            }
            if let Some(material) = material(key) {
                keys.push(IssuerKey {
                    kid: key.get("kid").and_then(Value::as_str).map(str::to_owned),
                    material,
                });
            }
        }
        if keys.is_empty() {
            return Err(AuthError::InvalidKey(
                "jwks holds no RS256, ES256 or EdDSA signing key".to_owned(),
            ));
        }
        Ok(IssuerKeys { keys })
    }

    /// Whether a key with this id is known.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// How many keys are usable.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn field(key: &Value, name: &str) -> Option<Vec<u8>> {
    key.get(name)
        .and_then(Value::as_str)
        .and_then(|v| b64::decode(v).ok())
}

fn material(key: &Value) -> Option<Material> {
    let text = |name: &str| key.get(name).and_then(Value::as_str);
    if key.get("d").is_some() {
        return None;
    }
    match (text("kty")?, text("crv")) {
        ("RSA", _) => {
            let n = field(key, "n")?;
            // Refuse weak moduli outright; ring refuses them at verification too.
            (n.len() >= 256).then_some(())?;
            Some(Material::Rsa {
                n,
                e: field(key, "e")?,
            })
        }
        ("EC", Some("P-256")) => {
            let (x, y) = (field(key, "x")?, field(key, "y")?);
            (x.len() == 32 && y.len() == 32).then_some(())?;
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Some(Material::P256(point))
        }
        ("OKP", Some("Ed25519")) => {
            let x = field(key, "x")?;
            (x.len() == 32).then_some(Material::Ed25519(x))
        }
        _ => None,
    }
}

/// The protected header of a would-be issuer JWT, checked for shape and
/// algorithm only (no signature): lets a caller refuse garbage before any
/// network I/O such as fetching keys.
pub fn peek_header(token: &str) -> Result<Map<String, Value>, AuthError> {
    let (header, _, _, _) = split(token)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::Malformed("header has no string `alg`".to_owned()))?;
    Alg::parse(alg)?;
    Ok(header)
}

/// Verifies a JWT from an issuer at time `now`: the header's `alg` must be
/// RS256, ES256 or EdDSA and match the key's type; with a `kid` the key
/// must have that id (unknown → [`AuthError::UnknownKey`], so the caller can
/// refresh the JWKS once), without one every key of the right type is
/// tried. Then `exp` is required and `nbf`/`iat` must not be in the future,
/// each with `leeway_secs`. Returns header and claims.
pub fn verify_issuer_jwt(
    token: &str,
    keys: &IssuerKeys,
    now: i64,
    leeway_secs: i64,
) -> Result<(Map<String, Value>, Value), AuthError> {
    let (header, claims, signing_input, signature) = split(token)?;
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::Malformed("header has no string `alg`".to_owned()))?;
    let alg = Alg::parse(alg_name)?;
    let kid = match header.get("kid") {
        Some(Value::String(kid)) => Some(kid.as_str()),
        None => None,
        Some(_) => {
            return Err(AuthError::Malformed(
                "header `kid` must be a string".to_owned(),
            ));
        }
    };
    let mut candidates = keys
        .keys
        .iter()
        .filter(|k| k.material.alg() == alg)
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .peekable();
    if candidates.peek().is_none() {
        return Err(AuthError::UnknownKey(crate::shown(kid.unwrap_or(alg_name))));
    }
    if !candidates.any(|k| k.material.verify(signing_input.as_bytes(), &signature)) {
        return Err(AuthError::BadSignature);
    }
    let leeway = leeway_secs.max(0);
    let exp = int_claim(&claims, "exp")?
        .ok_or_else(|| AuthError::Malformed("claims have no `exp`".to_owned()))?;
    if now >= exp.saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    for name in ["nbf", "iat"] {
        if let Some(t) = int_claim(&claims, name)?
            && t > now.saturating_add(leeway)
        {
            return Err(AuthError::NotYetValid);
        }
    }
    Ok((header, claims))
}
