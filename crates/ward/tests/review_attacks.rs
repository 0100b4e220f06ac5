//! Attacks found in review: people are compared by their stable identity,
//! not by an optional, mutable or differently-cased email; ID tokens are
//! not credentials; anonymous callers cannot fill the audit log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use serde_json::{Value, json};

struct World {
    idp: Idp,
    server: Server,
    admin: String,
}

async fn world() -> World {
    let idp = Idp::start();
    let server = Server::trusting(&idp, &[]);
    let (_, admin) = server.tenant("acme").await;
    idp.user("bob", &["ward:acme:approver"], true).await;
    idp.user("carol", &["ward:acme:approver"], true).await;
    World { idp, server, admin }
}

impl World {
    /// Creates or replaces a provider user with exactly these claims.
    async fn raw_user(&self, body: Value) {
        let (status, answer) = send(
            self.idp
                .http
                .post(format!("{}/__test/users", self.idp.issuer))
                .json(&body),
        )
        .await;
        assert!(status == 200 || status == 201, "{answer}");
    }

    async fn decide(&self, user: &str, id: &str) -> (u16, Value) {
        let token = self.idp.token(user, json!({})).await;
        self.server
            .post(
                &token,
                &format!("/v1/approvals/{id}/approve"),
                json!({"reason": "ok"}),
            )
            .await
    }

    /// A developer agent (owner alice@example.com) and its pending enrolment approval.
    async fn pending_developer(&self) -> (Agent, String) {
        let agent = self.server.agent(&self.admin, "developer").await;
        let (_, list) = self
            .server
            .get(&self.admin, "/v1/approvals?status=pending")
            .await;
        (
            agent,
            list["approvals"][0]["id"].as_str().unwrap().to_owned(),
        )
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_owner_without_an_email_claim_cannot_approve_her_own_agent() {
    let w = world().await;
    let (_, id) = w.pending_developer().await;
    w.raw_user(json!({"sub": "alice", "groups": ["ward:acme:approver"], "mfa": true}))
        .await;
    let (status, body) = w.decide("alice", &id).await;
    assert_error(status, &body, 403, "self_approval");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_owner_with_a_differently_cased_email_cannot_approve_her_own_agent() {
    let w = world().await;
    let (_, id) = w.pending_developer().await;
    w.raw_user(json!({"sub": "alice", "email": "Alice@Example.com", "groups": ["ward:acme:approver"], "mfa": true})).await;
    let (status, body) = w.decide("alice", &id).await;
    assert_error(status, &body, 403, "self_approval");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_person_cannot_be_both_approvers_of_a_two_person_request() {
    let w = world().await;
    let (agent, id) = w.pending_developer().await;
    let (status, body) = w.decide("bob", &id).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("pending")),
        "{body}"
    );
    w.raw_user(json!({"sub": "bob", "email": "robert@example.com", "groups": ["ward:acme:approver"], "mfa": true})).await;
    let (status, body) = w.decide("bob", &id).await;
    assert_error(status, &body, 409, "already_decided");
    let (_, shown) = w
        .server
        .get(&w.admin, &format!("/v1/agents/{}", agent.id))
        .await;
    assert_eq!(shown["state"], "pending_approval");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_id_token_is_not_an_api_credential() {
    let w = world().await;
    w.idp.user("erin", &["ward:acme:admin"], true).await;
    let id_token = w
        .idp
        .token("erin", json!({"kind": "id", "audience": "ward"}))
        .await;
    let (status, body) = w.server.get(&id_token, "/v1/agents").await;
    assert_error(status, &body, 401, "unauthenticated");
    let cli_token = w.idp.token("erin", json!({"kind": "id"})).await;
    let (status, body) = w.server.get(&cli_token, "/v1/agents").await;
    assert_error(status, &body, 401, "unauthenticated");
    let access = w.idp.token("erin", json!({})).await;
    assert_eq!(w.server.get(&access, "/v1/agents").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_token_requests_cannot_write_unbounded_audit_rows() {
    let server = Server::start();
    let huge = "x".repeat(60_000);
    for _ in 0..3 {
        let (status, body) = send(
            server
                .request(reqwest::Method::POST, "/v1/tokens")
                .header("DPoP", "garbage")
                .json(&json!({"agent_id": huge, "requested_scopes": ["files:read:/x"]})),
        )
        .await;
        assert_error(status, &body, 400, "invalid_field");
    }
    let entries = server.audit(&server.bootstrap, "action=token.issue").await;
    assert!(
        entries.is_empty(),
        "malformed ids are refused before anything is recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_bearer_tokens_do_not_reach_the_provider() {
    let w = world().await;
    for garbage in ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        let (status, body) = w.server.get(garbage, "/v1/agents").await;
        assert_error(status, &body, 401, "unauthenticated");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_approver_cannot_see_or_decide_an_approval() {
    let w = world().await;
    w.server.tenant("globex").await;
    w.idp.user("gina", &["ward:globex:approver"], true).await;
    let (agent, id) = w.pending_developer().await;
    let token = w.idp.token("gina", json!({})).await;
    let (status, body) = w.server.get(&token, &format!("/v1/approvals/{id}")).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = w.decide("gina", &id).await;
    assert_error(status, &body, 404, "not_found");
    let (_, list) = w.server.get(&token, "/v1/approvals").await;
    assert_eq!(list["approvals"], json!([]));
    let (_, shown) = w
        .server
        .get(&w.admin, &format!("/v1/agents/{}", agent.id))
        .await;
    assert_eq!(shown["state"], "pending_approval");
}
