//! The real Codex CLI (npm `@openai/codex`, installed by `scripts/test`
//! under `tests/codex`) run headless (`codex exec`) against a scripted
//! stand-in for the OpenAI Responses API on loopback
//! (`tests/codex/model.py`), with Ward's hooks installed by `ward hook
//! install codex --scope user` into `$CODEX_HOME` (`hooks.json`, and the
//! trust entries in `config.toml` without which Codex skips the hooks
//! silently). The scripted model asks for an allowed `ls` and a forbidden
//! shell write: without Ward, Codex runs both; with Ward the `ls` runs,
//! the write does not, the model reads Ward's reason, and both decisions
//! are events on the server under the tool calls' ids.
//!
//! Codex runs with nothing but the scripted model to talk to: its plugin
//! sync and metrics export are off in its `config.toml`, and the model is
//! also its HTTP(S) proxy, so a request for anywhere else would be logged.
//!
//! Test double: only the model (the OpenAI API cannot run here).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::desk::Desk;
use common::{ScriptedModel, stderr, stdout, ward_bin};
use serde_json::{Value, json};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The scripted model of this agent's API.
type Model = ScriptedModel;

fn model(script: &Path, log: &Path) -> Model {
    ScriptedModel::start("codex", script, log)
}

/// `codex exec` in `cwd` against `model`, with `home` and `codex_home` of
/// its own, no sandbox and no approvals (so only hooks stand in the way);
/// the JSON lines it printed. Killed after a minute.
fn codex(model: &Model, cwd: &Path, home: &Path, codex_home: &Path) -> Vec<Value> {
    use std::os::unix::process::CommandExt;
    let bin = repo().join("tests/codex/node_modules/.bin/codex");
    assert!(
        bin.exists(),
        "{} is missing: run `npm ci --prefix tests/codex` (scripts/test does)",
        bin.display()
    );
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    let mut command = Command::new(bin);
    command
        .current_dir(cwd)
        .args(["exec", "--json", "--skip-git-repo-check", "--strict-config"])
        .args(["--sandbox", "danger-full-access"])
        .arg("List the work tree, then write the note.")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", home)
        .env("CODEX_HOME", codex_home)
        .env("OPENAI_API_KEY", "sk-dummy")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
    ] {
        command.env(name, &model.url);
    }
    // Node's launcher runs the native CLI as its child: a group of their
    // own, to kill both.
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = |file: &mut std::fs::File| {
        let mut text = String::new();
        file.rewind().unwrap();
        file.read_to_string(&mut text).unwrap();
        text
    };
    let (out, err) = (text(&mut out), text(&mut err));
    assert!(
        status.is_some_and(|s| s.success()),
        "codex exec ({status:?}, none: killed after 60 s): {err}\n{out}"
    );
    out.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// What the model was told a tool call gave, by call id, in `request`.
fn output_of<'a>(request: &'a Value, call_id: &str) -> &'a str {
    request["body"]["input"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|item| item["type"] == "function_call_output" && item["call_id"] == call_id)
        .and_then(|item| item["output"].as_str())
        .unwrap_or_else(|| panic!("no output of {call_id} in {request}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_runs_what_ward_allows_and_cannot_write_what_it_denies() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let root = desk.root();
    let work = root.join("work");
    let home = root.join("home");
    let codex_home = root.join("codex-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&codex_home).unwrap();
    let owned = root.join("outside/owned.txt");
    let script = root.join("script.json");
    std::fs::write(
        &script,
        json!([
            {"call": "call_ward_ls", "cmd": format!("ls {}", work.display())},
            {"call": "call_ward_write", "cmd": format!("echo owned > {}", owned.display())},
            {"text": "done"}
        ])
        .to_string(),
    )
    .unwrap();
    let model = model(&script, &root.join("model.log"));
    let config = codex_home.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"model = "gpt-5.5"
model_provider = "scripted"

[model_providers.scripted]
name = "scripted"
base_url = "{url}/v1"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

# Nothing but the scripted model: no plugin sync (GitHub, chatgpt.com),
# no metrics export.
[features]
plugins = false

[analytics]
enabled = false
"#,
            url = model.url
        ),
    )
    .unwrap();

    // Without Ward, Codex runs both calls: the write is not stopped by
    // Codex's own sandbox or approvals.
    codex(&model, &work, &home, &codex_home);
    assert_eq!(std::fs::read_to_string(&owned).unwrap(), "owned\n");
    std::fs::remove_file(&owned).unwrap();
    let before = model.requests().len();

    let state = desk.state_dir.display().to_string();
    let installed = Command::new(ward_bin())
        .args(["hook", "install", "codex", "--scope", "user"])
        .args(["--state-dir", &state])
        .env("HOME", &home)
        .env("CODEX_HOME", &codex_home)
        .output()
        .unwrap();
    assert!(installed.status.success(), "{}", stderr(&installed));
    assert!(
        stdout(&installed).contains(&format!("trusted in {}", config.display())),
        "{}",
        stdout(&installed)
    );
    let lines = codex(&model, &work, &home, &codex_home);
    assert!(
        !owned.exists(),
        "Ward's hook did not stop the write: {lines:?}"
    );
    // The `ls` ran: Codex reports it, and the model read its output.
    assert!(
        lines.iter().any(|l| l["type"] == "item.completed"
            && l["item"]["type"] == "command_execution"
            && l["item"]["exit_code"] == 0
            && l["item"]["aggregated_output"]
                .as_str()
                .is_some_and(|o| o.contains("readme.txt"))),
        "the ls did not run: {lines:?}"
    );
    let requests = model.requests();
    let last = requests.last().unwrap();
    assert!(
        output_of(last, "call_ward_ls").contains("Output:\nreadme.txt\n"),
        "{last}"
    );
    // The write was blocked, and the model read Ward's reason.
    let write = output_of(last, "call_ward_write");
    assert!(
        write.starts_with("Command blocked by PreToolUse hook: Ward denied `files:write`"),
        "the model did not read Ward's reason: {write}"
    );
    assert!(write.contains(&owned.display().to_string()), "{write}");
    // Codex asked nothing but the scripted model, three turns a run.
    for request in &requests {
        assert_eq!(
            (request["method"].as_str(), request["path"].as_str()),
            (Some("POST"), Some("/v1/responses")),
            "Codex asked for something else"
        );
    }
    assert_eq!((before, requests.len()), (3, 6), "{requests:?}");

    // Both decisions, and the ls's result, are on the server under the
    // tool calls' ids; the session's start is there too (its hook is
    // trusted as well).
    let deadline = Instant::now() + Duration::from_secs(20);
    let session = lines
        .iter()
        .find(|l| l["type"] == "thread.started")
        .map(|l| l["thread_id"].clone())
        .unwrap_or_else(|| panic!("no thread.started: {lines:?}"));
    loop {
        let ls = desk.server_events("correlation_id=call_ward_ls").await;
        let write = desk.server_events("correlation_id=call_ward_write").await;
        let started = desk
            .server_events("")
            .await
            .iter()
            .any(|e| e["action"] == "session.start" && e["target"] == session);
        let ls_allowed = ls.iter().any(|e| {
            e["action"] == "exec:run"
                && e["result"] == "allow"
                && e["target"].as_str().is_some_and(|t| t.ends_with("/ls"))
        });
        let ls_ran = ls
            .iter()
            .any(|e| e["action"] == "tool.result" && e["result"] == "ok");
        let write_denied = write
            .iter()
            .any(|e| e["action"] == "files:write" && e["result"] == "deny");
        if ls_allowed && ls_ran && write_denied && started {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events: {ls:?} {write:?}, session {session} started: {started}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
