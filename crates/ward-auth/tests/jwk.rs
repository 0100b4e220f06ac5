//! JWK parsing, RFC 8037 vectors and RFC 7638 thumbprints.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::{alice, b64};
use serde_json::json;
use ward_auth::{AuthError, Jwk, Keypair};

// RFC 8037 Appendix A.1 and A.3.
const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
// RFC 8037 Appendix A.4: JWS of "Example of Ed25519 signing".
const RFC8037_JWS: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

fn rfc8037_keypair() -> Keypair {
    let seed: [u8; 32] = common::unb64(RFC8037_D).try_into().unwrap_or([0; 32]);
    Keypair::from_seed(&seed)
}

fn jwk(value: serde_json::Value) -> Result<Jwk, AuthError> {
    Jwk::from_json(&value)
}

#[test]
fn rfc8037_seed_yields_the_published_public_key() {
    let jwk = rfc8037_keypair().public_jwk();
    assert_eq!(
        jwk,
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: RFC8037_X.into()
        }
    );
}

#[test]
fn rfc8037_thumbprint_matches_appendix_a3() {
    let jwk = jwk(json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})).unwrap();
    assert_eq!(jwk.thumbprint(), RFC8037_THUMBPRINT);
    assert_eq!(
        rfc8037_keypair().public_jwk().thumbprint(),
        RFC8037_THUMBPRINT
    );
}

#[test]
fn rfc8037_signature_verifies_with_the_parsed_jwk() {
    let key = jwk(json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}))
        .unwrap()
        .verifying_key()
        .unwrap();
    let (input, sig) = RFC8037_JWS.rsplit_once('.').unwrap();
    let sig: [u8; 64] = common::unb64(sig).try_into().unwrap();
    key.verify_strict(
        input.as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .unwrap();
    // The payload is not a JSON object, so the strict JWS decoder refuses it.
    let err = ward_auth::jws::decode_unverified(RFC8037_JWS).unwrap_err();
    assert_eq!(err.code(), "malformed_token");
}

#[test]
fn thumbprint_ignores_extra_members_and_member_order() {
    let plain = jwk(json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})).unwrap();
    let decorated = jwk(json!({"x": RFC8037_X, "use": "sig", "kid": "k1", "alg": "EdDSA", "crv": "Ed25519", "kty": "OKP"}))
        .unwrap();
    assert_eq!(plain, decorated);
    assert_eq!(decorated.thumbprint(), RFC8037_THUMBPRINT);
}

#[test]
fn private_member_d_is_rejected() {
    for d in [json!(RFC8037_D), json!(null), json!("")] {
        let err = jwk(json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "d": d})).unwrap_err();
        assert_eq!(err.code(), "invalid_key");
        assert!(err.to_string().contains("`d`"), "{err}");
    }
    let via_serde: Result<Jwk, _> = serde_json::from_value(
        json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "d": RFC8037_D}),
    );
    assert!(via_serde.is_err());
}

#[test]
fn missing_members_are_rejected() {
    assert!(jwk(json!({"kty": "OKP", "crv": "Ed25519"})).is_err());
    assert!(jwk(json!({"kty": "OKP", "x": RFC8037_X})).is_err());
    assert!(jwk(json!("not an object")).is_err());
}

#[test]
fn non_ed25519_keys_are_invalid() {
    let check = |value: serde_json::Value, needle: &str| {
        let err = jwk(value).unwrap().verifying_key().unwrap_err();
        assert_eq!(err.code(), "invalid_key");
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    };
    check(
        json!({"kty": "EC", "crv": "Ed25519", "x": RFC8037_X}),
        "`kty`",
    );
    check(
        json!({"kty": "OKP", "crv": "X25519", "x": RFC8037_X}),
        "`crv`",
    );
    check(
        json!({"kty": "OKP", "crv": "Ed448", "x": RFC8037_X}),
        "`crv`",
    );
    check(
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64([1u8; 31])}),
        "31 bytes",
    );
    check(
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64([1u8; 33])}),
        "33 bytes",
    );
    check(
        json!({"kty": "OKP", "crv": "Ed25519", "x": format!("{RFC8037_X}=")}),
        "`=`",
    );
    check(
        json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X.replace('_', "/")}),
        "`/`",
    );
    // The identity point is a small-order (weak) key.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    check(
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64(identity)}),
        "weak",
    );
}

#[test]
fn keypair_seed_round_trips() {
    let key = Keypair::generate().unwrap();
    let again = Keypair::from_seed(&key.seed_bytes());
    assert_eq!(key.public_jwk(), again.public_jwk());
    assert_eq!(key.verifying_key(), again.verifying_key());
    assert_ne!(key.public_jwk(), Keypair::generate().unwrap().public_jwk());
}

#[test]
fn jwk_round_trips_through_json_and_verifying_key() {
    let key = alice();
    let jwk = key.public_jwk();
    let text = serde_json::to_string(&jwk).unwrap();
    assert!(!text.contains("\"d\""));
    let back: Jwk = serde_json::from_str(&text).unwrap();
    assert_eq!(back, jwk);
    assert_eq!(back.verifying_key().unwrap(), key.verifying_key());
    assert_eq!(Jwk::from_verifying_key(&key.verifying_key()), jwk);
}

#[test]
fn keypair_debug_does_not_leak_the_seed() {
    let key = alice();
    let shown = format!("{key:?}");
    assert!(shown.contains(&key.public_jwk().thumbprint()));
    assert!(!shown.contains(&b64(key.seed_bytes())));
    assert!(!shown.contains("7, 7, 7"));
}
