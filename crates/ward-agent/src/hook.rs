//! Agents' hooks answered by the daemon: one hook call in (the agent's
//! JSON on stdin), one [`Answer`] out (what to print and the exit code).
//! Claude Code's protocol: `PreToolUse` is decided by asking the daemon's
//! `authorize` every question of the call ([`crate::toolcall`]);
//! `PostToolUse`, `SessionStart` and `SessionEnd` become events.
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

/// Answers one Claude Code hook call given its stdin.
pub async fn claude_code(input: &[u8], client: &mut LocalClient, home: Option<&str>) -> Answer {
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
        .filter(|id| valid_correlation_id(id))
        .map(str::to_owned);
    match text("hook_event_name") {
        Some("PreToolUse") => pre_tool_use(&call, correlation_id, client, home).await,
        Some("PostToolUse") => {
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
        }
        Some(event @ ("SessionStart" | "SessionEnd")) => {
            let action = if event == "SessionStart" {
                "session.start"
            } else {
                "session.end"
            };
            let target = text("session_id").unwrap_or("session");
            let reason = text("source").or(text("reason"));
            record(client, None, action, target, "ok", reason).await
        }
        // Events Ward does not govern (prompts, notifications, stops).
        Some(_) => Answer::quiet(),
        None => Answer::block("the hook input has no `hook_event_name`"),
    }
}

async fn pre_tool_use(
    call: &Value,
    correlation_id: Option<String>,
    client: &mut LocalClient,
    home: Option<&str>,
) -> Answer {
    let (Some(tool), Some(cwd)) = (
        call.get("tool_name").and_then(Value::as_str),
        call.get("cwd").and_then(Value::as_str),
    ) else {
        return Answer::block("the PreToolUse input has no `tool_name` or `cwd`");
    };
    let empty = Value::Object(Default::default());
    let input = call.get("tool_input").unwrap_or(&empty);
    if !input.is_object() {
        return Answer::block("the PreToolUse `tool_input` is not an object");
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
            return Answer::decision("deny", &reason);
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
        return Answer::decision("allow", &reason);
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
            return Answer::decision(
                "deny",
                &format!(
                    "Ward denied `{}` on `{}`: {}",
                    question.action, answer.resource, answer.reason
                ),
            );
        }
        allowed.push(answer.reason);
    }
    Answer::decision("allow", &format!("Ward: {}", allowed.join("; ")))
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
    let event = LocalEvent {
        ts: None,
        correlation_id,
        class: Some("audit".to_owned()),
        feature: None,
        action: action.to_owned(),
        target: target.to_owned(),
        result: result.to_owned(),
        reason: reason.map(str::to_owned),
        duration_ms: None,
        sampling: None,
    };
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
