//! Agents' hooks answered by the daemon: one hook call in (the agent's
//! JSON on stdin), one [`Answer`] out (what to print and the exit code).
//! A tool call (`PreToolUse`; Gemini CLI's `BeforeTool`) is decided by
//! asking the daemon's `authorize` every question of the call
//! ([`crate::toolcall`]); its result (`PostToolUse`, `AfterTool`),
//! `SessionStart` and `SessionEnd` become events. [`Agent`] holds what
//! differs between Claude Code, Codex CLI and Gemini CLI.
//!
//! INVARIANT: every path but an allow from the daemon for every question
//! denies. Claude Code runs the tool when a hook exits with any code but 2
//! or prints no decision, so an error here is exit 2 with the reason on
//! stderr, and a denial is an explicit `deny` the model reads.

use serde_json::{Value, json};
use ward_api::{AuthorizeRequest, LocalEvent, LocalEvents};
use ward_client::LocalClient;
use ward_model::audit::valid_correlation_id;

use crate::toolcall::{ToolCall, questions};

/// Longest hook input read, in bytes.
pub const MAX_INPUT: usize = 1024 * 1024;

/// What the hook process prints and how it exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The JSON for the agent, if any.
    pub stdout: Option<String>,
    /// One line for the agent (and, on exit 2, for the model).
    pub stderr: Option<String>,
    /// 0, or 2 to block.
    pub exit: u8,
}

impl Answer {
    /// Blocks with `why` on stderr (exit 2): what every failure answers.
    pub fn block(why: impl std::fmt::Display) -> Answer {
        Answer {
            stdout: None,
            stderr: Some(format!("ward: {why}; denied")),
            exit: 2,
        }
    }

    fn quiet() -> Answer {
        Answer {
            stdout: None,
            stderr: None,
            exit: 0,
        }
    }

    fn decision(decision: &str, reason: &str) -> Answer {
        Answer {
            stdout: Some(
                json!({
                    "hookSpecificOutput": {
                        "hookEventName": "PreToolUse",
                        "permissionDecision": decision,
                        "permissionDecisionReason": reason,
                    }
                })
                .to_string(),
            ),
            stderr: None,
            exit: 0,
        }
    }
}

/// Whose hook protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agent {
    /// Claude Code: `PreToolUse`/`PostToolUse`; a JSON `permissionDecision`.
    ClaudeCode,
    /// Codex CLI: Claude Code's events and input; it blocks only on exit 2
    /// with the reason on stderr, so that is how it is denied.
    Codex,
    /// Gemini CLI: `BeforeTool`/`AfterTool`; exit 2 with the reason on
    /// stderr denies, exit 0 prints a JSON object (`{}`).
    Gemini,
}

impl Agent {
    fn before_tool(self) -> &'static str {
        match self {
            Agent::ClaudeCode | Agent::Codex => "PreToolUse",
            Agent::Gemini => "BeforeTool",
        }
    }

    fn after_tool(self) -> &'static str {
        match self {
            Agent::ClaudeCode | Agent::Codex => "PostToolUse",
            Agent::Gemini => "AfterTool",
        }
    }

    /// The answer to a tool call: Claude Code reads a JSON decision, the
    /// others block on exit 2 (the reason on stderr, which the model sees).
    fn decide(self, allow: bool, reason: &str) -> Answer {
        match (self, allow) {
            (Agent::ClaudeCode, _) => {
                Answer::decision(if allow { "allow" } else { "deny" }, reason)
            }
            (_, false) => Answer {
                stdout: None,
                stderr: Some(reason.to_owned()),
                exit: 2,
            },
            (Agent::Gemini, true) => self.done(),
            (Agent::Codex, true) => Answer::quiet(),
        }
    }

    /// The answer to an event Ward records or does not govern.
    fn done(self) -> Answer {
        match self {
            Agent::Gemini => Answer {
                stdout: Some("{}".to_owned()),
                stderr: None,
                exit: 0,
            },
            Agent::ClaudeCode | Agent::Codex => Answer::quiet(),
        }
    }
}

