//! `ward mcp proxy` over stdio: an MCP server run behind Ward. Messages
//! are newline-delimited JSON-RPC both ways; two are not passed as they
//! are:
//!
//! - `tools/call`: asked of the daemon as `mcp:call` on `SERVER/TOOL`
//!   first; a deny (or no answer) is a JSON-RPC error to the client with
//!   Ward's reason, and the server never sees the call;
//! - every result from the server that lists tools (`result.tools`,
//!   whichever request it answers): only the tools the daemon allows
//!   reach the client. `notifications/tools/list_changed` passes, so the
//!   client lists again and a renamed or added tool is filtered like the
//!   others; a call is checked on its own whatever was listed.
//!
//! The server's answer to each call passed is recorded (`mcp.result`, `ok`
//! or `error`, its duration) under the call's correlation id and, when
//! the proxy redacts, has secrets in its result replaced by markers
//! before the client sees it.
//!
//! With an [`ArgumentMap`], the arguments of known tools that name a file,
//! URL or program are asked about too (`files:read` on a path, …), so a
//! permitted tool cannot reach past the agent's other scopes.
//!
//! Anything else passes unchanged. A line that is not a JSON-RPC object is
//! dropped (a request gets an error), never passed on unread.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use ward_api::{AuthorizeRequest, LocalEvent, LocalEvents};
use ward_client::LocalClient;
use ward_model::audit::valid_correlation_id;
use ward_redact::Redactor;

pub mod http;

/// Longest JSON-RPC line passed either way; a longer one ends the proxy
/// (a line is read whole before it is judged).
pub const MAX_LINE: usize = 16 << 20;

/// The next line of `reader` without its line break, at most `max` bytes;
/// `None` at the end. A longer line is an error, not a line cut short.
pub async fn read_line<R>(reader: &mut R, max: usize) -> std::io::Result<Option<String>>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = Vec::new();
    let read = (&mut *reader)
        .take(max as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {max} bytes"),
        ));
    }
    String::from_utf8(line).map(Some).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "a line that is not UTF-8")
    })
}

/// The JSON-RPC error code of a call Ward refused (server-defined range).
pub const REFUSED: i64 = -32001;

/// Which arguments of which tools name a resource: tool name → argument
/// name → the action asked about its value (`files:read`, `files:write`,
/// `http:get`, `exec:run`). A value that is a list is asked item by item.
/// Read from a JSON file (`ward mcp proxy --map FILE`), for example
/// `{"write_file": {"path": "files:write"}}`.
pub type ArgumentMap = HashMap<String, HashMap<String, String>>;

/// What the proxy keeps between the two directions: its settings, and
/// the calls passed to the server and not answered yet.
pub struct Proxy {
    /// The server's name in scopes (`mcp:call:NAME/TOOL`).
    pub server: String,
    /// The arguments checked against their own scopes.
    pub arguments: Arc<ArgumentMap>,
    /// Redacts the results of calls, when set.
    redactor: Option<Arc<Redactor>>,
    /// Calls passed to the server and not answered yet: id → tool, start.
    calls: Mutex<HashMap<String, (String, Instant)>>,
}

/// What to do with one line.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// Pass it on (as given, or rewritten).
    Forward(String),
    /// Answer the sender with this instead.
    Reply(String),
    /// Nothing.
    Drop,
}

