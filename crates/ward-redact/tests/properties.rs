//! Property tests: secrets of every kind, valid by construction, planted
//! anywhere in arbitrary text or in any field of arbitrary JSON never
//! survive; redaction is idempotent, leaves clean text borrowed, and never
//! panics or slows down on arbitrary or pathological input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use proptest::prelude::*;
use serde_json::Value;
use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use ward_redact::{Redactor, is_sensitive_name};

static REDACTOR: LazyLock<Redactor> = LazyLock::new(Redactor::new);

/// A planted secret: the text to plant, and the parts of it that must not
/// survive whole (`whole`) or as any 12-character substring (`fragments`).
#[derive(Clone, Debug)]
struct Secret {
    text: String,
    whole: Vec<String>,
    fragments: Vec<String>,
}

fn secret(text: String) -> Secret {
    Secret {
        whole: vec![text.clone()],
        fragments: Vec::new(),
        text,
    }
}

/// Asserts nothing of `secret` survives in `output`.
fn assert_gone(output: &str, secret: &Secret) -> Result<(), TestCaseError> {
    for whole in &secret.whole {
        prop_assert!(
            !output.contains(whole.as_str()),
            "`{whole}` survived in `{output}`"
        );
    }
    for fragment in &secret.fragments {
        let chars: Vec<char> = fragment.chars().collect();
        for window in chars.windows(12) {
            let piece: String = window.iter().collect();
            prop_assert!(
                !output.contains(&piece),
                "`{piece}` of `{fragment}` survived in `{output}`"
            );
        }
    }
    Ok(())
}

fn chars(
    alphabet: &'static str,
    len: impl Into<proptest::sample::SizeRange>,
) -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = alphabet.chars().collect();
    proptest::collection::vec(proptest::sample::select(alphabet), len)
        .prop_map(|v| v.into_iter().collect())
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &str = "0123456789abcdef";
const UPPER_DIGITS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// base64url without padding (RFC 4648 §5).
fn b64url(bytes: &[u8]) -> String {
    let alphabet = B64URL.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn api_key() -> impl Strategy<Value = Secret> {
    let keyed = |prefix: &'static str, body: BoxedStrategy<String>| {
        body.prop_map(move |body| Secret {
            text: format!("{prefix}{body}"),
            whole: vec![format!("{prefix}{body}")],
            fragments: vec![body],
        })
    };
    prop_oneof![
        keyed("AKIA", chars(UPPER_DIGITS, 16).boxed()),
        keyed("ASIA", chars(UPPER_DIGITS, 16).boxed()),
        keyed("ghp_", chars(ALNUM, 36).boxed()),
        keyed("gho_", chars(ALNUM, 36).boxed()),
        keyed("ghu_", chars(ALNUM, 36).boxed()),
        keyed("ghs_", chars(ALNUM, 36).boxed()),
        keyed("ghr_", chars(ALNUM, 36).boxed()),
        keyed("github_pat_", chars(ALNUM, 82).boxed()),
        keyed("glpat-", chars(B64URL, 20..=26).boxed()),
        keyed("xoxb-", chars(ALNUM, 24..=48).boxed()),
        keyed("xoxp-", chars(ALNUM, 24..=48).boxed()),
        keyed("sk_live_", chars(ALNUM, 24..=99).boxed()),
        keyed("rk_live_", chars(ALNUM, 24..=99).boxed()),
        keyed("sk_test_", chars(ALNUM, 24..=99).boxed()),
        keyed("sk-", chars(ALNUM, 48).boxed()),
        keyed("sk-proj-", chars(B64URL, 48..=156).boxed()),
        keyed("sk-ant-api03-", chars(B64URL, 93).boxed()),
        keyed("AIza", chars(B64URL, 35).boxed()),
        keyed("npm_", chars(ALNUM, 36).boxed()),
        keyed("pypi-AgEIcHlwaS5vcmc", chars(B64URL, 50..=180).boxed()),
        (chars(B64URL, 22), chars(B64URL, 43)).prop_map(|(a, b)| Secret {
            text: format!("SG.{a}.{b}"),
            whole: vec![format!("SG.{a}.{b}")],
            fragments: vec![a, b],
        }),
        keyed("hf_", chars(ALNUM, 34).boxed()),
        keyed("SK", chars(HEX, 32).boxed()),
        keyed("dop_v1_", chars(HEX, 64).boxed()),
        keyed("ward_bt_", chars(B64URL, 43).boxed()),
        keyed("ward_at_", chars(B64URL, 43).boxed()),
        keyed("ward_et_", chars(B64URL, 43).boxed()),
    ]
}