/// Answers one Claude Code hook call given its stdin.
pub async fn claude_code(input: &[u8], client: &mut LocalClient, home: Option<&str>) -> Answer {
    answer(Agent::ClaudeCode, input, client, home).await
}

/// Answers one hook call of `agent` given its stdin.
pub async fn answer(
    agent: Agent,
    input: &[u8],
    client: &mut LocalClient,
    home: Option<&str>,
) -> Answer {
    if input.len() > MAX_INPUT {
        return Answer::block(format!("the hook input is larger than {MAX_INPUT} bytes"));
    }
    let call: Value = match serde_json::from_slice(input) {
        Ok(Value::Object(call)) => Value::Object(call),
        Ok(_) => return Answer::block("the hook input is not a JSON object"),
        Err(e) => return Answer::block(format!("the hook input is not JSON ({e})")),
    };
    let text = |name: &str| call.get(name).and_then(Value::as_str);
    let correlation_id = text("tool_use_id")
        .or(text("call_id"))
        .filter(|id| valid_correlation_id(id))
        .map(str::to_owned);
    let Some(event) = text("hook_event_name") else {
        return Answer::block("the hook input has no `hook_event_name`");
    };
    if event == agent.before_tool() {
        return pre_tool_use(agent, &call, correlation_id, client, home).await;
    }
    let recorded = if event == agent.after_tool() {
        let tool = text("tool_name").unwrap_or("unknown");
        let failed = call.get("tool_response").is_some_and(|r| {
            r.get("is_error") == Some(&Value::Bool(true))
                || r.get("error").is_some_and(|e| !e.is_null())
        });
        record(
            client,
            correlation_id,
            "tool.result",
            tool,
            if failed { "error" } else { "ok" },
            None,
        )
        .await
    } else if event == "SessionStart" || event == "SessionEnd" {
        let action = if event == "SessionStart" {
            "session.start"
        } else {
            "session.end"
        };
        let target = text("session_id").unwrap_or("session");
        let reason = text("source").or(text("reason")).or(text("trigger"));
        record(client, None, action, target, "ok", reason).await
    } else {
        // Events Ward does not govern (prompts, notifications, stops).
        Answer::quiet()
    };
    if recorded.exit == 0 {
        agent.done()
    } else {
        recorded
    }
}

async fn pre_tool_use(
    agent: Agent,
    call: &Value,
    correlation_id: Option<String>,
    client: &mut LocalClient,
    home: Option<&str>,
) -> Answer {
    let (Some(tool), Some(cwd)) = (
        call.get("tool_name").and_then(Value::as_str),
        call.get("cwd").and_then(Value::as_str),
    ) else {
        return Answer::block(format!(
            "the {} input has no `tool_name` or `cwd`",
            agent.before_tool()
        ));
    };
    // Gemini CLI names an MCP tool `mcp_SERVER_TOOL` and says which is
    // which in `mcp_context`: asked as the `mcp__SERVER__TOOL` it is.
    let mcp_name;
    let tool = match call.get("mcp_context") {
        Some(context) if agent == Agent::Gemini => {
            let part = |name: &str| {
                context
                    .get(name)
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
            };
            let (Some(server), Some(name)) = (part("server_name"), part("tool_name")) else {
                return Answer::block(
                    "the BeforeTool `mcp_context` has no `server_name` or `tool_name`",
                );
            };
            mcp_name = format!("mcp__{server}__{name}");
            mcp_name.as_str()
        }
        _ => tool,
    };
    let empty = Value::Object(Default::default());
    let input = call.get("tool_input").unwrap_or(&empty);
    if !input.is_object() {
        return Answer::block(format!(
            "the {} `tool_input` is not an object",
            agent.before_tool()
        ));
    }
    let asked = match questions(&ToolCall {
        tool,
        input,
        cwd,
        home,
    }) {
        Ok(asked) => asked,
        Err(unsure) => {
            let reason = format!("Ward cannot judge this `{tool}` call: {unsure}");
            let recorded = record(
                client,
                correlation_id,
                "tool.judge",
                tool,
                "deny",
                Some(&reason),
            )
            .await;
            if recorded.exit != 0 {
                return recorded;
            }
            return agent.decide(false, &reason);
        }
    };
    if asked.is_empty() {
        let reason = format!("the `{tool}` call touches nothing Ward governs");
        let recorded = record(
            client,
            correlation_id,
            "tool.judge",
            tool,
            "allow",
            Some(&reason),
        )
        .await;
        if recorded.exit != 0 {
            return recorded;
        }
        return agent.decide(true, &reason);
    }
    let mut allowed = Vec::with_capacity(asked.len());
    for question in asked {
        let request = AuthorizeRequest {
            feature: None,
            action: question.action.clone(),
            resource: question.resource.clone(),
            cwd: Some(question.cwd),
            correlation_id: correlation_id.clone(),
        };
        let answer = match client.authorize(&request).await {
            Ok(answer) => answer,
            Err(error) => {
                return Answer::block(format!("the Ward daemon could not be asked ({error})"));
            }
        };
        if answer.decision != "allow" {
            return agent.decide(
                false,
                &format!(
                    "Ward denied `{}` on `{}`: {}",
                    question.action, answer.resource, answer.reason
                ),
            );
        }
        allowed.push(answer.reason);
    }
    agent.decide(true, &format!("Ward: {}", allowed.join("; ")))
}

