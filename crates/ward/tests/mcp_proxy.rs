//! `ward mcp proxy` between the official MCP SDK (npm
//! `@modelcontextprotocol/sdk`, `tests/mcp/client.mjs`) and the reference
//! filesystem server (npm `@modelcontextprotocol/server-filesystem`), both
//! installed by `scripts/test`: the client sees only the tools the agent's
//! scopes allow, an allowed call returns the server's answer, a refused
//! one is a JSON-RPC error the server never saw, and every decision is an
//! event.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::desk::Desk;
use common::{stderr, ward_bin};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

fn mcp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp")
}

/// The SDK client through `ward mcp proxy` to the filesystem server
/// serving `root`, making `calls`.
fn through_ward(socket: &str, root: &Path, calls: Value) -> Value {
    let server = mcp_dir().join("node_modules/.bin/mcp-server-filesystem");
    assert!(
        server.exists(),
        "run `npm ci --prefix tests/mcp` (scripts/test does)"
    );
    client(
        socket,
        &[server.as_os_str(), root.as_os_str()],
        &[("CALLS", calls)],
    )
}

/// The SDK client through `ward mcp proxy --name fs` to `server` (a
/// command line), with `env` (`CALLS`, `AFTER`).
fn client(socket: &str, server: &[&OsStr], env: &[(&str, Value)]) -> Value {
    client_with(socket, &[], server, env)
}

/// [`client`] with more `ward mcp proxy` flags.
fn client_with(socket: &str, flags: &[&OsStr], server: &[&OsStr], env: &[(&str, Value)]) -> Value {
    let mut command = Command::new("node");
    command
        .arg(mcp_dir().join("client.mjs"))
        .arg(ward_bin())
        .args(["mcp", "proxy", "--socket", socket, "--name", "fs"])
        .args(flags)
        .arg("--")
        .args(server);
    for (name, value) in env {
        command.env(name, value.to_string());
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "client: {}", stderr(&output));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_renamed_after_list_changed_is_filtered_and_refused() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let socket = desk.socket().display().to_string();
    let server = mcp_dir().join("renaming-server.mjs");
    let out = client(
        &socket,
        &[OsStr::new("node"), server.as_os_str()],
        &[
            (
                "CALLS",
                json!([{"name": "list_directory", "arguments": {}}]),
            ),
            (
                "AFTER",
                json!([{"name": "delete_everything", "arguments": {}}]),
            ),
        ],
    );
    assert_eq!(out["tools"], json!(["list_directory"]), "{out}");
    assert_eq!(out["calls"][0]["text"], "a.txt", "{out}");
    // The server now offers only `delete_everything`: not listed, not run.
    assert_eq!(out["tools_after"], json!([]), "{out}");
    assert_eq!(out["calls_after"][0]["ok"], false, "{out}");
    assert!(
        out["calls_after"][0]["error"]
            .as_str()
            .unwrap()
            .contains("Ward denied `mcp:call` on `fs/delete_everything`"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sees_and_calls_only_what_the_scopes_allow() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let work = desk.root().join("work");
    let readme = work.join("readme.txt").display().to_string();
    let socket = desk.socket().display().to_string();
    let out = through_ward(
        &socket,
        &work,
        json!([
            {"name": "read_text_file", "arguments": {"path": readme}},
            {"name": "write_file", "arguments": {"path": work.join("pwned.txt"), "content": "x"}},
        ]),
    );
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tools.contains(&"read_text_file"), "{tools:?}");
    assert!(tools.contains(&"list_directory"), "{tools:?}");
    assert!(
        !tools.contains(&"write_file"),
        "an unscoped tool was listed: {tools:?}"
    );
    assert!(!tools.contains(&"move_file"), "{tools:?}");
    let calls = out["calls"].as_array().unwrap();
    assert_eq!(calls[0]["ok"], true, "{calls:?}");
    assert_eq!(calls[0]["text"], "hello");
    assert_eq!(calls[1]["ok"], false);
    assert!(
        calls[1]["error"]
            .as_str()
            .unwrap()
            .contains("Ward denied `mcp:call` on `fs/write_file`"),
        "{calls:?}"
    );
    assert!(
        !work.join("pwned.txt").exists(),
        "the server ran the refused call"
    );

    // Every decision is on the server.
    desk.server_has("denied call", |e| {
        e["action"] == "mcp:call" && e["target"] == "fs/write_file" && e["result"] == "deny"
    })
    .await;
    desk.server_has("allowed call", |e| {
        e["action"] == "mcp:call" && e["target"] == "fs/read_text_file" && e["result"] == "allow"
    })
    .await;
    desk.server_has("recorded result", |e| {
        e["action"] == "mcp.result"
            && e["target"] == "fs/read_text_file"
            && e["result"] == "ok"
            && e["duration_ms"].is_u64()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapped_arguments_are_checked_against_their_own_scopes() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let socket = desk.socket().display().to_string();
    let map =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agents/mcp/filesystem-map.json");
    let server = mcp_dir().join("node_modules/.bin/mcp-server-filesystem");
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "not yours").unwrap();
    let readme = desk.root().join("work/readme.txt");
    // The server itself may read all of `/`: only Ward stands in the way.
    let out = client_with(
        &socket,
        &[OsStr::new("--map"), map.as_os_str()],
        &[server.as_os_str(), OsStr::new("/")],
        &[(
            "CALLS",
            json!([
                {"name": "read_text_file", "arguments": {"path": readme}},
                {"name": "read_text_file", "arguments": {"path": secret}},
            ]),
        )],
    );
    let calls = out["calls"].as_array().unwrap();
    assert_eq!(calls[0]["text"], "hello", "{out}");
    assert_eq!(calls[1]["ok"], false, "{out}");
    let error = calls[1]["error"].as_str().unwrap();
    assert!(error.contains("Ward denied `files:read`"), "{error}");
    assert!(
        error.contains("argument `path` of `read_text_file`"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_daemon_no_tool_is_listed_and_no_call_passes() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let work = desk.root().join("work");
    let out = through_ward(
        "/nonexistent/agent.sock",
        &work,
        json!([{"name": "read_text_file", "arguments": {"path": work.join("readme.txt")}}]),
    );
    assert_eq!(out["tools"], json!([]));
    assert_eq!(out["calls"][0]["ok"], false);
    assert!(
        out["calls"][0]["error"]
            .as_str()
            .unwrap()
            .contains("could not be asked"),
        "{out}"
    );
}

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(ward_bin())
        .args(["mcp", "proxy", "--name", "fs", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = Command::new(ward_bin())
        .args([
            "mcp",
            "proxy",
            "--socket",
            "/x",
            "--name",
            "fs",
            "--",
            "/nonexistent/server",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot start"), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("map.json");
    std::fs::write(&bad, r#"{"write_file": "files:write"}"#).unwrap();
    for (map, because) in [
        ("/nonexistent/map.json", "cannot read"),
        (bad.to_str().unwrap(), "is not a map of tools"),
    ] {
        let out = Command::new(ward_bin())
            .args([
                "mcp", "proxy", "--socket", "/x", "--name", "fs", "--map", map, "--", "true",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{map}");
        assert!(stderr(&out).contains(because), "{}", stderr(&out));
    }
}

#[test]
fn a_client_line_too_long_to_judge_stops_the_proxy() {
    use std::io::Write;
    let mut child = Command::new(ward_bin())
        .args([
            "mcp", "proxy", "--socket", "/x", "--name", "fs", "--", "cat",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // 17 MiB of one line: more than the proxy reads before judging.
    let _ = stdin.write_all(&vec![b' '; 17 << 20]);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("longer than"), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "something passed");
}
