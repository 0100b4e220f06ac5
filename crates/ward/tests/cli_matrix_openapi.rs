//! `ward matrix check`, the served OpenAPI document, and its committed copy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use std::process::Command;

fn ward(args: &[&str]) -> std::process::Output {
    Command::new(ward_bin()).args(args).output().unwrap()
}

#[test]
fn matrix_check_accepts_the_example_and_names_line_and_column_of_errors() {
    let out = ward(&["matrix", "check", example_matrix().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with(": ok (5 features, 3 profiles)\n"),
        "{}",
        stdout(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nfeatures:\n  read:\n    description: Read\n    risk: low\n    scopes:\n      - files:read:/a/../b\nprofiles:\n  p:\n    description: P\n    features: [read, nope]\n",
    )
    .unwrap();
    let out = ward(&["matrix", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&format!("error: {}:7:9: ", bad.display())),
        "{err}"
    );
    assert!(lines[0].contains("`..`"), "{err}");
    assert!(
        lines[1].starts_with(&format!("{}:11:22: ", bad.display())),
        "{err}"
    );
    assert!(lines[1].contains("`nope`"), "{err}");

    let out = ward(&["matrix", "check", "/nonexistent.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: cannot read matrix `/nonexistent.yaml`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn serve_refuses_an_invalid_matrix_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "version: 2\nfeatures: {}\nprofiles: {}\n").unwrap();
    let out = ward(&[
        "serve",
        "--data-dir",
        dir.path().join("d").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--matrix",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{}:1:10: ", bad.display())),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_describes_every_endpoint_and_matches_the_committed_copy() {
    let server = Server::start();
    let (status, served) = server.get("", "/openapi.json").await;
    assert_eq!(status, 200);
    let paths = served["paths"].as_object().unwrap();
    let expected = [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/.well-known/jwks.json", "get"),
        ("/openapi.json", "get"),
        ("/v1/auth/config", "get"),
        ("/v1/tenants", "post"),
        ("/v1/tenants", "get"),
        ("/v1/api-tokens", "post"),
        ("/v1/keys/rotate", "post"),
        ("/v1/enroll-tokens", "post"),
        ("/v1/agents", "post"),
        ("/v1/agents", "get"),
        ("/v1/agents/{id}", "get"),
        ("/v1/agents/{id}/activate", "post"),
        ("/v1/agents/{id}/quarantine", "post"),
        ("/v1/agents/{id}/revoke", "post"),
        ("/v1/agents/{id}/uninstall", "post"),
        ("/v1/tokens", "post"),
        ("/v1/tokens/introspect", "post"),
        ("/v1/tokens/revoke", "post"),
        ("/v1/audit", "get"),
        ("/v1/approvals", "get"),
        ("/v1/approvals/{id}", "get"),
        ("/v1/approvals/{id}/approve", "post"),
        ("/v1/approvals/{id}/deny", "post"),
        ("/v1/consents", "post"),
        ("/v1/consents", "get"),
        ("/v1/policy", "get"),
        ("/v1/policy/bundles", "post"),
        ("/v1/killswitch", "put"),
        ("/v1/killswitch", "get"),
        ("/v1/flags", "get"),
        ("/v1/flags/{key}", "put"),
        ("/v1/watch", "get"),
        ("/v1/watch/snapshot", "get"),
        ("/v1/agents/{id}/heartbeat", "post"),
        ("/v1/agents/{id}/acks", "post"),
        ("/v1/agents/{id}/watch", "get"),
        ("/v1/agent-policy", "get"),
        ("/v1/agent-policy", "put"),
        ("/v1/killswitch/status", "get"),
        ("/metrics", "get"),
        ("/v1/events", "post"),
        ("/v1/events", "get"),
        ("/v1/events/stream", "get"),
        ("/v1/alerts", "get"),
        ("/v1/alerts/{id}", "get"),
        ("/v1/alerts/failed", "get"),
        ("/v1/alerts/failed/{id}/retry", "post"),
        ("/v1/silences", "post"),
        ("/v1/silences", "get"),
        ("/v1/silences/{id}", "delete"),
        ("/v1/agents/{id}/baseline", "get"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        operations,
        expected.len(),
        "every documented operation is a route"
    );
    for schema in [
        "TokenRequest",
        "TokenResponse",
        "ErrorBody",
        "EnrollAgent",
        "AuditPage",
        "IntrospectResponse",
        "EventBatch",
        "EventPage",
    ] {
        assert!(
            served["components"]["schemas"].get(schema).is_some(),
            "schema {schema} missing"
        );
    }

    let committed_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let out = ward(&["openapi"]);
    assert!(out.status.success());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap(),
        served
    );
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == stdout(&out),
        "docs/openapi.json is stale: regenerate it with `cargo run -p ward -- openapi > docs/openapi.json`"
    );
}

/// Runs the independent OpenAPI validator (PyPI `openapi-spec-validator`,
/// which `scripts/test` installs and names in `OPENAPI_SPEC_VALIDATOR`)
/// on `file`.
fn openapi_spec_validator(file: &std::path::Path) -> std::process::Output {
    let validator =
        std::env::var("OPENAPI_SPEC_VALIDATOR").unwrap_or_else(|_| "openapi-spec-validator".into());
    Command::new(&validator)
        .args(["--schema", "3.1"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{validator}` ({e}): run ./scripts/test, which installs it")
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_openapi_document_passes_an_independent_validator() {
    let server = Server::start();
    let (status, served) = server.get("", "/openapi.json").await;
    assert_eq!(status, 200);
    let dir = tempfile::tempdir().unwrap();
    let document = dir.path().join("openapi.json");
    std::fs::write(&document, served.to_string()).unwrap();
    let out = openapi_spec_validator(&document);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // The validator catches the mistake this test exists for: a query
    // parameter documented as a path parameter breaks generated clients.
    let mut broken = served.clone();
    let parameters = broken["paths"]["/v1/agents"]["get"]["parameters"]
        .as_array_mut()
        .unwrap();
    let limit = parameters
        .iter_mut()
        .find(|p| p["name"] == "limit")
        .unwrap();
    limit["in"] = "path".into();
    limit["required"] = true.into();
    std::fs::write(&document, broken.to_string()).unwrap();
    let out = openapi_spec_validator(&document);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("limit"), "{}", stdout(&out));
}
