//! `ward mcp proxy` over stdio: an MCP server run behind Ward. Messages
//! are newline-delimited JSON-RPC both ways; two are not passed as they
//! are:
//!
//! - `tools/call`: asked of the daemon as `mcp:call` on `SERVER/TOOL`
//!   first; a deny (or no answer) is a JSON-RPC error to the client with
//!   Ward's reason, and the server never sees the call;
//! - the result of every `tools/list`: only the tools the daemon allows
//!   reach the client. `notifications/tools/list_changed` passes, so the
//!   client lists again and a renamed or added tool is filtered like the
//!   others; a call is checked on its own whatever was listed.
//!
//! Anything else passes unchanged. A line that is not a JSON-RPC object is
//! dropped (a request gets an error), never passed on unread.

use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use ward_api::AuthorizeRequest;
use ward_client::LocalClient;
use ward_model::audit::valid_correlation_id;

/// The JSON-RPC error code of a call Ward refused (server-defined range).
pub const REFUSED: i64 = -32001;

/// What the proxy keeps between the two directions.
#[derive(Default)]
pub struct Proxy {
    /// The server's name in scopes (`mcp:call:NAME/TOOL`).
    pub server: String,
    /// Ids of `tools/list` requests whose results are to be filtered.
    listing: Mutex<HashSet<String>>,
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
    /// A proxy for the server named `server`.
    pub fn new(server: &str) -> Arc<Proxy> {
        Arc::new(Proxy {
            server: server.to_owned(),
            listing: Mutex::new(HashSet::new()),
        })
    }

    /// A line from the client, on its way to the server.
    pub async fn from_client(&self, line: &str, daemon: &mut LocalClient) -> Route {
        let Ok(Value::Object(message)) = serde_json::from_str::<Value>(line) else {
            tracing::warn!("mcp proxy: dropped a client line that is not a JSON-RPC object");
            return Route::Drop;
        };
        let id = message.get("id").cloned();
        match message.get("method").and_then(Value::as_str) {
            Some("tools/list") => {
                if let Some(id) = &id {
                    self.listing_ids().insert(id.to_string());
                }
                Route::Forward(line.to_owned())
            }
            Some("tools/call") => {
                let name = message
                    .get("params")
                    .and_then(|p| p.get("name"))
                    .and_then(Value::as_str);
                let Some(name) = name else {
                    return refuse(id, "a `tools/call` without `params.name`");
                };
                match self.allowed(name, id.as_ref(), daemon).await {
                    Ok(()) => Route::Forward(line.to_owned()),
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
        let listed = message
            .get("id")
            .is_some_and(|id| self.listing_ids().remove(&id.to_string()));
        if !listed {
            return Route::Forward(line.to_owned());
        }
        let Some(Value::Array(tools)) = message.get_mut("result").and_then(|r| r.get_mut("tools"))
        else {
            return Route::Forward(line.to_owned());
        };
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
        Route::Forward(Value::Object(message).to_string())
    }

    fn listing_ids(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.listing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the daemon allows calling `tool`; why not otherwise.
    async fn allowed(
        &self,
        tool: &str,
        id: Option<&Value>,
        daemon: &mut LocalClient,
    ) -> Result<(), String> {
        let correlation_id = id
            .map(|id| format!("mcp-{}", id.to_string().trim_matches('"')))
            .filter(|c| valid_correlation_id(c));
        let request = AuthorizeRequest {
            feature: None,
            action: "mcp:call".to_owned(),
            resource: format!("{}/{tool}", self.server),
            cwd: None,
            correlation_id,
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
