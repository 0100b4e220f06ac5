//! One tool-call model for every agent: a call an agent is about to make
//! (its tool name and inputs, in the agent's own words) mapped to the Ward
//! resources it touches, each an `authorize` question for the daemon.
//! Pure: the hooks of each agent translate their protocol into a
//! [`ToolCall`] and the answers back.
//!
//! - file tools (`Read`, `Write`, `Edit`, `MultiEdit`, `NotebookEdit`,
//!   `LS`, `Glob` and `Grep` on their search root, and the other agents'
//!   equivalents) are `files:read` or `files:write` on the path;
//! - shell tools are every program, read, write and delete of the command
//!   line ([`crate::shell`]); a line it cannot prove is [`Unsure`];
//! - Codex's `apply_patch` is `files:write` on every file its patch adds,
//!   updates, deletes or moves to;
//! - web fetches are `http:get` on the URL (normalised by the daemon);
//! - MCP tools `mcp__server__tool` are `mcp:call` on `server/tool`;
//! - any other tool is `tool:call` on its name, so a matrix grants the
//!   agent's harmless tools by name and nothing unknown runs by default.

use serde_json::Value;
use ward_model::scope::echo;

use crate::shell::{self, TouchKind, Unsure};

/// A tool call an agent is about to make.
#[derive(Clone, Copy, Debug)]
pub struct ToolCall<'a> {
    /// The agent's name for the tool (`Bash`, `Read`, `mcp__fs__read`, …).
    pub tool: &'a str,
    /// The tool's inputs as the agent sent them.
    pub input: &'a Value,
    /// The agent's working directory.
    pub cwd: &'a str,
    /// The desktop user's home, for `~` in shell lines.
    pub home: Option<&'a str>,
}

/// One `authorize` question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// `files:read`, `exec:run`, `http:get`, `mcp:call`, `tool:call`, …
    pub action: String,
    /// The path, program, URL or name, as the agent gave it.
    pub resource: String,
    /// The directory a relative path is taken from.
    pub cwd: String,
}

/// The questions a call needs answered `allow`, all of them, before it
/// may run; [`Unsure`] when its inputs cannot be judged.
pub fn questions(call: &ToolCall) -> Result<Vec<Question>, Unsure> {
    let ask = |action: &str, resource: &str| Question {
        action: action.to_owned(),
        resource: resource.to_owned(),
        cwd: call.cwd.to_owned(),
    };
    let field = |name: &str| -> Result<&str, Unsure> {
        match call.input.get(name) {
            Some(Value::String(text)) if !text.is_empty() => Ok(text),
            Some(_) => Err(Unsure(format!(
                "`{}` gave `{name}` that is not a non-empty string",
                call.tool
            ))),
            None => Err(Unsure(format!("`{}` without `{name}`", call.tool))),
        }
    };
    // An optional search root: the working directory when absent.
    let root = |name: &str| -> Result<&str, Unsure> {
        match call.input.get(name) {
            None | Some(Value::Null) => Ok(call.cwd),
            Some(_) => field(name),
        }
    };
    if let Some(rest) = call.tool.strip_prefix("mcp__") {
        let Some((server, tool)) = rest.split_once("__") else {
            return Err(Unsure(format!(
                "`{}` is not an MCP tool name (`mcp__server__tool`)",
                call.tool
            )));
        };
        return Ok(vec![ask("mcp:call", &format!("{server}/{tool}"))]);
    }
    Ok(match call.tool {
        // Claude Code; Gemini CLI's `read_file`, `read_many_files`,
        // `list_directory`, `glob`, `search_file_content`; Codex's
        // `read_file`.
        "Read" | "read_file" => vec![ask(
            "files:read",
            field_any(call, &["file_path", "absolute_path", "path"])?,
        )],
        "NotebookRead" => vec![ask("files:read", field("notebook_path")?)],
        "LS" | "list_directory" => vec![ask("files:read", field("path")?)],
        "Glob" | "glob" => vec![ask(
            "files:read",
            &glob_root(root("path")?, field("pattern")?),
        )],
        "Grep" | "search_file_content" | "grep_search" => vec![ask("files:read", root("path")?)],
        "Write" | "Edit" | "MultiEdit" | "write_file" | "replace" | "edit_file" => {
            vec![ask(
                "files:write",
                field_any(call, &["file_path", "absolute_path", "path"])?,
            )]
        }
        "NotebookEdit" => vec![ask("files:write", field("notebook_path")?)],
        "apply_patch" => patched_files(field_any(call, &["command", "input", "patch"])?)?
            .into_iter()
            .map(|path| ask("files:write", path))
            .collect(),
        "WebFetch" | "web_fetch" => vec![ask("http:get", field_any(call, &["url", "prompt_url"])?)],
        "Bash" | "run_shell_command" | "shell" | "local_shell" => {
            let line = match call.input.get("command") {
                // Codex sends argv; it is run without a shell only when it
                // is not `bash -lc …`, which `shell` follows anyway.
                Some(Value::Array(argv)) => argv_line(argv)?,
                _ => field("command")?.to_owned(),
            };
            // Where the agent runs it: Gemini's `dir_path`, Codex's `workdir`.
            let directory = match call
                .input
                .get("directory")
                .or(call.input.get("workdir"))
                .or(call.input.get("dir_path"))
            {
                Some(Value::String(dir)) if !dir.is_empty() => join(call.cwd, dir),
                _ => call.cwd.to_owned(),
            };
            shell::analyse(&line, &directory, call.home)?
                .into_iter()
                .map(|touch| Question {
                    action: match touch.kind {
                        TouchKind::Exec => "exec:run",
                        TouchKind::Read => "files:read",
                        TouchKind::Write => "files:write",
                        TouchKind::Delete => "files:delete",
                    }
                    .to_owned(),
                    resource: touch.target,
                    cwd: touch.cwd,
                })
                .collect()
        }
        other => {
            if other.is_empty()
                || !other
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Err(Unsure(format!(
                    "a tool named `{}` cannot be judged",
                    echo(other)
                )));
            }
            vec![ask("tool:call", other)]
        }
    })
}

