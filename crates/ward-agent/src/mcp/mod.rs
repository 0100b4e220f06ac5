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

/// The message in `line`, if it is one JSON object Ward can judge the same
/// way as any server would: no object in it has two keys that are equal,
/// or equal ignoring case (servers in Go match fields ignoring case, and
/// which of two a parser keeps differs), and none of the keys Ward reads
/// (`method`, `params`, `name`, `arguments`, …) is written in another
/// case. Why not, otherwise.
pub fn parse_strict(line: &str) -> Result<serde_json::Map<String, Value>, String> {
    use serde::de::{Deserializer as _, MapAccess, SeqAccess, Visitor};
    struct Strict;
    impl<'de> Visitor<'de> for Strict {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element_seed(StrictSeed)? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut object = serde_json::Map::new();
            let mut folded = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !folded.insert(key.to_lowercase()) {
                    return Err(serde::de::Error::custom(format!(
                        "the key `{key}` appears twice (ignoring case) in one object"
                    )));
                }
                let value = map.next_value_seed(StrictSeed)?;
                object.insert(key, value);
            }
            Ok(Value::Object(object))
        }
    }
    struct StrictSeed;
    impl<'de> serde::de::DeserializeSeed<'de> for StrictSeed {
        type Value = Value;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(Strict)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let value = (&mut deserializer)
        .deserialize_any(Strict)
        .and_then(|v| deserializer.end().map(|()| v))
        .map_err(|e| format!("not one JSON value Ward can judge ({e})"))?;
    let Value::Object(message) = value else {
        return Err("not a JSON-RPC object".into());
    };
    let read = |object: &serde_json::Map<String, Value>, keys: &[&str]| -> Result<(), String> {
        for key in object.keys() {
            if let Some(known) = keys
                .iter()
                .find(|k| k.eq_ignore_ascii_case(key) && **k != key.as_str())
            {
                return Err(format!("the key `{key}` is `{known}` in another case"));
            }
        }
        Ok(())
    };
    read(
        &message,
        &["jsonrpc", "id", "method", "params", "result", "error"],
    )?;
    if let Some(Value::Object(params)) = message.get("params") {
        read(
            params,
            &["name", "arguments", "uri", "_meta", "cursor", "taskId"],
        )?;
    }
    Ok(message)
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
        let message = match parse_strict(line) {
            Ok(message) => message,
            Err(why) => {
                tracing::warn!(why, "mcp proxy: dropped a client line Ward cannot judge");
                // A request that can be told apart gets the reason.
                let id = serde_json::from_str::<Value>(line)
                    .ok()
                    .and_then(|v| v.get("id").cloned());
                return refuse(id, &format!("Ward cannot judge this message: {why}"));
            }
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
        }
        // Every result but a tool list, whichever request it answers (a
        // result resumed on another stream too).
        if let Some(redactor) = &self.redactor
            && let Some(result) = message.get_mut("result")
            && result.get("tools").is_none()
        {
            redactor.redact_json(result);
            changed = true;
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
        let mut event = LocalEvent::audit(
            "mcp.result",
            &format!("{}/{tool}", self.server),
            if failed { "error" } else { "ok" },
        );
        event.correlation_id = correlation(message.get("id"));
        event.duration_ms = Some(started.elapsed().as_millis() as u64);
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
        if let Some(Value::Object(given)) = arguments {
            for key in given.keys() {
                if mapped
                    .keys()
                    .any(|name| name.eq_ignore_ascii_case(key) && name != key)
                {
                    return Err(format!(
                        "`{key}` of `{tool}` is a checked argument in another case; denied"
                    ));
                }
            }
        }
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
