//! DPoP proofs: creation round trips and every RFC 9449 §4.3 rejection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::{alice, b64, forge, mallory, parts};
use serde_json::{Map, Value, json};
use ward_auth::dpop::{ath_for, create_proof, new_jti, normalize_htu, verify_proof};
use ward_auth::jws::sign;
use ward_auth::{AuthError, Keypair, ProofExpectations};

const NOW: i64 = 1_750_000_000;
const HTU: &str = "https://ward.example/v1/tokens";
const JTI: &str = "jti-0123456789";

fn expect() -> ProofExpectations<'static> {
    ProofExpectations {
        htm: "POST",
        htu: HTU,
        now: NOW,
        max_age_secs: 60,
        max_future_secs: 5,
        access_token: None,
    }
}

/// A proof by alice for `POST HTU` at `NOW`.
fn proof() -> String {
    create_proof(&alice(), "POST", HTU, NOW, JTI, None).unwrap()
}

/// A proof signed by `key` with an arbitrary header and claims.
fn custom(key: &Keypair, header: Value, claims: Value) -> String {
    let Value::Object(header) = header else {
        return String::new();
    };
    sign(key, &header, &claims).unwrap()
}

fn alice_jwk() -> Value {
    serde_json::to_value(alice().public_jwk()).unwrap()
}

/// The error code `verify_proof` gives for `proof` under `expected`.
fn code(proof: &str, expected: &ProofExpectations<'_>) -> Option<&'static str> {
    verify_proof(proof, expected)
        .err()
        .as_ref()
        .map(AuthError::code)
}

#[test]
fn proof_round_trips() {
    let verified = verify_proof(&proof(), &expect()).unwrap();
    assert_eq!(verified.jwk, alice().public_jwk());
    assert_eq!(verified.jkt, alice().public_jwk().thumbprint());
    assert_eq!(verified.jti, JTI);
    assert_eq!(verified.iat, NOW);
}

#[test]
fn proof_header_has_the_rfc_shape() {
    let decoded = ward_auth::jws::decode_unverified(&proof()).unwrap();
    assert_eq!(decoded.header_str("typ"), Some("dpop+jwt"));
    assert_eq!(decoded.header_str("alg"), Some("EdDSA"));
    assert_eq!(decoded.header.get("jwk"), Some(&alice_jwk()));
    assert_eq!(
        decoded.claims,
        json!({"jti": JTI, "htm": "POST", "htu": HTU, "iat": NOW})
    );
}

#[test]
fn proof_with_ath_round_trips() {
    let token = "eyJ.access.token";
    let proof = create_proof(&alice(), "GET", HTU, NOW, JTI, Some(&ath_for(token))).unwrap();
    let expected = ProofExpectations {
        htm: "GET",
        access_token: Some(token),
        ..expect()
    };
    assert!(verify_proof(&proof, &expected).is_ok());
}

#[test]
fn ath_is_base64url_sha256() {
    // SHA-256("abc") = ba7816bf...15ad, base64url without padding.
    assert_eq!(
        ath_for("abc"),
        "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
    );
}

#[test]
fn new_jti_is_random_and_acceptable() {
    let a = new_jti().unwrap();
    let b = new_jti().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.len(), 22);
    let proof = create_proof(&alice(), "POST", HTU, NOW, &a, None).unwrap();
    assert_eq!(verify_proof(&proof, &expect()).unwrap().jti, a);
}

#[test]
fn wrong_typ_is_rejected() {
    for typ in [json!("jwt"), json!("DPoP+JWT"), json!("at+jwt"), json!(1)] {
        let p = custom(
            &alice(),
            json!({"typ": typ, "jwk": alice_jwk()}),
            json!({"jti": JTI, "htm": "POST", "htu": HTU, "iat": NOW}),
        );
        assert_eq!(verify_proof(&p, &expect()), Err(AuthError::ProofType));
    }
    let untyped = custom(
        &alice(),
        json!({"jwk": alice_jwk()}),
        json!({"jti": JTI, "htm": "POST", "htu": HTU, "iat": NOW}),
    );
    assert_eq!(code(&untyped, &expect()), Some("invalid_dpop_proof"));
}

