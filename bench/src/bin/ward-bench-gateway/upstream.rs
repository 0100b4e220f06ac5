//! The upstream: its own process, so its CPU is measured apart.

use crate::args::UPSTREAM_BODY;
use crate::http::{read_message, write_all};
use std::process::ExitCode;
use tokio::net::{TcpListener, TcpStream};
use ward_bench::s;

pub(crate) fn serve_upstream_main(addr: &str) -> ExitCode {
    ward_bench::run_on_runtime("upstream", async {
        let listener = TcpListener::bind(addr).await.map_err(s)?;
        println!(
            "upstream listening on {}",
            listener.local_addr().map_err(s)?
        );
        loop {
            let (stream, _) = listener.accept().await.map_err(s)?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(upstream_connection(stream));
        }
    })
}

pub(crate) async fn upstream_connection(stream: TcpStream) {
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{UPSTREAM_BODY}",
        UPSTREAM_BODY.len()
    );
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut scratch = vec![0u8; 16 * 1024];
    loop {
        let (head, body) = match read_message(&stream, &mut buf, &mut scratch, false).await {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(_) => {
                let _ = write_all(
                    &stream,
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
                return;
            }
        };
        buf.drain(..body.end);
        if write_all(&stream, response.as_bytes()).await.is_err() || head.close {
            return;
        }
    }
}
