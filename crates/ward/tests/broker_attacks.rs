//! The token broker and introspection as an attacker would try them:
//! forged, expired, replayed, wrong-device and revoked tokens and proofs,
//! and scopes that try to escape the profile.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::json;
use ward_auth::Keypair;

const READ: &str = "files:read:/home/alice/projects/notes.md";

async fn setup() -> (Server, String, Agent) {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    (server, admin, agent)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_token_carries_the_documented_claims() {
    let (server, _, agent) = setup().await;
    let (status, body) = server
        .token(
            &agent,
            &[
                READ,
                "http:get:https://API.example.com:443/v1/weather/paris",
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["scopes"],
        json!([READ, "http:get:https://api.example.com/v1/weather/paris"]),
        "scopes come back normalised"
    );
    assert_eq!(body["expires_in"], 900, "default lifetime is 15 minutes");
    let token = body["token"].as_str().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let (_, jwks) = server.get("", "/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    for claim in [
        "sub",
        "scopes",
        "exp",
        "iat",
        "nbf",
        "iss",
        "jti",
        "tenant",
        "device_id",
        "agent_version",
        "owner",
    ] {
        assert!(!claims[claim].is_null(), "missing claim {claim}: {claims}");
    }
    assert_eq!(claims["sub"], agent.id.as_str());
    assert_eq!(claims["iss"], server.url.as_str());
    assert_eq!(claims["agent_version"], "1.4.0");
    assert_eq!(claims["device_id"], "host-77");
    assert_eq!(claims["cnf"]["jkt"], agent.key.public_jwk().thumbprint());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lifetimes_are_capped_and_zero_is_refused() {
    let server = Server::start_with(&["--max-token-secs", "600"]);
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let proof = server.proof(&agent.key, "POST", "/v1/tokens");
    let body =
        json!({"agent_id": agent.id, "requested_scopes": [READ], "requested_duration": 86400});
    let (status, granted) = send(
        server
            .request(reqwest::Method::POST, "/v1/tokens")
            .header("DPoP", proof)
            .json(&body),
    )
    .await;
    assert_eq!(
        (status, granted["expires_in"].as_u64()),
        (200, Some(600)),
        "{granted}"
    );
    let proof = server.proof(&agent.key, "POST", "/v1/tokens");
    let body = json!({"agent_id": agent.id, "requested_scopes": [READ], "requested_duration": 0});
    let (status, error) = send(
        server
            .request(reqwest::Method::POST, "/v1/tokens")
            .header("DPoP", proof)
            .json(&body),
    )
    .await;
    assert_error(status, &error, 400, "invalid_field");
    assert_eq!(error["error"]["field"], "requested_duration");
}

#[tokio::test(flavor = "multi_thread")]
async fn dpop_proofs_are_checked_like_rfc_9449_says() {
    let (server, admin, agent) = setup().await;

    let (status, body) = send(
        server
            .request(reqwest::Method::POST, "/v1/tokens")
            .json(&json!({"agent_id": agent.id, "requested_scopes": [READ]})),
    )
    .await;
    assert_error(status, &body, 401, "invalid_dpop_proof");

    let stranger = Keypair::generate().unwrap();
    let proof = server.proof(&stranger, "POST", "/v1/tokens");
    let (status, body) = server.token_with_proof(&agent.id, &proof, &[READ]).await;
    assert_error(status, &body, 401, "dpop_key_mismatch");

    let proof = server.proof(&agent.key, "POST", "/v1/tokens");
    let (status, _) = server.token_with_proof(&agent.id, &proof, &[READ]).await;
    assert_eq!(status, 200);
    let (status, body) = server.token_with_proof(&agent.id, &proof, &[READ]).await;
    assert_error(status, &body, 401, "dpop_replay");

    let proof = server.proof(&agent.key, "POST", "/v1/tokens/introspect");
    let (status, body) = server.token_with_proof(&agent.id, &proof, &[READ]).await;
    assert_error(status, &body, 401, "dpop_url_mismatch");
    let proof = server.proof(&agent.key, "POST", "/v1/../v1/tokens");
    let (status, body) = server.token_with_proof(&agent.id, &proof, &[READ]).await;
    assert_error(status, &body, 401, "dpop_url_mismatch");
    let jti = ward_auth::dpop::new_jti().unwrap();
    let elsewhere = ward_auth::dpop::create_proof(
        &agent.key,
        "POST",
        "http://evil.example/v1/tokens",
        now(),
        &jti,
        None,
    )
    .unwrap();
    let (status, body) = server
        .token_with_proof(&agent.id, &elsewhere, &[READ])
        .await;
    assert_error(status, &body, 401, "dpop_url_mismatch");

    let proof = server.proof(&agent.key, "GET", "/v1/tokens");
    let (status, body) = server.token_with_proof(&agent.id, &proof, &[READ]).await;
    assert_error(status, &body, 401, "dpop_method_mismatch");

    let jti = ward_auth::dpop::new_jti().unwrap();
    let stale = ward_auth::dpop::create_proof(
        &agent.key,
        "POST",
        &format!("{}/v1/tokens", server.url),
        now() - 600,
        &jti,
        None,
    )
    .unwrap();
    let (status, body) = server.token_with_proof(&agent.id, &stale, &[READ]).await;
    assert_error(status, &body, 401, "dpop_proof_expired");

    // The last base64url character of a 64-byte signature carries its two
    // top bits: swap it for one with other top bits (and canonical low bits).
    let mut forged = server.proof(&agent.key, "POST", "/v1/tokens");
    let last = forged.pop().unwrap();
    forged.push(if ('A'..='P').contains(&last) {
        'w'
    } else {
        'A'
    });
    let (status, body) = server.token_with_proof(&agent.id, &forged, &[READ]).await;
    assert_error(status, &body, 401, "bad_signature");

    let (status, body) = server
        .token_with_proof(
            "agt_nobody",
            &server.proof(&agent.key, "POST", "/v1/tokens"),
            &[READ],
        )
        .await;
    assert_error(status, &body, 401, "invalid_client");

    let proof = server.proof(&agent.key, "POST", "/v1/tokens");
    let (status, body) = send(
        server
            .request(reqwest::Method::POST, "/v1/tokens")
            .header("DPoP", &proof)
            .header("DPoP", &proof)
            .json(&json!({"agent_id": agent.id, "requested_scopes": [READ]})),
    )
    .await;
    assert_error(status, &body, 401, "invalid_dpop_proof");

    let denials = server.audit(&admin, "action=token.issue").await;
    let denied: Vec<_> = denials.iter().filter(|e| e["result"] == "denied").collect();
    assert!(
        denied.len() >= 8,
        "every refused request is audited: {denials:?}"
    );
    assert!(
        denied
            .iter()
            .any(|e| e["reason"].as_str().unwrap().starts_with("dpop_replay: "))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proof_made_before_a_restart_cannot_be_replayed_after_it() {
    let (mut server, _, agent) = setup().await;
    let proof = server.proof(&agent.key, "POST", "/v1/tokens");
    let (status, _) = server.token_with_proof(&agent.id, &proof, &[READ]).await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    server.kill_and_restart();
    let (status, body) = server.token_with_proof(&agent.id, &proof, &[READ]).await;
    assert_error(status, &body, 401, "dpop_proof_expired");
    let (status, body) = server.token(&agent, &[READ]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_outside_the_profile_are_refused_by_name() {
    let (server, _, agent) = setup().await;
    let refused = [
        (
            "files:write:/home/alice/projects/notes.md",
            403,
            "scope_not_allowed",
        ),
        (
            "files:read:/home/alice/projects/../../../etc/passwd",
            400,
            "invalid_field",
        ),
        (
            "files:read:/home/alice/projects/%2e%2e/%2e%2e/etc/passwd",
            400,
            "invalid_field",
        ),
        (
            "files:read:/home/alice/projects/a%2Fb",
            400,
            "invalid_field",
        ),
        (
            "files:read:/home/alice/../bob/projects/x",
            400,
            "invalid_field",
        ),
        ("files:read:/etc//passwd", 403, "scope_not_allowed"),
        ("files:read:/home/alice/**", 403, "scope_not_allowed"),
        ("files:read:/**", 403, "scope_not_allowed"),
        ("files:*:/home/alice/projects/x", 403, "scope_not_allowed"),
        ("*:read:/home/alice/projects/x", 403, "scope_not_allowed"),
        ("secrets:read:db/main", 403, "scope_not_allowed"),
        (
            "http:get:https://api.example.com/v1/admin/users",
            403,
            "scope_not_allowed",
        ),
        (
            "http:get:https://api.example.com.evil.example/v1/weather/x",
            403,
            "scope_not_allowed",
        ),
        (
            "http:get:https://api.example.com/v1/weather/../admin",
            400,
            "invalid_field",
        ),
        ("not-a-scope", 400, "invalid_field"),
    ];
    for (scope, status_wanted, code) in refused {
        let (status, body) = server.token(&agent, &[READ, scope]).await;
        assert_error(status, &body, status_wanted, code);
        assert_eq!(
            body["error"]["field"], "requested_scopes[1]",
            "{scope}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains('`'),
            "{body}"
        );
    }
    let allowed = [
        "files:read:/home/alice//projects/a/b/c.txt",
        "files:read:/home/alice/projects/*",
        "files:read:/home/alice/projects/**",
        "files:list:/home/alice/projects/src",
    ];
    for scope in allowed {
        let (status, body) = server.token(&agent, &[scope]).await;
        assert_eq!(status, 200, "{scope}: {body}");
    }
    let (status, body) = server.token(&agent, &[]).await;
    assert_error(status, &body, 400, "invalid_field");
    let many: Vec<String> = (0..33)
        .map(|i| format!("files:read:/home/alice/projects/{i}"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let (status, body) = server.token(&agent, &many).await;
    assert_error(status, &body, 400, "invalid_field");
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_expired_tokens_introspect_inactive() {
    let (server, admin, agent) = setup().await;
    let proof = server.proof(&agent.key, "POST", "/v1/tokens");
    let body = json!({"agent_id": agent.id, "requested_scopes": [READ], "requested_duration": 1});
    let (_, granted) = send(
        server
            .request(reqwest::Method::POST, "/v1/tokens")
            .header("DPoP", proof)
            .json(&body),
    )
    .await;
    let short = granted["token"].as_str().unwrap().to_owned();
    let (_, granted) = server.token(&agent, &[READ]).await;
    let token = granted["token"].as_str().unwrap().to_owned();
    assert!(server.introspect(&admin, &token).await.0);

    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scopes"] = json!(["files:read:/**"]);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert!(
        !server.introspect(&admin, &tampered).await.0,
        "changed claims break the signature"
    );

    let attacker = Keypair::generate().unwrap();
    let mut header = serde_json::Map::new();
    header.insert(
        "kid".into(),
        json!(server.get("", "/.well-known/jwks.json").await.1["keys"][0]["kid"]),
    );
    let self_signed = ward_auth::jws::sign(&attacker, &header, &claims).unwrap();
    assert!(
        !server.introspect(&admin, &self_signed).await.0,
        "a token signed by another key is inactive"
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"x"}"#),
        parts[1]
    );
    assert!(!server.introspect(&admin, &none).await.0);
    assert!(!server.introspect(&admin, "garbage").await.0);

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(
        !server.introspect(&admin, &short).await.0,
        "an expired token is inactive"
    );

    let (status, body) = send(
        server
            .request(reqwest::Method::POST, "/v1/tokens/introspect")
            .bearer_auth(&admin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}&token_type_hint=access_token")),
    )
    .await;
    assert_eq!(
        (status, body["active"].as_bool()),
        (200, Some(true)),
        "RFC 7662 form encoding works: {body}"
    );
    let (status, body) = send(
        server
            .request(reqwest::Method::POST, "/v1/tokens/introspect")
            .json(&json!({"token": token})),
    )
    .await;
    assert_error(status, &body, 401, "unauthenticated");
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_by_agent_and_by_scope_prefix_takes_effect_at_once() {
    let (server, admin, agent) = setup().await;
    let other = server.agent(&admin, "reader").await;
    let (_, a) = server.token(&agent, &[READ]).await;
    let (_, b) = server
        .token(&other, &["http:get:https://api.example.com/v1/weather/x"])
        .await;
    let (_, c) = server.token(&other, &[READ]).await;
    let (a, b, c) = (
        a["token"].as_str().unwrap(),
        b["token"].as_str().unwrap(),
        c["token"].as_str().unwrap(),
    );

    let (status, body) = server
        .post(
            &admin,
            "/v1/tokens/revoke",
            json!({"agent_id": agent.id, "reason": "lost laptop"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(!server.introspect(&admin, a).await.0);
    assert!(server.introspect(&admin, b).await.0);

    let (status, body) = server
        .post(
            &admin,
            "/v1/tokens/revoke",
            json!({"scope_prefix": "http:", "reason": "api incident"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(!server.introspect(&admin, b).await.0);
    assert!(
        server.introspect(&admin, c).await.0,
        "tokens without the prefix stay active"
    );

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, fresh) = server.token(&agent, &[READ]).await;
    assert_eq!(
        status, 200,
        "agent revocation of tokens does not disable the agent"
    );
    assert!(
        server
            .introspect(&admin, fresh["token"].as_str().unwrap())
            .await
            .0,
        "tokens issued after the revocation are active"
    );

    let (status, body) = server
        .post(
            &admin,
            "/v1/tokens/revoke",
            json!({"jti": "x", "agent_id": agent.id, "reason": "both"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_field");
    let (status, body) = server
        .post(&admin, "/v1/tokens/revoke", json!({"reason": "none"}))
        .await;
    assert_error(status, &body, 400, "invalid_field");
    let revocations = server.audit(&admin, "action=token.revoke").await;
    assert_eq!(revocations.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_keeps_old_tokens_verifiable_and_signs_new_ones_with_the_new_key() {
    let (server, admin, agent) = setup().await;
    let (_, before) = server.token(&agent, &[READ]).await;
    let before = before["token"].as_str().unwrap();
    let out = server.cli(&server.bootstrap, &["admin", "keys", "rotate", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rotated: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (_, jwks) = server.get("", "/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        vec![
            rotated["kid"].as_str().unwrap(),
            rotated["previous_kid"].as_str().unwrap()
        ]
    );
    assert!(
        server.introspect(&admin, before).await.0,
        "tokens signed by the old key stay valid"
    );
    let (_, after) = server.token(&agent, &[READ]).await;
    let after = after["token"].as_str().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(after.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], rotated["kid"]);
    assert!(server.introspect(&admin, after).await.0);
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_keys_survive_a_restart() {
    let (mut server, admin, agent) = setup().await;
    let (_, before) = server.token(&agent, &[READ]).await;
    let out = server.cli(&server.bootstrap, &["admin", "keys", "rotate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    server.kill_and_restart();
    let (_, jwks) = server.get("", "/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert!(
        server
            .introspect(&admin, before["token"].as_str().unwrap())
            .await
            .0
    );
    let (status, _) = server.token(&agent, &[READ]).await;
    assert_eq!(status, 200);
}