#[test]
fn alg_none_and_hs256_proofs_are_rejected() {
    let claims = json!({"jti": JTI, "htm": "POST", "htu": HTU, "iat": NOW}).to_string();
    for alg in ["none", "HS256"] {
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": alice_jwk()}).to_string();
        let p = forge(&header, &claims, &alice());
        assert_eq!(code(&p, &expect()), Some("unsupported_algorithm"));
    }
}

#[test]
fn missing_jwk_is_rejected() {
    let p = custom(
        &alice(),
        json!({"typ": "dpop+jwt"}),
        json!({"jti": JTI, "htm": "POST", "htu": HTU, "iat": NOW}),
    );
    assert_eq!(code(&p, &expect()), Some("invalid_dpop_proof"));
}

#[test]
fn private_key_in_jwk_is_rejected() {
    let mut jwk = alice_jwk();
    jwk["d"] = json!(b64(alice().seed_bytes()));
    let p = custom(
        &alice(),
        json!({"typ": "dpop+jwt", "jwk": jwk}),
        json!({"jti": JTI, "htm": "POST", "htu": HTU, "iat": NOW}),
    );
    let err = verify_proof(&p, &expect()).unwrap_err();
    assert_eq!(err.code(), "invalid_key");
    assert!(err.to_string().contains("`d`"), "{err}");
}

#[test]
fn non_ed25519_jwk_is_rejected() {
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64([1u8; 32]), "y": b64([2u8; 32])});
    let p = custom(
        &alice(),
        json!({"typ": "dpop+jwt", "jwk": jwk}),
        json!({"jti": JTI, "htm": "POST", "htu": HTU, "iat": NOW}),
    );
    assert_eq!(code(&p, &expect()), Some("invalid_key"));
}

#[test]
fn proof_signed_by_another_key_than_its_jwk_is_rejected() {
    let p = custom(
        &mallory(),
        json!({"typ": "dpop+jwt", "jwk": alice_jwk()}),
        json!({"jti": JTI, "htm": "POST", "htu": HTU, "iat": NOW}),
    );
    assert_eq!(verify_proof(&p, &expect()), Err(AuthError::BadSignature));
}

