//! Ward's entries in an agent's settings: merged into what the user or
//! the organisation already has, and removed exactly, using a record of
//! what was added (kept beside the settings file). The merging is pure
//! (JSON in, JSON out); the `*_file` functions read and write the files.
//!
//! Codex CLI (`hooks.json`: `PreToolUse`, `PostToolUse`, `SessionStart`,
//! timeouts in seconds) runs a hook that is not managed only once the user
//! trusted it: a user or project install also appends the trust entries
//! (`[hooks.state."FILE:EVENT:GROUP:0"] trusted_hash`, [`codex_trust`]) to
//! the user's `config.toml`; the managed install (`/etc/codex/hooks.json`)
//! needs none, and creates `/etc/codex/requirements.toml` with
//! `allow_managed_hooks_only = true` and hooks pinned on when there is
//! none. Gemini CLI (`settings.json`: `BeforeTool`, `AfterTool`,
//! `SessionStart`, `SessionEnd`, timeouts in milliseconds, the hook named
//! `ward`) gets `hooksConfig.enabled: true` in system settings.
//!
//! For Claude Code: the hooks (`PreToolUse` on every tool, `PostToolUse`,
//! `SessionStart`, `SessionEnd`, each running `ward hook claude-code`), a
//! `permissions.deny` baseline that keeps the agent's own file tools away
//! from Ward's state and the protected paths (defence in depth where a
//! hook could fail open), deny rules for every tool family the agent's
//! profile grants nothing of ([`baseline`]), and in managed settings
//! `allowManagedHooksOnly: true` and `disableBypassPermissionsMode:
//! "disable"`, so a project cannot add hooks around Ward's nor switch
//! permissions off. With MCP servers given, managed installs also write
//! `managed-mcp.json` beside the settings with each server wrapped by
//! `ward mcp proxy` ([`wrap_mcp`]), and allow only those commands
//! (`allowedMcpServers`, `allowManagedMcpServersOnly: true`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

use crate::error::AgentError;
use crate::hook::Agent;

/// The settings files Ward installed into for an agent, in its state
/// directory: the daemon removes its entries from each when told to
/// uninstall.
pub const REGISTRY_FILE: &str = "installed-hooks.json";

/// Hook events Ward installs for `agent`, with the matcher each needs.
fn events(agent: Agent) -> &'static [(&'static str, Option<&'static str>)] {
    match agent {
        Agent::ClaudeCode => &[
            ("PreToolUse", Some("*")),
            ("PostToolUse", Some("*")),
            ("SessionStart", None),
            ("SessionEnd", None),
        ],
        Agent::Codex => &[
            ("PreToolUse", Some("*")),
            ("PostToolUse", Some("*")),
            ("SessionStart", None),
        ],
        Agent::Gemini => &[
            ("BeforeTool", Some("*")),
            ("AfterTool", Some("*")),
            ("SessionStart", None),
            ("SessionEnd", None),
        ],
    }
}

/// One hook handler running `command`, in `agent`'s terms.
fn handler(agent: Agent, command: &str) -> Value {
    match agent {
        Agent::ClaudeCode | Agent::Codex => {
            json!({"type": "command", "command": command, "timeout": HOOK_TIMEOUT_SECS})
        }
        // Gemini counts milliseconds, and can name a hook.
        Agent::Gemini => json!({
            "name": "ward", "type": "command", "command": command,
            "timeout": HOOK_TIMEOUT_SECS * 1000,
        }),
    }
}

/// What a managed Codex install writes to `/etc/codex/requirements.toml`
/// when there is none: only managed hooks run, and hooks stay on.
pub const CODEX_REQUIREMENTS: &str = "# Written by `ward hook install codex --scope managed` (removed by its uninstall while unchanged).\n\
# Only the hooks in /etc/codex run, and no user can switch hooks off.\n\
allow_managed_hooks_only = true\n\
\n\
[features]\n\
hooks = true\n";

