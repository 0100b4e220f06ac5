//! `ward mcp proxy --listen` between real clients and real servers over
//! Streamable HTTP, in both protocol eras, all from npm (`tests/mcp`,
//! installed by `scripts/test`):
//!
//! - 2025-11-25 with sessions: the official SDK v1 client (`client.mjs`)
//!   and the reference server `@modelcontextprotocol/server-everything`
//!   (answers in SSE, opens the GET stream);
//! - the stateless 2026-07-28 revision: the SDK v2 client
//!   (`modern-client.mjs`) and an SDK v2 server (`modern-server.mjs`).
//!
//! Raw requests show what the SDKs would never send: headers that
//! disagree with the body, foreign origins and hosts, batches, bodies too
//! large.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::desk::Desk;
use common::{Running, start_until, stderr, ward_bin};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A fake secret planted where a tool will read it back.
const PLANTED: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

fn mcp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp")
}

fn node_modules() -> PathBuf {
    let dir = mcp_dir().join("node_modules");
    assert!(
        dir.join("@modelcontextprotocol/server-everything").exists()
            && dir.join("@modelcontextprotocol/client").exists(),
        "run `npm ci --prefix tests/mcp` (scripts/test does)"
    );
    dir
}

/// server-everything in Streamable HTTP mode; its MCP endpoint. Its
/// environment holds only PATH and a planted secret (its `get-env` tool
/// shows the environment).
fn everything() -> (Running, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new("node");
    command
        .arg(node_modules().join("@modelcontextprotocol/server-everything/dist/index.js"))
        .arg("streamableHttp")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("PORT", port.to_string())
        .env("SERVICE_TOKEN", PLANTED)
        .stdout(Stdio::null());
    let (child, _) = start_until(
        &mut command,
        true,
        "MCP Streamable HTTP Server listening on port",
    );
    (child, format!("http://127.0.0.1:{port}/mcp"))
}

/// The stateless SDK v2 server; its MCP endpoint.
fn modern() -> (Running, String) {
    node_modules();
    let mut command = Command::new("node");
    command
        .arg(mcp_dir().join("modern-server.mjs"))
        .arg("0")
        .stderr(Stdio::inherit());
    let (child, port) = start_until(&mut command, false, "listening ");
    (child, format!("http://127.0.0.1:{}/mcp", port.trim()))
}

/// `ward mcp proxy --listen` named `name` in front of `upstream`; the
/// proxy's URL.
fn proxy(socket: &str, name: &str, upstream: &str, flags: &[&str]) -> (Running, String) {
    let mut command = Command::new(ward_bin());
    command
        .args(["mcp", "proxy", "--socket", socket, "--name", name])
        .args(["--listen", "127.0.0.1:0", "--upstream", upstream])
        .args(flags)
        .env("WARD_LOG", "warn")
        .stderr(Stdio::inherit());
    let (child, url) = start_until(&mut command, false, "ward mcp proxy listening on ");
    (child, url.trim().to_owned())
}

