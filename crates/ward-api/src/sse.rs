//! Server-Sent Events (`text/event-stream`) read from chunks as they
//! arrive: the one reader for the watch streams the gateway and the
//! desktop runtime follow, the event tail the CLI prints, and the MCP
//! proxy's relay. Each event keeps its fields as sent (so a relay can pass
//! them on) and its data; an event larger than the reader's bound is an
//! error, never an event cut short.

/// The largest event of Ward's own streams a reader accepts (the change
/// feed, the event tail): far above any event they send, and a bound on
/// what a broken or hostile server can make a follower hold.
pub const MAX_FEED_EVENT_BYTES: usize = 1 << 20;

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

impl SseEvent {
    /// The value of its last `id:` field, if any.
    pub fn id(&self) -> Option<&str> {
        self.field("id")
    }

    /// The value of its last `event:` field, else `message` (the format's
    /// default type).
    pub fn kind(&self) -> &str {
        self.field("event").unwrap_or("message")
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().rev().find_map(|line| {
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            (field == name).then(|| value.strip_prefix(' ').unwrap_or(value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_read_once_complete() {
        let mut reader = SseReader::new(1024);
        let first = reader.push(b": keep-alive\n\nid: 4\nevent: fl").unwrap();
        assert_eq!(first.len(), 1, "a comment alone is an event without data");
        assert_eq!(first[0].data, None);
        let events = reader
            .push(b"ag\ndata: {\"a\":1}\n\nid: 5\r\nevent: x\r\ndata: 2\r\n\r\ndata: 3\n\n")
            .unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].id(), Some("4"));
        assert_eq!(events[0].kind(), "flag");
        assert_eq!(events[0].data.as_deref(), Some("{\"a\":1}"));
        assert_eq!((events[1].id(), events[1].kind()), (Some("5"), "x"));
        assert_eq!(events[1].data.as_deref(), Some("2"));
        assert_eq!((events[2].id(), events[2].kind()), (None, "message"));
    }

    #[test]
    fn an_event_past_the_bound_is_an_error() {
        let mut reader = SseReader::new(8);
        assert!(reader.push(b"data: 0123456789\n\n").is_err());
    }
}