/// Seconds Claude Code gives the hook; the hook denies on its own well
/// before (its `--deadline-ms`, 5 s by default).
pub const HOOK_TIMEOUT_SECS: u64 = 30;

/// What to install.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Whose settings.
    pub agent: Agent,
    /// The hook command line (`/usr/local/bin/ward hook claude-code
    /// --state-dir …`).
    pub command: String,
    /// Directories whose files the agent may neither read nor edit
    /// (Ward's state directory).
    pub private: Vec<String>,
    /// Files and directories the agent may not edit (Ward's binary, its
    /// configuration, these settings).
    pub read_only: Vec<String>,
    /// Deny rules derived from the agent's profile ([`baseline`]).
    pub derived: Vec<String>,
    /// Managed settings: also lock hooks and bypass mode.
    pub managed: bool,
    /// The wrapped MCP servers' command lines (managed only): the only
    /// servers Claude Code may start.
    pub mcp_commands: Vec<Vec<String>>,
    /// Codex: the user's `config.toml`, where the trust of the hooks is
    /// appended (user and project installs).
    pub trust_file: Option<PathBuf>,
    /// Files to create whole when they are not there (path, content):
    /// Codex's `requirements.toml` in a managed install.
    pub create: Vec<(PathBuf, String)>,
}

/// What an install added, to remove exactly that.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The matcher groups added, per hook event.
    pub hooks: Vec<(String, Value)>,
    /// Deny rules added (ones the settings already had are not listed).
    pub deny: Vec<String>,
    /// Top-level keys set, with the value each had before (`None`: absent).
    pub set: Vec<(String, Option<Value>)>,
    /// `mcpServers` entries set, with the value each had before.
    #[serde(default)]
    pub servers: Vec<(String, Option<Value>)>,
    /// Containers the install created (`hooks`, `hooks.PreToolUse`,
    /// `permissions`, `permissions.deny`), removed again once empty.
    pub created: Vec<String>,
    /// Where each event's group was put (its index in the event's list).
    #[serde(default)]
    pub positions: Vec<(String, usize)>,
    /// Text appended to other files (path, text), removed again.
    #[serde(default)]
    pub appended: Vec<(PathBuf, String)>,
    /// Files created whole (path, content), deleted again while unchanged.
    #[serde(default)]
    pub files: Vec<(PathBuf, String)>,
}

/// An agent's settings with Ward's entries merged in, and the record of
/// what was added. Errors name the part of `settings` in the way.
pub fn install_settings(settings: &Value, plan: &Plan) -> Result<(Value, Record), String> {
    let mut settings = match settings {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => return Err("the settings are not a JSON object".into()),
    };
    let mut record = Record::default();
    let hooks = object_at(&mut settings, "hooks", &mut record.created)?;
    for &(event, matcher) in events(plan.agent) {
        if !hooks.contains_key(event) {
            record.created.push(format!("hooks.{event}"));
        }
        let groups = hooks
            .entry(event)
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(groups) = groups else {
            return Err(format!("`hooks.{event}` is not an array"));
        };
        let mut group = json!({"hooks": [handler(plan.agent, &plan.command)]});
        if let Some(matcher) = matcher {
            group["matcher"] = json!(matcher);
        }
        record.positions.push((event.to_owned(), groups.len()));
        groups.push(group.clone());
        record.hooks.push((event.to_owned(), group));
    }
    match plan.agent {
        Agent::ClaudeCode => claude_code_rules(&mut settings, plan, &mut record)?,
        // `hooks.json` takes nothing but `hooks` (and `description`).
        Agent::Codex => {}
        Agent::Gemini => {
            if plan.managed {
                set_path(
                    &mut settings,
                    "hooksConfig.enabled",
                    json!(true),
                    &mut record,
                )?;
            }
        }
    }
    Ok((Value::Object(settings), record))
}