#[test]
fn tampered_proof_claims_are_rejected() {
    let p = parts(&proof());
    let evil = json!({"jti": JTI, "htm": "DELETE", "htu": HTU, "iat": NOW}).to_string();
    let tampered = format!("{}.{}.{}", p[0], b64(evil), p[2]);
    assert_eq!(
        verify_proof(
            &tampered,
            &ProofExpectations {
                htm: "DELETE",
                ..expect()
            }
        ),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn wrong_method_is_rejected_case_sensitively() {
    assert_eq!(
        verify_proof(
            &proof(),
            &ProofExpectations {
                htm: "GET",
                ..expect()
            }
        ),
        Err(AuthError::ProofMethod {
            expected: "GET".into(),
            got: "POST".into()
        })
    );
    let lower = create_proof(&alice(), "post", HTU, NOW, JTI, None).unwrap();
    assert_eq!(code(&lower, &expect()), Some("dpop_method_mismatch"));
}

#[test]
fn wrong_url_is_rejected() {
    let mismatch = |htu: &str| {
        let p = create_proof(&alice(), "POST", htu, NOW, JTI, None).unwrap();
        code(&p, &expect())
    };
    for htu in [
        "https://ward.example/v1/agents",
        "https://ward.example/v1/tokens/",
        "https://ward.example/v1/Tokens",
        "https://evil.example/v1/tokens",
        "https://ward.example.evil/v1/tokens",
        "http://ward.example/v1/tokens",
        "https://ward.example:8443/v1/tokens",
        "https://ward.example/v1/x/../tokens",
        "https://ward.example/v1/./tokens",
        "https://ward.example/v1/%74okens",
        "https://user@ward.example/v1/tokens",
        "ward.example/v1/tokens",
        "ftp://ward.example/v1/tokens",
        "",
    ] {
        assert_eq!(mismatch(htu), Some("dpop_url_mismatch"), "{htu}");
    }
}

#[test]
fn dot_segments_are_never_collapsed() {
    let p = create_proof(
        &alice(),
        "POST",
        "https://ward.example/v1/tokens/../x",
        NOW,
        JTI,
        None,
    )
    .unwrap();
    let expected = ProofExpectations {
        htu: "https://ward.example/v1/x",
        ..expect()
    };
    assert_eq!(
        verify_proof(&p, &expected),
        Err(AuthError::ProofUrl {
            expected: "https://ward.example/v1/x".into(),
            got: "https://ward.example/v1/tokens/../x".into(),
        })
    );
}

#[test]
fn url_equivalents_are_accepted() {
    for htu in [
        "https://ward.example/v1/tokens?x=1",
        "https://ward.example/v1/tokens#frag",
        "https://ward.example/v1/tokens?a=b#c",
        "HTTPS://WARD.Example/v1/tokens",
        "https://ward.example:443/v1/tokens",
        "https://ward.example:/v1/tokens",
    ] {
        let p = create_proof(&alice(), "POST", htu, NOW, JTI, None).unwrap();
        assert!(verify_proof(&p, &expect()).is_ok(), "{htu}");
    }
    // The expected side is normalised too.
    let expected = ProofExpectations {
        htu: "https://WARD.example:443/v1/tokens?y=2",
        ..expect()
    };
    assert!(verify_proof(&proof(), &expected).is_ok());
}

#[test]
fn normalize_htu_cases() {
    let check = |input: &str, want: Option<&str>| {
        assert_eq!(normalize_htu(input).as_deref(), want, "{input}")
    };
    check("http://Host:80/a?b", Some("http://host/a"));
    check("http://host:8080", Some("http://host:8080/"));
    check("https://host", Some("https://host/"));
    check("https://host:0443/a", Some("https://host/a"));
    check("http://[::1]:8080/a", Some("http://[::1]:8080/a"));
    check("http://[::1]/a", Some("http://[::1]/a"));
    check("http://127.0.0.1:9/A/%2F", Some("http://127.0.0.1:9/A/%2F"));
    check("http://host:99999/", None);
    check("http://host:8x/", None);
    check("http://:80/", None);
    check("http:///a", None);
    check("http://a b/", None);
    check("http://host/é", None);
    check("http://[::1/", None);
    check("http://[::1]x/", None);
    check("http://u:p@host/", None);
    check("mailto:a@b", None);
}

#[test]
fn unusable_expected_htu_is_a_configuration_error() {
    let expected = ProofExpectations {
        htu: "/v1/tokens",
        ..expect()
    };
    assert_eq!(code(&proof(), &expected), Some("invalid_expectation"));
}

#[test]
fn iat_window_is_enforced() {
    let at = |iat: i64| {
        let p = create_proof(&alice(), "POST", HTU, iat, JTI, None).unwrap();
        verify_proof(&p, &expect()).map(|v| v.iat)
    };
    assert_eq!(at(NOW - 60), Ok(NOW - 60));
    assert_eq!(at(NOW + 5), Ok(NOW + 5));
    assert_eq!(at(NOW - 61), Err(AuthError::ProofTime));
    assert_eq!(at(NOW + 6), Err(AuthError::ProofTime));
    assert_eq!(at(i64::MIN), Err(AuthError::ProofTime));
    assert_eq!(at(i64::MAX), Err(AuthError::ProofTime));
    assert_eq!(AuthError::ProofTime.code(), "dpop_proof_expired");
}

#[test]
fn iat_must_be_an_integer() {
    for iat in [json!(null), json!("1750000000"), json!(1.75e9)] {
        let p = custom(
            &alice(),
            json!({"typ": "dpop+jwt", "jwk": alice_jwk()}),
            json!({"jti": JTI, "htm": "POST", "htu": HTU, "iat": iat}),
        );
        assert_eq!(code(&p, &expect()), Some("invalid_dpop_proof"), "{iat}");
    }
    let p = custom(
        &alice(),
        json!({"typ": "dpop+jwt", "jwk": alice_jwk()}),
        json!({"jti": JTI, "htm": "POST", "htu": HTU}),
    );
    assert_eq!(code(&p, &expect()), Some("invalid_dpop_proof"));
}

#[test]
fn jti_is_required_with_bounded_length() {
    let with = |claims: Value| {
        let p = custom(
            &alice(),
            json!({"typ": "dpop+jwt", "jwk": alice_jwk()}),
            claims,
        );
        code(&p, &expect())
    };
    assert_eq!(
        with(json!({"htm": "POST", "htu": HTU, "iat": NOW})),
        Some("invalid_dpop_proof")
    );
    assert_eq!(
        with(json!({"jti": 12345678, "htm": "POST", "htu": HTU, "iat": NOW})),
        Some("invalid_dpop_proof")
    );
    assert_eq!(
        with(json!({"jti": "1234567", "htm": "POST", "htu": HTU, "iat": NOW})),
        Some("invalid_dpop_proof")
    );
    assert_eq!(
        with(json!({"jti": "12345678", "htm": "POST", "htu": HTU, "iat": NOW})),
        None
    );
    assert_eq!(
        with(json!({"jti": "x".repeat(128), "htm": "POST", "htu": HTU, "iat": NOW})),
        None
    );
    assert_eq!(
        with(json!({"jti": "x".repeat(129), "htm": "POST", "htu": HTU, "iat": NOW})),
        Some("invalid_dpop_proof")
    );
}

#[test]
fn htm_and_htu_are_required() {
    let with = |claims: Value| {
        let p = custom(
            &alice(),
            json!({"typ": "dpop+jwt", "jwk": alice_jwk()}),
            claims,
        );
        code(&p, &expect())
    };
    assert_eq!(
        with(json!({"jti": JTI, "htu": HTU, "iat": NOW})),
        Some("invalid_dpop_proof")
    );
    assert_eq!(
        with(json!({"jti": JTI, "htm": "POST", "iat": NOW})),
        Some("invalid_dpop_proof")
    );
    assert_eq!(
        with(json!({"jti": JTI, "htm": ["POST"], "htu": HTU, "iat": NOW})),
        Some("invalid_dpop_proof")
    );
}

#[test]
fn ath_must_match_when_a_token_is_presented() {
    let token = "the-access-token";
    let expected = ProofExpectations {
        access_token: Some(token),
        ..expect()
    };
    // Missing.
    assert_eq!(verify_proof(&proof(), &expected), Err(AuthError::ProofAth));
    // For another token.
    let other = create_proof(
        &alice(),
        "POST",
        HTU,
        NOW,
        JTI,
        Some(&ath_for("another-token")),
    )
    .unwrap();
    assert_eq!(verify_proof(&other, &expected), Err(AuthError::ProofAth));
    // The raw token instead of its hash.
    let raw = create_proof(&alice(), "POST", HTU, NOW, JTI, Some(token)).unwrap();
    assert_eq!(verify_proof(&raw, &expected), Err(AuthError::ProofAth));
    // Padded hash.
    let padded = create_proof(
        &alice(),
        "POST",
        HTU,
        NOW,
        JTI,
        Some(&format!("{}=", ath_for(token))),
    )
    .unwrap();
    assert_eq!(verify_proof(&padded, &expected), Err(AuthError::ProofAth));
    assert_eq!(AuthError::ProofAth.code(), "dpop_ath_mismatch");
}

#[test]
fn malformed_proofs_are_rejected() {
    let p = parts(&proof());
    for bad in [
        format!("{}.{}", p[0], p[1]),
        format!("{}.{}.{}.{}", p[0], p[1], p[2], p[2]),
        format!("{}.{}.{}==", p[0], p[1], p[2]),
        "x".repeat(20_000),
    ] {
        assert_eq!(code(&bad, &expect()), Some("malformed_token"));
    }
}

#[test]
fn distinct_keys_have_distinct_thumbprints() {
    let a = verify_proof(&proof(), &expect()).unwrap();
    let m = verify_proof(
        &create_proof(&mallory(), "POST", HTU, NOW, JTI, None).unwrap(),
        &expect(),
    )
    .unwrap();
    assert_ne!(a.jkt, m.jkt);
    assert_eq!(m.jkt, mallory().public_jwk().thumbprint());
}

#[test]
fn error_codes_are_stable() {
    let cases: Vec<(AuthError, &str)> = vec![
        (AuthError::Malformed(String::new()), "malformed_token"),
        (AuthError::BadSignature, "bad_signature"),
        (
            AuthError::UnsupportedAlgorithm {
                alg: String::new(),
                accepted: "",
            },
            "unsupported_algorithm",
        ),
        (AuthError::UnknownKey(String::new()), "unknown_key"),
        (AuthError::Expired, "token_expired"),
        (AuthError::NotYetValid, "token_not_yet_valid"),
        (AuthError::ProofType, "invalid_dpop_proof"),
        (AuthError::InvalidProof(String::new()), "invalid_dpop_proof"),
        (
            AuthError::ProofMethod {
                expected: String::new(),
                got: String::new(),
            },
            "dpop_method_mismatch",
        ),
        (
            AuthError::ProofUrl {
                expected: String::new(),
                got: String::new(),
            },
            "dpop_url_mismatch",
        ),
        (AuthError::ProofTime, "dpop_proof_expired"),
        (AuthError::ProofAth, "dpop_ath_mismatch"),
        (AuthError::InvalidKey(String::new()), "invalid_key"),
        (AuthError::Random(String::new()), "random_unavailable"),
        (
            AuthError::InvalidExpectation(String::new()),
            "invalid_expectation",
        ),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code);
        let message = err.to_string();
        assert!(message.starts_with(|c: char| c.is_lowercase()), "{message}");
    }
}

#[test]
fn bare_jws_is_not_a_proof() {
    let p = sign(&alice(), &Map::new(), &json!({})).unwrap();
    assert_eq!(code(&p, &expect()), Some("invalid_dpop_proof"));
}

#[test]
fn echoed_claims_are_escaped_and_truncated() {
    let htm = format!("POST\n{}", "X".repeat(500));
    let p = create_proof(&alice(), &htm, HTU, NOW, JTI, None).unwrap();
    let Err(AuthError::ProofMethod { got, .. }) = verify_proof(&p, &expect()) else {
        unreachable!("a method mismatch was expected");
    };
    assert!(got.starts_with("POST\\n"), "{got}");
    assert!(got.len() < 200, "{got}");
}

#[test]
fn a_known_key_verifies_its_own_proofs_and_nothing_else() {
    use ward_auth::dpop::verify_proof_known;
    let known = alice().public_jwk();
    let key = alice().verifying_key();
    let verified = verify_proof_known(&proof(), &expect(), &known, &key).unwrap();
    assert_eq!(verified.jkt, known.thumbprint());

    let other = create_proof(&mallory(), "POST", HTU, NOW, JTI, None).unwrap();
    let verified = verify_proof_known(&other, &expect(), &known, &key).unwrap();
    assert_ne!(
        verified.jkt,
        known.thumbprint(),
        "another key is checked in full and differs"
    );

    let mut header = Map::new();
    header.insert("typ".into(), json!("dpop+jwt"));
    header.insert("jwk".into(), alice_jwk());
    let claims = json!({"jti": JTI, "htm": "POST", "htu": HTU, "iat": NOW});
    let impostor = sign(&mallory(), &header, &claims).unwrap();
    assert_eq!(
        verify_proof_known(&impostor, &expect(), &known, &key)
            .err()
            .as_ref()
            .map(AuthError::code),
        Some("bad_signature"),
        "a proof naming the known key but signed by another is refused"
    );
}