/// A client script (`client.mjs`: SDK v1, `modern-client.mjs`: SDK v2)
/// against `url`, with `env` (`CALLS`, `HEADERS`).
fn client(script: &str, url: &str, env: &[(&str, Value)]) -> Value {
    let mut command = Command::new("node");
    command.arg(mcp_dir().join(script)).arg(url);
    for (name, value) in env {
        command.env(name, value.to_string());
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "client: {}", stderr(&output));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn names(out: &Value) -> Vec<String> {
    out["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {out}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_client_sees_and_calls_only_what_the_scopes_allow_with_secrets_redacted() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let socket = desk.socket().display().to_string();
    let (_server, upstream) = everything();
    let (_proxy, url) = proxy(&socket, "everything", &upstream, &["--redact"]);
    let out = client(
        "client.mjs",
        &url,
        &[(
            "CALLS",
            json!([
                {"name": "echo", "arguments": {"message": "hello"}},
                {"name": "get-env", "arguments": {}},
                {"name": "get-sum", "arguments": {"a": 1, "b": 2}},
            ]),
        )],
    );
    assert_eq!(names(&out), ["echo", "get-env"], "{out}");
    let calls = out["calls"].as_array().unwrap();
    assert_eq!(calls[0]["ok"], true, "{out}");
    assert_eq!(calls[0]["text"], "Echo: hello", "{out}");
    let env = calls[1]["text"].as_str().unwrap();
    assert_eq!(calls[1]["ok"], true, "{out}");
    assert!(env.contains("SERVICE_TOKEN"), "{env}");
    assert!(
        !env.contains(PLANTED),
        "the secret reached the client: {env}"
    );
    assert!(env.contains("[redacted:"), "{env}");
    assert_eq!(calls[2]["ok"], false, "{out}");
    assert!(
        calls[2]["error"]
            .as_str()
            .unwrap()
            .contains("Ward denied `mcp:call` on `everything/get-sum`"),
        "{out}"
    );
    desk.server_has("denied call", |e| {
        e["action"] == "mcp:call" && e["target"] == "everything/get-sum" && e["result"] == "deny"
    })
    .await;
    desk.server_has("recorded result", |e| {
        e["action"] == "mcp.result"
            && e["target"] == "everything/echo"
            && e["result"] == "ok"
            && e["duration_ms"].is_u64()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_sees_and_calls_only_what_the_scopes_allow() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let socket = desk.socket().display().to_string();
    let (_server, upstream) = modern();
    let (_proxy, url) = proxy(&socket, "modern", &upstream, &["--redact"]);
    let out = client(
        "modern-client.mjs",
        &url,
        &[(
            "CALLS",
            json!([
                {"name": "echo", "arguments": {"text": "hello"}},
                {"name": "read_config", "arguments": {}},
                {"name": "delete_all", "arguments": {}},
            ]),
        )],
    );
    assert_eq!(names(&out), ["echo", "read_config"], "{out}");
    let calls = out["calls"].as_array().unwrap();
    assert_eq!(calls[0]["text"], "hello", "{out}");
    let config = calls[1]["text"].as_str().unwrap();
    assert!(config.contains("region = eu-west-1"), "{config}");
    assert!(!config.contains(PLANTED), "{config}");
    assert!(!config.contains("wJalrXUtnFEMI"), "{config}");
    assert_eq!(calls[2]["ok"], false, "{out}");
    let refused = calls[2]["error"].as_str().or(calls[2]["text"].as_str());
    assert!(
        refused
            .unwrap()
            .contains("Ward denied `mcp:call` on `modern/delete_all`"),
        "{out}"
    );
    desk.server_has("denied call", |e| {
        e["action"] == "mcp:call" && e["target"] == "modern/delete_all" && e["result"] == "deny"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_daemon_nothing_is_listed_and_no_call_passes() {
    let (_server, upstream) = modern();
    let (_proxy, url) = proxy("/nonexistent/agent.sock", "modern", &upstream, &[]);
    let out = client(
        "modern-client.mjs",
        &url,
        &[(
            "CALLS",
            json!([{"name": "echo", "arguments": {"text": "x"}}]),
        )],
    );
    assert_eq!(out["tools"], json!([]), "{out}");
    assert_eq!(out["calls"][0]["ok"], false, "{out}");
    let refused = out["calls"][0]["error"]
        .as_str()
        .or(out["calls"][0]["text"].as_str());
    assert!(refused.unwrap().contains("could not be asked"), "{out}");
}

/// A stateless `tools/call` body for `name`, as the SDK v2 sends it.
fn call(name: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {
            "name": name, "arguments": {"text": "x"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    })
}

/// Request headers, by name and value.
type Headers<'a> = &'a [(&'a str, &'a str)];

async fn post(url: &str, headers: Headers<'_>, body: String) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!({"raw": text})),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_disagree_with_the_body_are_refused_before_the_server() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let socket = desk.socket().display().to_string();
    let (_server, upstream) = modern();
    let (_proxy, url) = proxy(&socket, "modern", &upstream, &[]);
    let version = ("mcp-protocol-version", "2026-07-28");
    let method = ("mcp-method", "tools/call");
    // The agreeing request passes, also with the name Base64-encoded.
    for name in ["echo", "=?base64?ZWNobw==?="] {
        let (status, body) = post(
            &url,
            &[version, method, ("mcp-name", name)],
            call("echo").to_string(),
        )
        .await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["result"]["content"][0]["text"], "x", "{body}");
    }
    let refusals: [(Headers, Value, &str); 7] = [
        // Routed as the allowed tool, runs the forbidden one.
        (
            &[version, method, ("mcp-name", "echo")],
            call("delete_all"),
            "Mcp-Name `echo` does not match the body's `delete_all`",
        ),
        (
            &[version, ("mcp-method", "tools/list"), ("mcp-name", "echo")],
            call("echo"),
            "Mcp-Method `tools/list` does not match",
        ),
        (
            &[version, ("mcp-name", "echo")],
            call("echo"),
            "Mcp-Method is missing",
        ),
        (&[version, method], call("echo"), "Mcp-Name is missing"),
        (
            &[method, ("mcp-name", "echo")],
            call("echo"),
            "MCP-Protocol-Version is missing",
        ),
        (
            &[
                ("mcp-protocol-version", "2025-11-25"),
                method,
                ("mcp-name", "echo"),
            ],
            call("echo"),
            "MCP-Protocol-Version `2025-11-25` does not match",
        ),
        (
            &[version, method, ("mcp-name", "=?base64?!!!?=")],
            call("echo"),
            "not valid `=?base64?…?=`",
        ),
    ];
    for (headers, body, why) in refusals {
        let (status, answer) = post(&url, headers, body.to_string()).await;
        assert_eq!(status, 400, "{headers:?}: {answer}");
        assert_eq!(answer["error"]["code"], -32020, "{answer}");
        assert_eq!(answer["id"], 7, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{headers:?}: {message}");
    }
    // The same header twice: Ward would read one, the server both.
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "delete_all")
        .header("mcp-name", "echo")
        .body(call("delete_all").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], -32020, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sent more than once"),
        "{answer}"
    );
    // A version header for the stateless revision over a body without one.
    let bare = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    let (status, answer) = post(
        &url,
        &[version, ("mcp-method", "tools/list")],
        bare.to_string(),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!(-32020))
    );
    // A forbidden tool with agreeing headers is Ward's refusal, not the server's.
    let (status, answer) = post(
        &url,
        &[version, method, ("mcp-name", "delete_all")],
        call("delete_all").to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Ward denied `mcp:call` on `modern/delete_all`"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_hosts_batches_and_oversized_bodies_are_refused() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let socket = desk.socket().display().to_string();
    let (_server, upstream) = everything();
    let (_proxy, url) = proxy(
        &socket,
        "everything",
        &upstream,
        &["--allow-origin", "http://app.example"],
    );
    // A page elsewhere cannot reach the server through the proxy.
    let out = client(
        "client.mjs",
        &url,
        &[("HEADERS", json!({"Origin": "http://evil.example"}))],
    );
    assert!(out["connect_error"].is_string(), "{out}");
    let out = client(
        "client.mjs",
        &url,
        &[
            ("HEADERS", json!({"Origin": "http://app.example"})),
            (
                "CALLS",
                json!([{"name": "echo", "arguments": {"message": "hi"}}]),
            ),
        ],
    );
    assert_eq!(out["calls"][0]["text"], "Echo: hi", "{out}");

    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, answer) = post(&url, &[("origin", "null")], initialize.to_string()).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Origin `null` is not allowed"),
        "{answer}"
    );
    // DNS rebinding: a name that resolves to loopback but is not it.
    let (status, answer) = post(
        &url,
        &[("host", "attacker.example")],
        initialize.to_string(),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DNS rebinding"),
        "{answer}"
    );
    let (status, answer) = post(&url, &[], json!([initialize]).to_string()).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!(-32600)),
        "{answer}"
    );
    let (status, answer) = post(&url, &[], "{not json".to_owned()).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!(-32700)),
        "{answer}"
    );
    // A body declared larger than the proxy judges is refused unread.
    let address = url.trim_start_matches("http://").trim_end_matches("/mcp");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        17 << 20
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let read = stream.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let other = url.replace("/mcp", "/admin");
    let (status, _) = post(&other, &[], initialize.to_string()).await;
    assert_eq!(status, 404);
    let response = reqwest::Client::new().put(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
}