/// Claude Code's deny rules, and in managed settings its locks.
fn claude_code_rules(
    settings: &mut Map<String, Value>,
    plan: &Plan,
    record: &mut Record,
) -> Result<(), String> {
    let permissions = object_at(settings, "permissions", &mut record.created)?;
    if !permissions.contains_key("deny") {
        record.created.push("permissions.deny".into());
    }
    let deny = permissions
        .entry("deny")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(deny) = deny else {
        return Err("`permissions.deny` is not an array".into());
    };
    for rule in deny_rules(plan) {
        let value = Value::String(rule.clone());
        if !deny.contains(&value) {
            deny.push(value);
            record.deny.push(rule);
        }
    }
    if plan.managed {
        let mut locked = vec![
            ("allowManagedHooksOnly", json!(true)),
            ("disableBypassPermissionsMode", json!("disable")),
        ];
        if !plan.mcp_commands.is_empty() {
            let allowed: Vec<Value> = plan
                .mcp_commands
                .iter()
                .map(|command| json!({"serverCommand": command}))
                .collect();
            locked.push(("allowedMcpServers", Value::Array(allowed)));
            locked.push(("allowManagedMcpServersOnly", json!(true)));
        }
        for (key, value) in locked {
            set_path(settings, key, value, record)?;
        }
    }
    Ok(())
}

/// Sets the value at a dotted `path` (`hooksConfig.enabled`), making the
/// objects on the way (noted as created) and noting the value replaced.
fn set_path(
    settings: &mut Map<String, Value>,
    path: &str,
    value: Value,
    record: &mut Record,
) -> Result<(), String> {
    let mut container = settings;
    let mut walked = String::new();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            let before = container.insert(part.to_owned(), value);
            record.set.push((path.to_owned(), before));
            return Ok(());
        }
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(part);
        if !container.contains_key(part) {
            record.created.push(walked.clone());
        }
        container = match container
            .entry(part)
            .or_insert_with(|| Value::Object(Map::new()))
        {
            Value::Object(map) => map,
            _ => return Err(format!("`{walked}` is not an object")),
        };
    }
    Ok(())
}

/// The object holding the last part of dotted `path`, if it is there.
fn parent_of<'a>(
    settings: &'a mut Map<String, Value>,
    path: &'a str,
) -> Option<(&'a mut Map<String, Value>, &'a str)> {
    let (parents, key) = match path.rsplit_once('.') {
        Some((parents, key)) => (Some(parents), key),
        None => (None, path),
    };
    let mut container = settings;
    for part in parents.into_iter().flat_map(|p| p.split('.')) {
        container = match container.get_mut(part) {
            Some(Value::Object(map)) => map,
            _ => return None,
        };
    }
    Some((container, key))
}

/// Claude Code deny rules for the tool families `scopes` (the agent's
/// profile, every feature's) grant nothing of, and for each configured
/// MCP server in `servers` no scope names: Claude Code refuses those
/// itself, even where a hook would fail open. A profile that gains a
/// family later needs the install run again.
pub fn baseline(scopes: &[String], servers: &[String]) -> Vec<String> {
    let parsed: Vec<ward_model::scope::Scope> =
        scopes.iter().filter_map(|s| s.parse().ok()).collect();
    let grants = |resource: &str, action: Option<&str>| {
        parsed.iter().any(|scope| {
            (scope.resource() == resource || scope.resource() == "*")
                && action.is_none_or(|a| scope.action() == a || scope.action() == "*")
        })
    };
    let mut rules = Vec::new();
    for (resource, action, tools) in [
        ("files", Some("read"), &["Read"][..]),
        (
            "files",
            Some("write"),
            &["Edit", "Write", "NotebookEdit"][..],
        ),
        ("exec", None, &["Bash"][..]),
        ("http", None, &["WebFetch", "WebSearch"][..]),
    ] {
        if !grants(resource, action) {
            rules.extend(tools.iter().map(|t| (*t).to_owned()));
        }
    }
    for server in servers {
        let named = parsed.iter().any(|scope| {
            (scope.resource() == "mcp" || scope.resource() == "*")
                && (scope.pattern() == "**"
                    || scope
                        .pattern()
                        .split('/')
                        .next()
                        .is_some_and(|first| first == server || first == "*" || first == "**"))
        });
        if !named {
            rules.push(format!("mcp__{server}"));
        }
    }
    rules
}

