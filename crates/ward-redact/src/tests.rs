//! Unit tests through the public API, one `check(input, expected)` per
//! case: realistic positives and the near misses that must survive.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use super::*;
use serde_json::json;

fn check(input: &str, expected: &str) {
    let redactor = Redactor::new();
    let output = redactor.redact(input);
    assert_eq!(output, expected, "input: {input}");
    // Idempotent, and borrowed when unchanged.
    let again = redactor.redact(&output);
    assert!(
        matches!(again, Cow::Borrowed(_)),
        "not idempotent: {output} -> {again}"
    );
}

fn unchanged(input: &str) {
    let output = Redactor::new().redact(input);
    assert!(
        matches!(output, Cow::Borrowed(_)),
        "changed: {input} -> {output}"
    );
}

#[test]
fn private_keys_are_redacted_from_begin_to_end() {
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDl0Qf1N3Y7gF8n0fX1u8V2k9Q0W5pP5N7xT3m1VZ6b4wAAAJhA9s3PQPbN\n-----END OPENSSH PRIVATE KEY-----";
    check(
        &format!("key:\n{key}\nafter"),
        "key:\n[redacted:private_key]\nafter",
    );
    for label in [
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ] {
        check(
            &format!("-----BEGIN {label}-----\nMIIEow\n-----END {label}-----"),
            "[redacted:private_key]",
        );
    }
    check(
        "x -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA truncated",
        "x [redacted:private_key]",
    );
    unchanged("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    unchanged("-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----");
}

const JWT: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJhZ3RfMDFqZDh4NWsyIiwiZXhwIjoxNzMzMTUwMDAwfQ.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtNjQtb2YtdGhlbQ";

#[test]
fn jwts_are_redacted() {
    check(&format!("token {JWT} ok"), "token [redacted:jwt] ok");
    check(
        &format!("Authorization: DPoP {JWT}"),
        "Authorization: DPoP [redacted:jwt]",
    );
    check(
        &format!("Authorization: Bearer {JWT}"),
        "Authorization: Bearer [redacted:jwt]",
    );
    check("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "[redacted:jwt]");
    unchanged("eyJhbGciOiJub25lIn0 is a header only");
    unchanged("the word eyJump is not a token");
}

#[test]
fn api_keys_with_known_prefixes_are_redacted() {
    let keys = [
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        "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",
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX",
        "glpat-xyzABC123def456GHI789",
        "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "rk_test_51HqLyjWDarjtT1zdp7dcAbC",
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "sk-ant-api03-AbCdEf0123456789-_AbCdEf0123456789AbCdEf",
        "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        "npm_AbCdEf0123456789AbCdEf0123456789AbCd",
        "pypi-AgEIcHlwaS5vcmcCJGE0ZjZmYjQ0LTYxZjYtNDI0Yi1hYjAzLTg5ZDkzZjI0MjQ4YQ",
        "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",
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
        "SK0123456789abcdef0123456789abcdef",
        "dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "ward_bt_Xq3mZ0v9pK2LwYbT7uRfE4hGjN1sAcD5eIoU8yV6tQw",
        "ward_at_Xq3mZ0v9pK2LwYbT7uRfE4hGjN1sAcD5eIoU8yV6tQw",
        "ward_et_Xq3mZ0v9pK2LwYbT7uRfE4hGjN1sAcD5eIoU8yV6tQw",
    ];
    for key in keys {
        let text = format!("using {key} now");
        let redacted = Redactor::new().redact(&text);
        assert!(
            redacted == "using [redacted:api_key] now",
            "{key} -> {redacted}"
        );
    }
    check(
        "curl -H 'Authorization: Bearer abc123def456'",
        "curl -H 'Authorization: Bearer [redacted:api_key]'",
    );
    check("bearer Zm9vYmFyYmF6cXV4cXV1eA", "bearer [redacted:api_key]");
    unchanged("the bearer instrument is on file");
    unchanged("task-runner ask-for-help sk-short");
    unchanged("github_pat_ is how fine-grained tokens start");
}

#[test]
fn secret_assignments_keep_the_name_and_lose_the_value() {
    check(
        "DB_PASSWORD=hunter22 next",
        "DB_PASSWORD=[redacted:secret] next",
    );
    check(
        "export GITHUB_TOKEN=abc",
        "export GITHUB_TOKEN=[redacted:secret]",
    );
    check(
        r#"{"api_key": "k-1"}"#,
        r#"{"api_key": "[redacted:secret]"}"#,
    );
    check(
        "--password hunter2 --user bob",
        "--password [redacted:secret] --user bob",
    );
    check(
        "ward login --token=xyz",
        "ward login --token=[redacted:secret]",
    );
    check("Cookie: sid=1; theme=dark", "Cookie: [redacted:secret]");
    check("password: null", "password: null");
    unchanged("token_id=tok_01jd8x5k2m3n4p5q6r7s8t9v0w max_tokens=4096 input_tokens: 12");
    unchanged("action=token.issue result=success");
    unchanged("the password reset email was sent");
}

#[test]
fn values_from_the_environment_are_redacted_wherever_they_appear() {
    let redactor = Redactor::new().with_secret_values([
        "plain-but-secret".to_owned(),
        "short".to_owned(),
        "redacted".to_owned(),
    ]);
    assert_eq!(
        redactor.redact("echo plain-but-secret; short"),
        "echo [redacted:secret]; short"
    );
    assert_eq!(redactor.redact("[redacted:email]"), "[redacted:email]");
    assert!(!format!("{redactor:?}").contains("plain-but-secret"));
}

#[test]
fn high_entropy_tokens_are_redacted_and_ids_and_digests_are_not() {
    check(
        "aws_secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret=[redacted:secret]",
    );
    check(
        "sig q0Vz3hX9-LmT2wKp_8sYdR4nB7cF1gJ6aE5uZ0oN3iM end",
        "sig [redacted:high_entropy] end",
    );
    unchanged("commit da39a3ee5e6b4b0d3255bfef95601890afd80709 on main");
    unchanged(
        r#"{"prev_hash":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}"#,
    );
    unchanged("request 123e4567-e89b-12d3-a456-426614174000 done");
    unchanged(
        "2026-12-02T17:11:48.102Z INFO ward_agent::spool correlation_id=corr_01jd8x5k2m3n4p5q6r7s8t9v0w agent_id=agt_01jd8x5k2m3n4p5q6r7s8t9v0x shipped 512 events",
    );
}

#[test]
fn url_credentials_lose_the_password() {
    check(
        "git clone https://alice:s3cr3t@example.com/repo.git",
        "git clone https://alice:[redacted:url_credentials]@example.com/repo.git",
    );
    check(
        "postgres://app:p@ss:w0rd@db.internal:5432/app",
        "postgres://app:[redacted:url_credentials]@db.internal:5432/app",
    );
    unchanged("see https://example.com/a@b for details");
    unchanged("ssh://git@github.com/ward/ward");
}

#[test]
fn emails_are_redacted() {
    check(
        "owner alice.smith+ward@example.co.uk, ok",
        "owner [redacted:email], ok",
    );
    check("mailto:bob@example.com", "mailto:[redacted:email]");
    unchanged("@scope/package@1.2.3 and user@localhost and a@b.c1");
}

#[test]
fn phone_numbers_are_redacted() {
    for phone in [
        "+14155552671",
        "+1 415 555 2671",
        "+44 20 7946 0958",
        "+49-30-1234-5678",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "1-415-555-2671",
        "030 1234 5678",
        "07700 900123",
    ] {
        check(&format!("call {phone} now"), "call [redacted:phone] now");
    }
    unchanged("2026-12-02 12:30:45 version 1.22.1 ip 192.168.100.200 port 5432");
    unchanged("took 123 456 789 ms; id 4155552671; build 20261202.1");
}

#[test]
fn card_numbers_are_redacted_only_when_luhn_valid() {
    for card in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500 0000 0000 0004",
        "3782 822463 10005",
        "6011000990139424",
    ] {
        check(&format!("card {card}."), "card [redacted:card].");
    }
    unchanged("card 4111111111111112 fails Luhn");
    unchanged("ts 1733150000000000000 and 1733150000123");
}

#[test]
fn ibans_are_redacted_only_when_valid() {
    check(
        "pay DE89 3704 0044 0532 0130 00 now",
        "pay [redacted:iban] now",
    );
    check("iban=GB82WEST12345698765432", "iban=[redacted:iban]");
    unchanged("pay DE89 3704 0044 0532 0130 01 now");
    unchanged("GB82WEST1234569876543 is too short");
}

#[test]
fn ordinary_text_comes_back_borrowed() {
    for text in [
        "",
        "The quick brown fox jumps over the lazy dog.",
        "v1.2.3 released on 2026-12-02",
        "files:read:/home/alice/projects/x allowed by feature `repo-read`",
        "GET /v1/agents/agt_01jd8x5k2m3n4p5q6r7s8t9v0w/heartbeat 200 3ms",
        "über naïve 日本語 текст",
    ] {
        unchanged(text);
    }
}

#[test]
fn json_strings_are_redacted_and_secret_keys_replaced_whole() {
    let redactor = Redactor::new();
    let mut value = json!({
        "action": "files:read",
        "target": "mail bob@example.com",
        "password": {"nested": true},
        "token_id": "tok_01jd8x5k2m3n4p5q6r7s8t9v0w",
        "Authorization": "Bearer x",
        "client-secret": null,
        "card": 4111111111111111u64,
        "list": [["AKIAIOSFODNN7EXAMPLE"], 42],
    });
    redactor.redact_json(&mut value);
    assert_eq!(
        value,
        json!({
            "action": "files:read",
            "target": "mail [redacted:email]",
            "password": "[redacted:secret]",
            "token_id": "tok_01jd8x5k2m3n4p5q6r7s8t9v0w",
            "Authorization": "[redacted:secret]",
            "client-secret": null,
            "card": "[redacted:card]",
            "list": [["[redacted:api_key]"], 42],
        })
    );
    let before = value.clone();
    redactor.redact_json(&mut value);
    assert_eq!(value, before);
}

#[test]
fn findings_are_sorted_disjoint_and_typed() {
    let text = format!("a@example.com {JWT} x AKIAIOSFODNN7EXAMPLE");
    let findings = Redactor::new().findings(&text);
    let kinds: Vec<Kind> = findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [Kind::Email, Kind::Jwt, Kind::ApiKey]);
    assert!(findings.windows(2).all(|w| w[0].end <= w[1].start));
    assert_eq!(
        &text[findings[2].start..findings[2].end],
        "AKIAIOSFODNN7EXAMPLE"
    );
}

#[test]
fn kinds_name_themselves_as_their_markers_do() {
    for kind in Kind::ALL {
        assert_eq!(kind.marker(), format!("[redacted:{kind}]"));
        assert!(kind.marker().starts_with(MARKER_PREFIX));
    }
    assert_eq!(Kind::CardNumber.as_str(), "card");
    assert_eq!(Kind::SecretAssignment.as_str(), "secret");
}
