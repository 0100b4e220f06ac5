//! The real Claude Code CLI (npm `@anthropic-ai/claude-code`, installed
//! by `scripts/test` under `tests/claude-code`) run headless (`claude -p`)
//! against a scripted stand-in for the model API on loopback
//! (`tests/claude-code/model.py`), with Ward's hook installed by `ward hook
//! install --path`. The scripted model asks for an allowed Read and a
//! forbidden Bash write: without Ward, Claude Code runs both; with Ward
//! the read happens, the write does not, and both decisions are events on
//! the server under the tool calls' ids.
//!
//! Test double: only the model (the Anthropic API cannot run here).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::desk::Desk;
use common::{ScriptedModel, stderr, ward_bin};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The scripted model of this agent's API.
type Model = ScriptedModel;

fn model(script: &Path, log: &Path) -> Model {
    ScriptedModel::start("claude-code", script, log)
}

/// `claude -p` in `cwd` against `model`, with `settings` when given; the
/// stream-json lines it printed.
fn claude(
    model: &Model,
    cwd: &Path,
    home: &Path,
    add_dir: &Path,
    settings: Option<&Path>,
) -> Vec<Value> {
    claude_with(model, cwd, home, add_dir, settings, &[])
}

/// [`claude`] with more arguments.
fn claude_with(
    model: &Model,
    cwd: &Path,
    home: &Path,
    add_dir: &Path,
    settings: Option<&Path>,
    extra: &[&str],
) -> Vec<Value> {
    let bin = repo().join("tests/claude-code/node_modules/.bin/claude");
    assert!(
        bin.exists(),
        "{} is missing: run `npm ci --prefix tests/claude-code` (scripts/test does)",
        bin.display()
    );
    let mut command = Command::new(bin);
    command
        .current_dir(cwd)
        .args(["-p", "Read the readme, then write the note."])
        .args([
            "--output-format",
            "stream-json",
            "--verbose",
            "--include-hook-events",
        ])
        .args(["--allowedTools", "Bash(*)", "Read", "--add-dir"])
        .arg(add_dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", home)
        .env("ANTHROPIC_BASE_URL", &model.url)
        .env("ANTHROPIC_API_KEY", "dummy")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1");
    if let Some(settings) = settings {
        command.arg("--settings").arg(settings);
    }
    command.args(extra);
    let output = command.output().unwrap();
    assert!(output.status.success(), "claude: {}", stderr(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_reads_what_ward_allows_and_cannot_write_what_it_denies() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let root = desk.root();
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let readme = root.join("work/readme.txt");
    let owned = root.join("outside/owned.txt");
    let script = root.join("script.json");
    std::fs::write(
        &script,
        json!([
            {"tool": "Read", "id": "toolu_01wardread", "input": {"file_path": readme}},
            {"tool": "Bash", "id": "toolu_02wardbash",
             "input": {"command": format!("echo owned > {}", owned.display()), "description": "write"}},
            {"text": "done"}
        ])
        .to_string(),
    )
    .unwrap();
    let model = model(&script, &root.join("model.log"));

    // Without Ward, Claude Code runs both calls: the write is not stopped
    // by Claude Code's own checks.
    claude(&model, &root.join("work"), &home, &root, None);
    assert_eq!(std::fs::read_to_string(&owned).unwrap(), "owned\n");
    std::fs::remove_file(&owned).unwrap();

    let settings = root.join("claude-settings.json");
    let state = desk.state_dir.display().to_string();
    let installed = Command::new(ward_bin())
        .args([
            "hook",
            "install",
            "claude-code",
            "--state-dir",
            &state,
            "--path",
        ])
        .arg(&settings)
        .output()
        .unwrap();
    assert!(installed.status.success(), "{}", stderr(&installed));
    let lines = claude(&model, &root.join("work"), &home, &root, Some(&settings));
    assert!(
        !owned.exists(),
        "Ward's hook did not stop the write: {lines:?}"
    );
    let text = serde_json::to_string(&lines).unwrap();
    assert!(
        text.contains("Ward denied `files:write`"),
        "the model did not read Ward's reason: {text}"
    );

    // Both decisions, and the read's result, are on the server under the
    // tool calls' ids.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = desk.server_events("correlation_id=toolu_01wardread").await;
        let bash = desk.server_events("correlation_id=toolu_02wardbash").await;
        let read_ok = read
            .iter()
            .any(|e| e["action"] == "files:read" && e["result"] == "allow")
            && read
                .iter()
                .any(|e| e["action"] == "tool.result" && e["result"] == "ok");
        let bash_denied = bash
            .iter()
            .any(|e| e["action"] == "files:write" && e["result"] == "deny");
        if read_ok && bash_denied {
            break;
        }
        assert!(Instant::now() < deadline, "events: {read:?} {bash:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_reaches_an_mcp_server_only_through_wards_proxy() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let root = desk.root();
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let work = root.join("work");
    let readme = work.join("readme.txt");
    let owned = work.join("owned-by-mcp.txt");
    let server = repo().join("tests/mcp/node_modules/.bin/mcp-server-filesystem");
    assert!(
        server.exists(),
        "run `npm ci --prefix tests/mcp` (scripts/test does)"
    );
    // The admin's server list, wrapped by a managed install.
    let servers = root.join("servers.json");
    std::fs::write(
        &servers,
        json!({"mcpServers": {"fs": {"command": server, "args": [work]}}}).to_string(),
    )
    .unwrap();
    let etc = root.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let settings = etc.join("managed-settings.json");
    let state = desk.state_dir.display().to_string();
    let installed = Command::new(ward_bin())
        .args(["hook", "install", "claude-code", "--scope", "managed"])
        .args(["--state-dir", &state, "--path"])
        .arg(&settings)
        .arg("--mcp-config")
        .arg(&servers)
        .output()
        .unwrap();
    assert!(installed.status.success(), "{}", stderr(&installed));
    // managed-mcp.json is read from /etc/claude-code only: the same
    // servers are given on the command line here.
    let mcp = etc.join("managed-mcp.json");
    let script = root.join("script.json");
    std::fs::write(
        &script,
        json!([
            {"tool": "mcp__fs__read_text_file", "id": "toolu_03mcpread", "input": {"path": readme}},
            {"tool": "mcp__fs__write_file", "id": "toolu_04mcpwrite",
             "input": {"path": owned, "content": "owned"}},
            {"text": "done"}
        ])
        .to_string(),
    )
    .unwrap();
    let log = root.join("model.log");
    let model = model(&script, &log);
    let mcp_arg = mcp.display().to_string();
    let lines = claude_with(
        &model,
        &work,
        &home,
        &root,
        Some(&settings),
        &[
            "--mcp-config",
            &mcp_arg,
            "--strict-mcp-config",
            "--allowedTools",
            "mcp__fs__read_text_file",
            "mcp__fs__write_file",
        ],
    );
    assert!(!owned.exists(), "the MCP write went through");
    // The model saw the file's content from the allowed call, and the
    // server never offered it the write tool.
    let requests: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // The tools Claude Code has (MCP tools are deferred, so they are in
    // its init line rather than in each request).
    let offered: Vec<&str> = lines
        .iter()
        .find(|l| l["subtype"] == "init")
        .and_then(|init| init["tools"].as_array())
        .unwrap_or_else(|| panic!("no init line: {lines:?}"))
        .iter()
        .filter_map(Value::as_str)
        .filter(|name| name.starts_with("mcp__fs__"))
        .collect();
    assert!(offered.contains(&"mcp__fs__read_text_file"), "{offered:?}");
    assert!(!offered.contains(&"mcp__fs__write_file"), "{offered:?}");
    let seen = serde_json::to_string(&requests).unwrap();
    assert!(
        seen.contains("hello"),
        "the read's result did not reach the model"
    );
    desk.server_has("the proxied call's result", |e| {
        e["action"] == "mcp.result" && e["target"] == "fs/read_text_file" && e["result"] == "ok"
    })
    .await;
    desk.server_has("the hook's allow of the MCP call", |e| {
        e["action"] == "mcp:call"
            && e["target"] == "fs/read_text_file"
            && e["correlation_id"] == "toolu_03mcpread"
            && e["result"] == "allow"
    })
    .await;
}