/// `config` (a `.mcp.json`-style `{"mcpServers": {NAME: {command, args,
/// env}}}`) with each server started through `ward mcp proxy --name NAME`
/// (`ward` and `state_dir` as given; an entry's own `"ward": {"map":
/// FILE}` becomes `--map FILE`). A server reached by URL is refused: it
/// is put behind Ward by running `ward mcp proxy --listen … --upstream
/// URL` and listing the proxy's URL instead.
pub fn wrap_mcp(config: &Value, ward: &str, state_dir: &str) -> Result<Map<String, Value>, String> {
    let Some(Value::Object(servers)) = config.get("mcpServers") else {
        return Err("has no `mcpServers` object".into());
    };
    let mut wrapped = Map::new();
    for (name, server) in servers {
        let Value::Object(server) = server else {
            return Err(format!("`mcpServers.{name}` is not an object"));
        };
        if server.contains_key("url") || server.get("type").is_some_and(|t| t != "stdio") {
            return Err(format!(
                "`mcpServers.{name}` is reached by URL; run `ward mcp proxy --listen 127.0.0.1:PORT --upstream URL` for it and list the proxy's URL instead"
            ));
        }
        let Some(Value::String(command)) = server.get("command") else {
            return Err(format!("`mcpServers.{name}.command` is not a string"));
        };
        let mut args = vec![
            "mcp".to_owned(),
            "proxy".to_owned(),
            "--state-dir".to_owned(),
            state_dir.to_owned(),
            "--name".to_owned(),
            name.clone(),
        ];
        match server.get("ward").and_then(|w| w.get("map")) {
            None => {}
            Some(Value::String(map)) => {
                args.push("--map".to_owned());
                args.push(map.clone());
            }
            Some(_) => return Err(format!("`mcpServers.{name}.ward.map` is not a string")),
        }
        args.push("--".to_owned());
        args.push(command.clone());
        match server.get("args") {
            None => {}
            Some(Value::Array(items)) => {
                for item in items {
                    let Value::String(item) = item else {
                        return Err(format!("`mcpServers.{name}.args` holds a non-string"));
                    };
                    args.push(item.clone());
                }
            }
            Some(_) => return Err(format!("`mcpServers.{name}.args` is not a list")),
        }
        let mut entry = json!({"type": "stdio", "command": ward, "args": args});
        if let Some(env) = server.get("env") {
            entry["env"] = env.clone();
        }
        wrapped.insert(name.clone(), entry);
    }
    Ok(wrapped)
}

