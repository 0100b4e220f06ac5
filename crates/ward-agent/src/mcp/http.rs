//! The parts of MCP's Streamable HTTP transport the proxy judges, kept
//! pure: the request headers that mirror the body (which must agree with
//! it). The Server-Sent Events a server answers with are read event by
//! event with `ward_api::sse::SseReader`, so that each message passes
//! [`super::Proxy::from_server`].

use base64::Engine as _;
use serde_json::Value;

/// The JSON-RPC error code of a request whose mirrored headers disagree
/// with its body, or lack one the revision requires (`HeaderMismatch`).
pub const HEADER_MISMATCH: i64 = -32020;

/// The first revision whose requests carry their protocol version in
/// `params._meta` and must mirror `method` and the target's name in
/// headers (stateless: no `initialize`, no sessions).
pub const STATELESS_REVISION: &str = "2026-07-28";

/// Where a request's body says its protocol version is.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// The mirrored headers of one request, as sent (`None`: absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mirrored<'a> {
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<&'a str>,
    /// `Mcp-Method`.
    pub method: Option<&'a str>,
    /// `Mcp-Name`, possibly in the `=?base64?…?=` form.
    pub name: Option<&'a str>,
}

/// The body field `Mcp-Name` mirrors for `method`, if it has one.
pub fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    }
}

/// Whether `headers` agree with `message`, the JSON-RPC message of the
/// request's body; the reason otherwise (answered 400 with
/// [`HEADER_MISMATCH`]).
///
/// A body that names its protocol version in `params._meta` (the
/// stateless revision) must come with `MCP-Protocol-Version`, `Mcp-Method`
/// and, for a method with a target, `Mcp-Name`, each equal to the body's.
/// Earlier revisions do not require the headers, but one that is sent
/// must still agree: something after Ward may route on it while the
/// server runs what the body says. A header naming the stateless
/// revision over a body that does not is refused too.
pub fn check_mirrored(headers: &Mirrored<'_>, message: &Value) -> Result<(), String> {
    let method = message.get("method").and_then(Value::as_str);
    let params = message.get("params");
    let body_version = params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(META_PROTOCOL_VERSION));
    let stateless = body_version.is_some();
    match (headers.protocol_version, body_version) {
        (Some(header), Some(body)) if body.as_str() != Some(header) => {
            return Err(format!(
                "Header mismatch: MCP-Protocol-Version `{header}` does not match the body's `{}`",
                shown(body)
            ));
        }
        (None, Some(_)) => {
            return Err("Header mismatch: MCP-Protocol-Version is missing".into());
        }
        (Some(header), None) if method.is_some() && header >= STATELESS_REVISION => {
            return Err(format!(
                "Header mismatch: MCP-Protocol-Version `{header}` over a body with no `_meta` `{META_PROTOCOL_VERSION}`"
            ));
        }
        _ => {}
    }
    match (headers.method, method) {
        (Some(header), Some(body)) if header != body => {
            return Err(format!(
                "Header mismatch: Mcp-Method `{header}` does not match the body's `{body}`"
            ));
        }
        (Some(header), None) => {
            return Err(format!(
                "Header mismatch: Mcp-Method `{header}` on a message that is not a request"
            ));
        }
        (None, Some(_)) if stateless => {
            return Err("Header mismatch: Mcp-Method is missing".into());
        }
        _ => {}
    }
    let field = method.and_then(name_field);
    let body_name = field.and_then(|f| params.and_then(|p| p.get(f)));
    match (headers.name, body_name) {
        (Some(header), body) => {
            let header = decode_name(header)?;
            match body.and_then(Value::as_str) {
                Some(body) if body == header => {}
                Some(body) => {
                    return Err(format!(
                        "Header mismatch: Mcp-Name `{header}` does not match the body's `{body}`"
                    ));
                }
                None => {
                    return Err(format!(
                        "Header mismatch: Mcp-Name `{header}` but the body names no target"
                    ));
                }
            }
        }
        (None, Some(_)) if stateless => {
            return Err("Header mismatch: Mcp-Name is missing".into());
        }
        _ => {}
    }
    Ok(())
}

/// An `Mcp-Name` value as the client meant it: `=?base64?…?=` decoded.
fn decode_name(value: &str) -> Result<String, String> {
    let Some(encoded) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Ok(value.to_owned());
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| "Header mismatch: Mcp-Name is not valid `=?base64?…?=`".to_owned())
}

fn shown(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}