/// Appends one audit event through the daemon; a failure blocks.
async fn record(
    client: &mut LocalClient,
    correlation_id: Option<String>,
    action: &str,
    target: &str,
    result: &str,
    reason: Option<&str>,
) -> Answer {
    let mut event = LocalEvent::audit(action, target, result);
    event.correlation_id = correlation_id;
    event.reason = reason.map(str::to_owned);
    match client
        .events(&LocalEvents {
            events: vec![event],
        })
        .await
    {
        Ok(_) => Answer::quiet(),
        Err(error) => Answer::block(format!(
            "the Ward daemon could not record the call ({error})"
        )),
    }
}

/// Runs one hook process for `agent`: the event from stdin, the daemon at
/// `socket`, and no more than `deadline` (then it denies on its own).
/// Prints the answer and returns the exit code (0, or 2 to block). A panic
/// anywhere blocks too. What `ward hook AGENT` and `ward-hook AGENT` run.
pub fn run(agent: Agent, socket: &std::path::Path, deadline: std::time::Duration) -> u8 {
    use std::io::{Read, Write};
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(
            std::io::stderr(),
            "ward: internal error in the hook ({info}); denied"
        );
        std::process::exit(2);
    }));
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        let _ = writeln!(
            std::io::stderr(),
            "ward: the hook did not finish within {} ms; denied",
            deadline.as_millis()
        );
        std::process::exit(2);
    });
    let answer = (|| {
        let mut input = Vec::new();
        let limit = MAX_INPUT as u64 + 1;
        if let Err(error) = std::io::stdin().lock().take(limit).read_to_end(&mut input) {
            return Answer::block(format!("cannot read the hook input ({error})"));
        }
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                return Answer::block(format!("cannot start the async runtime ({error})"));
            }
        };
        let home = std::env::var("HOME").ok();
        runtime.block_on(async {
            let mut client = LocalClient::new(socket);
            answer(agent, &input, &mut client, home.as_deref()).await
        })
    })();
    if let Some(stdout) = &answer.stdout {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{stdout}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return 2;
        }
    }
    if let Some(stderr) = &answer.stderr {
        let _ = writeln!(std::io::stderr(), "{stderr}");
    }
    answer.exit
}

/// The agent a hook command names (`claude-code`, `codex`, `gemini`).
pub fn agent_named(name: &str) -> Option<Agent> {
    match name {
        "claude-code" => Some(Agent::ClaudeCode),
        "codex" => Some(Agent::Codex),
        "gemini" => Some(Agent::Gemini),
        _ => None,
    }
}
