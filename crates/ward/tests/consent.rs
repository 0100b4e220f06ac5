//! Consent: scopes of features marked `consent: required` need the owner's
//! recorded consent, asked again when the scopes widen. Consent comes from
//! the owner signed in (or an admin acting for them with a reason), never
//! from the agent, and only for the scopes of the agent's profile;
//! withdrawing it revokes the tokens issued under it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use serde_json::{Value, json};

const DOCS: &str = "files:write:/home/alice/projects/docs/readme.md";

/// A server trusting a real OpenID provider, a tenant `acme` and its admin
/// token, and the people of the tests: alice (who owns the agents the
/// harness enrols, and holds no Ward role), bob (an approver of acme) and
/// mallory (who claims alice's email without the provider verifying it).
struct World {
    idp: Idp,
    server: Server,
    admin: String,
}

async fn world() -> World {
    let idp = Idp::start();
    let server = Server::trusting(&idp, &[]);
    let (_, admin) = server.tenant("acme").await;
    idp.user("alice", &[], false).await;
    idp.user("bob", &["ward:acme:approver"], true).await;
    let body = json!({"sub": "mallory", "email": "alice@example.com", "email_verified": false, "groups": []});
    let (status, answer) = send(
        idp.http
            .post(format!("{}/__test/users", idp.issuer))
            .json(&body),
    )
    .await;
    assert!(status == 200 || status == 201, "{answer}");
    World { idp, server, admin }
}