/// The full command line of a wrapped server, as `allowedMcpServers`
/// matches it.
pub fn command_line(server: &Value) -> Vec<String> {
    let mut line: Vec<String> = server
        .get("command")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .into_iter()
        .collect();
    if let Some(Value::Array(args)) = server.get("args") {
        line.extend(args.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    line
}

/// `managed-mcp.json` (`document`) with the `wrapped` servers set, and
/// the record of what was set.
pub fn install_mcp(
    document: &Value,
    wrapped: &Map<String, Value>,
) -> Result<(Value, Record), String> {
    let mut document = match document {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => return Err("the file is not a JSON object".into()),
    };
    let mut record = Record::default();
    let servers = object_at(&mut document, "mcpServers", &mut record.created)?;
    for (name, server) in wrapped {
        let before = servers.insert(name.clone(), server.clone());
        record.servers.push((name.clone(), before));
    }
    Ok((Value::Object(document), record))
}

/// `settings` without what `record` says was added: hooks groups and deny
/// rules removed, keys set back, containers the install created removed
/// when empty. What the user changed since stays.
pub fn uninstall_settings(settings: &Value, record: &Record) -> Result<Value, String> {
    let Value::Object(settings) = settings else {
        return Err("the settings are not a JSON object".into());
    };
    let mut settings = settings.clone();
    if let Some(Value::Object(hooks)) = settings.get_mut("hooks") {
        for (event, group) in &record.hooks {
            if let Some(Value::Array(groups)) = hooks.get_mut(event)
                && let Some(at) = groups.iter().position(|g| g == group)
            {
                groups.remove(at);
            }
        }
    }
    if let Some(Value::Object(permissions)) = settings.get_mut("permissions")
        && let Some(Value::Array(deny)) = permissions.get_mut("deny")
    {
        deny.retain(|rule| {
            !rule
                .as_str()
                .is_some_and(|r| record.deny.iter().any(|d| d == r))
        });
    }
    if let Some(Value::Object(servers)) = settings.get_mut("mcpServers") {
        for (name, before) in record.servers.iter().rev() {
            match before {
                Some(value) => {
                    servers.insert(name.clone(), value.clone());
                }
                None => {
                    servers.remove(name);
                }
            }
        }
    }
    for (path, before) in record.set.iter().rev() {
        let Some((container, key)) = parent_of(&mut settings, path) else {
            continue;
        };
        match before {
            Some(value) => {
                container.insert(key.to_owned(), value.clone());
            }
            None => {
                container.remove(key);
            }
        }
    }
    // Innermost first: `hooks.PreToolUse` before `hooks`.
    let mut created = record.created.clone();
    created.sort_by_key(|path| std::cmp::Reverse(path.matches('.').count()));
    for path in created {
        let Some((container, key)) = parent_of(&mut settings, &path) else {
            continue;
        };
        let empty = match container.get(key) {
            Some(Value::Array(items)) => items.is_empty(),
            Some(Value::Object(map)) => map.is_empty(),
            _ => false,
        };
        if empty {
            container.remove(key);
        }
    }
    Ok(Value::Object(settings))
}

/// The `permissions.deny` rules for `plan`: `//` makes a path absolute in
/// Claude Code's rule syntax.
fn deny_rules(plan: &Plan) -> Vec<String> {
    let mut rules = Vec::new();
    for (paths, tools) in [
        (&plan.private, &["Read", "Edit"][..]),
        (&plan.read_only, &["Edit"][..]),
    ] {
        for path in paths {
            let path = path.trim_end_matches('/');
            let absolute = format!("/{path}");
            for tool in tools {
                rules.push(format!("{tool}({absolute})"));
                rules.push(format!("{tool}({absolute}/**)"));
            }
        }
    }
    rules.extend(plan.derived.iter().cloned());
    rules
}

/// The object at `key` of `settings`, made when absent (and noted).
fn object_at<'a>(
    settings: &'a mut Map<String, Value>,
    key: &str,
    created: &mut Vec<String>,
) -> Result<&'a mut Map<String, Value>, String> {
    if !settings.contains_key(key) {
        created.push(key.to_owned());
    }
    match settings
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(map) => Ok(map),
        _ => Err(format!("`{key}` is not an object")),
    }
}

/// Where the record of an install into `settings` is kept.
pub fn record_path(settings: &Path) -> PathBuf {
    let mut name = settings.file_name().unwrap_or_default().to_owned();
    name.push(".ward-install.json");
    settings.with_file_name(name)
}

/// Installs into the settings file `settings` (replacing an earlier
/// install recorded there); with `dry_run` writes nothing. Returns the
/// settings as written and what was added.
pub fn install_file(
    settings: &Path,
    plan: &Plan,
    dry_run: bool,
) -> Result<(Value, Record), AgentError> {
    let absolute = std::path::absolute(settings).map_err(AgentError::io("read", settings))?;
    merge_file(
        settings,
        dry_run,
        |current| install_settings(current, plan),
        |record| {
            if let Some(config) = &plan.trust_file {
                let text = codex_trust(&absolute, record);
                record.appended.push((config.clone(), text));
            }
            for (path, content) in &plan.create {
                if !path.exists() {
                    record.files.push((path.clone(), content.clone()));
                }
            }
        },
    )
}

