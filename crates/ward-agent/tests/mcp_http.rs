//! The pure parts of the MCP proxy's Streamable HTTP transport: mirrored
//! headers against the body, and Server-Sent Events read from chunks cut
//! anywhere.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use proptest::prelude::*;
use serde_json::{Value, json};
use ward_agent::mcp::http::{Mirrored, check_mirrored};
use ward_api::sse::{SseEvent, SseReader};

fn legacy_call(name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name}})
}

#[test]
fn earlier_revisions_need_no_mirrored_headers_but_one_sent_must_agree() {
    let none = Mirrored::default();
    assert_eq!(check_mirrored(&none, &legacy_call("echo")), Ok(()));
    let session = Mirrored {
        protocol_version: Some("2025-11-25"),
        ..Mirrored::default()
    };
    assert_eq!(check_mirrored(&session, &legacy_call("echo")), Ok(()));
    let agreeing = Mirrored {
        method: Some("tools/call"),
        name: Some("echo"),
        ..session
    };
    assert_eq!(check_mirrored(&agreeing, &legacy_call("echo")), Ok(()));
    let lying = Mirrored {
        name: Some("echo"),
        ..Mirrored::default()
    };
    let why = check_mirrored(&lying, &legacy_call("delete_all")).unwrap_err();
    assert!(why.contains("does not match"), "{why}");
    // Header values are case-sensitive.
    let shouting = Mirrored {
        method: Some("Tools/Call"),
        ..Mirrored::default()
    };
    assert!(check_mirrored(&shouting, &legacy_call("echo")).is_err());
    // A response (no method) carrying a method header.
    let response = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
    assert!(check_mirrored(&agreeing, &response).is_err());
    // A name header on a method without a target.
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let named = Mirrored {
        name: Some("echo"),
        ..Mirrored::default()
    };
    assert!(check_mirrored(&named, &list).is_err());
}

#[test]
fn the_stateless_revision_needs_every_header_its_body_implies() {
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
    let read = json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read",
        "params": {"uri": "file:///etc/passwd", "_meta": meta}});
    let full = Mirrored {
        protocol_version: Some("2026-07-28"),
        method: Some("resources/read"),
        name: Some("file:///etc/passwd"),
    };
    assert_eq!(check_mirrored(&full, &read), Ok(()));
    let other_file = Mirrored {
        name: Some("file:///tmp/harmless"),
        ..full
    };
    assert!(check_mirrored(&other_file, &read).is_err());
    let unnamed = Mirrored { name: None, ..full };
    assert!(check_mirrored(&unnamed, &read).is_err());
    // Base64 of "file:///etc/passwd".
    let encoded = Mirrored {
        name: Some("=?base64?ZmlsZTovLy9ldGMvcGFzc3dk?="),
        ..full
    };
    assert_eq!(check_mirrored(&encoded, &read), Ok(()));
    let list =
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": meta}});
    let listing = Mirrored {
        protocol_version: Some("2026-07-28"),
        method: Some("tools/list"),
        name: None,
    };
    assert_eq!(check_mirrored(&listing, &list), Ok(()));
    // A later revision's header over a body naming none is refused.
    let bare = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    let later = Mirrored {
        protocol_version: Some("2027-01-01"),
        ..listing
    };
    assert!(check_mirrored(&later, &bare).is_err());
}

#[test]
fn events_keep_their_fields_and_join_their_data() {
    let mut reader = SseReader::new(1 << 10);
    let events = reader
        .push(b": keep-alive\r\n\r\nid: 1\r\nevent: message\r\ndata: {\"a\":\r\ndata:1}\r\n\r\nid: 2\ndata\n\n")
        .unwrap();
    assert_eq!(
        events,
        [
            SseEvent {
                fields: vec![": keep-alive".into()],
                data: None
            },
            SseEvent {
                fields: vec!["id: 1".into(), "event: message".into()],
                data: Some("{\"a\":\n1}".into())
            },
            SseEvent {
                fields: vec!["id: 2".into()],
                data: Some(String::new())
            },
        ]
    );
    assert_eq!(
        events[1].to_text(Some("{}\nx")),
        "id: 1\nevent: message\ndata: {}\ndata: x\n\n"
    );
    assert!(!reader.pending());
    assert!(reader.push(b"data: half").unwrap().is_empty());
    assert!(reader.pending());
}

