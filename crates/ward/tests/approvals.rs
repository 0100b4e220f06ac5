//! Approvals by a second person with multi-factor sign-in, against a real
//! OpenID provider: enrolment into a high-risk profile, high-risk tokens,
//! tokens bound to one action.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use serde_json::{Value, json};

const GIT: &str = "exec:run:/usr/bin/git";

struct World {
    idp: Idp,
    server: Server,
    admin: String,
}

async fn world(extra: &[&str]) -> World {
    let idp = Idp::start();
    let server = Server::trusting(&idp, extra);
    let (_, admin) = server.tenant("acme").await;
    idp.user("alice", &["ward:acme:approver"], true).await;
    idp.user("bob", &["ward:acme:approver"], true).await;
    idp.user("carol", &["ward:acme:approver"], true).await;
    idp.user("dave", &["ward:acme:approver"], false).await;
    World { idp, server, admin }
}

impl World {
    async fn as_user(&self, user: &str) -> String {
        self.idp.token(user, json!({})).await
    }

    async fn decide(&self, user: &str, id: &str, verb: &str, body: Value) -> (u16, Value) {
        let token = self.as_user(user).await;
        self.server
            .post(&token, &format!("/v1/approvals/{id}/{verb}"), body)
            .await
    }

    /// An active agent of the developer profile (enrolment approved by bob and carol).
    async fn developer(&self) -> Agent {
        let agent = self.server.agent(&self.admin, "developer").await;
        let (_, list) = self
            .server
            .get(&self.admin, "/v1/approvals?status=pending")
            .await;
        let id = list["approvals"][0]["id"].as_str().unwrap().to_owned();
        for user in ["bob", "carol"] {
            let (status, body) = self
                .decide(user, &id, "approve", json!({"reason": "reviewed"}))
                .await;
            assert_eq!(status, 200, "{body}");
        }
        agent
    }
}

