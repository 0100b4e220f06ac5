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

/// A `test_` rule that builds a 30-million-element array (about 700 MB):
/// more than a push's sandbox may use.
const MEMORY_HEAVY_TEST: &str = r#"
package ward.heavy_test
import rego.v1
test_b_heavy if { count(numbers.range(1, 30000000)) > 0 }
"#;

/// A `test_` rule that would run for hours; the engine's time limit ends it.
const SLOW_TEST: &str = r#"
package ward.a_slow_test
import rego.v1
test_a_slow if {
    r := numbers.range(1, 100000)
    count([x | some x in r; some y in r; x == y + 1000000]) > 0
}
"#;

/// The server's peak resident memory (`VmHWM`), in kB.
fn peak_memory_kb(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Generous bound on the server's peak memory: the heavy policies here
/// would take it past 2 GB if they ran inside it.
const PEAK_MEMORY_BOUND_KB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_whose_tests_exhaust_memory_is_refused_naming_the_limit() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let (status, first) = push(&server, &admin, &[("broker.rego", NARROWING)]).await;
    assert_eq!(status, 201, "{first}");

    let (status, body) = push(
        &server,
        &admin,
        &[
            ("broker.rego", NARROWING),
            ("heavy_test.rego", MEMORY_HEAVY_TEST),
        ],
    )
    .await;
    assert_error(status, &body, 422, "policy_limit_exceeded");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("memory limit of 512 MiB"), "{message}");
    assert!(message.contains("the active one stays"), "{message}");

    let (_, active) = server.get(&admin, "/v1/policy").await;
    assert_eq!(active["hash"], first["hash"], "the old bundle stays active");
    let (status, granted) = server.token(&agent, &[READ]).await;
    assert_eq!(status, 200, "{granted}");
    assert_eq!(granted["expires_in"], 60, "and keeps deciding");
    let pushes = server.audit(&admin, "action=policy.push").await;
    let refusal = pushes.iter().find(|e| e["result"] == "denied").unwrap();
    assert!(
        refusal["reason"]
            .as_str()
            .unwrap()
            .starts_with("policy_limit_exceeded: "),
        "{refusal}"
    );
    assert!(peak_memory_kb(&server) < PEAK_MEMORY_BOUND_KB);
}

#[tokio::test(flavor = "multi_thread")]
async fn heavy_pushes_at_once_are_bounded_while_another_tenant_gets_tokens() {
    let server = std::sync::Arc::new(Server::start());
    let (_, victim_admin) = server.tenant("victim").await;
    let victim = server.agent(&victim_admin, "reader").await;
    let mut admins = Vec::new();
    for name in ["evil-a", "evil-b", "evil-c"] {
        admins.push(server.tenant(name).await.1);
    }
    let heavy = [
        ("broker.rego", NARROWING),
        ("slow_test.rego", SLOW_TEST),
        ("heavy_test.rego", MEMORY_HEAVY_TEST),
    ];
    let body = json!({"files": heavy.iter().map(|(path, text)| json!({"path": path, "text": text})).collect::<Vec<_>>()});
    let request = |admin: &str| {
        server
            .request(reqwest::Method::POST, "/v1/policy/bundles")
            .bearer_auth(admin)
            .json(&body)
    };

    // Two tenants' pushes take the two slots; their tests run for seconds.
    let running: Vec<_> = admins[..2]
        .iter()
        .map(|admin| tokio::spawn(send(request(admin))))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    // A third tenant finds every slot taken, a second push of a running
    // tenant finds its own slot taken.
    refused_429(request(&admins[2]), 1..=10, "policy_push_busy").await;
    refused_429(request(&admins[0]), 1..=10, "policy_push_busy").await;
    let mut more = Vec::new();
    for admin in admins.iter().cycle().take(6) {
        more.push(tokio::spawn(send(request(admin))));
    }

    // Meanwhile another tenant's agent keeps getting tokens.
    for _ in 0..10 {
        let (status, granted) = server.token(&victim, &[READ]).await;
        assert_eq!(status, 200, "{granted}");
    }

    for push in running {
        let (status, body) = push.await.unwrap();
        assert_error(status, &body, 422, "policy_limit_exceeded");
    }
    for push in more {
        let (status, body) = push.await.unwrap();
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            (status == 429 && code == "policy_push_busy")
                || (status == 422 && code == "policy_limit_exceeded"),
            "{status} {body}"
        );
    }
    let (status, granted) = server.token(&victim, &[READ]).await;
    assert_eq!(status, 200, "{granted}");
    assert!(peak_memory_kb(&server) < PEAK_MEMORY_BOUND_KB);
}

