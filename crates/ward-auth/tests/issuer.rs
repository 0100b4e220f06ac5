//! Verifying tokens from another issuer (an OpenID provider) against its JWKS.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use ward_auth::issuer::{IssuerKeys, verify_issuer_jwt};
use ward_auth::{AuthError, Keypair};

const NOW: i64 = 1_750_000_000;

fn es256() -> (EcdsaKeyPair, Value) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig",
        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])});
    (pair, jwk)
}

fn es256_token(pair: &EcdsaKeyPair, header: Value, claims: Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(signature.as_ref()))
}

fn claims(exp: i64) -> Value {
    json!({"iss": "https://idp.example", "sub": "alice", "aud": "ward", "exp": exp, "iat": NOW - 10})
}

fn code(result: Result<(serde_json::Map<String, Value>, Value), AuthError>) -> &'static str {
    result.err().map(|e| e.code()).unwrap_or("ok")
}

#[test]
fn es256_and_eddsa_tokens_verify_against_the_jwks() {
    let (pair, ec_jwk) = es256();
    let ed = Keypair::generate().unwrap();
    let mut ed_jwk = serde_json::to_value(ed.public_jwk()).unwrap();
    ed_jwk["kid"] = json!("ed1");
    let keys = IssuerKeys::from_jwks(&json!({"keys": [ec_jwk, ed_jwk]})).unwrap();
    assert_eq!(keys.len(), 2);
    let token = es256_token(
        &pair,
        json!({"alg": "ES256", "kid": "ec1"}),
        claims(NOW + 60),
    );
    let (_, verified) = verify_issuer_jwt(&token, &keys, NOW, 0).unwrap();
    assert_eq!(verified["sub"], "alice");
    let mut header = serde_json::Map::new();
    header.insert("kid".into(), json!("ed1"));
    let token = ward_auth::jws::sign(&ed, &header, &claims(NOW + 60)).unwrap();
    assert_eq!(code(verify_issuer_jwt(&token, &keys, NOW, 0)), "ok");
}

#[test]
fn forged_expired_and_confused_tokens_are_refused() {
    let (pair, ec_jwk) = es256();
    let keys = IssuerKeys::from_jwks(&json!({"keys": [ec_jwk]})).unwrap();
    let good = es256_token(
        &pair,
        json!({"alg": "ES256", "kid": "ec1"}),
        claims(NOW + 60),
    );

    let (other, _) = es256();
    let forged = es256_token(
        &other,
        json!({"alg": "ES256", "kid": "ec1"}),
        claims(NOW + 60),
    );
    assert_eq!(
        code(verify_issuer_jwt(&forged, &keys, NOW, 0)),
        "bad_signature"
    );

    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims(NOW + 9999).to_string()),
        parts[2]
    );
    assert_eq!(
        code(verify_issuer_jwt(&tampered, &keys, NOW, 0)),
        "bad_signature"
    );

    let expired = es256_token(
        &pair,
        json!({"alg": "ES256", "kid": "ec1"}),
        claims(NOW - 1),
    );
    assert_eq!(
        code(verify_issuer_jwt(&expired, &keys, NOW, 0)),
        "token_expired"
    );
    assert_eq!(
        code(verify_issuer_jwt(&expired, &keys, NOW, 30)),
        "ok",
        "leeway applies"
    );

    let unknown_kid = es256_token(
        &pair,
        json!({"alg": "ES256", "kid": "ec2"}),
        claims(NOW + 60),
    );
    assert_eq!(
        code(verify_issuer_jwt(&unknown_kid, &keys, NOW, 0)),
        "unknown_key"
    );

    let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), parts[1]);
    assert_eq!(
        code(verify_issuer_jwt(&none, &keys, NOW, 0)),
        "unsupported_algorithm"
    );
    let refusal = verify_issuer_jwt(&none, &keys, NOW, 0)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        refusal, "unsupported algorithm `none`; this verifier accepts `RS256`, `ES256` or `EdDSA`",
        "the message names what this verifier accepts, not the DPoP verifier's EdDSA only"
    );
    let hs = format!(
        "{}.{}.{}",
        B64.encode(r#"{"alg":"HS256","kid":"ec1"}"#),
        parts[1],
        parts[2]
    );
    assert_eq!(
        code(verify_issuer_jwt(&hs, &keys, NOW, 0)),
        "unsupported_algorithm"
    );
    let confused = format!(
        "{}.{}.{}",
        B64.encode(r#"{"alg":"EdDSA","kid":"ec1"}"#),
        parts[1],
        parts[2]
    );
    assert_eq!(
        code(verify_issuer_jwt(&confused, &keys, NOW, 0)),
        "unknown_key",
        "an EC key never verifies EdDSA"
    );
}

#[test]
fn jwks_without_usable_signing_keys_is_refused() {
    let (_, mut jwk) = es256();
    jwk["use"] = json!("enc");
    assert!(IssuerKeys::from_jwks(&json!({"keys": [jwk]})).is_err());
    let (_, mut private) = es256();
    private["d"] = json!("AAAA");
    assert!(
        IssuerKeys::from_jwks(&json!({"keys": [private]})).is_err(),
        "private keys are never used"
    );
    assert!(IssuerKeys::from_jwks(&json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).is_err());
    assert!(IssuerKeys::from_jwks(&json!({})).is_err());
}
