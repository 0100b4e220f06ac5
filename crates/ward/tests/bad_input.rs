//! Bad input gets a clear error in one JSON shape, never a panic, and never
//! changes stored data.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_name_the_field_and_the_reason() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let post_raw = |body: &'static str| {
        server
            .request(Method::POST, "/v1/enroll-tokens")
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body)
    };
    let (status, body) = send(post_raw(r#"{"owner": "a@b.co", "profile": "reader""#)).await;
    assert_error(status, &body, 400, "invalid_json");
    let (status, body) = send(post_raw(
        r#"{"owner": "a@b.co", "profile": "reader", "ttl_seconds": "soon"}"#,
    ))
    .await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "ttl_seconds");
    assert_eq!(
        body["error"]["message"],
        "invalid type: string \"soon\", expected u64"
    );
    let (status, body) = send(post_raw(
        r#"{"owner": "a@b.co", "profile": "reader", "admin": true}"#,
    ))
    .await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "admin");
    let (status, body) = send(post_raw(r#"{"owner": "a@b.co"}"#)).await;
    assert_error(status, &body, 400, "invalid_field");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `profile`")
    );
    let (status, body) = send(post_raw(r#"[1, 2]"#)).await;
    assert_error(status, &body, 400, "invalid_field");
    let (status, body) = send(post_raw("")).await;
    assert_error(status, &body, 400, "invalid_json");

    let key = ward_auth::Keypair::generate().unwrap();
    let jwk = key.public_jwk();
    let (status, body) = send(server.request(Method::POST, "/v1/agents").json(&json!({
        "enroll_token": "x",
        "device_key": {"kty": jwk.kty, "crv": jwk.crv, "x": jwk.x},
        "device": {"os": "macos", "agent_version": 7, "host_id": "h"},
    })))
    .await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "device.agent_version");
    let (status, body) = send(server.request(Method::POST, "/v1/agents").json(&json!({
        "enroll_token": "x",
        "device_key": {"kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "d": "secret"},
        "device": {"os": "macos", "agent_version": "1", "host_id": "h"},
    })))
    .await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(
        body["error"]["field"], "device_key.d",
        "a private key member is refused"
    );
    let (status, body) = send(server.request(Method::POST, "/v1/agents").json(&json!({
        "enroll_token": "x",
        "device_key": {"kty": "RSA", "crv": "Ed25519", "x": jwk.x},
        "device": {"os": "macos", "agent_version": "1", "host_id": "h"},
    })))
    .await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "device_key");
    let (status, body) = send(server.request(Method::POST, "/v1/tokens").json(&json!({
        "agent_id": "a", "requested_scopes": ["files:read:/x", 5],
    })))
    .await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "requested_scopes[1]");
}

