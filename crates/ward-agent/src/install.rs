//! Ward's entries in an agent's settings: merged into what the user or
//! the organisation already has, and removed exactly, using a record of
//! what was added (kept beside the settings file). Pure: JSON in, JSON
//! out; the command line reads and writes the files.
//!
//! For Claude Code: the hooks (`PreToolUse` on every tool, `PostToolUse`,
//! `SessionStart`, `SessionEnd`, each running `ward hook claude-code`), a
//! `permissions.deny` baseline that keeps the agent's own file tools away
//! from Ward's state and the protected paths (defence in depth where a
//! hook could fail open), and in managed settings
//! `allowManagedHooksOnly: true` and `disableBypassPermissionsMode:
//! "disable"`, so a project cannot add hooks around Ward's nor switch
//! permissions off.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Hook events Ward installs, with the matcher each needs.
const EVENTS: [(&str, Option<&str>); 4] = [
    ("PreToolUse", Some("*")),
    ("PostToolUse", Some("*")),
    ("SessionStart", None),
    ("SessionEnd", None),
];

/// Seconds Claude Code gives the hook; the hook denies on its own well
/// before (its `--deadline-ms`, 5 s by default).
pub const HOOK_TIMEOUT_SECS: u64 = 30;

/// What to install.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The hook command line (`/usr/local/bin/ward hook claude-code
    /// --state-dir …`).
    pub command: String,
    /// Directories whose files the agent may neither read nor edit
    /// (Ward's state directory).
    pub private: Vec<String>,
    /// Files and directories the agent may not edit (Ward's binary, its
    /// configuration, these settings).
    pub read_only: Vec<String>,
    /// Managed settings: also lock hooks and bypass mode.
    pub managed: bool,
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
    /// Containers the install created (`hooks`, `hooks.PreToolUse`,
    /// `permissions`, `permissions.deny`), removed again once empty.
    pub created: Vec<String>,
}

/// Claude Code settings with Ward's entries merged in, and the record of
/// what was added. Errors name the part of `settings` in the way.
pub fn install_claude_code(settings: &Value, plan: &Plan) -> Result<(Value, Record), String> {
    let mut settings = match settings {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => return Err("the settings are not a JSON object".into()),
    };
    let mut record = Record::default();
    let hooks = object_at(&mut settings, "hooks", &mut record.created)?;
    for (event, matcher) in EVENTS {
        if !hooks.contains_key(event) {
            record.created.push(format!("hooks.{event}"));
        }
        let groups = hooks
            .entry(event)
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(groups) = groups else {
            return Err(format!("`hooks.{event}` is not an array"));
        };
        let mut group = json!({
            "hooks": [{"type": "command", "command": plan.command, "timeout": HOOK_TIMEOUT_SECS}]
        });
        if let Some(matcher) = matcher {
            group["matcher"] = json!(matcher);
        }
        groups.push(group.clone());
        record.hooks.push((event.to_owned(), group));
    }
    let permissions = object_at(&mut settings, "permissions", &mut record.created)?;
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
        for (key, value) in [
            ("allowManagedHooksOnly", json!(true)),
            ("disableBypassPermissionsMode", json!("disable")),
        ] {
            let before = settings.insert(key.to_owned(), value);
            record.set.push((key.to_owned(), before));
        }
    }
    Ok((Value::Object(settings), record))
}

/// `settings` without what `record` says was added: hooks groups and deny
/// rules removed, keys set back, containers the install created removed
/// when empty. What the user changed since stays.
pub fn uninstall_claude_code(settings: &Value, record: &Record) -> Result<Value, String> {
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
    for (key, before) in record.set.iter().rev() {
        match before {
            Some(value) => {
                settings.insert(key.clone(), value.clone());
            }
            None => {
                settings.remove(key);
            }
        }
    }
    // Innermost first: `hooks.PreToolUse` before `hooks`.
    let mut created = record.created.clone();
    created.sort_by_key(|path| std::cmp::Reverse(path.matches('.').count()));
    for path in created {
        let (parent, key) = match path.split_once('.') {
            Some((parent, key)) => (Some(parent), key),
            None => (None, path.as_str()),
        };
        let container = match parent {
            Some(parent) => match settings.get_mut(parent) {
                Some(Value::Object(map)) => map,
                _ => continue,
            },
            None => &mut settings,
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
