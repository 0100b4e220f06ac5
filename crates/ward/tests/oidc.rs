//! People signing in with a real OpenID provider (npm `oidc-provider`):
//! accepted tokens, and every way a token is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use serde_json::json;

async fn setup() -> (Idp, Server) {
    let idp = Idp::start();
    let server = Server::trusting(&idp, &[]);
    server.tenant("acme").await;
    server.tenant("globex").await;
    (idp, server)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_token_acts_with_the_roles_its_groups_grant() {
    let (idp, server) = setup().await;
    idp.user("alice", &["ward:acme:admin", "unrelated-group"], false)
        .await;
    let token = idp.token("alice", json!({})).await;
    let (status, body) = server
        .post(
            &token,
            "/v1/enroll-tokens",
            json!({"owner": "bob@example.com", "profile": "reader"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let entries = server.audit(&token, "action=enroll_token.create").await;
    assert_eq!(entries[0]["actor"], "user:alice@example.com");

    idp.user("carol", &["ward:acme:auditor"], false).await;
    let auditor = idp.token("carol", json!({})).await;
    let (status, body) = server
        .post(
            &auditor,
            "/v1/enroll-tokens",
            json!({"owner": "bob@example.com", "profile": "reader"}),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = server.get(&auditor, "/v1/audit").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_refused_for_the_wrong_audience_expiry_or_missing_roles() {
    let (idp, server) = setup().await;
    idp.user("alice", &["ward:acme:admin"], false).await;
    idp.user("nobody", &[], false).await;
    idp.user("eve", &["ward:globex:admin"], false).await;

    let wrong_audience = idp.token("alice", json!({"audience": "another-api"})).await;
    let (status, body) = server.get(&wrong_audience, "/v1/agents").await;
    assert_error(status, &body, 401, "unauthenticated");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("audience"),
        "{body}"
    );

    let expired = idp.token("alice", json!({"ttl": -120})).await;
    let (status, body) = server.get(&expired, "/v1/agents").await;
    assert_error(status, &body, 401, "unauthenticated");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );

    let no_group = idp.token("nobody", json!({})).await;
    let (status, body) = server.get(&no_group, "/v1/agents").await;
    assert_error(status, &body, 403, "no_role");

    let other_tenant = idp.token("eve", json!({})).await;
    let (status, body) = send(
        server
            .request(reqwest::Method::GET, "/v1/agents")
            .bearer_auth(&other_tenant)
            .header("x-ward-tenant", "acme"),
    )
    .await;
    assert_error(status, &body, 403, "no_role");
    let (status, _) = server.get(&other_tenant, "/v1/agents").await;
    assert_eq!(status, 200, "eve acts in globex, where she is admin");

    let (_, granted) = {
        let admin = idp.token("alice", json!({})).await;
        let agent = server.agent(&admin, "reader").await;
        let (status, body) = server
            .get(&other_tenant, &format!("/v1/agents/{}", agent.id))
            .await;
        assert_error(status, &body, 404, "not_found");
        server
            .token(&agent, &["files:read:/home/a/projects/x"])
            .await
    };
    assert!(
        !server
            .introspect(&other_tenant, granted["token"].as_str().unwrap())
            .await
            .0
    );

    let mut forged = idp.token("alice", json!({})).await;
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let (status, body) = server.get(&forged, "/v1/agents").await;
    assert_error(status, &body, 401, "unauthenticated");

    // `alg: none` on a sign-in token: the refusal names the algorithms the
    // sign-in verifier accepts, not those of Ward's own tokens.
    use base64::Engine as _;
    let real = idp.token("alice", json!({})).await;
    let payload = real.split('.').nth(1).unwrap();
    let header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
    let (status, body) = server
        .get(&format!("{header}.{payload}."), "/v1/agents")
        .await;
    assert_error(status, &body, 401, "unauthenticated");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`none`") && message.contains("`RS256`, `ES256` or `EdDSA`"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotated_at_the_provider_are_picked_up_and_unknown_keys_refused() {
    let (mut idp, server) = setup().await;
    idp.user("alice", &["ward:acme:admin"], false).await;
    let before = idp.token("alice", json!({})).await;
    let (status, _) = server.get(&before, "/v1/agents").await;
    assert_eq!(status, 200);

    idp.restart(&["--rotate"]);
    idp.user("alice", &["ward:acme:admin"], false).await;
    let after = idp.token("alice", json!({})).await;
    let (status, body) = server.get(&after, "/v1/agents").await;
    assert_eq!(
        status, 200,
        "a token from the new key is accepted after a JWKS refresh: {body}"
    );
    let (status, _) = server.get(&before, "/v1/agents").await;
    assert_eq!(status, 200, "the old key is still published");

    idp.restart(&["--retire-old"]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = server.get(&before, "/v1/agents").await;
    assert_error(status, &body, 401, "unauthenticated");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown"),
        "a retired key no longer verifies: {body}"
    );

    // A key the provider signs with once but never publishes again.
    let published = std::fs::read_to_string(&idp.keys).unwrap();
    idp.restart(&["--rotate"]);
    idp.user("alice", &["ward:acme:admin"], false).await;
    let unpublished = idp.token("alice", json!({})).await;
    std::fs::write(&idp.keys, published).unwrap();
    idp.restart(&[]);
    let (status, body) = server.get(&unpublished, "/v1/agents").await;
    assert_error(status, &body, 401, "unauthenticated");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown"),
        "{body}"
    );
    let (status, _) = server.get(&after, "/v1/agents").await;
    assert_eq!(status, 200, "tokens of the published key still work");
}

#[tokio::test(flavor = "multi_thread")]
async fn ward_login_runs_the_device_flow_and_the_cli_uses_the_token() {
    let (idp, server) = setup().await;
    idp.user("alice", &["ward:acme:operator"], true).await;
    let home = tempfile::tempdir().unwrap();
    let credentials = home.path().join("credentials.json");
    let mut login = std::process::Command::new(ward_bin())
        .args(["login", "--server", &server.url])
        .env("WARD_CREDENTIALS", &credentials)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut stderr = std::io::BufReader::new(login.stderr.take().unwrap()).lines();
    let prompt = stderr.next().unwrap().unwrap();
    let user_code = prompt.rsplit(' ').next().unwrap().to_owned();
    assert!(prompt.starts_with("To sign in, open http"), "{prompt}");
    idp.approve_device(&user_code, "alice").await;
    let output = login.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&credentials)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let out = std::process::Command::new(ward_bin())
        .args(["admin", "agents", "list", "--json", "--server", &server.url])
        .env("WARD_CREDENTIALS", &credentials)
        .env_remove("WARD_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert_eq!(stdout(&out).trim(), "[]");
    let out = std::process::Command::new(ward_bin())
        .args([
            "admin",
            "enroll-token",
            "create",
            "--owner",
            "a@b.co",
            "--profile",
            "reader",
            "--server",
            &server.url,
        ])
        .env("WARD_CREDENTIALS", &credentials)
        .env_remove("WARD_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "an operator cannot enrol");
    assert!(
        stderr_text(&out).contains("do not allow you to create enrolment tokens"),
        "{}",
        stderr_text(&out)
    );
}

fn stderr_text(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_reads_its_settings_from_a_config_file_and_flags_win() {
    let idp = Idp::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ward.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: data\nmax_token_secs: 120\noidc:\n  issuer: {}\n  audience: ward\n  client_id: from-file\n",
            idp.issuer
        ),
    )
    .unwrap();
    let server = Server::start_with(&[
        "--config",
        config.to_str().unwrap(),
        "--max-token-secs",
        "60",
    ]);
    let (_, auth) = server.get("", "/v1/auth/config").await;
    assert_eq!(auth["oidc"]["issuer"], idp.issuer.as_str());
    assert_eq!(auth["oidc"]["client_id"], "from-file");
    idp.user("alice", &["ward:acme:admin"], false).await;
    server.tenant("acme").await;
    let token = idp.token("alice", json!({})).await;
    let (status, _) = server.get(&token, "/v1/agents").await;
    assert_eq!(
        status, 200,
        "people sign in with the provider from the file"
    );
    assert!(
        !dir.path().join("data").exists(),
        "the harness's --data-dir wins over the file's"
    );
    let admin = server.tenant("globex").await.1;
    let agent = server.agent(&admin, "reader").await;
    let proof = server.proof(&agent.key, "POST", "/v1/tokens");
    let (status, granted) = send(server.request(reqwest::Method::POST, "/v1/tokens").header("DPoP", proof)
        .json(&json!({"agent_id": agent.id, "requested_scopes": ["files:read:/home/a/projects/x"], "requested_duration": 100}))).await;
    assert_eq!(
        (status, granted["expires_in"].as_u64()),
        (200, Some(60)),
        "the flag wins over the file's 120: {granted}"
    );

    std::fs::write(
        &config,
        "listen: 127.0.0.1:0\noidc:\n  issuer: x\n  audiences: [ward]\n",
    )
    .unwrap();
    let out = std::process::Command::new(ward_bin())
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_text(&out);
    assert!(
        err.contains(&format!(
            "{}:4:3: unknown key `audiences`",
            config.display()
        )),
        "{err}"
    );
}
