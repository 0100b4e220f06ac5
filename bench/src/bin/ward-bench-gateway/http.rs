//! HTTP/1.1 framing on raw tokio sockets (tokio's `io-util` is not
//! enabled in this workspace, so `readable`/`try_read` and
//! `writable`/`try_write`).

use tokio::net::TcpStream;
use ward_bench::s;

pub(crate) async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match stream.try_write(buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends what the socket has to `buf`; 0 at end of stream.
pub(crate) async fn read_some(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    scratch: &mut [u8],
) -> std::io::Result<usize> {
    loop {
        match stream.try_read(scratch) {
            Ok(n) => {
                buf.extend_from_slice(&scratch[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => stream.readable().await?,
            Err(e) => return Err(e),
        }
    }
}

/// The parts of a message head the benchmark needs.
pub(crate) struct Head {
    /// Bytes of the head, blank line included.
    pub(crate) len: usize,
    /// Status code of a response (0 for a request).
    pub(crate) status: u16,
    pub(crate) content_length: usize,
    pub(crate) chunked: bool,
    pub(crate) close: bool,
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `None` until the head is complete; `Err` when it is not HTTP/1.x.
pub(crate) fn parse_head(buf: &[u8], response: bool) -> Result<Option<Head>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            return Err("head larger than 64 KiB".into());
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "head is not UTF-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let status = if response {
        let mut parts = first.split(' ');
        if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
            return Err(format!("not an HTTP/1 status line: `{first}`"));
        }
        parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status code in `{first}`"))?
    } else {
        0
    };
    let mut head = Head {
        len: end + 4,
        status,
        content_length: 0,
        chunked: false,
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().map_err(|_| "bad Content-Length".to_owned())?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Some(head))
}

/// Length of a complete chunked body at the start of `buf` (trailers
/// included), `None` if incomplete.
pub(crate) fn chunked_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(eol) = find(&buf[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[at..at + eol]).map_err(s)?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size `{line}`"))?;
        at += eol + 2;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let Some(eol) = find(&buf[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

/// Reads one whole message from `stream` into `buf` (which may already
/// hold some of it); returns the head and the body's range. `Ok(None)` at a
/// clean end of stream before any byte of a new message.
pub(crate) async fn read_message(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    scratch: &mut [u8],
    response: bool,
) -> Result<Option<(Head, std::ops::Range<usize>)>, String> {
    let head = loop {
        if let Some(head) = parse_head(buf, response)? {
            break head;
        }
        if read_some(stream, buf, scratch).await.map_err(s)? == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err("connection closed in the middle of a head".into());
        }
    };
    let body_len = loop {
        let have = &buf[head.len..];
        if head.chunked {
            if let Some(n) = chunked_len(have)? {
                break n;
            }
        } else if have.len() >= head.content_length {
            break head.content_length;
        }
        if read_some(stream, buf, scratch).await.map_err(s)? == 0 {
            return Err("connection closed in the middle of a body".into());
        }
    };
    let range = head.len..head.len + body_len;
    Ok(Some((head, range)))
}