fn jwt() -> impl Strategy<Value = Secret> {
    (
        prop_oneof![Just("EdDSA"), Just("ES256"), Just("RS256"), Just("HS256")],
        chars(ALNUM, 4..=26),
        chars(ALNUM, 4..=26),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 32..=256),
    )
        .prop_map(|(alg, kid, sub, exp, signature)| {
            let header =
                b64url(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#).as_bytes());
            let claims = b64url(format!(r#"{{"sub":"{sub}","exp":{exp}}}"#).as_bytes());
            let signature = b64url(&signature);
            let text = format!("{header}.{claims}.{signature}");
            Secret {
                whole: vec![text.clone()],
                fragments: vec![header, claims, signature],
                text,
            }
        })
}

fn private_key() -> impl Strategy<Value = Secret> {
    (
        prop_oneof![
            Just("PRIVATE KEY"),
            Just("RSA PRIVATE KEY"),
            Just("EC PRIVATE KEY"),
            Just("OPENSSH PRIVATE KEY"),
            Just("ENCRYPTED PRIVATE KEY"),
            Just("PGP PRIVATE KEY BLOCK"),
        ],
        proptest::collection::vec(chars(B64, 64), 2..8),
        any::<bool>(),
    )
        .prop_map(|(label, lines, ended)| {
            let body = lines.join("\n");
            let end = if ended {
                format!("\n-----END {label}-----")
            } else {
                String::new()
            };
            Secret {
                text: format!("-----BEGIN {label}-----\n{body}{end}"),
                whole: vec![body.clone()],
                fragments: lines,
            }
        })
}

fn assignment() -> impl Strategy<Value = Secret> {
    let name = prop_oneof![
        Just("PASSWORD"),
        Just("db_password"),
        Just("GITHUB_TOKEN"),
        Just("api_key"),
        Just("apiKey"),
        Just("client_secret"),
        Just("AWS_SECRET_ACCESS_KEY"),
        Just("x-api-key"),
        Just("passwd"),
        Just("credentials"),
        Just("session_token"),
        Just("private_key"),
    ];
    let value = chars(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!@#%^*+/=.~",
        8..=40,
    );
    (name, value, 0..7usize).prop_map(|(name, value, form)| {
        let flag = name.to_ascii_lowercase().replace('_', "-");
        let text = match form {
            0 => format!("{name}={value}"),
            1 => format!("export {name}={value}"),
            2 => format!("{name}: {value}"),
            3 => format!(r#""{name}": "{value}""#),
            4 => format!("--{flag} {value}"),
            5 => format!("--{flag}={value}"),
            _ => format!(r#"{name}="{value} and more""#),
        };
        Secret {
            text,
            whole: vec![value],
            fragments: Vec::new(),
        }
    })
}

fn high_entropy() -> impl Strategy<Value = Secret> {
    prop_oneof![chars(B64URL, 40..=88), chars(B64, 40..=88)].prop_map(|token| Secret {
        text: token.clone(),
        whole: vec![token.clone()],
        fragments: vec![token],
    })
}

fn url_credentials() -> impl Strategy<Value = Secret> {
    (
        prop_oneof![Just("https"), Just("postgres"), Just("redis"), Just("ftp")],
        chars("abcdefghijklmnopqrstuvwxyz", 2..=10),
        chars(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!$&*+~",
            8..=24,
        ),
        chars("abcdefghijklmnopqrstuvwxyz", 2..=12),
    )
        .prop_map(|(scheme, user, password, host)| Secret {
            text: format!("{scheme}://{user}:{password}@{host}.example/path"),
            whole: vec![format!(":{password}@")],
            fragments: Vec::new(),
        })
}

fn email() -> impl Strategy<Value = Secret> {
    (
        chars("abcdefghijklmnopqrstuvwxyz0123456789", 1..=2),
        chars("abcdefghijklmnopqrstuvwxyz0123456789._%+-", 0..=16),
        chars("abcdefghijklmnopqrstuvwxyz0123456789", 1..=2),
        proptest::collection::vec(chars("abcdefghijklmnopqrstuvwxyz0123456789", 1..=10), 1..=3),
        chars("abcdefghijklmnopqrstuvwxyz", 2..=6),
    )
        .prop_map(|(head, middle, tail, labels, tld)| {
            let middle = middle.replace("..", ".");
            secret(format!("{head}{middle}{tail}@{}.{tld}", labels.join(".")))
        })
}

fn digits(len: impl Into<proptest::sample::SizeRange>) -> impl Strategy<Value = String> {
    chars("0123456789", len)
}

fn phone() -> impl Strategy<Value = Secret> {
    prop_oneof![
        (1..=99u32, digits(8..=12)).prop_map(|(cc, n)| secret(format!("+{cc}{n}"))),
        (1..=99u32, digits(2..=3), digits(3..=4), digits(4))
            .prop_map(|(cc, a, b, c)| secret(format!("+{cc} {a} {b} {c}"))),
        (1..=99u32, digits(2..=3), digits(3..=4), digits(4))
            .prop_map(|(cc, a, b, c)| secret(format!("+{cc}-{a}-{b}-{c}"))),
        (digits(3), digits(3), digits(4)).prop_map(|(a, b, c)| secret(format!("({a}) {b}-{c}"))),
        (digits(3), digits(3), digits(4)).prop_map(|(a, b, c)| secret(format!("{a}-{b}-{c}"))),
        (digits(3), digits(3), digits(4)).prop_map(|(a, b, c)| secret(format!("{a}.{b}.{c}"))),
        (digits(1..=4), digits(3..=4), digits(4))
            .prop_map(|(a, b, c)| secret(format!("0{a} {b} {c}"))),
    ]
}

/// A Luhn check digit for `body` (most significant first).
fn luhn_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn card() -> impl Strategy<Value = Secret> {
    (
        prop_oneof![
            Just((4u8, 16usize)),
            Just((4, 13)),
            Just((4, 19)),
            Just((5, 16)),
            Just((2, 16)),
            Just((3, 15)),
            Just((6, 16))
        ],
        proptest::collection::vec(0..10u8, 18),
        0..3usize,
    )
        .prop_map(|((first, len), rest, style)| {
            let mut number = vec![first];
            number.extend_from_slice(&rest[..len - 2]);
            number.push(luhn_digit(&number));
            let plain: String = number.iter().map(|d| char::from(b'0' + d)).collect();
            let text = match style {
                0 => plain.clone(),
                sep => {
                    let sep = if sep == 1 { " " } else { "-" };
                    let groups: Vec<&str> = if len == 15 {
                        vec![&plain[..4], &plain[4..10], &plain[10..]]
                    } else {
                        plain
                            .as_bytes()
                            .chunks(4)
                            .map(|c| std::str::from_utf8(c).unwrap())
                            .collect()
                    };
                    groups.join(sep)
                }
            };
            Secret {
                whole: vec![text.clone(), plain],
                fragments: Vec::new(),
                text,
            }
        })
}

fn iban() -> impl Strategy<Value = Secret> {
    (
        prop_oneof![
            Just(("DE", 22usize, 0usize)),
            Just(("FR", 27, 0)),
            Just(("ES", 24, 0)),
            Just(("GB", 22, 4)),
            Just(("NL", 18, 4)),
            Just(("IT", 27, 1))
        ],
        digits(30),
        chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 4),
        any::<bool>(),
    )
        .prop_map(|((country, len, letters), numbers, bank, grouped)| {
            let bban = format!("{}{}", &bank[..letters], &numbers[..len - 4 - letters]);
            let check = 98 - mod97(&format!("{bban}{country}00"));
            let compact = format!("{country}{check:02}{bban}");
            let text = if grouped {
                compact
                    .as_bytes()
                    .chunks(4)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                compact.clone()
            };
            Secret {
                whole: vec![text.clone(), compact],
                fragments: Vec::new(),
                text,
            }
        })
}

fn mod97(text: &str) -> u32 {
    text.chars().fold(0, |r, c| {
        let v = c.to_digit(36).unwrap();
        if v >= 10 {
            (r * 100 + v) % 97
        } else {
            (r * 10 + v) % 97
        }
    })
}

fn any_secret() -> impl Strategy<Value = Secret> {
    prop_oneof![
        api_key(),
        jwt(),
        private_key(),
        assignment(),
        high_entropy(),
        url_credentials(),
        email(),
        phone(),
        card(),
        iban(),
    ]
}

/// Text around a planted secret: anything, including non-ASCII.
fn surrounding() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "\\PC{0,40}",
        "[a-zA-Z0-9 .,:=/_-]{0,40}"
    ]
}

fn delimiter() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        " ", "\n", "\t", "\"", "'", "=", ":", ",", "[", "]", "(", ")", "{", "}", " = ", ": ",
        "\r\n",
    ])
}