/// Decides lightly for most requests, but builds a huge array when the
/// weather is asked for and loops for hours when the forecast is.
const HEAVY_DECISIONS: &str = r#"
package ward.broker
import rego.v1

deny contains {"rule": "weather", "message": "never"} if {
    some s in input.request.scopes
    startswith(s, "http:get:https://api.example.com/v1/weather/")
    count(numbers.range(1, 30000000)) < 0
}

deny contains {"rule": "forecast", "message": "never"} if {
    some s in input.request.scopes
    startswith(s, "http:get:https://api.example.com/v1/forecast/")
    r := numbers.range(1, 100000)
    count([x | some x in r; some y in r; x == y + 1000000]) > 0
}

max_duration contains {"rule": "short-lived", "seconds": 60} if true

test_light_requests_pass if {
    count(deny) == 0 with input as {"request": {"scopes": ["files:read:/home/alice/projects/x"]}}
}
"#;

const WEATHER: &str = "http:get:https://api.example.com/v1/weather/paris";
const FORECAST: &str = "http:get:https://api.example.com/v1/forecast/paris";

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_that_exhausts_memory_or_time_denies_and_the_server_stays_healthy() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let (status, pushed) = push(&server, &admin, &[("broker.rego", HEAVY_DECISIONS)]).await;
    assert_eq!(status, 201, "{pushed}");
    let (status, granted) = server.token(&agent, &[READ]).await;
    assert_eq!(status, 200, "{granted}");
    assert_eq!(granted["expires_in"], 60);

    for (scope, limit) in [
        (WEATHER, "memory limit of 256 MiB"),
        (FORECAST, "time limit of "),
    ] {
        let (status, body) = server.token(&agent, &[scope]).await;
        assert_error(status, &body, 403, "policy_error");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(limit), "{message}");
        assert!(message.contains("denied"), "{message}");
        let (status, granted) = server.token(&agent, &[READ]).await;
        assert_eq!(status, 200, "the next decision is made: {granted}");
    }
    let entries = server.audit(&admin, "action=token.issue").await;
    let denials: Vec<_> = entries.iter().filter(|e| e["result"] == "denied").collect();
    assert_eq!(denials.len(), 2);
    assert!(
        denials
            .iter()
            .all(|e| e["reason"].as_str().unwrap().starts_with("policy_error: ")),
        "{denials:?}"
    );
    assert!(peak_memory_kb(&server) < PEAK_MEMORY_BOUND_KB);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_flooding_slow_decisions_does_not_starve_another_tenant() {
    let server = std::sync::Arc::new(Server::start());
    let (_, victim_admin) = server.tenant("victim").await;
    let victim = server.agent(&victim_admin, "reader").await;
    let (status, _) = push(&server, &victim_admin, &[("broker.rego", NARROWING)]).await;
    assert_eq!(status, 201);
    let (_, evil_admin) = server.tenant("evil").await;
    let evil = std::sync::Arc::new(server.agent(&evil_admin, "reader").await);
    let (status, pushed) = push(&server, &evil_admin, &[("broker.rego", HEAVY_DECISIONS)]).await;
    assert_eq!(status, 201, "{pushed}");

    let flood: Vec<_> = (0..8)
        .map(|_| {
            let (server, evil) = (server.clone(), evil.clone());
            tokio::spawn(async move { server.token(&evil, &[FORECAST]).await })
        })
        .collect();
    for _ in 0..10 {
        let (status, granted) = server.token(&victim, &[READ]).await;
        assert_eq!(status, 200, "{granted}");
        assert_eq!(granted["expires_in"], 60);
    }
    for request in flood {
        let (status, body) = request.await.unwrap();
        assert_error(status, &body, 403, "policy_error");
    }
    let (status, granted) = server.token(&evil, &[READ]).await;
    assert_eq!(status, 200, "{granted}");
}
