//! Consent: scopes of features marked `consent: required` need the owner's
//! recorded consent, asked again when the scopes widen.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn consented_scopes_are_granted_and_wider_ones_need_consent_again() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "writer").await;
    let docs = "files:write:/home/alice/projects/docs/readme.md";
    let (status, body) = server
        .token(&agent, &["files:read:/home/alice/projects/x", docs])
        .await;
    assert_error(status, &body, 403, "consent_required");
    assert_eq!(
        body["error"]["field"], "requested_scopes[1]",
        "reading needs no consent, writing does"
    );

    let (status, recorded) = server
        .consent(
            &agent,
            &["files:write:/home/alice/projects/docs/**"],
            "granted",
        )
        .await;
    assert_eq!(status, 201, "{recorded}");
    assert_eq!(recorded["owner"], "alice@example.com");
    assert_eq!(recorded["device_id"], "host-77");
    let (status, body) = server.token(&agent, &[docs]).await;
    assert_eq!(status, 200, "a narrower scope is covered: {body}");

    let (status, body) = server
        .token(&agent, &["files:write:/home/alice/projects/src/main.rs"])
        .await;
    assert_error(status, &body, 403, "consent_required");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wider than the owner consented to"),
        "{body}"
    );

    let (status, _) = server
        .consent(&agent, &["files:write:/home/alice/projects/**"], "refused")
        .await;
    assert_eq!(status, 201);
    let (status, body) = server.token(&agent, &[docs]).await;
    assert_error(status, &body, 403, "consent_required");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "the latest decision counts: {body}"
    );

    let (_, list) = server
        .get(&admin, &format!("/v1/consents?agent={}", agent.id))
        .await;
    let decisions: Vec<&str> = list["consents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["decision"].as_str().unwrap())
        .collect();
    assert_eq!(
        decisions,
        ["refused", "granted"],
        "records are kept, newest first"
    );
    let entries = server.audit(&admin, "action=consent.record").await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["actor"], "user:alice@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_is_recorded_only_by_the_agent_itself() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "writer").await;
    let other = server.agent(&admin, "writer").await;
    let proof = server.proof(&other.key, "POST", "/v1/consents");
    let body = json!({"agent_id": agent.id, "scopes": ["files:write:/home/alice/projects/**"], "decision": "granted", "text_version": "1"});
    let (status, answer) = send(
        server
            .request(reqwest::Method::POST, "/v1/consents")
            .header("DPoP", proof)
            .json(&body),
    )
    .await;
    assert_error(status, &answer, 401, "dpop_key_mismatch");
    let (status, answer) = send(
        server
            .request(reqwest::Method::POST, "/v1/consents")
            .bearer_auth(&admin)
            .json(&body),
    )
    .await;
    assert_error(status, &answer, 401, "invalid_dpop_proof");
    let proof = server.proof(&agent.key, "POST", "/v1/tokens");
    let (status, answer) = send(
        server
            .request(reqwest::Method::POST, "/v1/consents")
            .header("DPoP", proof)
            .json(&body),
    )
    .await;
    assert_error(status, &answer, 401, "dpop_url_mismatch");
    let (status, answer) = server
        .consent(&agent, &["files:write:/home/alice/../bob/**"], "granted")
        .await;
    assert_error(status, &answer, 400, "invalid_field");
    assert_eq!(answer["error"]["field"], "scopes[0]");
    let (status, answer) = server.consent(&agent, &["files:write:/a"], "maybe").await;
    assert_error(status, &answer, 400, "invalid_field");
    assert_eq!(answer["error"]["field"], "decision");
}