/// `before`, a delimiter, the secret, a delimiter, `after`; at the start or
/// end of the text no delimiter is needed.
fn planted() -> impl Strategy<Value = (String, Secret)> {
    (
        surrounding(),
        delimiter(),
        any_secret(),
        delimiter(),
        surrounding(),
    )
        .prop_map(|(before, d1, secret, d2, after)| {
            let d1 = if before.is_empty() { "" } else { d1 };
            let d2 = if after.is_empty() { "" } else { d2 };
            (format!("{before}{d1}{}{d2}{after}", secret.text), secret)
        })
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0..100_000u32).prop_map(Value::from),
        "[a-z ]{0,12}".prop_map(Value::String),
    ]
}

fn json_tree() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(("[a-z_]{1,10}", inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Plants `text` at the `target`-th container or string of `value` (in
/// depth-first order), or next to the root when there are fewer.
fn plant(value: &mut Value, target: usize, text: &str) {
    fn visit(value: &mut Value, target: usize, seen: &mut usize, text: &str) -> bool {
        let here = *seen;
        *seen += 1;
        match value {
            Value::String(s) if here == target => {
                s.push(' ');
                s.push_str(text);
                true
            }
            Value::Array(items) => {
                if here == target {
                    items.push(Value::String(text.to_owned()));
                    return true;
                }
                items.iter_mut().any(|item| visit(item, target, seen, text))
            }
            Value::Object(map) => {
                if here == target {
                    map.insert("planted_field".to_owned(), Value::String(text.to_owned()));
                    return true;
                }
                map.values_mut().any(|item| visit(item, target, seen, text))
            }
            _ => false,
        }
    }
    let mut seen = 0;
    if !visit(value, target, &mut seen, text) {
        *value = Value::Array(vec![value.take(), Value::String(text.to_owned())]);
    }
}

fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => {
            for (key, v) in map {
                out.push(key.clone());
                strings(v, out);
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_planted_secret_never_survives_in_text((text, secret) in planted()) {
        let output = REDACTOR.redact(&text);
        assert_gone(&output, &secret)?;
    }

    #[test]
    fn a_planted_secret_never_survives_in_json(
        mut tree in json_tree(),
        target in 0..40usize,
        (text, secret) in planted(),
    ) {
        plant(&mut tree, target, &text);
        REDACTOR.redact_json(&mut tree);
        let mut all = Vec::new();
        strings(&tree, &mut all);
        for s in &all {
            assert_gone(s, &secret)?;
        }
        let once = tree.clone();
        REDACTOR.redact_json(&mut tree);
        prop_assert_eq!(once, tree);
    }

    #[test]
    fn a_secret_value_given_by_the_environment_never_survives(
        value in chars("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%&*+-/", 8..=40),
        before in surrounding(),
        after in surrounding(),
    ) {
        let redactor = Redactor::new().with_secret_values([value.clone()]);
        let text = format!("{before}{value}{after}");
        let output = redactor.redact(&text);
        prop_assert!(!output.contains(value.as_str()), "{output}");
    }

    #[test]
    fn redaction_is_idempotent_on_planted_text((text, _secret) in planted()) {
        let once = REDACTOR.redact(&text).into_owned();
        let twice = REDACTOR.redact(&once);
        prop_assert!(matches!(twice, Cow::Borrowed(_)), "{once} -> {twice}");
    }

    #[test]
    fn redaction_is_idempotent_and_safe_on_arbitrary_text(text in "\\PC{0,300}|[-=:@+./_ 0-9A-Za-z\"'(){}\\[\\]\n]{0,300}") {
        let findings = REDACTOR.findings(&text);
        let output = REDACTOR.redact(&text);
        if findings.is_empty() {
            prop_assert!(matches!(output, Cow::Borrowed(_)));
            prop_assert_eq!(&output, &text);
        }
        for pair in findings.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start);
        }
        for f in &findings {
            prop_assert!(f.start < f.end && text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
        let again = REDACTOR.redact(&output);
        prop_assert_eq!(&again, &output);
    }

    #[test]
    fn clean_text_comes_back_borrowed(words in proptest::collection::vec(prop_oneof![
        "[a-z]{1,9}".prop_filter("not a keyword", |w| !is_sensitive_name(w) && !["sk", "bearer", "pass", "auth", "otp", "jwt", "pwd", "creds", "token", "secret", "cookie", "session", "sessid", "credential"].iter().any(|k| w.contains(k))),
        (0..100_000u32).prop_map(|n| n.to_string()),
        Just("v1.2.3".to_owned()),
        Just("2026-12-02T17:11:48.102Z".to_owned()),
        Just("da39a3ee5e6b4b0d3255bfef95601890afd80709".to_owned()),
        Just("123e4567-e89b-12d3-a456-426614174000".to_owned()),
        Just("corr_01jd8x5k2m3n4p5q6r7s8t9v0w".to_owned()),
    ], 0..40), seps in proptest::collection::vec(prop_oneof![Just(" "), Just(", "), Just(". "), Just("\n"), Just("=")], 40)) {
        let mut text = String::new();
        for (word, sep) in words.iter().zip(&seps) {
            text.push_str(word);
            text.push_str(sep);
        }
        let output = REDACTOR.redact(&text);
        prop_assert!(matches!(output, Cow::Borrowed(_)), "{text} -> {output}");
    }
}

#[test]
fn pathological_inputs_finish_in_linear_time() {
    let cases: Vec<String> = vec![
        "password=\"".repeat(20_000),
        "-sk-".repeat(50_000),
        "sk-".repeat(50_000),
        "eyJ".repeat(60_000),
        "eyJabcdefghij.".repeat(15_000),
        "-----BEGIN RSA PRIVATE KEY-----".repeat(6_000),
        "-----BEGIN ".repeat(18_000),
        "a@".repeat(100_000),
        "a@b.".repeat(50_000),
        "1 ".repeat(100_000),
        "+(".repeat(100_000),
        "(1) ".repeat(50_000),
        "DE89 ".repeat(40_000),
        "A".repeat(200_000),
        "aB3".repeat(70_000),
        "x://".repeat(50_000),
        "a://b@".repeat(30_000),
        "bearer=".repeat(30_000),
        "token: Bearer ".repeat(15_000),
        "Cookie: ".repeat(25_000),
        "\\\"password\\\":\\\"".repeat(12_000),
        "é".repeat(100_000),
        "4111 ".repeat(40_000),
    ];
    for text in &cases {
        let started = Instant::now();
        let output = REDACTOR.redact(text);
        let again = REDACTOR.redact(&output);
        assert_eq!(
            again,
            output,
            "not idempotent on {}",
            &text[..text.len().min(40)]
        );
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "{} took {took:?}",
            &text[..text.len().min(40)]
        );
    }
}

#[test]
fn a_huge_input_is_redacted_whole() {
    let line = "2026-12-02T17:11:48Z INFO agent=agt_01jd8x5k2m3n4p5q6r7s8t9v0w files:read /home/alice/x ok\n";
    let mut text = line.repeat(40_000);
    text.push_str("AKIAIOSFODNN7EXAMPLE\n");
    text.push_str(&line.repeat(40_000));
    let output = REDACTOR.redact(&text);
    assert_eq!(
        output.len(),
        text.len() - "AKIAIOSFODNN7EXAMPLE".len() + "[redacted:api_key]".len()
    );
    assert!(!output.contains("AKIAIOSFODNN7EXAMPLE"));
}
