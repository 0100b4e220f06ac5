//! The snapshot a follower of the change feed starts from, and the reader
//! of the stream's framing (server-sent events) that followers share.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::keys::Jwks;
use crate::switches::{Flag, KillSwitch};
use crate::tokens::Revocation;

/// `GET /v1/watch/snapshot`: the state a gateway loads before following
/// `GET /v1/watch` from `seq`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WatchSnapshot {
    /// Follow the stream after this event (send it as `Last-Event-ID`).
    pub seq: i64,
    /// Revocation rules still able to revoke an unexpired token.
    pub revocations: Vec<Revocation>,
    /// Engaged kill switches.
    pub killswitches: Vec<KillSwitch>,
    /// Feature flag values.
    pub flags: Vec<Flag>,
    /// The signing keys.
    pub jwks: Jwks,
    /// The scopes of the capability matrix's high-risk features: a gateway
    /// whose state is stale refuses requests needing one of them.
    #[serde(default)]
    pub high_risk_scopes: Vec<String>,
    /// The one tenant this stream covers (a tenant token's), or none for
    /// the whole instance (the bootstrap token). A gateway following one
    /// tenant must refuse every other tenant's tokens: their revocations
    /// are not in its stream.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// One server-sent event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`
    pub id: Option<String>,
    /// `event:` (`message` when absent).
    pub kind: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// An incremental `text/event-stream` parser.
#[derive(Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if self.has_data {
                    let mut event = std::mem::take(&mut self.current);
                    if event.kind.is_empty() {
                        event.kind = "message".into();
                    }
                    events.push(event);
                }
                self.current = SseEvent::default();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "id" => self.current.id = Some(value.to_owned()),
                "event" => self.current.kind = value.to_owned(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_parsed_once_complete() {
        let mut parser = SseParser::default();
        assert!(parser.push(b": keep-alive\n\nid: 4\nevent: fl").is_empty());
        let events = parser.push(b"ag\ndata: {\"a\":1}\n\nid: 5\r\nevent: x\r\ndata: 2\r\n\r\n");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id.as_deref(), Some("4"));
        assert_eq!(events[0].kind, "flag");
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[1].data, "2");
    }
}
