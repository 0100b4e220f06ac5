//! Roles of API tokens: each may do its job and nothing more, and every use
//! of the bootstrap token is on the record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use serde_json::json;

async fn token(server: &Server, role: &str) -> String {
    let (status, body) = server
        .post(
            &server.bootstrap,
            "/v1/api-tokens",
            json!({"tenant": "acme", "role": role}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_role_does_its_job_and_nothing_more() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let operator = token(&server, "operator").await;
    let auditor = token(&server, "auditor").await;
    let approver = token(&server, "approver").await;
    let agent = server.agent(&admin, "reader").await;
    let (_, granted) = server
        .token(&agent, &["files:read:/home/a/projects/x"])
        .await;
    let access = granted["token"].as_str().unwrap();
    let reason = json!({"reason": "drill"});
    let enrol = json!({"owner": "bob@example.com", "profile": "reader"});

    for who in [&operator, &auditor, &approver] {
        let (status, body) = server.post(who, "/v1/enroll-tokens", enrol.clone()).await;
        assert_error(status, &body, 403, "forbidden");
        let (status, _) = server.get(who, &format!("/v1/agents/{}", agent.id)).await;
        assert_eq!(status, 200, "every role reads agents");
    }
    let (status, body) = server
        .post(
            &auditor,
            &format!("/v1/agents/{}/quarantine", agent.id),
            reason.clone(),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(
        body["error"]["message"],
        "your roles (auditor) do not allow you to quarantine, revoke or uninstall agents"
    );
    let (status, body) = server
        .post(
            &auditor,
            "/v1/tokens/revoke",
            json!({"agent_id": agent.id, "reason": "x"}),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(
        server.audit(&auditor, "action=token.issue").await.len(),
        1,
        "auditors read the audit log"
    );
    assert!(server.introspect(&auditor, access).await.0);
    let (status, body) = server.get(&approver, "/v1/audit").await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server.get(&operator, "/v1/audit").await;
    assert_error(status, &body, 403, "forbidden");

    let (status, body) = server
        .post(
            &operator,
            &format!("/v1/agents/{}/quarantine", agent.id),
            reason.clone(),
        )
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("quarantined")),
        "{body}"
    );
    let (status, body) = server
        .post(
            &operator,
            &format!("/v1/agents/{}/activate", agent.id),
            reason.clone(),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server
        .post(
            &operator,
            "/v1/tokens/revoke",
            json!({"scope_prefix": "files:", "reason": "drill"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let entries = server.audit(&admin, "action=agent.quarantine").await;
    assert!(
        entries[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("token:tok_"),
        "{entries:?}"
    );
    let (status, body) = server
        .post(
            &server.bootstrap,
            "/v1/api-tokens",
            json!({"tenant": "acme", "role": "bootstrap"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_field");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_use_of_the_bootstrap_token_is_audited() {
    let server = Server::start();
    server.tenant("acme").await;
    let (status, _) = server.get(&server.bootstrap, "/v1/tenants").await;
    assert_eq!(status, 200);
    let uses = server
        .audit(&server.bootstrap, "action=bootstrap.use")
        .await;
    let paths: Vec<&str> = uses.iter().map(|e| e["target"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["/v1/tenants", "/v1/api-tokens", "/v1/tenants", "/v1/audit"]
    );
    assert_eq!(uses[2]["details"]["method"], "GET");
}