async fn token_request(server: &Server, agent: &Agent, body: Value) -> (u16, Value) {
    let proof = server.proof(&agent.key, "POST", "/v1/tokens");
    let mut request = json!({"agent_id": agent.id});
    request
        .as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    send(
        server
            .request(reqwest::Method::POST, "/v1/tokens")
            .header("DPoP", proof)
            .json(&request),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn enrolment_into_a_high_risk_profile_needs_two_other_people_with_mfa() {
    let w = world(&[]).await;
    let agent = w.server.agent(&w.admin, "developer").await;
    assert_eq!(agent.state, "pending_approval");
    let (status, body) = w
        .server
        .post(
            &w.admin,
            &format!("/v1/agents/{}/activate", agent.id),
            json!({"reason": "please"}),
        )
        .await;
    assert_error(status, &body, 409, "approval_required");
    let id = body["error"]["approval_id"].as_str().unwrap().to_owned();

    let (_, approval) = w.server.get(&w.admin, &format!("/v1/approvals/{id}")).await;
    assert_eq!(approval["kind"], "enrolment");
    assert_eq!(
        approval["required_approvals"], 2,
        "read-db-secrets is two_person"
    );
    assert_eq!(approval["owner"], "alice@example.com");

    let (status, body) = w
        .server
        .post(
            &w.admin,
            &format!("/v1/approvals/{id}/approve"),
            json!({"reason": "mine"}),
        )
        .await;
    assert_error(status, &body, 403, "self_approval");
    let (status, body) = w
        .decide("alice", &id, "approve", json!({"reason": "my own agent"}))
        .await;
    assert_error(status, &body, 403, "self_approval");
    let (status, body) = w
        .decide("dave", &id, "approve", json!({"reason": "looks fine"}))
        .await;
    assert_error(status, &body, 403, "step_up_required");

    let (status, body) = w
        .decide("bob", &id, "approve", json!({"reason": "reviewed"}))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("pending")),
        "{body}"
    );
    let (status, body) = w
        .decide("bob", &id, "approve", json!({"reason": "again"}))
        .await;
    assert_error(status, &body, 409, "already_decided");
    let (_, shown) = w
        .server
        .get(&w.admin, &format!("/v1/agents/{}", agent.id))
        .await;
    assert_eq!(
        shown["state"], "pending_approval",
        "one approval of two changes nothing"
    );

    let (status, body) = w
        .decide("carol", &id, "approve", json!({"reason": "reviewed too"}))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("used")),
        "{body}"
    );
    let (_, shown) = w
        .server
        .get(&w.admin, &format!("/v1/agents/{}", agent.id))
        .await;
    assert_eq!(shown["state"], "active");

    let steps = w
        .server
        .audit(
            &w.admin,
            &format!(
                "correlation_id={}",
                approval["correlation_id"].as_str().unwrap()
            ),
        )
        .await;
    let actions: Vec<&str> = steps
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "agent.enroll",
            "approval.approve",
            "approval.approve",
            "approval.approve",
            "approval.approve",
            "approval.approve",
            "approval.approve"
        ],
        "every step carries the original correlation id: {steps:?}"
    );
    let decided: Vec<(&str, &str)> = steps[1..]
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["result"].as_str().unwrap()))
        .collect();
    assert_eq!(decided[0].1, "denied");
    assert_eq!(decided[3], ("user:bob@example.com", "success"));
    assert_eq!(
        decided[4],
        ("user:bob@example.com", "denied"),
        "a second decision by one approver is refused and audited"
    );
    assert_eq!(decided[5], ("user:carol@example.com", "success"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_high_risk_token_is_granted_once_after_approval_and_within_its_limits() {
    let w = world(&[]).await;
    let agent = w.developer().await;
    let (status, body) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": [GIT], "requested_duration": 1800}),
    )
    .await;
    assert_error(status, &body, 403, "approval_required");
    let id = body["error"]["approval_id"].as_str().unwrap().to_owned();
    let (status, again) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": [GIT], "requested_duration": 1800}),
    )
    .await;
    assert_eq!(
        (status, again["error"]["approval_id"].as_str()),
        (403, Some(id.as_str())),
        "a pending request is reused"
    );

    let (status, body) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": [GIT], "approval_id": id}),
    )
    .await;
    assert_error(status, &body, 403, "approval_required");

    let (status, body) = w
        .decide(
            "bob",
            &id,
            "approve",
            json!({"reason": "ok for the release", "duration": 120}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("approved")),
        "{body}"
    );
    let (status, granted) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": [GIT], "approval_id": id, "requested_duration": 1800}),
    )
    .await;
    assert_eq!(status, 200, "{granted}");
    assert_eq!(
        granted["expires_in"], 120,
        "the approver shortened the lifetime"
    );
    let (_, shown) = w.server.get(&w.admin, &format!("/v1/approvals/{id}")).await;
    let steps = w
        .server
        .audit(
            &w.admin,
            &format!(
                "correlation_id={}",
                shown["correlation_id"].as_str().unwrap()
            ),
        )
        .await;
    let actions: Vec<(&str, &str)> = steps
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("approval.request", "success"),
            ("token.issue", "denied"),
            ("approval.approve", "success"),
            ("token.issue", "success"),
        ],
        "request, refusal, decision and redemption share the original correlation id"
    );
    let (status, body) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": [GIT], "approval_id": id}),
    )
    .await;
    assert_error(status, &body, 409, "approval_used");

    let (status, body) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": ["secrets:read:db/main"]}),
    )
    .await;
    assert_error(status, &body, 403, "consent_required");
    let alice = w.as_user("alice").await;
    let (status, _) = w
        .server
        .consent(&alice, &agent, &["secrets:read:db/*"], "granted")
        .await;
    assert_eq!(status, 201);
    let (_, body) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": ["secrets:read:db/main"]}),
    )
    .await;
    let secrets = body["error"]["approval_id"].as_str().unwrap().to_owned();
    let (_, body) = w
        .decide("bob", &secrets, "approve", json!({"reason": "one of two"}))
        .await;
    assert_eq!(body["status"], "pending");
    let (_, body) = w
        .decide("carol", &secrets, "deny", json!({"reason": "not today"}))
        .await;
    assert_eq!(body["status"], "denied");
    let (status, body) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": ["secrets:read:db/main"], "approval_id": secrets}),
    )
    .await;
    assert_error(status, &body, 403, "approval_denied");

    let (_, body) = token_request(&w.server, &agent, json!({"requested_scopes": [GIT]})).await;
    let narrow = body["error"]["approval_id"].as_str().unwrap().to_owned();
    w.decide("bob", &narrow, "approve", json!({"reason": "fine"}))
        .await;
    let (status, body) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": [GIT, "secrets:read:db/main"], "approval_id": narrow}),
    )
    .await;
    assert_error(status, &body, 403, "approval_insufficient");
    let (status, body) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": [GIT, "files:read:/home/alice/projects/x"], "approval_id": narrow}),
    )
    .await;
    assert_error(status, &body, 403, "scope_not_approved");
    assert_eq!(body["error"]["field"], "requested_scopes[1]");

    let issued = w.server.audit(&w.admin, "action=token.issue").await;
    let redeemed = issued
        .iter()
        .find(|e| e["result"] == "success" && e["details"]["approval_id"] == id.as_str())
        .unwrap();
    assert_eq!(
        redeemed["details"]["grants"][0]["feature"], "run-git",
        "the decision log names the matrix entry and the approval"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_bound_to_an_action_is_for_that_action_only() {
    let w = world(&[]).await;
    let agent = w.developer().await;
    let action = json!({"tool": "Bash", "arguments": {"command": "git push origin main"}});
    let (_, body) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": [GIT], "action": action}),
    )
    .await;
    let id = body["error"]["approval_id"].as_str().unwrap().to_owned();
    let (_, shown) = w.server.get(&w.admin, &format!("/v1/approvals/{id}")).await;
    assert_eq!(
        shown["action"], action,
        "the approver sees the exact action"
    );
    w.decide("bob", &id, "approve", json!({"reason": "push is fine"}))
        .await;

    let other = json!({"tool": "Bash", "arguments": {"command": "git push --force origin main"}});
    let (status, body) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": [GIT], "approval_id": id, "action": other}),
    )
    .await;
    assert_error(status, &body, 403, "action_mismatch");
    let (status, body) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": [GIT], "approval_id": id}),
    )
    .await;
    assert_error(status, &body, 403, "action_mismatch");
    let reordered = json!({"arguments": {"command": "git push origin main"}, "tool": "Bash"});
    let (status, granted) = token_request(
        &w.server,
        &agent,
        json!({"requested_scopes": [GIT], "approval_id": id, "action": reordered}),
    )
    .await;
    assert_eq!(
        status, 200,
        "key order does not change the canonical action: {granted}"
    );
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(
                granted["token"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .nth(1)
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["action_hash"], shown["action_hash"]);
    assert_eq!(claims["single_use"], true);
    assert_eq!(claims["approval_id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_approval_can_be_neither_decided_nor_redeemed() {
    let w = world(&["--approval-ttl-secs", "1"]).await;
    let agent = w.server.agent(&w.admin, "developer").await;
    let (_, list) = w.server.get(&w.admin, "/v1/approvals").await;
    let id = list["approvals"][0]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = w
        .decide("bob", &id, "approve", json!({"reason": "late"}))
        .await;
    assert_error(status, &body, 409, "approval_expired");
    let (_, shown) = w.server.get(&w.admin, &format!("/v1/approvals/{id}")).await;
    assert_eq!(shown["status"], "expired");
    let (_, agent_now) = w
        .server
        .get(&w.admin, &format!("/v1/agents/{}", agent.id))
        .await;
    assert_eq!(agent_now["state"], "pending_approval");
}