#[test]
fn bad_flags_are_refused_with_one_line() {
    for (args, why) in [
        (
            &["--listen", "127.0.0.1:0", "--upstream", "ftp://x/mcp"][..],
            "is not an http:// or https:// URL",
        ),
        (
            &["--listen", "127.0.0.1:0", "--upstream", "not a url"][..],
            "is not a URL",
        ),
        (&["--listen", "127.0.0.1:0"][..], "--upstream"),
    ] {
        let output = Command::new(ward_bin())
            .args(["mcp", "proxy", "--socket", "/tmp/x.sock", "--name", "m"])
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        assert!(
            stderr(&output).contains(why),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

/// A one-shot upstream on loopback: answers every request with `answer`
/// (raw HTTP), and hands over the request heads it read.
async fn raw_upstream(answer: &'static [u8]) -> (String, tokio::sync::mpsc::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let (heads, received) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut seen = Vec::new();
            let mut chunk = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = heads
                .send(String::from_utf8_lossy(&seen).into_owned())
                .await;
            let _ = stream.write_all(answer).await;
            let _ = stream.shutdown().await;
        }
    });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoded_answer_is_withheld_and_no_compression_is_asked_for() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let socket = desk.socket().display().to_string();
    // Gzip of a tools list Ward could not read to filter.
    let (upstream, mut heads) = raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\nconnection: close\r\n\r\n\x1f\x8b\x08\x00",
    )
    .await;
    let (_proxy, url) = proxy(&socket, "everything", &upstream, &[]);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let (status, answer) = post(&url, &[("accept-encoding", "gzip, br")], list.to_string()).await;
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("encoded body"),
        "{answer}"
    );
    let head = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(head.starts_with("post /mcp "), "{head}");
    assert!(!head.contains("accept-encoding"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_passed_to_the_client_and_case_tricks_are_refused() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let socket = desk.socket().display().to_string();
    let (upstream, _heads) = raw_upstream(
        b"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:9/mcp\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    let (_proxy, url) = proxy(&socket, "everything", &upstream, &[]);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let (status, answer) = post(&url, &[], list.to_string()).await;
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("redirected (307)"),
        "{answer}"
    );
    // A method written in another case (a Go server would read it) never
    // reaches the server.
    let sneaky = r#"{"jsonrpc":"2.0","id":5,"Method":"tools/call","params":{"name":"write_file"}}"#;
    let (status, answer) = post(&url, &[], sneaky.to_owned()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], 5);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another case"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_be_reached_is_a_502_that_says_so() {
    ward_client::install_tls_provider();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_proxy, url) = proxy(
        "/nonexistent/agent.sock",
        "everything",
        &format!("http://{closed}/mcp"),
        &[],
    );
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let (status, answer) = post(&url, &[], list.to_string()).await;
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{answer}"
    );
}
