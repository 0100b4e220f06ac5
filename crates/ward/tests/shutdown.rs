//! `ward serve` stops promptly on SIGTERM whatever its clients do (issue 9):
//! open watch streams end, half-open connections do not hold the process,
//! a client that never finishes its headers is cut off, one that
//! trickles its body is refused, and one whose body is too large reads the
//! refusal before the connection closes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far more than a prompt exit needs; only a hang exceeds it.
const PROMPTLY: Duration = Duration::from_secs(10);

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for `child` to exit, failing the test if it takes longer than `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "ward serve did not exit within {limit:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn address(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_open_watch_streams_and_exits_zero() {
    let mut server = Server::start();
    let mut streams = Vec::new();
    for _ in 0..3 {
        let response = server
            .request(reqwest::Method::GET, "/v1/watch")
            .bearer_auth(&server.bootstrap)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    terminate(&server.child);
    let status = exit_within(&mut server.child, PROMPTLY);
    assert_eq!(status.code(), Some(0), "{status}");
    for stream in streams {
        // The stream ended (cleanly or cut); it does not hang.
        let rest = tokio::time::timeout(PROMPTLY, stream.bytes()).await;
        assert!(rest.is_ok(), "a watch stream stayed open after exit");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn half_open_connections_neither_block_requests_nor_shutdown() {
    let mut server = Server::start();
    let address = address(&server);
    let mut held = Vec::new();
    for index in 0..300 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        if index % 2 == 0 {
            // Slowloris: headers started, never finished.
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: ward\r\nX-Slow: 1\r\n")
                .await
                .unwrap();
        }
        held.push(stream);
    }
    let (status, _) = send(server.request(reqwest::Method::GET, "/healthz")).await;
    assert_eq!(status, 200, "a normal request is answered");
    let (status, body) = server
        .post(
            &server.bootstrap,
            "/v1/tenants",
            serde_json::json!({"name": "acme"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    terminate(&server.child);
    let status = exit_within(&mut server.child, PROMPTLY);
    assert_eq!(status.code(), Some(0), "{status}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let server = Server::start();
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: ward\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    assert!(
        closed.is_ok(),
        "the connection was still open after {:?}",
        started.elapsed()
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "the unfinished request was not served"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_that_trickles_is_refused_with_408_after_the_deadline() {
    let server = Server::start();
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    // A complete head announcing 100 bytes, then only a few of them.
    stream
        .write_all(
            b"POST /v1/tokens HTTP/1.1\r\nHost: ward\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"agent_id\"",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer to a trickling body within 60 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"body_timeout\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_refused_as_too_large_is_answered_and_the_connection_closed() {
    let server = Server::start();
    // 1 MiB against the 64 KiB limit: the client gets to send it all and
    // reads the 413, which tells it not to reuse the connection.
    let body = vec![b' '; 1 << 20];
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /v1/tokens HTTP/1.1\r\nHost: ward\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("\"body_too_large\""), "{answer}");

    // Declared far beyond what is worth reading: refused at once, unread.
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    stream
        .write_all(
            b"POST /v1/tokens HTTP/1.1\r\nHost: ward\r\nContent-Type: application/json\r\n\
              Content-Length: 1073741824\r\n\r\n{",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
}