/// Writes the `wrapped` MCP servers into `managed-mcp.json` at `path`
/// (replacing an earlier install recorded there), as [`install_file`].
pub fn install_mcp_file(
    path: &Path,
    wrapped: &Map<String, Value>,
    dry_run: bool,
) -> Result<(Value, Record), AgentError> {
    merge_file(
        path,
        dry_run,
        |current| install_mcp(current, wrapped),
        |_| {},
    )
}

fn merge_file(
    settings: &Path,
    dry_run: bool,
    merge: impl Fn(&Value) -> Result<(Value, Record), String>,
    extras: impl Fn(&mut Record),
) -> Result<(Value, Record), AgentError> {
    not_a_link(settings)?;
    let mut current = read_json(settings)?.unwrap_or(Value::Null);
    let record_file = record_path(settings);
    if let Some(old) = read_record(&record_file)? {
        current = uninstall_settings(&current, &old).map_err(|e| in_the_way(settings, &e))?;
        if !dry_run {
            undo_files(&old)?;
        }
    }
    let (merged, mut record) = merge(&current).map_err(|e| in_the_way(settings, &e))?;
    extras(&mut record);
    if !dry_run {
        apply_files(&record)?;
        let record_json = serde_json::to_value(&record)
            .map_err(|e| AgentError::Invalid(format!("cannot encode the install record: {e}")))?;
        // The record first: a crash between the two leaves a record of an
        // install that is not there, which uninstall handles.
        write_json(&record_file, &record_json)?;
        write_json(settings, &merged)?;
    }
    Ok((merged, record))
}