#[tokio::test(flavor = "multi_thread")]
async fn content_type_size_route_and_method_errors_use_the_one_shape() {
    let server = Server::start_with(&["--max-body-bytes", "4096"]);
    let (_, admin) = server.tenant("acme").await;
    let (status, body) = send(
        server
            .request(Method::POST, "/v1/enroll-tokens")
            .bearer_auth(&admin)
            .header("content-type", "text/plain")
            .body(r#"{"owner":"a@b.co","profile":"reader"}"#),
    )
    .await;
    assert_error(status, &body, 415, "unsupported_media_type");
    let (status, body) = send(
        server
            .request(Method::POST, "/v1/enroll-tokens")
            .bearer_auth(&admin)
            .body(r#"{"owner":"a@b.co","profile":"reader"}"#),
    )
    .await;
    assert_error(status, &body, 415, "unsupported_media_type");

    let huge = format!(r#"{{"owner":"a@b.co","profile":"{}"}}"#, "x".repeat(5000));
    let (status, body) = send(
        server
            .request(Method::POST, "/v1/enroll-tokens")
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(huge.clone()),
    )
    .await;
    assert_error(status, &body, 413, "body_too_large");
    let chunked = raw_chunked_post(&server.url, "/v1/agents", huge.as_bytes()).await;
    assert!(
        chunked.starts_with("HTTP/1.1 413"),
        "a chunked body without length is limited too: {chunked}"
    );
    assert!(chunked.contains("\"body_too_large\""), "{chunked}");

    let (status, body) = server.get(&admin, "/v1/nothing-here").await;
    assert_error(status, &body, 404, "no_route");
    let (status, body) = send(
        server
            .request(Method::DELETE, "/v1/agents")
            .bearer_auth(&admin),
    )
    .await;
    assert_error(status, &body, 405, "method_not_allowed");
    let (status, body) = send(server.request(Method::GET, "/v1/agents")).await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = send(
        server
            .request(Method::GET, "/v1/agents")
            .header("authorization", "Basic YWRtaW46YWRtaW4="),
    )
    .await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = server.get("ward_at_forged", "/v1/agents").await;
    assert_error(status, &body, 401, "unauthenticated");
    let (status, body) = server.get(&admin, "/v1/audit?since=yesterday").await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "since");
    let (status, body) = server.get(&admin, "/v1/audit?cursor=-4").await;
    assert_error(status, &body, 400, "invalid_field");
    let (status, body) = server.get(&admin, "/v1/audit?action=a&action=b").await;
    assert_error(status, &body, 400, "invalid_field");
}

/// POSTs `body` with `Transfer-Encoding: chunked` over a raw socket and
/// returns the raw response.
async fn raw_chunked_post(url: &str, path: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(1000) {
        let frame = format!("{:x}\r\n", chunk.len());
        if stream.write_all(frame.as_bytes()).await.is_err() {
            break;
        }
        let _ = stream.write_all(chunk).await;
        let _ = stream.write_all(b"\r\n").await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn correlation_ids_are_taken_when_well_formed_and_returned_everywhere() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let response = server
        .request(Method::GET, "/v1/agents")
        .bearer_auth(&admin)
        .header("x-correlation-id", "corr-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-correlation-id"], "corr-abc-123");
    let response = server
        .request(Method::GET, "/healthz")
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(generated.starts_with("corr_"), "{generated}");
    let response = server
        .request(Method::GET, "/v1/agents")
        .bearer_auth(&admin)
        .header("x-correlation-id", "bad id\twith tab")
        .send()
        .await
        .unwrap();
    assert_ne!(response.headers()["x-correlation-id"], "bad id\twith tab");

    let (status, body) = send(
        server
            .request(Method::POST, "/v1/enroll-tokens")
            .bearer_auth(&admin)
            .header("x-correlation-id", "corr-enrol-1")
            .json(&json!({"owner": "a@b.co", "profile": "reader"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let entries = server.audit(&admin, "correlation_id=corr-enrol-1").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["action"], "enroll_token.create");
    let (status, body) = send(
        server
            .request(Method::GET, "/v1/agents/agt_x")
            .bearer_auth(&admin)
            .header("x-correlation-id", "corr-404"),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["correlation_id"], "corr-404");
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_never_crashes_the_server_or_changes_data() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    server.agent(&admin, "reader").await;
    let before = server.audit(&server.bootstrap, "").await.len();
    let bodies = [
        "\u{0}\u{1}\u{2}",
        "{\"agent_id\":",
        "{}",
        "null",
        "1e999",
        "\"x\"",
        "{\"agent_id\":\"a\",\"requested_scopes\":[\"\u{202e}\"]}",
        "{\"enroll_token\":{\"$ne\":null}}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    ];
    let paths = [
        "/v1/tenants",
        "/v1/api-tokens",
        "/v1/enroll-tokens",
        "/v1/agents",
        "/v1/tokens",
        "/v1/tokens/introspect",
        "/v1/tokens/revoke",
    ];
    for path in paths {
        for raw in bodies {
            let (status, body) = send(
                server
                    .request(Method::POST, path)
                    .bearer_auth(&admin)
                    .header("content-type", "application/json")
                    .header("DPoP", "a.b.c")
                    .body(raw),
            )
            .await;
            assert!(
                (400..500).contains(&status),
                "{path} {raw:?}: {status} {body}"
            );
            assert!(body["error"]["code"].is_string(), "{path}: {body}");
        }
    }
    let (status, _) = server.get("", "/healthz").await;
    assert_eq!(status, 200);
    let after = server.audit(&server.bootstrap, "").await;
    assert!(
        after
            .iter()
            .skip(before)
            .all(|e| e["result"] == "denied" || e["action"] == "bootstrap.use"),
        "garbage changed nothing"
    );
    let out = server.cli(
        "",
        &[
            "audit",
            "verify",
            "--data-dir",
            server.data_dir().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}
