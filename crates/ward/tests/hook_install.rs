//! `ward hook install|uninstall claude-code`: Ward's entries merged into
//! real settings files without touching the user's, removed exactly, and
//! the installed command answering a real hook event.
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
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn ward(args: &[&str]) -> Output {
    Command::new(ward_bin()).args(args).output().unwrap()
}

/// `ward hook install claude-code --path settings --state-dir state`.
fn install(settings: &Path, state: &Path) -> Output {
    ward(&[
        "hook",
        "install",
        "claude-code",
        "--path",
        &settings.display().to_string(),
        "--state-dir",
        &state.display().to_string(),
    ])
}

/// Runs an installed hook `command` through `shell -c`, as the agents
/// do, with `event` on stdin.
fn through_shell(shell: &str, command: &str, event: &Value) -> Output {
    let mut child = Command::new(shell)
        .args(["-c", command])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The `permissions.deny` rules of `settings`.
fn deny_rules(settings: &Value) -> Vec<&str> {
    settings["permissions"]["deny"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect()
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Settings a user already has: their own hook, deny rules (one the same
/// as Ward's) and options.
fn users_settings(state: &Path) -> Value {
    json!({
        "model": "opus",
        "hooks": {
            "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "my-linter"}]}]
        },
        "permissions": {
            "allow": ["Bash(npm test)"],
            "deny": ["Read(./.env)", format!("Read(/{}/**)", state.display())]
        },
        "allowManagedHooksOnly": false
    })
}

#[test]
fn install_merges_then_uninstall_restores_the_file_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let state = std::fs::canonicalize(dir.path()).unwrap().join("state");
    std::fs::create_dir(&state).unwrap();
    let settings = dir.path().join("managed-settings.json");
    let before = users_settings(&state);
    std::fs::write(&settings, serde_json::to_vec_pretty(&before).unwrap()).unwrap();
    let path = settings.display().to_string();
    let state_arg = state.display().to_string();
    let install = [
        "hook",
        "install",
        "claude-code",
        "--scope",
        "managed",
        "--path",
        &path,
        "--state-dir",
        &state_arg,
        "--protect",
        "/etc/ward",
    ];

    let dry = ward(&[&install[..], &["--dry-run"]].concat());
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(read(&settings), before, "--dry-run wrote the file");
    let shown: Value = serde_json::from_slice(&dry.stdout).unwrap();

    let done = ward(&install);
    assert!(done.status.success(), "{}", stderr(&done));
    let after = read(&settings);
    assert_eq!(after, shown, "--dry-run showed something else");
    // The user's entries are all still there.
    assert_eq!(after["model"], "opus");
    let pre = after["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(pre[0]["hooks"][0]["command"], "my-linter");
    let ours = pre[1]["hooks"][0]["command"].as_str().unwrap();
    // `ward-hook` beside `ward`, the small hook binary.
    assert!(
        ours.contains("ward-hook' claude-code --state-dir"),
        "{ours}"
    );
    assert!(ours.contains(&state_arg), "{ours}");
    assert_eq!(pre[1]["matcher"], "*");
    for event in ["PostToolUse", "SessionStart", "SessionEnd"] {
        assert_eq!(
            after["hooks"][event].as_array().unwrap().len(),
            1,
            "{event}"
        );
    }
    let deny = deny_rules(&after);
    assert_eq!(deny[0], "Read(./.env)");
    assert!(
        deny.contains(&format!("Edit(/{}/**)", state.display()).as_str()),
        "{deny:?}"
    );
    assert!(deny.contains(&"Edit(//etc/ward/**)"), "{deny:?}");
    assert_eq!(
        deny.iter()
            .filter(|r| **r == format!("Read(/{}/**)", state.display()))
            .count(),
        1,
        "a rule the user had is not added twice"
    );
    assert_eq!(after["allowManagedHooksOnly"], true);
    assert_eq!(after["disableBypassPermissionsMode"], "disable");

    // Installing again changes nothing.
    assert!(ward(&install).status.success());
    assert_eq!(read(&settings), after);

    let removed = ward(&["hook", "uninstall", "claude-code", "--path", &path]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert_eq!(
        read(&settings),
        before,
        "uninstall left something or took too much"
    );
    assert!(
        !dir.path()
            .join("managed-settings.json.ward-install.json")
            .exists()
    );

    let again = ward(&["hook", "uninstall", "claude-code", "--path", &path]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("no Ward install is recorded"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn a_fresh_file_is_created_and_removed_to_an_empty_object() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join(".claude/settings.json");
    let path = settings.display().to_string();
    let done = install(&settings, dir.path());
    assert!(done.status.success(), "{}", stderr(&done));
    let after = read(&settings);
    assert!(
        after.get("allowManagedHooksOnly").is_none(),
        "only managed settings lock hooks"
    );
    assert!(
        ward(&["hook", "uninstall", "claude-code", "--path", &path])
            .status
            .success()
    );
    assert_eq!(read(&settings), json!({}));
}

#[test]
fn settings_in_the_way_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    for (content, because) in [
        ("{not json", "is not JSON"),
        ("[1]", "not a JSON object"),
        ("{\"hooks\": []}", "`hooks` is not an object"),
        (
            "{\"hooks\": {\"PreToolUse\": {}}}",
            "`hooks.PreToolUse` is not an array",
        ),
        (
            "{\"permissions\": {\"deny\": \"x\"}}",
            "`permissions.deny` is not an array",
        ),
    ] {
        let settings = dir.path().join("settings.json");
        std::fs::write(&settings, content).unwrap();
        let out = install(&settings, dir.path());
        assert_eq!(out.status.code(), Some(1), "{content}");
        assert!(
            stderr(&out).contains(because),
            "{content}: {}",
            stderr(&out)
        );
        assert_eq!(std::fs::read_to_string(&settings).unwrap(), content);
    }
    let out = ward(&[
        "hook",
        "install",
        "claude-code",
        "--path",
        "/tmp/x.json",
        "--state-dir",
        "/nonexistent/ward",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ward agent enroll"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_command_answers_hook_events_from_the_daemon() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let settings = desk.root().join("settings.json");
    let done = install(&settings, &desk.state_dir);
    assert!(done.status.success(), "{}", stderr(&done));
    let command = read(&settings)["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .to_owned();
    let ask = |file: &str| {
        let event = json!({
            "hook_event_name": "PreToolUse", "cwd": desk.root().display().to_string(),
            "tool_name": "Read", "tool_input": {"file_path": file}, "tool_use_id": "toolu_inst",
        });
        // As Claude Code runs it: through a shell.
        let out = through_shell("sh", &command, &event);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
        answer["hookSpecificOutput"]["permissionDecision"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        ask(&desk.root().join("work/readme.txt").display().to_string()),
        "allow"
    );
    assert_eq!(
        ask(&desk.state_dir.join("device.key").display().to_string()),
        "deny"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uninstall_directive_removes_the_installed_hooks() {
    let mut desk = Desk::start([1, 60, 120, 300]).await;
    let settings = desk.root().join("claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let before = json!({"model": "opus", "permissions": {"deny": ["Read(./.env)"]}});
    std::fs::write(&settings, before.to_string()).unwrap();
    let path = settings.display().to_string();
    let done = install(&settings, &desk.state_dir);
    assert!(done.status.success(), "{}", stderr(&done));
    assert_ne!(read(&settings), before);

    let exit = desk.uninstall().await;
    assert_eq!(exit.code(), Some(0));
    assert_eq!(read(&settings), before, "the hooks were not removed");
    assert!(!Path::new(&format!("{path}.ward-install.json")).exists());
    assert!(!desk.state_file("installed-hooks.json").exists());
    let events = desk.server_events("").await;
    assert!(
        events.iter().any(|e| e["action"] == "hooks.uninstall"
            && e["result"] == "ok"
            && e["target"] == path.as_str()),
        "{events:?}"
    );
}

#[test]
fn the_example_managed_settings_are_what_install_writes() {
    for (agent, real, example) in [
        (
            "claude-code",
            "/etc/claude-code/managed-settings.json",
            "claude-code/managed-settings.json",
        ),
        ("codex", "/etc/codex/hooks.json", "codex/hooks.json"),
        (
            "gemini",
            "/etc/gemini-cli/settings.json",
            "gemini/settings.json",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        // Managed settings need a hook program every user can run.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = root.join("state");
        std::fs::create_dir(&state).unwrap();
        let settings = root.join("settings.json");
        let hook_binary = root.join("bin/ward-hook");
        std::fs::create_dir(root.join("bin")).unwrap();
        std::fs::write(&hook_binary, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&hook_binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = ward(&[
            "hook",
            "install",
            agent,
            "--scope",
            "managed",
            "--hook-binary",
            &hook_binary.display().to_string(),
            "--dry-run",
            "--path",
            &settings.display().to_string(),
            "--state-dir",
            &state.display().to_string(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let ward_path = std::fs::canonicalize(ward_bin()).unwrap();
        let written = String::from_utf8(out.stdout)
            .unwrap()
            .replace(&ward_path.display().to_string(), "/usr/local/bin/ward")
            .replace(
                &hook_binary.display().to_string(),
                "/usr/local/bin/ward-hook",
            )
            .replace(
                &state.display().to_string(),
                "/home/alice/.local/state/ward-agent",
            )
            .replace(&settings.display().to_string(), real);
        let example = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/agents")
            .join(example);
        let expected: Value = serde_json::from_slice(&std::fs::read(&example).unwrap()).unwrap();
        let written: Value = serde_json::from_str(&written).unwrap();
        assert_eq!(
            written,
            expected,
            "regenerate {} (see examples/agents/claude-code/README.md)",
            example.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_install_wraps_mcp_servers_allows_only_them_and_denies_unscoped_families() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let root = desk.root();
    let settings = root.join("etc/managed-settings.json");
    let mcp = root.join("etc/managed-mcp.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let theirs = json!({"mcpServers": {"wiki": {"command": "wiki-server"}}});
    std::fs::write(&mcp, theirs.to_string()).unwrap();
    let server = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/mcp/node_modules/.bin/mcp-server-filesystem");
    let work = root.join("work").display().to_string();
    let config = root.join("servers.json");
    let servers = json!({"mcpServers": {
        "fs": {"command": server.display().to_string(), "args": [work], "env": {"NODE_ENV": "production"}},
        "shell": {"command": "/bin/sh", "args": ["-c", "shell-mcp"]},
    }});
    std::fs::write(&config, servers.to_string()).unwrap();
    let state = desk.state_dir.display().to_string();
    let args = [
        "hook",
        "install",
        "claude-code",
        "--scope",
        "managed",
        "--path",
        &settings.display().to_string(),
        "--state-dir",
        &state,
        "--mcp-config",
        &config.display().to_string(),
    ];
    let done = ward(&args);
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("2 MCP servers wrapped"),
        "{}",
        String::from_utf8_lossy(&done.stdout)
    );
    let written = read(&settings);
    assert_eq!(written["allowManagedMcpServersOnly"], true);
    let wrapped = read(&mcp);
    assert_eq!(
        wrapped["mcpServers"]["wiki"], theirs["mcpServers"]["wiki"],
        "{wrapped}"
    );
    let fs = &wrapped["mcpServers"]["fs"];
    assert_eq!(fs["env"]["NODE_ENV"], "production");
    let line: Vec<String> = std::iter::once(fs["command"].as_str().unwrap().to_owned())
        .chain(
            fs["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned()),
        )
        .collect();
    assert_eq!(
        written["allowedMcpServers"][0]["serverCommand"],
        json!(line),
        "{written}"
    );
    // The profile scopes `fs` but not `shell`, and grants every built-in family.
    let deny = deny_rules(&written);
    assert!(deny.contains(&"mcp__shell"), "{deny:?}");
    assert!(!deny.contains(&"mcp__fs"), "{deny:?}");
    assert!(!deny.contains(&"Bash"), "{deny:?}");

    // The wrapped command is a working proxy: the SDK client through it
    // sees only the tools the scopes allow.
    let output = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp/client.mjs"))
        .args(&line)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    let tools = out["tools"].as_array().unwrap();
    assert!(tools.contains(&json!("read_text_file")), "{out}");
    assert!(!tools.contains(&json!("write_file")), "{out}");

    // Uninstall puts both files back as they were.
    let undo = ward(&[
        "hook",
        "uninstall",
        "claude-code",
        "--path",
        &settings.display().to_string(),
        "--state-dir",
        &state,
    ]);
    assert!(undo.status.success(), "{}", stderr(&undo));
    assert_eq!(read(&mcp), theirs);
    assert_eq!(read(&settings), json!({}));
    assert!(
        !desk.state_file("installed-hooks.json").exists() || {
            let known = read(&desk.state_file("installed-hooks.json"));
            known == json!([])
        }
    );

    // A server reached by URL, or MCP wrapping outside managed settings, is refused.
    std::fs::write(
        &config,
        json!({"mcpServers": {"remote": {"type": "http", "url": "https://mcp.example/mcp"}}})
            .to_string(),
    )
    .unwrap();
    let refused = ward(&args);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("ward mcp proxy --listen"),
        "{}",
        stderr(&refused)
    );
    let mut user = args.to_vec();
    user[4] = "user";
    let refused = ward(&user);
    assert!(
        stderr(&refused).contains("--mcp-config needs --scope managed"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(read(&mcp), theirs, "a refused install wrote");
}

/// `ward hook ARGS` with `env`.
fn ward_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(ward_bin());
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_hooks_are_installed_trusted_and_removed_exactly() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let home = desk.root().join("codex-home");
    std::fs::create_dir_all(&home).unwrap();
    let hooks = home.join("hooks.json");
    let theirs = json!({"hooks": {"PreToolUse": [{"matcher": "Bash",
        "hooks": [{"type": "command", "command": "my-audit", "timeout": 5}]}]}});
    std::fs::write(&hooks, theirs.to_string()).unwrap();
    let config = home.join("config.toml");
    let config_before = "model = \"gpt-5.5\"\n\n[projects.\"/src\"]\ntrust_level = \"trusted\"\n";
    std::fs::write(&config, config_before).unwrap();
    let state = desk.state_dir.display().to_string();
    let env = [("CODEX_HOME", home.as_path())];
    let done = ward_env(
        &[
            "hook",
            "install",
            "codex",
            "--scope",
            "user",
            "--state-dir",
            &state,
        ],
        &env,
    );
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("3 hook events, trusted in"),
        "{}",
        String::from_utf8_lossy(&done.stdout)
    );
    let written = read(&hooks);
    // Codex takes nothing but `hooks` at the top of the file.
    assert_eq!(
        written.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["hooks"]
    );
    let pre = written["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(pre[0], theirs["hooks"]["PreToolUse"][0], "theirs first");
    assert_eq!(pre[1]["hooks"][0]["timeout"], 30);
    let command = pre[1]["hooks"][0]["command"].as_str().unwrap().to_owned();
    assert!(command.contains(" codex --state-dir "), "{command}");
    let trusted = std::fs::read_to_string(&config).unwrap();
    assert!(trusted.starts_with(config_before), "{trusted}");
    let key = format!("[hooks.state.\"{}:pre_tool_use:1:0\"]", hooks.display());
    assert!(trusted.contains(&key), "{trusted}");
    assert_eq!(trusted.matches("trusted_hash = \"sha256:").count(), 3);

    // The installed command, run as Codex runs it, blocks by exit 2.
    let event = json!({"session_id": "s", "cwd": desk.root().join("work"),
        "hook_event_name": "PreToolUse", "tool_name": "Bash",
        "tool_input": {"command": "rm -rf ~"}, "tool_use_id": "call_1"});
    let out = through_shell("bash", &command, &event);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        !stderr(&out).trim().is_empty(),
        "Codex lets an empty reason through"
    );

    let undo = ward_env(
        &[
            "hook",
            "uninstall",
            "codex",
            "--scope",
            "user",
            "--state-dir",
            &state,
        ],
        &env,
    );
    assert!(undo.status.success(), "{}", stderr(&undo));
    assert_eq!(read(&hooks), theirs);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), config_before);
}

#[test]
fn a_managed_codex_install_pins_managed_hooks_only_and_leaves_an_admins_requirements() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc/codex");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let hooks = etc.join("hooks.json");
    let args = |verb: &str| {
        vec![
            "hook".to_owned(),
            verb.to_owned(),
            "codex".to_owned(),
            "--scope".to_owned(),
            "managed".to_owned(),
            "--path".to_owned(),
            hooks.display().to_string(),
            "--state-dir".to_owned(),
            state.display().to_string(),
        ]
    };
    let run = |verb: &str| {
        let args = args(verb);
        ward(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let done = run("install");
    assert!(done.status.success(), "{}", stderr(&done));
    let requirements = etc.join("requirements.toml");
    let written = std::fs::read_to_string(&requirements).unwrap();
    assert!(
        written.contains("\nallow_managed_hooks_only = true\n"),
        "{written}"
    );
    assert!(written.contains("[features]\nhooks = true\n"), "{written}");
    let undo = run("uninstall");
    assert!(undo.status.success(), "{}", stderr(&undo));
    assert!(!requirements.exists());
    assert_eq!(read(&hooks), json!({}));

    // An admin's own requirements are never rewritten.
    std::fs::write(&requirements, "allowed_sandbox_modes = [\"read-only\"]\n").unwrap();
    let done = run("install");
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("exists: make sure it says"),
        "{}",
        String::from_utf8_lossy(&done.stdout)
    );
    assert!(run("uninstall").status.success());
    assert_eq!(
        std::fs::read_to_string(&requirements).unwrap(),
        "allowed_sandbox_modes = [\"read-only\"]\n"
    );
}

#[test]
fn gemini_hooks_are_named_timed_in_milliseconds_and_enabled_in_system_settings() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let settings = dir.path().join("settings.json");
    let theirs = json!({"hooksConfig": {"notifications": false},
                        "security": {"auth": {"selectedType": "gemini-api-key"}}});
    std::fs::write(&settings, theirs.to_string()).unwrap();
    let path = settings.display().to_string();
    let state = state.display().to_string();
    let done = ward(&[
        "hook",
        "install",
        "gemini",
        "--scope",
        "managed",
        "--path",
        &path,
        "--state-dir",
        &state,
    ]);
    assert!(done.status.success(), "{}", stderr(&done));
    let printed = String::from_utf8_lossy(&done.stdout);
    assert!(
        printed.contains("4 hook events, hooks enabled"),
        "{printed}"
    );
    assert!(printed.contains("not trusted"), "{printed}");
    let written = read(&settings);
    assert_eq!(written["hooksConfig"]["enabled"], true);
    assert_eq!(written["hooksConfig"]["notifications"], false);
    let before = &written["hooks"]["BeforeTool"][0];
    assert_eq!(before["matcher"], "*");
    assert_eq!(before["hooks"][0]["name"], "ward");
    assert_eq!(before["hooks"][0]["timeout"], 30000);
    assert!(written["hooks"]["AfterTool"].is_array());
    assert!(written.get("permissions").is_none());
    let undo = ward(&[
        "hook",
        "uninstall",
        "gemini",
        "--scope",
        "managed",
        "--path",
        &path,
    ]);
    assert!(undo.status.success(), "{}", stderr(&undo));
    assert_eq!(read(&settings), theirs);
}

#[test]
fn a_record_or_link_planted_in_a_project_cannot_make_the_install_touch_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me\nsecret line\n").unwrap();
    let project = dir.path().join("project/.claude");
    std::fs::create_dir_all(&project).unwrap();
    let settings = project.join("settings.json");
    // A cloned repository ships a "record" naming the victim.
    std::fs::write(
        project.join("settings.json.ward-install.json"),
        json!({"hooks": [], "deny": [], "set": [], "created": [],
               "appended": [[victim, "secret line\n"]],
               "files": [[victim, "keep me\nsecret line\n"]]})
        .to_string(),
    )
    .unwrap();
    let out = install(&settings, &state);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("names files or text Ward never writes"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "keep me\nsecret line\n"
    );

    // Settings that are a link to another file are not written through.
    std::fs::remove_file(project.join("settings.json.ward-install.json")).unwrap();
    std::os::unix::fs::symlink(&victim, &settings).unwrap();
    let out = install(&settings, &state);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "keep me\nsecret line\n"
    );
}

#[test]
fn a_managed_install_refuses_a_hook_program_a_user_could_not_run_or_could_replace() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = root.join("state");
    std::fs::create_dir(&state).unwrap();
    let bin = root.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let hook = bin.join("ward-hook");
    std::fs::write(&hook, "#!/bin/sh\n").unwrap();
    let settings = root.join("managed-settings.json");
    let try_install = || {
        ward(&[
            "hook",
            "install",
            "claude-code",
            "--scope",
            "managed",
            "--hook-binary",
            &hook.display().to_string(),
            "--path",
            &settings.display().to_string(),
            "--state-dir",
            &state.display().to_string(),
        ])
    };
    for (dir_mode, file_mode, why) in [
        (0o755, 0o700, "cannot be entered or run by every user"),
        (0o755, 0o777, "writable by others than root"),
        (0o777, 0o755, "writable by others than root"),
        (0o700, 0o755, "cannot be entered or run by every user"),
    ] {
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(dir_mode)).unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(file_mode)).unwrap();
        let out = try_install();
        assert_eq!(out.status.code(), Some(1), "{dir_mode:o} {file_mode:o}");
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
        assert!(!settings.exists(), "a refused install wrote");
    }
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(try_install().status.success());
}