/// The files a Codex patch (`*** Begin Patch` … `*** End Patch`) adds,
/// updates, deletes or moves to; [`Unsure`] when it names none or is not
/// one.
fn patched_files(patch: &str) -> Result<Vec<&str>, Unsure> {
    // Codex reads each line trimmed: a header may be indented.
    let mut lines = patch.lines().map(str::trim);
    if lines.next() != Some("*** Begin Patch") {
        return Err(Unsure("an `apply_patch` that is not a patch".into()));
    }
    let mut files = Vec::new();
    for line in lines {
        if !line.starts_with("***") {
            continue;
        }
        let header = [
            "*** Add File:",
            "*** Update File:",
            "*** Delete File:",
            "*** Move to:",
        ]
        .into_iter()
        .find_map(|header| line.strip_prefix(header));
        match header {
            Some(path) if !path.trim().is_empty() => files.push(path.trim()),
            Some(_) => {
                return Err(Unsure(format!(
                    "an `apply_patch` header `{}` without a path",
                    echo(line)
                )));
            }
            None if matches!(line, "*** End Patch" | "*** End of File") => {}
            // A header Ward does not know may name a file it would not see.
            None => {
                return Err(Unsure(format!(
                    "an `apply_patch` line `{}` Ward does not know",
                    echo(line)
                )));
            }
        }
    }
    if files.is_empty() {
        return Err(Unsure("an `apply_patch` that names no file".into()));
    }
    Ok(files)
}

/// The first of `names` the call gave, as a non-empty string.
fn field_any<'a>(call: &ToolCall<'a>, names: &[&str]) -> Result<&'a str, Unsure> {
    for name in names {
        match call.input.get(*name) {
            Some(Value::String(text)) if !text.is_empty() => return Ok(text),
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(Unsure(format!(
                    "`{}` gave `{name}` that is not a non-empty string",
                    call.tool
                )));
            }
        }
    }
    Err(Unsure(format!(
        "`{}` without `{}`",
        call.tool,
        names.join("` or `")
    )))
}

/// The directory a glob searches: `root` joined with the pattern's part
/// before its first wildcard, up to a `/`.
fn glob_root(root: &str, pattern: &str) -> String {
    let literal_end = pattern.find(['*', '?', '[', '{']).unwrap_or(pattern.len());
    let literal = &pattern[..literal_end];
    let dir = if literal_end == pattern.len() {
        literal
    } else {
        match literal.rfind('/') {
            Some(0) => "/",
            Some(at) => &literal[..at],
            None => "",
        }
    };
    if dir.is_empty() {
        root.to_owned()
    } else {
        join(root, dir)
    }
}

/// `dir` under `base` unless it is absolute.
fn join(base: &str, dir: &str) -> String {
    if dir.starts_with('/') {
        dir.to_owned()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), dir)
    }
}

/// An argv as a shell line that means the same: every word single-quoted.
fn argv_line(argv: &[Value]) -> Result<String, Unsure> {
    let mut line = String::new();
    for word in argv {
        let Value::String(word) = word else {
            return Err(Unsure(
                "a command argv with a word that is not a string".into(),
            ));
        };
        if !line.is_empty() {
            line.push(' ');
        }
        line.push('\'');
        line.push_str(&word.replace('\'', "'\\''"));
        line.push('\'');
    }
    if line.is_empty() {
        return Err(Unsure("an empty command argv".into()));
    }
    Ok(line)
}