/// The Codex trust entries for the hooks `record` added to the
/// `hooks.json` at `hooks_file`: a TOML table per handler, keyed by the
/// file, the event, the group's index and the handler's, holding the hash
/// Codex computes for it (SHA-256 of the handler's canonical JSON, keys
/// sorted: `event_name`, `hooks` with `async`, `command`, `timeout`,
/// `type`, and `matcher`). Ward's groups are appended to each event, so
/// the user's own keep their indexes and their trust.
pub fn codex_trust(hooks_file: &Path, record: &Record) -> String {
    use sha2::Digest;
    let mut text = format!(
        "\n# Ward: trust for its hooks in \"{}\" (removed by `ward hook uninstall codex`)\n",
        toml_escaped(&hooks_file.display().to_string())
    );
    for (event, group) in &record.hooks {
        let label = match event.as_str() {
            "PreToolUse" => "pre_tool_use",
            "PostToolUse" => "post_tool_use",
            "SessionStart" => "session_start",
            other => other,
        };
        let handler = &group["hooks"][0];
        let command = serde_json::to_string(&handler["command"]).unwrap_or_default();
        let timeout = handler["timeout"].as_u64().unwrap_or(600).max(1);
        let matcher = match group.get("matcher").and_then(Value::as_str) {
            Some(m) => format!(
                ",\"matcher\":{}",
                serde_json::to_string(m).unwrap_or_default()
            ),
            None => String::new(),
        };
        let identity = format!(
            "{{\"event_name\":\"{label}\",\"hooks\":[{{\"async\":false,\"command\":{command},\"timeout\":{timeout},\"type\":\"command\"}}]{matcher}}}"
        );
        let hash = sha2::Sha256::digest(identity.as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        let index = record
            .positions
            .iter()
            .find(|(e, _)| e == event)
            .map_or(0, |(_, i)| *i);
        let key = toml_escaped(&format!("{}:{label}:{index}:0", hooks_file.display()));
        text.push_str(&format!(
            "[hooks.state.\"{key}\"]\ntrusted_hash = \"sha256:{hex}\"\n"
        ));
    }
    text
}

/// `text` as the inside of a TOML basic string: `\\`, `"` and every
/// control character escaped, so a path cannot end the string or the line.
fn toml_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Appends and creates the files `record` names (its `appended` text
/// after what a file holds, each of its `files` whole).
fn apply_files(record: &Record) -> Result<(), AgentError> {
    for (path, text) in &record.appended {
        let mut current = match std::fs::read_to_string(path) {
            Ok(current) => current,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(AgentError::io("read", path)(e)),
        };
        if !current.is_empty() && !current.ends_with('\n') {
            current.push('\n');
        }
        current.push_str(text);
        write_text(path, &current)?;
    }
    for (path, content) in &record.files {
        write_text(path, content)?;
    }
    Ok(())
}

/// Undoes [`apply_files`]: the appended text taken out where it still is,
/// the files created deleted while they hold what was written.
fn undo_files(record: &Record) -> Result<(), AgentError> {
    for (path, text) in &record.appended {
        let current = match std::fs::read_to_string(path) {
            Ok(current) => current,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(AgentError::io("read", path)(e)),
        };
        if let Some(at) = current.find(text.as_str()) {
            let mut cleaned = current.clone();
            cleaned.replace_range(at..at + text.len(), "");
            write_text(path, &cleaned)?;
        }
    }
    for (path, content) in &record.files {
        if std::fs::read_to_string(path).is_ok_and(|c| &c == content) {
            std::fs::remove_file(path).map_err(AgentError::io("remove", path))?;
        }
    }
    Ok(())
}

/// Removes what the record beside `settings` says was installed, and the
/// record; with `dry_run` writes nothing. Returns the settings as written.
pub fn uninstall_file(settings: &Path, dry_run: bool) -> Result<Value, AgentError> {
    let record_file = record_path(settings);
    let Some(record) = read_record(&record_file)? else {
        return Err(AgentError::Invalid(format!(
            "no Ward install is recorded for `{}` (`{}` is missing)",
            settings.display(),
            record_file.display()
        )));
    };
    let current = read_json(settings)?.unwrap_or(Value::Object(Map::new()));
    let cleaned = uninstall_settings(&current, &record).map_err(|e| in_the_way(settings, &e))?;
    if !dry_run {
        undo_files(&record)?;
        write_json(settings, &cleaned)?;
        std::fs::remove_file(&record_file).map_err(AgentError::io("remove", &record_file))?;
    }
    Ok(cleaned)
}

/// Notes in the state directory that `settings` holds Ward's entries.
pub fn remember(state_dir: &Path, settings: &Path) -> Result<(), AgentError> {
    let mut known = installed(state_dir)?;
    let settings = settings.to_path_buf();
    if !known.contains(&settings) {
        known.push(settings);
    }
    save_registry(state_dir, &known)
}

/// Forgets `settings` (its entries were removed).
pub fn forget(state_dir: &Path, settings: &Path) -> Result<(), AgentError> {
    let mut known = installed(state_dir)?;
    known.retain(|p| p != settings);
    save_registry(state_dir, &known)
}

/// The settings files holding Ward's entries for this state directory.
pub fn installed(state_dir: &Path) -> Result<Vec<PathBuf>, AgentError> {
    let path = state_dir.join(REGISTRY_FILE);
    match read_json(&path)? {
        None => Ok(Vec::new()),
        Some(value) => serde_json::from_value(value).map_err(|e| AgentError::Corrupt {
            path,
            problem: format!("is not a list of settings files ({e})"),
        }),
    }
}

/// Removes Ward's entries from every settings file it installed into for
/// this state directory; each file's outcome.
pub fn uninstall_all(state_dir: &Path) -> Vec<(PathBuf, Result<(), AgentError>)> {
    let known = match installed(state_dir) {
        Ok(known) => known,
        Err(error) => return vec![(state_dir.join(REGISTRY_FILE), Err(error))],
    };
    known
        .into_iter()
        .map(|settings| {
            let done = uninstall_file(&settings, false).map(|_| ());
            (settings, done)
        })
        .collect()
}

fn save_registry(state_dir: &Path, known: &[PathBuf]) -> Result<(), AgentError> {
    use std::os::unix::fs::MetadataExt;
    let path = state_dir.join(REGISTRY_FILE);
    let value = serde_json::to_value(known)
        .map_err(|e| AgentError::Invalid(format!("cannot encode the list of installs: {e}")))?;
    write_json(&path, &value)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(AgentError::io("write", &path))?;
    // Installing into managed settings runs as root: the list must stay
    // readable by the daemon, which runs as the state directory's owner.
    let owner = std::fs::metadata(state_dir).map_err(AgentError::io("read", state_dir))?;
    if rustix::process::geteuid().is_root() && owner.uid() != 0 {
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid()))
            .map_err(AgentError::io("write", &path))?;
    }
    Ok(())
}