impl World {
    async fn as_user(&self, user: &str) -> String {
        self.idp.token(user, json!({})).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consented_scopes_are_granted_and_wider_ones_need_consent_again() {
    let w = world().await;
    let (server, admin) = (&w.server, &w.admin);
    let alice = w.as_user("alice").await;
    let agent = server.agent(admin, "writer").await;
    let docs = DOCS;
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
            &alice,
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
        .consent(
            &alice,
            &agent,
            &["files:write:/home/alice/projects/**"],
            "refused",
        )
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
        .get(admin, &format!("/v1/consents?agent={}", agent.id))
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
    let entries = server.audit(admin, "action=consent.record").await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["actor"], "user:alice@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_cannot_consent_for_itself() {
    let w = world().await;
    let agent = w.server.agent(&w.admin, "writer").await;
    let body = json!({"agent_id": agent.id, "scopes": ["files:write:/home/alice/projects/**"], "decision": "granted", "text_version": "1"});
    let proof = w.server.proof(&agent.key, "POST", "/v1/consents");
    let (status, answer) = send(
        w.server
            .request(reqwest::Method::POST, "/v1/consents")
            .header("DPoP", proof)
            .json(&body),
    )
    .await;
    assert_error(status, &answer, 401, "unauthenticated");

    let (status, token) = w
        .server
        .token(&agent, &["files:read:/home/alice/projects/x"])
        .await;
    assert_eq!(status, 200, "{token}");
    let token = token["token"].as_str().unwrap();
    let (status, answer) = w.server.post(token, "/v1/consents", body.clone()).await;
    assert_error(status, &answer, 401, "unauthenticated");
    let proof = w.server.proof(&agent.key, "POST", "/v1/consents");
    let (status, answer) = send(
        w.server
            .request(reqwest::Method::POST, "/v1/consents")
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
            .json(&body),
    )
    .await;
    assert_error(status, &answer, 401, "unauthenticated");

    let (_, list) = w
        .server
        .get(&w.admin, &format!("/v1/consents?agent={}", agent.id))
        .await;
    assert_eq!(list["consents"], json!([]), "nothing was recorded");
    let (status, body) = w.server.token(&agent, &[DOCS]).await;
    assert_error(status, &body, 403, "consent_required");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_owner_or_an_admin_of_the_agents_tenant_with_a_reason_records_consent() {
    let w = world().await;
    let agent = w.server.agent(&w.admin, "writer").await;
    let scopes = ["files:write:/home/alice/projects/**"];

    let (_, other_admin) = w.server.tenant("globex").await;
    let (status, foreign) = w
        .server
        .consent_for_owner(&other_admin, &agent, &scopes, "granted", "trust me")
        .await;
    assert_error(status, &foreign, 404, "not_found");
    let missing = Agent {
        id: "agt_0000000000000000000000000".into(),
        key: ward_auth::Keypair::generate().unwrap(),
        state: "active".into(),
    };
    let (status, absent) = w
        .server
        .consent_for_owner(&other_admin, &missing, &scopes, "granted", "trust me")
        .await;
    assert_error(status, &absent, 404, "not_found");
    assert_eq!(
        foreign["error"]["message"]
            .as_str()
            .unwrap()
            .replace(&agent.id, "ID"),
        absent["error"]["message"]
            .as_str()
            .unwrap()
            .replace(&missing.id, "ID"),
        "another tenant's agent answers like a missing one"
    );

    let mallory = w.as_user("mallory").await;
    let (status, answer) = w.server.consent(&mallory, &agent, &scopes, "granted").await;
    assert_error(status, &answer, 404, "not_found");
    let bob = w.as_user("bob").await;
    let (status, answer) = w.server.consent(&bob, &agent, &scopes, "granted").await;
    assert_error(status, &answer, 403, "forbidden");

    let (status, answer) = w.server.consent(&w.admin, &agent, &scopes, "granted").await;
    assert_error(status, &answer, 400, "invalid_field");
    assert_eq!(answer["error"]["field"], "reason");
    let (status, answer) = w
        .server
        .consent(&w.server.bootstrap, &agent, &scopes, "granted")
        .await;
    assert_error(status, &answer, 403, "tenant_required");

    let denied = w
        .server
        .audit(&w.admin, "action=consent.record")
        .await
        .into_iter()
        .filter(|e| e["result"] == "denied")
        .count();
    assert_eq!(
        denied, 5,
        "every refusal is on the agent's tenant's record, the foreign probe too"
    );

    let (status, recorded) = w
        .server
        .consent_for_owner(
            &w.admin,
            &agent,
            &scopes,
            "granted",
            "alice asked by phone, ticket 42",
        )
        .await;
    assert_eq!(status, 201, "{recorded}");
    assert_eq!(recorded["owner"], "alice@example.com");
    let entries = w.server.audit(&w.admin, "action=consent.record").await;
    let last = entries.last().unwrap();
    assert!(
        last["actor"].as_str().unwrap().starts_with("token:"),
        "{}",
        last
    );
    assert!(
        last["reason"].as_str().unwrap().contains("ticket 42"),
        "the admin's reason is recorded: {}",
        last
    );
    assert_eq!(last["details"]["recorded_by"], "admin");
    let (status, body) = w.server.token(&agent, &[DOCS]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_covers_only_the_scopes_of_the_agents_profile() {
    let w = world().await;
    let alice = w.as_user("alice").await;
    let agent = w.server.agent(&w.admin, "writer").await;
    for (scopes, field, named) in [
        (
            vec!["files:write:/home/alice/projects/**", "secrets:read:db/*"],
            "scopes[1]",
            "secrets:read:db/*",
        ),
        (
            vec!["files:write:/etc/**"],
            "scopes[0]",
            "files:write:/etc/**",
        ),
        (
            vec!["files:write:/home/**"],
            "scopes[0]",
            "files:write:/home/**",
        ),
    ] {
        let (status, answer) = w.server.consent(&alice, &agent, &scopes, "granted").await;
        assert_error(status, &answer, 403, "scope_not_allowed");
        assert_eq!(answer["error"]["field"], field);
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(named),
            "{answer}"
        );
    }
    let (status, answer) = w
        .server
        .consent(
            &alice,
            &agent,
            &["files:write:/home/alice/../bob/**"],
            "granted",
        )
        .await;
    assert_error(status, &answer, 400, "invalid_field");
    assert_eq!(answer["error"]["field"], "scopes[0]");
    let (status, answer) = w
        .server
        .consent(
            &alice,
            &agent,
            &["files:write:/home/alice/projects/**"],
            "maybe",
        )
        .await;
    assert_error(status, &answer, 400, "invalid_field");
    assert_eq!(answer["error"]["field"], "decision");

    let alice_upper = {
        w.idp.user("ALICE", &[], false).await;
        w.as_user("ALICE").await
    };
    let (status, answer) = w
        .server
        .consent(
            &alice_upper,
            &agent,
            &["files:write:/home/alice/projects/**"],
            "granted",
        )
        .await;
    assert_eq!(
        status, 201,
        "the owner's email compares case-insensitively: {answer}"
    );
}

fn revoked_agents(snapshot: &Value) -> Vec<String> {
    snapshot["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "agent")
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn withdrawing_consent_revokes_the_tokens_issued_under_it() {
    let w = world().await;
    let alice = w.as_user("alice").await;
    let agent = w.server.agent(&w.admin, "writer").await;
    let bystander = w.server.agent(&w.admin, "writer").await;
    let projects = "files:write:/home/alice/projects/**";
    for who in [&agent, &bystander] {
        let (status, body) = w.server.consent(&alice, who, &[projects], "granted").await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, issued) = w.server.token(&agent, &[DOCS]).await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["token"].as_str().unwrap().to_owned();
    let (status, kept) = w.server.token(&bystander, &[DOCS]).await;
    assert_eq!(status, 200, "{kept}");
    let kept = kept["token"].as_str().unwrap().to_owned();
    assert!(w.server.introspect(&w.admin, &token).await.0);

    let (status, body) = w
        .server
        .consent(
            &alice,
            &agent,
            &["files:write:/home/alice/projects/docs/**"],
            "granted",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (active, _) = w.server.introspect(&w.admin, &token).await;
    assert!(
        !active,
        "a narrower grant withdraws the rest: the token is revoked"
    );
    assert!(
        w.server.introspect(&w.admin, &kept).await.0,
        "another agent's tokens are untouched"
    );
    let (status, body) = w
        .server
        .token(&agent, &["files:write:/home/alice/projects/src/main.rs"])
        .await;
    assert_error(status, &body, 403, "consent_required");

    let (status, body) = w
        .server
        .consent(&alice, &agent, &[projects], "refused")
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = w.server.token(&agent, &[DOCS]).await;
    assert_error(status, &body, 403, "consent_required");

    let entries = w.server.audit(&w.admin, "action=consent.record").await;
    let revoked: Vec<bool> = entries
        .iter()
        .filter(|e| e["details"]["agent_id"] == agent.id.as_str())
        .map(|e| e["details"]["tokens_revoked"].as_bool().unwrap())
        .collect();
    assert_eq!(
        revoked,
        [false, true, true],
        "a narrower grant and a refusal withdraw; the first grant does not"
    );
    let (status, snapshot) = w.server.get(&w.admin, "/v1/watch/snapshot").await;
    assert_eq!(status, 200, "{snapshot}");
    let rules = revoked_agents(&snapshot);
    assert_eq!(
        rules,
        [agent.id.clone(), agent.id.clone()],
        "gateways receive the rules"
    );

    let (status, body) = w
        .server
        .consent(&alice, &bystander, &[projects], "granted")
        .await;
    assert_eq!(status, 201, "{body}");
    let entries = w.server.audit(&w.admin, "action=consent.record").await;
    assert_eq!(
        entries.last().unwrap()["details"]["tokens_revoked"],
        false,
        "granting the same again withdraws nothing"
    );
}
