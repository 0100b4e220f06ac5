//! The shipped example policies: they compile, their Rego tests pass, and
//! each rule decides a table of requests as documented.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::path::PathBuf;

use serde_json::{Value, json};
use ward_policy::{Bundle, Policy};

fn example_bundle() -> Bundle {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rego") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    Bundle::from_files(files).unwrap()
}

/// A request every example rule lets through.
fn base() -> Value {
    json!({
        "action": "token.issue",
        "request": {"scopes": ["fs:read:/home/alice/**"], "duration": 900},
        "agent": {"id": "agt_01", "profile": "developer", "state": "active", "owner": "alice@example.com"},
        "device": {"os": "macos", "os_version": "15.2", "agent_version": "1.4.0", "host_id": "host-77"},
        "tenant": {"id": "ten_01", "name": "acme"},
        "time": {"unix": 1764669600, "rfc3339": "2025-12-02T10:00:00Z", "hour": 10, "weekday": "tuesday"},
        "matrix": {"profile_high_risk": false, "grants": [{"scope": "fs:read:/home/alice/**", "feature": "read-home", "risk": "low"}]}
    })
}

/// `base()` with each `(pointer, value)` replaced.
fn with(changes: &[(&str, Value)]) -> Value {
    let mut input = base();
    for (pointer, value) in changes {
        *input.pointer_mut(pointer).unwrap() = value.clone();
    }
    input
}

/// The rule names a decision cites, or `error` if evaluation failed.
fn check(policy: &Policy, input: &Value) -> Vec<String> {
    match policy.evaluate(input) {
        Ok(decision) => decision.rules,
        Err(e) => vec![format!("error: {e}")],
    }
}

#[test]
fn example_bundle_compiles_and_its_rego_tests_pass() {
    let bundle = example_bundle();
    bundle.compile().unwrap();
    let report = bundle.run_tests().unwrap();
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert!(report.passed.len() >= 12, "{:#?}", report.passed);
    assert!(
        report
            .passed
            .contains(&"ward.broker_test.test_secrets_versions_compare_as_numbers".to_owned())
    );
    report.check().unwrap();
}