fn read_record(path: &Path) -> Result<Option<Record>, AgentError> {
    let Some(value) = read_json(path)? else {
        return Ok(None);
    };
    let record: Record = serde_json::from_value(value).map_err(|e| AgentError::Corrupt {
        path: path.to_owned(),
        problem: format!("is not a Ward install record ({e})"),
    })?;
    // A record can sit in a checked-out project: it may only undo what
    // Ward writes beside settings, never name other files or text.
    let foreign = record.appended.iter().any(|(file, text)| {
        file.file_name().is_none_or(|n| n != "config.toml") || !is_trust_text(text)
    }) || record.files.iter().any(|(file, content)| {
        file.file_name().is_none_or(|n| n != "requirements.toml") || content != CODEX_REQUIREMENTS
    });
    if foreign {
        return Err(AgentError::Corrupt {
            path: path.to_owned(),
            problem: "names files or text Ward never writes; not used".into(),
        });
    }
    Ok(Some(record))
}

/// Whether `text` is a block [`codex_trust`] writes, and nothing else.
fn is_trust_text(text: &str) -> bool {
    let mut lines = text.trim_start_matches('\n').lines();
    lines
        .next()
        .is_some_and(|first| first.starts_with("# Ward: trust for its hooks in \""))
        && lines.all(|line| {
            (line.starts_with("[hooks.state.\"") && line.ends_with("\"]"))
                || (line.starts_with("trusted_hash = \"sha256:") && line.ends_with('"'))
        })
}

fn read_json(path: &Path) -> Result<Option<Value>, AgentError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AgentError::Corrupt {
                path: path.to_owned(),
                problem: format!("is not JSON ({e}); fix or move it first"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::io("read", path)(e)),
    }
}

/// Replaces `path` with `value` as JSON, as [`write_text`].
fn write_json(path: &Path, value: &Value) -> Result<(), AgentError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| AgentError::Invalid(format!("cannot encode `{}`: {e}", path.display())))?;
    write_text(path, &format!("{text}\n"))
}

/// Replaces `path` with `text` so that a crash leaves the old file or the
/// new one (temp file, fsync, rename), keeping its mode.
fn write_text(path: &Path, text: &str) -> Result<(), AgentError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(AgentError::io("write", dir))?;
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    not_a_link(path)?;
    let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix)
        .map_err(|e| AgentError::Invalid(format!("no randomness for a temporary name: {e}")))?;
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(
        ".ward-tmp-{}",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    let temp = PathBuf::from(temp);
    // New, never followed: a planted name cannot redirect the write.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .mode(mode)
        .open(&temp)
        .map_err(AgentError::io("write", &temp))?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all());
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(AgentError::io("write", &temp)(error));
    }
    std::fs::rename(&temp, path).map_err(AgentError::io("write", path))
}

/// Refuses a path that is a symbolic link: a settings file or record that
/// is one could send a write anywhere the installer may write (a
/// checked-out project's files are not the installer's to trust).
fn not_a_link(path: &Path) -> Result<(), AgentError> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(AgentError::Invalid(format!(
            "`{}` is a symbolic link; Ward writes only regular files",
            path.display()
        )));
    }
    Ok(())
}

fn in_the_way(settings: &Path, why: &str) -> AgentError {
    AgentError::Invalid(format!("`{}`: {why}; fix it first", settings.display()))
}
