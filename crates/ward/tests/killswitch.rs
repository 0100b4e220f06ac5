//! The kill switch at the broker and feature flags: who may flip them,
//! what they stop, and that every change is audited and survives restarts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use serde_json::json;

const READ: &str = "files:read:/home/alice/projects/x";
const WRITE: &str = "files:write:/home/alice/projects/x";

#[tokio::test(flavor = "multi_thread")]
async fn read_only_and_offline_switches_stop_tokens_at_every_scope() {
    let mut server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let (_, operator) = {
        let (status, body) = server
            .post(
                &server.bootstrap,
                "/v1/api-tokens",
                json!({"tenant": "acme", "role": "operator"}),
            )
            .await;
        assert_eq!(status, 201);
        (status, body["token"].as_str().unwrap().to_owned())
    };
    let agent = server.agent(&admin, "writer").await;
    let other = server.agent(&admin, "reader").await;
    server
        .consent_for_owner(
            &admin,
            &agent,
            &["files:write:/home/alice/projects/**"],
            "granted",
            "the owner agreed on the phone",
        )
        .await;
    assert_eq!(server.token(&agent, &[WRITE]).await.0, 200);

    let (status, body) = server.put(&operator,
        "/v1/killswitch",
        json!({"scope": "agent", "target": agent.id, "mode": "read-only", "reason": "odd writes"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.token(&agent, &[READ, WRITE]).await;
    assert_error(status, &body, 403, "kill_switch_read_only");
    assert_eq!(body["error"]["field"], "requested_scopes[1]");
    assert_eq!(
        server.token(&agent, &[READ]).await.0,
        200,
        "reads still pass"
    );
    assert_eq!(
        server.token(&other, &[READ]).await.0,
        200,
        "other agents are untouched"
    );

    let (status, _) = server
        .put(
            &operator,
            "/v1/killswitch",
            json!({"scope": "tenant", "mode": "offline", "reason": "incident 7"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = server.token(&other, &[READ]).await;
    assert_error(status, &body, 403, "kill_switch_offline");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("incident 7"),
        "{body}"
    );

    server.kill_and_restart();
    let (status, body) = server.token(&other, &[READ]).await;
    assert_error(status, &body, 403, "kill_switch_offline");

    let out = server.cli(&operator, &["admin", "killswitch", "status"]);
    let switches = stdout(&out)
        .lines()
        .filter(|line| !line.starts_with(' '))
        .count();
    assert_eq!(switches, 2, "one block per switch: {}", stdout(&out));
    let out = server.cli(
        &operator,
        &[
            "admin",
            "killswitch",
            "clear",
            "--scope",
            "tenant",
            "--reason",
            "contained",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.token(&other, &[READ]).await.0, 200);
    let (status, _) = server
        .put(
            &operator,
            "/v1/killswitch",
            json!({"scope": "agent", "target": agent.id, "mode": "normal", "reason": "cleared"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(server.token(&agent, &[WRITE]).await.0, 200);

    let changes = server.audit(&admin, "action=killswitch.set").await;
    let reasons: Vec<&str> = changes
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["odd writes", "incident 7", "contained", "cleared"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_operators_and_admins_flip_switches_and_global_ones_need_the_bootstrap_token() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let (_, other_admin) = server.tenant("globex").await;
    let (_, auditor) = {
        let (_, body) = server
            .post(
                &server.bootstrap,
                "/v1/api-tokens",
                json!({"tenant": "acme", "role": "auditor"}),
            )
            .await;
        (0, body["token"].as_str().unwrap().to_owned())
    };
    let agent = server.agent(&admin, "reader").await;
    let offline = json!({"scope": "tenant", "mode": "offline", "reason": "x"});
    let (status, body) = server
        .put(&auditor, "/v1/killswitch", offline.clone())
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server
        .put(
            &admin,
            "/v1/killswitch",
            json!({"scope": "global", "mode": "offline", "reason": "x"}),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server
        .put(
            &other_admin,
            "/v1/killswitch",
            json!({"scope": "agent", "target": agent.id, "mode": "offline", "reason": "x"}),
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server
        .put(
            &admin,
            "/v1/killswitch",
            json!({"scope": "tenant", "mode": "sleepy", "reason": "x"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "mode");
    let (status, body) = server
        .put(
            &admin,
            "/v1/killswitch",
            json!({"scope": "tenant", "mode": "offline"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_field");
    let (status, body) = server
        .put(
            &admin,
            "/v1/killswitch",
            json!({"scope": "agent", "mode": "offline", "reason": "x"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "target");

    let (status, _) = server
        .put(
            &server.bootstrap,
            "/v1/killswitch",
            json!({"scope": "global", "mode": "read-only", "reason": "fleet-wide drill"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = server
        .token(&agent, &["http:get:https://api.example.com/v1/weather/x"])
        .await;
    assert_eq!(status, 200, "`get` is a read action: {body}");
    let (_, list) = server.get(&other_admin, "/v1/killswitch").await;
    assert_eq!(
        list["switches"][0]["scope"], "global",
        "every tenant sees the global switch"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_are_set_per_tenant_or_for_everyone_and_audited() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let (_, other) = server.tenant("globex").await;
    let (status, body) = server
        .put(
            &admin,
            "/v1/flags/agent.safe-file-write",
            json!({"enabled": false, "scope": "tenant", "reason": "bad release"}),
        )
        .await;
    assert_eq!(
        (status, body["enabled"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    let (status, body) = server
        .put(
            &admin,
            "/v1/flags/agent.safe-file-write",
            json!({"enabled": false, "scope": "global", "reason": "x"}),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server
        .put(
            &admin,
            "/v1/flags/Bad%20Key",
            json!({"enabled": false, "scope": "tenant", "reason": "x"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_field");
    let (_, mine) = server.get(&admin, "/v1/flags").await;
    assert_eq!(mine["flags"].as_array().unwrap().len(), 1);
    let (_, theirs) = server.get(&other, "/v1/flags").await;
    assert_eq!(
        theirs["flags"],
        json!([]),
        "another tenant's flag is not visible"
    );
    let out = server.cli(
        &server.bootstrap,
        &[
            "admin",
            "flags",
            "set",
            "agent.safe-file-write",
            "on",
            "--scope",
            "global",
            "--reason",
            "fixed",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, theirs) = server.get(&other, "/v1/flags").await;
    assert_eq!(theirs["flags"][0]["enabled"], true);
    assert_eq!(server.audit(&admin, "action=flag.set").await.len(), 1);
}
