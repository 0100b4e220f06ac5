//! The parts of MCP's Streamable HTTP transport the proxy judges, kept
//! pure: the request headers that mirror the body (which must agree with
//! it), and the Server-Sent Events a server answers with (read event by
//! event so that each message passes [`super::Proxy::from_server`]).

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

/// One Server-Sent Event: its lines other than `data` (`id:`, `event:`,
/// `retry:`, comments), kept as sent, and its data (the `data` lines
/// joined by line feeds), if it has any.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SseEvent {
    /// The lines that are not `data`.
    pub fields: Vec<String>,
    /// The data.
    pub data: Option<String>,
}

impl SseEvent {
    /// The event as text, with `data` in place of its own.
    pub fn to_text(&self, data: Option<&str>) -> String {
        let mut text = String::new();
        for field in &self.fields {
            text.push_str(field);
            text.push('\n');
        }
        if let Some(data) = data {
            for line in data.split('\n') {
                text.push_str("data: ");
                text.push_str(line);
                text.push('\n');
            }
        }
        text.push('\n');
        text
    }
}

/// Reads Server-Sent Events from chunks as they arrive. Lines end with
/// LF, CRLF or CR (a CRLF split across chunks included); an event ends
/// at an empty line. An event larger than its bound is an error, not an
/// event cut short.
#[derive(Debug)]
pub struct SseReader {
    max: usize,
    line: Vec<u8>,
    event: SseEvent,
    size: usize,
    after_cr: bool,
    started: bool,
    head: Vec<u8>,
}

impl SseReader {
    /// A reader of events of at most `max` bytes.
    pub fn new(max: usize) -> SseReader {
        SseReader {
            max,
            line: Vec::new(),
            event: SseEvent::default(),
            size: 0,
            after_cr: false,
            started: false,
            head: Vec::new(),
        }
    }

    /// The events `chunk` completes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        if self.started {
            return self.push_started(chunk);
        }
        // A byte order mark may open the stream (clients skip it), split
        // across chunks or not: the first bytes wait until that is known.
        const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
        self.head.extend_from_slice(chunk);
        if self.head.len() < BOM.len() && BOM.starts_with(&self.head) {
            return Ok(Vec::new());
        }
        self.started = true;
        let head = std::mem::take(&mut self.head);
        self.push_started(head.strip_prefix(&BOM[..]).unwrap_or(&head))
    }

    fn push_started(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        let mut events = Vec::new();
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            if byte == b'\n' && after_cr {
                continue;
            }
            if byte != b'\n' && byte != b'\r' {
                self.size += 1;
                if self.size > self.max {
                    return Err(format!("an event longer than {} bytes", self.max));
                }
                self.line.push(byte);
                continue;
            }
            let line = String::from_utf8(std::mem::take(&mut self.line))
                .map_err(|_| "an event that is not UTF-8".to_owned())?;
            if line.is_empty() {
                let event = std::mem::take(&mut self.event);
                self.size = 0;
                if !event.fields.is_empty() || event.data.is_some() {
                    events.push(event);
                }
                continue;
            }
            self.size += 1;
            let data = if line == "data" {
                Some("")
            } else {
                line.strip_prefix("data:")
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
            };
            match (data, &mut self.event.data) {
                (Some(more), Some(data)) => {
                    data.push('\n');
                    data.push_str(more);
                }
                (Some(first), None) => self.event.data = Some(first.to_owned()),
                // Comments and the fields the format defines pass; a line
                // a client might read otherwise is dropped.
                (None, _) => {
                    let name = line.split(':').next().unwrap_or_default();
                    if line.starts_with(':') || matches!(name, "id" | "event" | "retry") {
                        self.event.fields.push(line);
                    }
                }
            }
        }
        Ok(events)
    }

    /// Whether a part of an event is still waiting for its end.
    pub fn pending(&self) -> bool {
        !self.head.is_empty()
            || !self.line.is_empty()
            || !self.event.fields.is_empty()
            || self.event.data.is_some()
    }
}