#[test]
fn example_rules_decide_a_table_of_requests() {
    let policy = example_bundle().compile().unwrap();
    let exec = json!(["exec:run:/usr/bin/git"]);
    let secrets = json!(["secrets:read:ci/*"]);
    let high = json!({"profile_high_risk": true, "grants": [{"scope": "exec:run:/usr/bin/git", "feature": "run-git", "risk": "high"}]});
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("base request", base(), &[]),
        (
            "exec in work hours",
            with(&[("/request/scopes", exec.clone())]),
            &[],
        ),
        (
            "exec at 02:00",
            with(&[("/request/scopes", exec.clone()), ("/time/hour", json!(2))]),
            &["exec-work-hours"],
        ),
        (
            "exec at 18:00",
            with(&[("/request/scopes", exec.clone()), ("/time/hour", json!(18))]),
            &["exec-work-hours"],
        ),
        (
            "exec on sunday",
            with(&[
                ("/request/scopes", exec.clone()),
                ("/time/weekday", json!("sunday")),
            ]),
            &["exec-work-hours"],
        ),
        ("read at night", with(&[("/time/hour", json!(23))]), &[]),
        (
            "secrets on macos 15.2",
            with(&[("/request/scopes", secrets.clone())]),
            &[],
        ),
        (
            "secrets on macos 14.0",
            with(&[
                ("/request/scopes", secrets.clone()),
                ("/device/os_version", json!("14.0")),
            ]),
            &[],
        ),
        (
            "secrets on macos 13.6",
            with(&[
                ("/request/scopes", secrets.clone()),
                ("/device/os_version", json!("13.6")),
            ]),
            &["secrets-os-floor"],
        ),
        (
            "secrets on macos 9.9",
            with(&[
                ("/request/scopes", secrets.clone()),
                ("/device/os_version", json!("9.9")),
            ]),
            &["secrets-os-floor"],
        ),
        (
            "secrets on windows 22621",
            with(&[
                ("/request/scopes", secrets.clone()),
                ("/device/os", json!("windows")),
                ("/device/os_version", json!("10.0.22621")),
            ]),
            &["secrets-os-floor"],
        ),
        (
            "secrets on windows 22631",
            with(&[
                ("/request/scopes", secrets.clone()),
                ("/device/os", json!("windows")),
                ("/device/os_version", json!("10.0.22631")),
            ]),
            &[],
        ),
        (
            "secrets on linux",
            with(&[
                ("/request/scopes", secrets.clone()),
                ("/device/os", json!("linux")),
                ("/device/os_version", json!("6.8")),
            ]),
            &[],
        ),
        (
            "secrets on unknown os",
            with(&[
                ("/request/scopes", secrets.clone()),
                ("/device/os", json!("plan9")),
            ]),
            &["secrets-os-floor"],
        ),
        (
            "high-risk grant",
            with(&[("/request/scopes", exec.clone()), ("/matrix", high.clone())]),
            &["high-risk-lifetime"],
        ),
        (
            "unapproved agent",
            with(&[("/device/agent_version", json!("1.3.9"))]),
            &["approved-agent-release"],
        ),
        (
            "agent version as number",
            with(&[("/device/agent_version", json!(140))]),
            &["approved-agent-release"],
        ),
        (
            "enrolment of unapproved agent",
            with(&[
                ("/action", json!("agent.enroll")),
                ("/request/scopes", json!([])),
                ("/device/agent_version", json!("0.9.0")),
            ]),
            &["approved-agent-release"],
        ),
        (
            "everything wrong at once",
            with(&[
                (
                    "/request/scopes",
                    json!(["exec:run:/usr/bin/git", "secrets:read:ci/*"]),
                ),
                ("/time/hour", json!(3)),
                ("/device/os_version", json!("12.7")),
                ("/device/agent_version", json!("1.0.0")),
                ("/matrix", high.clone()),
            ]),
            &[
                "approved-agent-release",
                "exec-work-hours",
                "high-risk-lifetime",
                "secrets-os-floor",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, input, expected) in &cases {
        let got = check(&policy, input);
        if got != *expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn high_risk_cap_is_300_seconds_with_its_reason() {
    let policy = example_bundle().compile().unwrap();
    let input = with(&[(
        "/matrix",
        json!({"profile_high_risk": true, "grants": [{"scope": "exec:run:/usr/bin/git", "feature": "run-git", "risk": "high"}]}),
    )]);
    let decision = policy.evaluate(&input).unwrap();
    assert!(!decision.is_denied());
    let (seconds, reason) = decision.max_duration.unwrap();
    assert_eq!(seconds, 300);
    assert_eq!(reason.rule, "high-risk-lifetime");
    assert_eq!(
        reason.message,
        "high-risk grants (run-git) live at most 300 s"
    );
}

#[test]
fn deny_reasons_name_the_offending_value() {
    let policy = example_bundle().compile().unwrap();
    let decision = policy
        .evaluate(&with(&[("/device/agent_version", json!("1.3.9"))]))
        .unwrap();
    assert!(decision.is_denied());
    assert_eq!(decision.deny.len(), 1);
    assert_eq!(
        decision.deny[0].message,
        "agent version `1.3.9` is not an approved release (1.4.0, 1.4.1, 1.5.0)"
    );
}

#[test]
fn policy_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
    let policy = std::sync::Arc::new(example_bundle().compile().unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let policy = policy.clone();
            std::thread::spawn(move || {
                for hour in 0..24 {
                    let input = with(&[
                        ("/request/scopes", json!(["exec:run:/usr/bin/git"])),
                        ("/time/hour", json!(hour)),
                        (
                            "/device/agent_version",
                            json!(if i % 2 == 0 { "1.4.0" } else { "0.1.0" }),
                        ),
                    ]);
                    let decision = policy.evaluate(&input).unwrap();
                    let work = (8..18).contains(&hour);
                    assert_eq!(
                        decision.rules.contains(&"exec-work-hours".to_owned()),
                        !work
                    );
                    assert_eq!(
                        decision
                            .rules
                            .contains(&"approved-agent-release".to_owned()),
                        i % 2 == 1
                    );
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}
