//! Compact JWS strictness and access-token verification.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::{alice, b64, forge, mallory, parts};
use serde_json::{Map, Value, json};
use ward_auth::jws::{decode_unverified, sign, verify};
use ward_auth::{AuthError, Keypair, MAX_TOKEN_BYTES, VerifyingKey, verify_jwt};

const NOW: i64 = 1_750_000_000;
const LEEWAY: i64 = 30;

fn header(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// An access token signed by `key` with `kid: k1` and the given claims.
fn access_token(key: &Keypair, claims: Value) -> String {
    sign(key, &header(json!({"typ": "at+jwt", "kid": "k1"})), &claims).unwrap()
}

/// `verify_jwt` with `k1` resolving to alice's key.
fn check_jwt(token: &str, now: i64) -> Result<Value, AuthError> {
    let lookup = |kid: &str| (kid == "k1").then(|| alice().verifying_key());
    verify_jwt(token, now, LEEWAY, lookup).map(|(_, claims)| claims)
}

/// Asserts `decode_unverified` rejects `token` with `code`.
fn rejects(token: &str, code: &str) {
    let err = decode_unverified(token).err();
    assert_eq!(
        err.as_ref().map(AuthError::code),
        Some(code),
        "{token}: {err:?}"
    );
}

#[test]
fn sign_then_verify_round_trips() {
    let claims = json!({"sub": "agent-1", "n": 5, "nested": {"a": [1, 2]}});
    let token = sign(
        &alice(),
        &header(json!({"typ": "JWT", "kid": "k1", "alg": "HS256"})),
        &claims,
    )
    .unwrap();
    assert_eq!(parts(&token).len(), 3);
    let decoded = decode_unverified(&token).unwrap();
    assert_eq!(decoded.claims, claims);
    // `alg` is always forced to EdDSA; other members are kept.
    assert_eq!(decoded.header.get("alg"), Some(&json!("EdDSA")));
    assert_eq!(decoded.header_str("typ"), Some("JWT"));
    assert_eq!(decoded.header_str("kid"), Some("k1"));
    verify(&decoded, &alice().verifying_key()).unwrap();
}

#[test]
fn wrong_key_is_a_bad_signature() {
    let token = sign(&alice(), &Map::new(), &json!({"a": 1})).unwrap();
    let decoded = decode_unverified(&token).unwrap();
    assert_eq!(
        verify(&decoded, &mallory().verifying_key()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn tampered_payload_fails_verification() {
    let token = sign(&alice(), &Map::new(), &json!({"scope": "read"})).unwrap();
    let p = parts(&token);
    let evil = format!("{}.{}.{}", p[0], b64(r#"{"scope":"admin"}"#), p[2]);
    let decoded = decode_unverified(&evil).unwrap();
    assert_eq!(
        verify(&decoded, &alice().verifying_key()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn tampered_header_fails_verification() {
    let token = sign(&alice(), &header(json!({"kid": "k1"})), &json!({"a": 1})).unwrap();
    let p = parts(&token);
    let evil = format!("{}.{}.{}", b64(r#"{"alg":"EdDSA","kid":"k2"}"#), p[1], p[2]);
    let decoded = decode_unverified(&evil).unwrap();
    assert_eq!(
        verify(&decoded, &alice().verifying_key()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn tampered_signature_fails_verification() {
    let token = sign(&alice(), &Map::new(), &json!({"a": 1})).unwrap();
    let p = parts(&token);
    let mut sig = common::unb64(&p[2]);
    sig[10] ^= 1;
    let evil = format!("{}.{}.{}", p[0], p[1], b64(sig));
    let decoded = decode_unverified(&evil).unwrap();
    assert_eq!(
        verify(&decoded, &alice().verifying_key()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn algorithms_other_than_eddsa_are_rejected() {
    for alg in ["none", "HS256", "RS256", "ES256", "eddsa", "Ed25519", ""] {
        let token = forge(&format!(r#"{{"alg":"{alg}"}}"#), r#"{"a":1}"#, &alice());
        assert_eq!(
            decode_unverified(&token),
            Err(AuthError::UnsupportedAlgorithm {
                alg: alg.to_owned(),
                accepted: "only `EdDSA` (Ed25519)",
            })
        );
    }
    let refusal = decode_unverified(&forge(r#"{"alg":"none"}"#, r#"{"a":1}"#, &alice()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        refusal,
        "unsupported algorithm `none`; this verifier accepts only `EdDSA` (Ed25519)"
    );
    // `alg: none` with an empty signature segment.
    let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"a":1}"#));
    rejects(&none, "unsupported_algorithm");
    rejects(
        &forge(r#"{"alg":null}"#, "{}", &alice()),
        "unsupported_algorithm",
    );
    rejects(
        &forge(r#"{"typ":"JWT"}"#, "{}", &alice()),
        "malformed_token",
    );
}

#[test]
fn crit_header_is_rejected() {
    rejects(
        &forge(
            r#"{"alg":"EdDSA","crit":["b64"],"b64":false}"#,
            "{}",
            &alice(),
        ),
        "malformed_token",
    );
    let err = sign(&alice(), &header(json!({"crit": ["exp"]})), &json!({})).unwrap_err();
    assert_eq!(err.code(), "malformed_token");
}

#[test]
fn padded_or_non_url_base64_is_rejected() {
    let token = sign(&alice(), &Map::new(), &json!({"abc": 1})).unwrap();
    let p = parts(&token);
    // The signature (64 bytes) never ends on a 3-byte boundary, so `==` is
    // what a padding encoder would add.
    rejects(&format!("{}.{}.{}==", p[0], p[1], p[2]), "malformed_token");
    rejects(&format!("{}=.{}.{}", p[0], p[1], p[2]), "malformed_token");
    // Standard-alphabet characters and whitespace.
    rejects(
        &format!("{}.{}.{}", p[0], p[1], p[2].replace('-', "+")),
        "malformed_token",
    );
    rejects(
        &format!("{}.{}.{}", p[0], p[1], p[2].replace('_', "/")),
        "malformed_token",
    );
    rejects(&format!("{}.{} .{}", p[0], p[1], p[2]), "malformed_token");
    // Non-canonical trailing bits: the last character of a 64-byte signature
    // carries 4 spare bits.
    let mut sig = p[2].clone();
    let last = sig.pop().unwrap();
    // Valid final characters are A, Q, g, w (multiples of 16); the next
    // character sets a spare bit.
    let bumped = char::from(u8::try_from(u32::from(last) + 1).unwrap());
    sig.push(bumped);
    rejects(&format!("{}.{}.{}", p[0], p[1], sig), "malformed_token");
}

#[test]
fn wrong_number_of_parts_is_rejected() {
    let token = sign(&alice(), &Map::new(), &json!({"a": 1})).unwrap();
    let p = parts(&token);
    rejects(&format!("{}.{}", p[0], p[1]), "malformed_token");
    rejects(
        &format!("{}.{}.{}.{}", p[0], p[1], p[2], p[2]),
        "malformed_token",
    );
    rejects(&format!("{token}."), "malformed_token");
    rejects("", "malformed_token");
    rejects("..", "malformed_token");
}

#[test]
fn huge_tokens_are_rejected_before_parsing() {
    let padding = "a".repeat(MAX_TOKEN_BYTES);
    let token = forge(
        r#"{"alg":"EdDSA"}"#,
        &format!(r#"{{"p":"{padding}"}}"#),
        &alice(),
    );
    let err = decode_unverified(&token).unwrap_err();
    assert_eq!(err.code(), "malformed_token");
    assert!(err.to_string().contains("limit"), "{err}");
    let err = sign(&alice(), &Map::new(), &json!({ "p": padding })).unwrap_err();
    assert_eq!(err.code(), "malformed_token");
}

#[test]
fn header_and_payload_must_be_json_objects() {
    rejects(
        &forge(r#"["alg","EdDSA"]"#, "{}", &alice()),
        "malformed_token",
    );
    rejects(
        &forge(r#"{"alg":"EdDSA"}"#, "[1,2]", &alice()),
        "malformed_token",
    );
    rejects(
        &forge(r#"{"alg":"EdDSA"}"#, "42", &alice()),
        "malformed_token",
    );
    rejects(
        &forge(r#"{"alg":"EdDSA"}"#, "not json", &alice()),
        "malformed_token",
    );
    rejects(
        &forge(r#"{"alg":"EdDSA"} x"#, "{}", &alice()),
        "malformed_token",
    );
    let err = sign(&alice(), &Map::new(), &json!(["a"])).unwrap_err();
    assert_eq!(err.code(), "malformed_token");
}

#[test]
fn duplicate_members_are_rejected() {
    rejects(
        &forge(r#"{"alg":"HS256","alg":"EdDSA"}"#, "{}", &alice()),
        "malformed_token",
    );
    rejects(
        &forge(r#"{"alg":"EdDSA"}"#, r#"{"sub":"a","sub":"b"}"#, &alice()),
        "malformed_token",
    );
}

#[test]
fn signature_must_be_64_bytes() {
    let token = forge(r#"{"alg":"EdDSA"}"#, "{}", &alice());
    let p = parts(&token);
    rejects(
        &format!("{}.{}.{}", p[0], p[1], b64([0u8; 63])),
        "malformed_token",
    );
    rejects(&format!("{}.{}.", p[0], p[1]), "malformed_token");
}

#[test]
fn jwt_within_lifetime_verifies() {
    let token = access_token(
        &alice(),
        json!({"sub": "a", "iat": NOW, "nbf": NOW, "exp": NOW + 300}),
    );
    let claims = check_jwt(&token, NOW).unwrap();
    assert_eq!(claims["sub"], "a");
}

#[test]
fn jwt_expiry_respects_leeway_boundaries() {
    let exp = NOW;
    let token = access_token(&alice(), json!({"exp": exp}));
    assert!(check_jwt(&token, exp - 1).is_ok());
    assert!(check_jwt(&token, exp + LEEWAY - 1).is_ok());
    assert_eq!(check_jwt(&token, exp + LEEWAY), Err(AuthError::Expired));
    assert_eq!(
        check_jwt(&token, exp + LEEWAY + 1_000),
        Err(AuthError::Expired)
    );
    assert_eq!(AuthError::Expired.code(), "token_expired");
    // With zero (or negative) leeway, `now == exp` is already expired.
    let lookup = |_: &str| Some(alice().verifying_key());
    assert_eq!(
        verify_jwt(&token, exp, 0, lookup).map(|_| ()),
        Err(AuthError::Expired)
    );
    assert_eq!(
        verify_jwt(&token, exp - 1, -100, lookup).map(|_| ()),
        Ok(())
    );
}

#[test]
fn jwt_exp_is_required_and_numeric() {
    let missing = access_token(&alice(), json!({"sub": "a"}));
    assert_eq!(
        check_jwt(&missing, NOW).unwrap_err().code(),
        "malformed_token"
    );
    let text = access_token(&alice(), json!({"exp": (NOW + 60).to_string()}));
    assert_eq!(check_jwt(&text, NOW).unwrap_err().code(), "malformed_token");
    let float = access_token(&alice(), json!({"exp": 1.5e12}));
    assert_eq!(
        check_jwt(&float, NOW).unwrap_err().code(),
        "malformed_token"
    );
}

#[test]
fn jwt_extreme_exp_does_not_overflow() {
    let token = access_token(&alice(), json!({"exp": i64::MAX}));
    assert!(check_jwt(&token, NOW).is_ok());
    let token = access_token(&alice(), json!({"exp": i64::MIN}));
    assert_eq!(check_jwt(&token, NOW), Err(AuthError::Expired));
}

#[test]
fn jwt_nbf_and_iat_in_the_future_are_not_yet_valid() {
    for claim in ["nbf", "iat"] {
        let at_edge = access_token(&alice(), json!({"exp": NOW + 600, claim: NOW + LEEWAY}));
        assert!(
            check_jwt(&at_edge, NOW).is_ok(),
            "{claim} at the leeway edge"
        );
        let beyond = access_token(&alice(), json!({"exp": NOW + 600, claim: NOW + LEEWAY + 1}));
        assert_eq!(
            check_jwt(&beyond, NOW),
            Err(AuthError::NotYetValid),
            "{claim}"
        );
    }
    assert_eq!(AuthError::NotYetValid.code(), "token_not_yet_valid");
}

#[test]
fn jwt_requires_a_known_kid() {
    let no_kid = sign(&alice(), &Map::new(), &json!({"exp": NOW + 60})).unwrap();
    assert_eq!(
        check_jwt(&no_kid, NOW).unwrap_err().code(),
        "malformed_token"
    );
    let numeric_kid = sign(
        &alice(),
        &header(json!({"kid": 1})),
        &json!({"exp": NOW + 60}),
    )
    .unwrap();
    assert_eq!(
        check_jwt(&numeric_kid, NOW).unwrap_err().code(),
        "malformed_token"
    );
    let unknown = sign(
        &alice(),
        &header(json!({"kid": "k9"})),
        &json!({"exp": NOW + 60}),
    )
    .unwrap();
    let err = check_jwt(&unknown, NOW).unwrap_err();
    assert_eq!(err, AuthError::UnknownKey("k9".into()));
    assert_eq!(err.code(), "unknown_key");
}

#[test]
fn jwt_signed_by_another_key_under_a_known_kid_fails() {
    let token = access_token(&mallory(), json!({"exp": NOW + 60}));
    assert_eq!(check_jwt(&token, NOW), Err(AuthError::BadSignature));
}

#[test]
fn jwt_signature_is_checked_before_claims() {
    // An expired token with a bad signature reports the signature.
    let token = access_token(&mallory(), json!({"exp": NOW - 1_000}));
    assert_eq!(check_jwt(&token, NOW), Err(AuthError::BadSignature));
}

#[test]
fn dpop_proof_is_not_an_access_token() {
    let proof = sign(
        &alice(),
        &header(json!({"typ": "dpop+jwt", "kid": "k1"})),
        &json!({"exp": NOW + 60}),
    )
    .unwrap();
    assert_eq!(
        check_jwt(&proof, NOW).unwrap_err().code(),
        "malformed_token"
    );
}

#[test]
fn verify_jwt_returns_the_header() {
    let token = access_token(&alice(), json!({"exp": NOW + 60}));
    let lookup = |_: &str| -> Option<VerifyingKey> { Some(alice().verifying_key()) };
    let (header, _) = verify_jwt(&token, NOW, 0, lookup).unwrap();
    assert_eq!(header.get("kid"), Some(&json!("k1")));
    assert_eq!(header.get("typ"), Some(&json!("at+jwt")));
}
