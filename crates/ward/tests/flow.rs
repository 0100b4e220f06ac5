//! The whole flow through the CLI and the HTTP API: tenants, enrolment,
//! lifecycle, tokens, introspection, revocation, audit.
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
async fn the_whole_flow_works_through_the_cli() {
    let server = Server::start();
    let out = server.cli(&server.bootstrap, &["admin", "tenants", "create", "acme"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("created tenant acme (ten_"),
        "{}",
        stdout(&out)
    );

    let out = server.cli(
        &server.bootstrap,
        &[
            "admin",
            "api-tokens",
            "create",
            "--tenant",
            "acme",
            "--role",
            "admin",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let admin = stdout(&out).trim().to_owned();
    assert!(admin.starts_with("ward_at_"), "{admin}");

    let out = server.cli(
        &admin,
        &[
            "admin",
            "enroll-token",
            "create",
            "--owner",
            "alice@example.com",
            "--profile",
            "reader",
            "--ttl",
            "15m",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let enroll_token = stdout(&out).trim().to_owned();

    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("laptop");
    let out = server.cli(
        &admin,
        &[
            "agent",
            "enroll",
            "--server",
            &server.url,
            "--enroll-token",
            &enroll_token,
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let agent: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(agent["state"], "active");
    assert_eq!(
        agent["device"]["host_id"].as_str().map(str::is_empty),
        Some(false)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(state_dir.join("device.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let out = server.cli(
        &admin,
        &[
            "agent",
            "token",
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--scope",
            "files:read:/home/alice/projects/notes.md",
            "--duration",
            "120",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let granted: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(granted["token_type"], "DPoP");
    assert_eq!(granted["expires_in"], 120);
    assert_eq!(
        granted["scopes"],
        json!(["files:read:/home/alice/projects/notes.md"])
    );
    let token = granted["token"].as_str().unwrap().to_owned();

    let out = server.cli(&admin, &["admin", "tokens", "introspect", &token, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let introspection: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(introspection["active"], true);
    assert_eq!(introspection["sub"], agent["id"]);
    assert_eq!(introspection["cnf"]["jkt"], agent["device_jkt"]);
    assert_eq!(introspection["device_id"], agent["device"]["host_id"]);
    let jti = introspection["jti"].as_str().unwrap().to_owned();

    let out = server.cli(
        &admin,
        &[
            "admin",
            "tokens",
            "revoke",
            "--jti",
            &jti,
            "--reason",
            "laptop lost",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&admin, &["admin", "tokens", "introspect", &token, "--json"]);
    let introspection: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(introspection, json!({"active": false}));

    let out = server.cli(&admin, &["admin", "agents", "list", "--json"]);
    let agents: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(agents.as_array().unwrap().len(), 1);

    let out = server.cli(
        &admin,
        &["audit", "list", "--action", "token.issue", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let entries: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["target"], jti.as_str());
    assert_eq!(entries[0]["result"], "success");
    assert_eq!(
        entries[0]["details"]["grants"][0]["feature"],
        "read-projects"
    );

    let out = server.cli(
        &admin,
        &[
            "audit",
            "verify",
            "--data-dir",
            server.data_dir().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("audit chain intact: "),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_errors_are_one_line_with_a_non_zero_exit() {
    let server = Server::start();
    let out = server.cli("ward_at_wrong", &["admin", "agents", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "error: unknown or revoked API token (unauthenticated, HTTP 401)"
    );
    let out = server.cli(
        &server.bootstrap,
        &[
            "admin",
            "enroll-token",
            "create",
            "--owner",
            "a@b.co",
            "--profile",
            "reader",
            "--ttl",
            "soon",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "error: `soon` is not a duration; use e.g. `900`, `15m`, `2h`"
    );
    let out = server.cli(&server.bootstrap, &["admin", "agents", "show"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_high_risk_profile_waits_for_approval_and_cannot_be_activated_around_it() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "developer").await;
    assert_eq!(agent.state, "pending_approval");
    let (status, body) = server.token(&agent, &["exec:run:/usr/bin/git"]).await;
    assert_error(status, &body, 403, "agent_not_active");

    let (status, body) = server
        .post(
            &admin,
            &format!("/v1/agents/{}/activate", agent.id),
            json!({"reason": "trust me"}),
        )
        .await;
    assert_error(status, &body, 409, "approval_required");
    let approval = body["error"]["approval_id"].as_str().unwrap();
    let (status, shown) = server
        .get(&admin, &format!("/v1/approvals/{approval}"))
        .await;
    assert_eq!(
        (status, shown["status"].as_str()),
        (200, Some("pending")),
        "{shown}"
    );

    let refused = server
        .audit(&admin, &format!("action=agent.activate&agent={}", agent.id))
        .await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["result"], "denied");
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_refuses_illegal_transitions_and_quarantine_kills_tokens() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let (status, granted) = server
        .token(&agent, &["files:read:/home/alice/projects/a"])
        .await;
    assert_eq!(status, 200, "{granted}");
    let token = granted["token"].as_str().unwrap();

    let path = |action: &str| format!("/v1/agents/{}/{action}", agent.id);
    let reason = json!({"reason": "incident 42"});
    let (status, body) = server.post(&admin, &path("activate"), reason.clone()).await;
    assert_error(status, &body, 409, "illegal_transition");
    assert_eq!(
        body["error"]["message"],
        "cannot activate an agent that is active"
    );

    let (status, body) = server
        .post(&admin, &path("quarantine"), reason.clone())
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("quarantined")),
        "{body}"
    );
    assert!(
        !server.introspect(&admin, token).await.0,
        "quarantine revokes issued tokens"
    );
    let (status, body) = server
        .token(&agent, &["files:read:/home/alice/projects/a"])
        .await;
    assert_error(status, &body, 403, "agent_not_active");

    let (status, body) = server.post(&admin, &path("activate"), reason.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .token(&agent, &["files:read:/home/alice/projects/a"])
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, _) = server.post(&admin, &path("revoke"), reason.clone()).await;
    assert_eq!(status, 200);
    let (status, body) = server
        .post(&admin, &path("quarantine"), reason.clone())
        .await;
    assert_error(status, &body, 409, "illegal_transition");
    let (status, body) = server
        .post(&admin, &path("uninstall"), reason.clone())
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("uninstalled")),
        "{body}"
    );
    let (status, body) = server.post(&admin, &path("activate"), reason).await;
    assert_error(status, &body, 409, "illegal_transition");

    let (status, body) = server
        .post(&admin, &path("quarantine"), json!({"reason": ""}))
        .await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "reason");

    let denied = server
        .audit(&admin, &format!("agent={}&action=agent.activate", agent.id))
        .await;
    assert_eq!(denied.iter().filter(|e| e["result"] == "denied").count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn other_tenants_ids_answer_404_and_their_tokens_are_inactive() {
    let server = Server::start();
    let (_, admin_a) = server.tenant("acme").await;
    let (_, admin_b) = server.tenant("globex").await;
    let agent = server.agent(&admin_a, "reader").await;
    let (_, granted) = server
        .token(&agent, &["files:read:/home/alice/projects/a"])
        .await;
    let token = granted["token"].as_str().unwrap();

    let (status, body) = server
        .get(&admin_b, &format!("/v1/agents/{}", agent.id))
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, missing) = server.get(&admin_b, "/v1/agents/agt_doesnotexist").await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .replace(&agent.id, "X"),
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .replace("agt_doesnotexist", "X"),
        "a foreign id and a missing id answer alike"
    );
    for action in ["activate", "quarantine", "revoke", "uninstall"] {
        let (status, body) = server
            .post(
                &admin_b,
                &format!("/v1/agents/{}/{action}", agent.id),
                json!({"reason": "x"}),
            )
            .await;
        assert_error(status, &body, 404, "not_found");
    }
    assert!(!server.introspect(&admin_b, token).await.0);
    assert!(server.introspect(&admin_a, token).await.0);
    let jti = server.introspect(&admin_a, token).await.1["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = server
        .post(
            &admin_b,
            "/v1/tokens/revoke",
            json!({"jti": jti, "reason": "x"}),
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server
        .post(
            &admin_b,
            "/v1/tokens/revoke",
            json!({"agent_id": agent.id, "reason": "x"}),
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    assert!(
        server.introspect(&admin_a, token).await.0,
        "nothing was revoked"
    );
    assert!(
        server
            .audit(&admin_b, &format!("agent={}", agent.id))
            .await
            .is_empty()
    );
    let (_, agents) = server.get(&admin_b, "/v1/agents").await;
    assert_eq!(agents["agents"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn enrolment_tokens_are_single_use_and_expire() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let enroll_token = server.enroll_token(&admin, "reader").await;
    let (status, _) = server
        .enroll_with(&enroll_token, &ward_auth::Keypair::generate().unwrap())
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .enroll_with(&enroll_token, &ward_auth::Keypair::generate().unwrap())
        .await;
    assert_error(status, &body, 401, "enroll_token_used");

    let (status, body) = server
        .post(
            &admin,
            "/v1/enroll-tokens",
            json!({"owner": "bob@example.com", "profile": "reader", "ttl_seconds": 1}),
        )
        .await;
    assert_eq!(status, 201);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = server
        .enroll_with(
            body["token"].as_str().unwrap(),
            &ward_auth::Keypair::generate().unwrap(),
        )
        .await;
    assert_error(status, &body, 401, "enroll_token_expired");

    let (status, body) = server
        .enroll_with("ward_et_made_up", &ward_auth::Keypair::generate().unwrap())
        .await;
    assert_error(status, &body, 401, "invalid_enroll_token");

    let (status, body) = server
        .post(
            &admin,
            "/v1/enroll-tokens",
            json!({"owner": "bob@example.com", "profile": "root"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "profile");
    let (status, body) = server
        .post(
            &admin,
            "/v1/enroll-tokens",
            json!({"owner": "not-an-email", "profile": "reader"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "owner");

    let denials = server.audit(&admin, "action=agent.enroll").await;
    assert_eq!(
        denials.iter().filter(|e| e["result"] == "denied").count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_enrolments_with_one_token_enrol_exactly_one_agent() {
    let server = std::sync::Arc::new(Server::start());
    let (_, admin) = server.tenant("acme").await;
    let enroll_token = server.enroll_token(&admin, "reader").await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let server = server.clone();
        let enroll_token = enroll_token.clone();
        tasks.push(tokio::spawn(async move {
            server
                .enroll_with(&enroll_token, &ward_auth::Keypair::generate().unwrap())
                .await
                .0
        }));
    }
    let mut created = 0;
    for task in tasks {
        if task.await.unwrap() == 201 {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    let (_, agents) = server.get(&admin, "/v1/agents").await;
    assert_eq!(agents["agents"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_bootstrap_token_manages_tenants_and_it_acts_in_no_tenant() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let (status, body) = server
        .post(&admin, "/v1/tenants", json!({"name": "evil"}))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server
        .post(
            &admin,
            "/v1/api-tokens",
            json!({"tenant": "acme", "role": "admin"}),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server.post(&admin, "/v1/keys/rotate", json!({})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server.get(&server.bootstrap, "/v1/agents").await;
    assert_error(status, &body, 403, "tenant_required");
    let (status, body) = server
        .post(&server.bootstrap, "/v1/tenants", json!({"name": "acme"}))
        .await;
    assert_error(status, &body, 409, "conflict");
    let (status, body) = server
        .post(
            &server.bootstrap,
            "/v1/tenants",
            json!({"name": "Bad Name"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_field");
    let (status, body) = server
        .post(
            &server.bootstrap,
            "/v1/api-tokens",
            json!({"tenant": "acme", "role": "root"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "role");
    let (_, tenants) = server.get(&admin, "/v1/tenants").await;
    assert_eq!(
        tenants["tenants"].as_array().unwrap().len(),
        1,
        "a tenant admin sees only its tenant"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_list_paginates_and_filters() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    for _ in 0..5 {
        server.agent(&admin, "reader").await;
    }
    server.agent(&admin, "developer").await;
    let (_, page) = server.get(&admin, "/v1/agents?limit=2").await;
    assert_eq!(page["agents"].as_array().unwrap().len(), 2);
    let mut seen = page["agents"].as_array().unwrap().len();
    let mut cursor = page["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let (_, page) = server
            .get(&admin, &format!("/v1/agents?limit=2&cursor={cursor}"))
            .await;
        seen += page["agents"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, 6);
    let (_, pending) = server
        .get(&admin, "/v1/agents?state=pending_approval")
        .await;
    assert_eq!(pending["agents"].as_array().unwrap().len(), 1);
    let (status, body) = server.get(&admin, "/v1/agents?state=sleeping").await;
    assert_error(status, &body, 400, "invalid_field");
    let (status, body) = server.get(&admin, "/v1/agents?limit=0").await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "limit");
    let (status, body) = server.get(&admin, "/v1/agents?colour=red").await;
    assert_error(status, &body, 400, "invalid_field");
}