impl Proxy {
    /// A proxy for the server named `server`, checking `arguments`, and
    /// redacting secrets in the results of calls when `redact` is set.
    pub fn new(server: &str, arguments: ArgumentMap, redact: bool) -> Proxy {
        Proxy {
            server: server.to_owned(),
            arguments: Arc::new(arguments),
            redactor: redact.then(|| Arc::new(Redactor::new())),
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// A proxy with the same settings and no calls in flight: one per
    /// HTTP request, whose answer comes back on that request alone.
    pub fn fresh(&self) -> Proxy {
        Proxy {
            server: self.server.clone(),
            arguments: Arc::clone(&self.arguments),
            redactor: self.redactor.clone(),
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// A line from the client, on its way to the server.
    pub async fn from_client(&self, line: &str, daemon: &mut LocalClient) -> Route {
        let Ok(Value::Object(message)) = serde_json::from_str::<Value>(line) else {
            tracing::warn!("mcp proxy: dropped a client line that is not a JSON-RPC object");
            return Route::Drop;
        };
        let id = message.get("id").cloned();
        match message.get("method").and_then(Value::as_str) {
            Some("tools/call") => {
                let name = message
                    .get("params")
                    .and_then(|p| p.get("name"))
                    .and_then(Value::as_str);
                let Some(name) = name else {
                    return refuse(id, "a `tools/call` without `params.name`");
                };
                if let Err(why) = self.allowed(name, id.as_ref(), daemon).await {
                    return refuse(id, &why);
                }
                let arguments = message.get("params").and_then(|p| p.get("arguments"));
                match self
                    .arguments_allowed(name, arguments, id.as_ref(), daemon)
                    .await
                {
                    Ok(()) => {
                        if let Some(id) = &id {
                            lock(&self.calls)
                                .insert(id.to_string(), (name.to_owned(), Instant::now()));
                        }
                        Route::Forward(line.to_owned())
                    }
                    Err(why) => refuse(id, &why),
                }
            }
            _ => Route::Forward(line.to_owned()),
        }
    }

    /// A line from the server, on its way to the client.
    pub async fn from_server(&self, line: &str, daemon: &mut LocalClient) -> Route {
        let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(line) else {
            tracing::warn!("mcp proxy: dropped a server line that is not a JSON-RPC object");
            return Route::Drop;
        };
        let mut changed = false;
        let answered = message
            .get("id")
            .and_then(|id| lock(&self.calls).remove(&id.to_string()));
        if let Some((tool, started)) = answered {
            self.record_result(&message, &tool, started, daemon).await;
            if let (Some(redactor), Some(result)) = (&self.redactor, message.get_mut("result")) {
                redactor.redact_json(result);
                changed = true;
            }
        }
        if let Some(Value::Array(tools)) =
            message.get_mut("result").and_then(|r| r.get_mut("tools"))
        {
            let mut kept = Vec::new();
            for tool in tools.drain(..) {
                let Some(name) = tool.get("name").and_then(Value::as_str) else {
                    continue;
                };
                if self.allowed(name, None, daemon).await.is_ok() {
                    kept.push(tool);
                }
            }
            *tools = kept;
            changed = true;
        }
        if changed {
            Route::Forward(Value::Object(message).to_string())
        } else {
            Route::Forward(line.to_owned())
        }
    }

    /// Records the server's answer to a call as an `mcp.result` event
    /// (`ok` or `error`, with its duration), under the call's correlation
    /// id. The call has run: a failure to record is logged, and the answer
    /// still reaches the client.
    async fn record_result(
        &self,
        message: &serde_json::Map<String, Value>,
        tool: &str,
        started: Instant,
        daemon: &mut LocalClient,
    ) {
        let failed = message.get("error").is_some()
            || message
                .get("result")
                .and_then(|r| r.get("isError"))
                .is_some_and(|e| e == &Value::Bool(true));
        let event = LocalEvent {
            ts: None,
            correlation_id: correlation(message.get("id")),
            class: Some("audit".to_owned()),
            feature: None,
            action: "mcp.result".to_owned(),
            target: format!("{}/{tool}", self.server),
            result: if failed { "error" } else { "ok" }.to_owned(),
            reason: None,
            duration_ms: Some(started.elapsed().as_millis() as u64),
            sampling: None,
        };
        if let Err(error) = daemon
            .events(&LocalEvents {
                events: vec![event],
            })
            .await
        {
            tracing::warn!(tool, error = %error, "mcp proxy: the call's result was not recorded");
        }
    }

    /// Whether the daemon allows calling `tool`; why not otherwise.
    async fn allowed(
        &self,
        tool: &str,
        id: Option<&Value>,
        daemon: &mut LocalClient,
    ) -> Result<(), String> {
        let request = AuthorizeRequest {
            feature: None,
            action: "mcp:call".to_owned(),
            resource: format!("{}/{tool}", self.server),
            cwd: None,
            correlation_id: correlation(id),
        };
        match daemon.authorize(&request).await {
            Ok(answer) if answer.decision == "allow" => Ok(()),
            Ok(answer) => Err(format!(
                "Ward denied `mcp:call` on `{}/{tool}`: {}",
                self.server, answer.reason
            )),
            Err(error) => Err(format!(
                "the Ward daemon could not be asked ({error}); denied"
            )),
        }
    }
}

impl Proxy {
    /// Asks the daemon about every mapped argument of a call to `tool`.
    async fn arguments_allowed(
        &self,
        tool: &str,
        arguments: Option<&Value>,
        id: Option<&Value>,
        daemon: &mut LocalClient,
    ) -> Result<(), String> {
        let Some(mapped) = self.arguments.get(tool) else {
            return Ok(());
        };
        for (argument, action) in mapped {
            let values: Vec<&str> = match arguments.and_then(|a| a.get(argument)) {
                None | Some(Value::Null) => continue,
                Some(Value::String(value)) => vec![value.as_str()],
                Some(Value::Array(items)) => {
                    let texts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                    texts.ok_or_else(|| {
                        format!("`{argument}` of `{tool}` is a list of more than strings; denied")
                    })?
                }
                Some(_) => {
                    return Err(format!(
                        "`{argument}` of `{tool}` is not a string or a list of strings; denied"
                    ));
                }
            };
            for value in values {
                let request = AuthorizeRequest {
                    feature: None,
                    action: action.clone(),
                    resource: value.to_owned(),
                    cwd: None,
                    correlation_id: correlation(id),
                };
                match daemon.authorize(&request).await {
                    Ok(answer) if answer.decision == "allow" => {}
                    Ok(answer) => {
                        return Err(format!(
                            "Ward denied `{action}` on `{}` (argument `{argument}` of `{tool}`): {}",
                            answer.resource, answer.reason
                        ));
                    }
                    Err(error) => {
                        return Err(format!(
                            "the Ward daemon could not be asked ({error}); denied"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The correlation id of JSON-RPC request `id`: `mcp-<id>`.
fn correlation(id: Option<&Value>) -> Option<String> {
    id.map(|id| format!("mcp-{}", id.to_string().trim_matches('"')))
        .filter(|c| valid_correlation_id(c))
}

/// A JSON-RPC error answering request `id` (nothing for a notification).
fn refuse(id: Option<Value>, why: &str) -> Route {
    match id {
        Some(id) => Route::Reply(
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": REFUSED, "message": why}})
                .to_string(),
        ),
        None => Route::Drop,
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "a test fails by panicking"
    )]

    use super::*;

    fn daemon() -> LocalClient {
        // Never reached by these lines; any call through it would fail.
        LocalClient::new(std::path::Path::new("/nonexistent/agent.sock"))
    }

    #[tokio::test]
    async fn lines_are_read_whole_and_bounded() {
        let mut input: &[u8] = b"{\"a\":1}\r\nshort\n0123456789abcdef\nlast";
        assert_eq!(
            read_line(&mut input, 10).await.unwrap().as_deref(),
            Some("{\"a\":1}")
        );
        assert_eq!(
            read_line(&mut input, 10).await.unwrap().as_deref(),
            Some("short")
        );
        let error = read_line(&mut input, 10).await.unwrap_err();
        assert!(
            error.to_string().contains("longer than 10 bytes"),
            "{error}"
        );
        let mut input: &[u8] = b"last";
        assert_eq!(
            read_line(&mut input, 10).await.unwrap().as_deref(),
            Some("last")
        );
        assert_eq!(read_line(&mut input, 10).await.unwrap(), None);
        let mut input: &[u8] = b"\xff\xfe\n";
        assert!(read_line(&mut input, 10).await.is_err());
    }

    #[tokio::test]
    async fn what_is_not_one_json_rpc_object_is_dropped_unread() {
        let proxy = Proxy::new("fs", ArgumentMap::default(), false);
        let batch =
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file"}}]"#;
        for line in [batch, "garbage", "", "42", "\"tools/call\""] {
            assert_eq!(
                proxy.from_client(line, &mut daemon()).await,
                Route::Drop,
                "{line}"
            );
            assert_eq!(
                proxy.from_server(line, &mut daemon()).await,
                Route::Drop,
                "{line}"
            );
        }
    }

    #[tokio::test]
    async fn a_call_without_a_tool_name_is_refused_and_a_daemon_that_is_gone_denies() {
        let proxy = Proxy::new("fs", ArgumentMap::default(), false);
        let Route::Reply(reply) = proxy
            .from_client(
                r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}"#,
                &mut daemon(),
            )
            .await
        else {
            panic!("not refused");
        };
        let reply: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(reply["id"], 7);
        assert_eq!(reply["error"]["code"], REFUSED);
        // A notification gets no answer.
        let line = r#"{"jsonrpc":"2.0","method":"tools/call","params":{}}"#;
        assert_eq!(proxy.from_client(line, &mut daemon()).await, Route::Drop);
        let line = r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"read_text_file"}}"#;
        let Route::Reply(reply) = proxy.from_client(line, &mut daemon()).await else {
            panic!("passed without the daemon");
        };
        assert!(reply.contains("could not be asked"), "{reply}");
        // Other messages pass as they are.
        let line = r#"{"jsonrpc":"2.0","id":2,"method":"initialize","params":{}}"#;
        assert_eq!(
            proxy.from_client(line, &mut daemon()).await,
            Route::Forward(line.to_owned())
        );
    }
}
