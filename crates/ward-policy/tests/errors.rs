//! Bundles and policies that must be refused or fail closed, and the bundle
//! hash.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::time::{Duration, Instant};

use serde_json::json;
use ward_policy::{Bundle, ParseError, PolicyError};

fn bundle(files: &[(&str, &str)]) -> Result<Bundle, PolicyError> {
    Bundle::from_files(
        files
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect(),
    )
}

/// The evaluation error of a one-file `ward.broker` policy, or a panic.
fn evaluation_error(rego: &str, input: serde_json::Value) -> String {
    let policy = bundle(&[("broker.rego", rego)]).unwrap().compile().unwrap();
    match policy.evaluate(&input) {
        Err(PolicyError::Evaluation(message)) => message,
        other => panic!("expected an evaluation error, got {other:?}"),
    }
}

#[test]
fn empty_bundle_is_refused() {
    assert_eq!(bundle(&[]), Err(PolicyError::Empty));
}

#[test]
fn non_rego_absolute_and_duplicate_files_are_refused() {
    for files in [
        vec![("README.md", "# hi")],
        vec![("/etc/broker.rego", "package ward.broker")],
        vec![("../broker.rego", "package ward.broker")],
        vec![
            ("a.rego", "package ward.broker"),
            ("a.rego", "package ward.broker"),
        ],
    ] {
        let err = bundle(&files).unwrap_err();
        assert!(matches!(err, PolicyError::InvalidFile { .. }), "{err:?}");
        assert!(err.to_string().starts_with("policy file `"), "{err}");
    }
}

#[test]
fn syntax_errors_name_file_line_and_column_all_at_once() {
    let err = bundle(&[
        ("ok.rego", "package ward.broker\n"),
        (
            "a/bad.rego",
            "package ward.broker\n\ndeny contains x if {\n  x := 1 +\n}\n",
        ),
        ("worse.rego", "package ward.broker\nallow :=\n"),
    ])
    .unwrap_err();
    let PolicyError::Parse { errors } = &err else {
        panic!("expected a parse error, got {err:?}");
    };
    let positions: Vec<(&str, u32, u32)> = errors
        .iter()
        .map(|e| (e.file.as_str(), e.line, e.column))
        .collect();
    assert_eq!(positions, [("a/bad.rego", 4, 5), ("worse.rego", 3, 1)]);
    assert_eq!(
        errors[0],
        ParseError {
            file: "a/bad.rego".into(),
            line: 4,
            column: 5,
            message: "expecting `}` while parsing set".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "policy bundle does not compile: `a/bad.rego:4:5`: expecting `}` while parsing set; `worse.rego:3:1`: expecting expression"
    );
}

#[test]
fn missing_broker_package_is_refused() {
    let b = bundle(&[("other.rego", "package ward.other\nx := 1\n")]).unwrap();
    assert_eq!(b.compile().unwrap_err(), PolicyError::MissingPackage);
    assert!(
        PolicyError::MissingPackage
            .to_string()
            .contains("`package ward.broker`")
    );
}

#[test]
fn reserved_package_is_refused() {
    let b = bundle(&[
        ("broker.rego", "package ward.broker\n"),
        (
            "sneaky.rego",
            "package ward_policy_internal\ndecision := {}\n",
        ),
    ])
    .unwrap();
    assert!(
        matches!(b.compile().unwrap_err(), PolicyError::ReservedPackage { path, .. } if path == "sneaky.rego")
    );
}

#[test]
fn failing_tests_are_reported_with_their_reason() {
    let b = bundle(&[
        (
            "broker.rego",
            "package ward.broker\n\ndeny contains {\"rule\": \"r\", \"message\": \"m\"} if input.x == 1\n",
        ),
        (
            "broker_test.rego",
            r#"package ward.broker_test

import data.ward.broker

test_denies_one if count(broker.deny) == 1 with input as {"x": 1}
test_denies_two if count(broker.deny) == 0 with input as {"x": 1}
test_false := false
test_throws if 1 / 0 == 1
# test_in_a_comment if true
helper if true
"#,
        ),
    ])
    .unwrap();
    let report = b.run_tests().unwrap();
    assert_eq!(report.passed, ["ward.broker_test.test_denies_one"]);
    let failed: Vec<&str> = report.failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        failed,
        [
            "ward.broker_test.test_denies_two",
            "ward.broker_test.test_false",
            "ward.broker_test.test_throws"
        ]
    );
    assert_eq!(
        report.failed[0].1,
        "undefined: a condition in its body is false"
    );
    assert_eq!(report.failed[1].1, "evaluated to false");
    assert!(
        report.failed[2].1.contains("broker_test.rego:8:"),
        "{}",
        report.failed[2].1
    );
    let err = report.check().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("3 policy test(s) failed: `ward.broker_test.test_denies_two`"),
        "{err}"
    );
}

#[test]
fn runtime_errors_fail_closed() {
    let division = evaluation_error(
        "package ward.broker\n\ndeny contains {\"rule\": \"r\", \"message\": sprintf(\"%v\", [1 / input.n])} if true\n",
        json!({"n": 0}),
    );
    assert_eq!(division, "broker.rego:3:57: divide by zero");

    let conflict = evaluation_error(
        "package ward.broker\n\nlimit := 1\nlimit := 2\n\nmax_duration contains {\"rule\": \"r\", \"seconds\": limit} if true\n",
        json!({}),
    );
    assert!(conflict.contains("rule conflicts"), "{conflict}");

    let undefined_function = evaluation_error(
        "package ward.broker\n\ndeny contains {\"rule\": \"r\", \"message\": no_such_function(1)} if true\n",
        json!({}),
    );
    assert!(
        undefined_function.contains("no_such_function"),
        "{undefined_function}"
    );
}