#[test]
fn an_event_over_its_bound_or_not_utf8_is_an_error() {
    let mut reader = SseReader::new(16);
    assert!(reader.push(b"data: 0123456789abcdef\n\n").is_err());
    let mut reader = SseReader::new(16);
    assert!(reader.push(b"data: \xff\n\n").is_err());
    // Many short lines add up.
    let mut reader = SseReader::new(16);
    assert!(
        reader
            .push(b"data: 1\ndata: 2\ndata: 3\ndata: 4\n")
            .is_err()
    );
}

proptest! {
    #[test]
    fn events_are_the_same_however_the_stream_is_cut(
        cuts in proptest::collection::vec(0usize..200, 0..8),
        crlf in any::<bool>(),
    ) {
        let stream = "id: a\ndata: {\"jsonrpc\":\"2.0\"}\n\n: ping\n\nevent: message\ndata: one\ndata: two\n\n";
        let stream = if crlf { stream.replace('\n', "\r\n") } else { stream.to_owned() };
        let whole = SseReader::new(1 << 10).push(stream.as_bytes()).unwrap();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % stream.len()).collect();
        cuts.sort_unstable();
        let mut reader = SseReader::new(1 << 10);
        let mut pieces = Vec::new();
        let mut at = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            pieces.extend(reader.push(&stream.as_bytes()[at..cut]).unwrap());
            at = cut;
        }
        prop_assert_eq!(pieces, whole.clone());
        prop_assert_eq!(whole.len(), 3);
    }
}

#[test]
fn a_byte_order_mark_opens_the_stream_and_unknown_fields_are_dropped() {
    let bom_event = "\u{feff}data: {\"result\":{\"tools\":[]}}\n\n";
    for cut in 0..=bom_event.len() {
        let bytes = bom_event.as_bytes();
        let mut reader = SseReader::new(1 << 10);
        let mut events = reader.push(&bytes[..cut]).unwrap();
        events.extend(reader.push(&bytes[cut..]).unwrap());
        assert_eq!(
            events,
            [SseEvent {
                fields: vec![],
                data: Some("{\"result\":{\"tools\":[]}}".into())
            }],
            "cut at {cut}"
        );
    }
    // Only the first bytes of the stream may be a mark.
    let mut reader = SseReader::new(1 << 10);
    let events = reader
        .push(b"id: 1\n\n\xef\xbb\xbfdata: x\nweird: y\n: note\nevent: e\n\n")
        .unwrap();
    assert_eq!(events[1].data, None, "{events:?}");
    assert_eq!(events[1].fields, [": note", "event: e"], "{events:?}");
}

#[test]
fn keys_a_server_could_read_otherwise_are_refused() {
    use ward_agent::mcp::parse_strict;
    assert!(
        parse_strict(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#)
            .is_ok()
    );
    for (line, why) in [
        (
            r#"{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"w"}}"#,
            "another case",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}"#,
            "twice",
        ),
        (
            r#"{"id":1,"method":"tools/call","params":{"name":"a","NAME":"w"}}"#,
            "twice",
        ),
        (
            r#"{"id":1,"method":"tools/call","params":{"Name":"w"}}"#,
            "another case",
        ),
        (
            r#"{"id":1,"method":"tools/call","params":{"name":"a","arguments":{"path":"/a","Path":"/etc"}}}"#,
            "twice",
        ),
        (
            r#"{"id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"w"}}"#,
            "twice",
        ),
        (r#"{"id":1} {"id":2}"#, "one JSON value"),
        ("[1]", "not a JSON-RPC object"),
    ] {
        let error = parse_strict(line).unwrap_err();
        assert!(error.contains(why), "{line}: {error}");
    }
}
