//! Policy-as-code at the broker: bundles pushed through the API and the
//! CLI, refused when broken, deciding every token request and enrolment,
//! failing closed, and recorded in the decision log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use serde_json::{Value, json};

const READ: &str = "files:read:/home/alice/projects/x";

async fn push(server: &Server, admin: &str, files: &[(&str, &str)]) -> (u16, Value) {
    let files: Vec<Value> = files
        .iter()
        .map(|(path, text)| json!({"path": path, "text": text}))
        .collect();
    server
        .post(admin, "/v1/policy/bundles", json!({"files": files}))
        .await
}

const NARROWING: &str = r#"
package ward.broker
import rego.v1

max_duration contains {"rule": "short-lived", "seconds": 60, "message": "one minute"} if true

remove_scopes contains {"rule": "no-weather", "scope": s, "message": "weather is off"} if {
    some s in input.request.scopes
    startswith(s, "http:get:https://api.example.com/v1/weather/")
}

deny contains {"rule": "old-macos", "message": "macOS below 16"} if {
    input.device.os == "macos"
    to_number(split(input.device.os_version, ".")[0]) < 16
    some s in input.request.scopes
    startswith(s, "http:get:https://api.example.com/v1/forecast/")
}

require_approval contains {"rule": "listing-needs-approval", "message": "listing is sensitive here"} if {
    some s in input.request.scopes
    startswith(s, "files:list:")
}
"#;

const NARROWING_TEST: &str = r#"
package ward.broker_test
import rego.v1
import data.ward.broker