#[test]
fn malformed_elements_fail_closed() {
    let cases = [
        ("deny if true", "must be a set of objects"),
        ("deny contains \"nope\" if true", "is not an object"),
        ("deny contains {\"rule\": \"r\"} if true", "lacks `message`"),
        (
            "deny contains {\"rule\": \"r\", \"message\": 3} if true",
            "`message` must be a non-empty string",
        ),
        (
            "deny contains {\"rule\": \"r\", \"message\": \"m\", \"mesage\": \"x\"} if true",
            "unknown key",
        ),
        (
            "require_approval contains {\"rule\": \"\", \"message\": \"m\"} if true",
            "`rule` must be a non-empty string",
        ),
        (
            "remove_scopes contains {\"rule\": \"r\", \"message\": \"m\"} if true",
            "lacks `scope`",
        ),
        (
            "max_duration contains {\"rule\": \"r\", \"seconds\": \"300\"} if true",
            "positive whole number",
        ),
        (
            "max_duration contains {\"rule\": \"r\", \"seconds\": 1.5} if true",
            "positive whole number",
        ),
        (
            "max_duration contains {\"rule\": \"r\", \"seconds\": 0} if true",
            "positive whole number",
        ),
        (
            "max_duration contains {\"rule\": \"r\", \"seconds\": -5} if true",
            "positive whole number",
        ),
    ];
    for (rule, expected) in cases {
        let message = evaluation_error(&format!("package ward.broker\n\n{rule}\n"), json!({}));
        assert!(message.contains(expected), "`{rule}`: {message}");
    }
}

#[test]
fn every_output_combines_into_one_decision() {
    let policy = bundle(&[(
        "broker.rego",
        r#"package ward.broker

helper := "ignored"

require_approval contains {"rule": "two-person", "message": "needs a second person"} if input.risky

remove_scopes contains {"rule": "no-net", "scope": s, "message": "no network"} if {
    some s in input.request.scopes
    startswith(s, "net:")
}

remove_scopes contains {"rule": "not-requested", "scope": "fs:write:/", "message": "no effect"} if true

max_duration contains {"rule": "short", "seconds": 60} if true
max_duration contains {"rule": "shorter", "seconds": 30, "message": "half a minute"} if true
max_duration contains {"rule": "long", "seconds": 3600} if true
"#,
    )])
    .unwrap()
    .compile()
    .unwrap();
    let decision = policy
        .evaluate(&json!({"risky": true, "request": {"scopes": ["net:connect:example.com:443", "fs:read:/tmp"]}}))
        .unwrap();
    assert!(!decision.is_denied());
    assert_eq!(decision.require_approval[0].rule, "two-person");
    assert_eq!(decision.remove_scopes.len(), 1);
    assert_eq!(decision.remove_scopes[0].0, "net:connect:example.com:443");
    let (seconds, reason) = decision.max_duration.clone().unwrap();
    assert_eq!((seconds, reason.message.as_str()), (30, "half a minute"));
    assert_eq!(decision.rules, ["no-net", "shorter", "two-person"]);

    // No contract rule defined at all: an empty decision, not an error.
    let empty = bundle(&[("broker.rego", "package ward.broker\nx := 1\n")])
        .unwrap()
        .compile()
        .unwrap()
        .evaluate(&json!({}))
        .unwrap();
    assert_eq!(empty, ward_policy::PolicyDecision::default());
}

#[test]
fn runaway_policy_is_cut_off_by_the_time_limit() {
    let policy = bundle(&[(
        "broker.rego",
        r#"package ward.broker

deny contains {"rule": "slow", "message": "m"} if {
    some i in numbers.range(1, 2000)
    some j in numbers.range(1, 2000)
    some k in numbers.range(1, 2000)
    i + j + k == -1
}
"#,
    )])
    .unwrap()
    .compile_with_time_limit(Duration::from_millis(20))
    .unwrap();
    let start = Instant::now();
    let err = policy.evaluate(&json!({})).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("time limit"), "{err}");
}

#[test]
fn hash_ignores_file_order_and_follows_content() {
    let a = ("a.rego", "package ward.broker\n");
    let b = ("b.rego", "package ward.other\n");
    let ab = bundle(&[a, b]).unwrap();
    let ba = bundle(&[b, a]).unwrap();
    assert_eq!(ab.hash(), ba.hash());
    assert_eq!(ab.hash().len(), 64);
    assert!(
        ab.hash()
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );

    let changed = bundle(&[a, ("b.rego", "package ward.other \n")]).unwrap();
    assert_ne!(ab.hash(), changed.hash());
    // Moving text between path and content must change the hash.
    let renamed = bundle(&[
        a,
        ("b.rego", "package ward.other\n"),
        ("c.rego", "package c\n"),
    ])
    .unwrap();
    assert_ne!(ab.hash(), renamed.hash());
    let policy = ab.compile().unwrap();
    assert_eq!(policy.hash(), ab.hash());
}