test_cap if {
    some d in broker.max_duration with input as {"request": {"scopes": []}, "device": {}}
    d.seconds == 60
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_policy_narrows_denies_and_requires_approval_and_is_logged() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let (status, pushed) = push(
        &server,
        &admin,
        &[
            ("broker.rego", NARROWING),
            ("broker_test.rego", NARROWING_TEST),
        ],
    )
    .await;
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["tests_passed"], json!(["ward.broker_test.test_cap"]));
    let hash = pushed["hash"].as_str().unwrap().to_owned();

    let weather = "http:get:https://api.example.com/v1/weather/paris";
    let (status, granted) = server.token(&agent, &[READ, weather]).await;
    assert_eq!(status, 200, "{granted}");
    assert_eq!(
        granted["scopes"],
        json!([READ]),
        "the policy removed a scope"
    );
    assert_eq!(granted["expires_in"], 60, "the policy capped the lifetime");

    let (status, body) = server
        .token(
            &agent,
            &["http:get:https://api.example.com/v1/forecast/paris"],
        )
        .await;
    assert_error(status, &body, 403, "policy_denied");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`old-macos`") && message.contains(&hash),
        "{message}"
    );

    let (status, body) = server
        .token(&agent, &["files:list:/home/alice/projects"])
        .await;
    assert_error(status, &body, 403, "approval_required");
    let (_, approval) = server
        .get(
            &admin,
            &format!(
                "/v1/approvals/{}",
                body["error"]["approval_id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(
        approval["reasons"][0]["policy_rule"],
        "listing-needs-approval"
    );

    let entries = server.audit(&admin, "action=token.issue").await;
    let grant = entries
        .iter()
        .find(|e| e["result"] == "success" && e["details"]["policy"].is_object())
        .unwrap();
    assert_eq!(
        grant["details"]["policy"]["bundle"],
        hash.as_str(),
        "every decision records the bundle"
    );
    assert_eq!(
        grant["details"]["policy"]["rules"],
        json!(["no-weather", "short-lived"])
    );
    assert_eq!(grant["details"]["grants"][0]["feature"], "read-projects");
    let denial = entries.iter().find(|e| e["result"] == "denied").unwrap();
    assert!(
        denial["reason"]
            .as_str()
            .unwrap()
            .starts_with("policy_denied: denied by policy rule `old-macos`")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_bundle_is_refused_and_the_old_one_keeps_deciding() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let (status, first) = push(&server, &admin, &[("broker.rego", NARROWING)]).await;
    assert_eq!(status, 201, "{first}");

    let failing_test = r#"
package ward.broker_test
import rego.v1
import data.ward.broker
test_never if { count(broker.deny) > 100 }
"#;
    let permissive = "package ward.broker\nimport rego.v1\n";
    let (status, body) = push(
        &server,
        &admin,
        &[
            ("broker.rego", permissive),
            ("broker_test.rego", failing_test),
        ],
    )
    .await;
    assert_error(status, &body, 422, "policy_tests_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("test_never"),
        "{body}"
    );

    let (status, body) = push(
        &server,
        &admin,
        &[(
            "broker.rego",
            "package ward.broker\nimport rego.v1\ndeny contains x if {\n  x := \n}\n",
        )],
    )
    .await;
    assert_error(status, &body, 422, "policy_invalid");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broker.rego:"),
        "names the file and line: {body}"
    );
    let (status, body) = push(
        &server,
        &admin,
        &[("other.rego", "package something.else\n")],
    )
    .await;
    assert_error(status, &body, 422, "policy_invalid");
    let (status, body) = push(&server, &admin, &[("notes.txt", "hello")]).await;
    assert_error(status, &body, 422, "policy_invalid");

    let (_, active) = server.get(&admin, "/v1/policy").await;
    assert_eq!(active["hash"], first["hash"], "the old bundle stays active");
    let (_, granted) = server.token(&agent, &[READ]).await;
    assert_eq!(granted["expires_in"], 60, "and keeps deciding");
    let refused = server.audit(&admin, "action=policy.push").await;
    assert_eq!(
        refused.iter().filter(|e| e["result"] == "denied").count(),
        4
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_that_throws_denies_and_the_error_is_audited() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let throwing = r#"
package ward.broker
import rego.v1
max_duration contains {"rule": "broken", "seconds": 60 / count(input.request.missing), "message": "x"} if true
deny contains {"rule": "conflict", "message": input.request.scopes} if true
"#;
    let (status, body) = push(&server, &admin, &[("broker.rego", throwing)]).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.token(&agent, &[READ]).await;
    assert_error(status, &body, 403, "policy_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("denied"),
        "{body}"
    );
    let entries = server.audit(&admin, "action=token.issue").await;
    let last = entries.last().unwrap();
    assert_eq!(last["result"], "denied");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .starts_with("policy_error: "),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_policies_push_through_the_cli_and_deny_unapproved_releases() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    let out = std::process::Command::new(ward_bin())
        .args(["policy", "test"])
        .arg(&examples)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(" passed, 0 failed; bundle "),
        "{}",
        stdout(&out)
    );
    let out = server.cli(
        &admin,
        &["policy", "push", examples.to_str().unwrap(), "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let pushed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(pushed["files"], json!(["broker.rego", "broker_test.rego"]));

    let agent = server.agent(&admin, "reader").await;
    let (status, body) = server.token(&agent, &[READ]).await;
    assert_eq!(
        status, 200,
        "release 1.4.0 on macOS 15.2 is approved: {body}"
    );

    let enroll_token = server.enroll_token(&admin, "reader").await;
    let key = ward_auth::Keypair::generate().unwrap();
    let jwk = key.public_jwk();
    let (status, body) = send(
        server
            .request(reqwest::Method::POST, "/v1/agents")
            .json(&json!({
                "enroll_token": enroll_token,
                "device_key": {"kty": jwk.kty, "crv": jwk.crv, "x": jwk.x},
                "device": {"os": "macos 15.2", "agent_version": "0.9.0-beta", "host_id": "host-88"},
            })),
    )
    .await;
    assert_error(status, &body, 403, "policy_denied");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("approved-agent-release"),
        "{body}"
    );

    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("broker.rego"),
        "package ward.broker\nimport rego.v1\n",
    )
    .unwrap();
    std::fs::write(
        broken.path().join("t.rego"),
        "package t\nimport rego.v1\ntest_fails if { false }\n",
    )
    .unwrap();
    let out = std::process::Command::new(ward_bin())
        .args(["policy", "test"])
        .arg(broken.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("FAIL t.test_fails"),
        "{}",
        stdout(&out)
    );
    assert_eq!(stderr(&out).trim(), "error: 1 policy test(s) failed");
}
