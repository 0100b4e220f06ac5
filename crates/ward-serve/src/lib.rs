//! Serving HTTP/1.1 from a TCP listener (optionally over TLS) or a Unix
//! socket (with the peer's credentials), with a
//! deadline for each TLS handshake and request head, and a bounded graceful
//! shutdown: stop accepting, close idle connections, give requests in
//! flight [`Limits::grace`] to finish, then close whatever is left. Neither
//! half-open connections nor endless responses can keep a process alive.
//!
//! Knows nothing about what is served: the caller gives one hyper service
//! per connection. `ward gateway` serves its proxy and admin listeners with
//! it, `ward serve` the control plane's router (a tower service, wrapped
//! with `hyper_util::service::TowerToHyperService`), `ward agent run` its
//! local API on a Unix socket.

use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How long a handler waits for a request's body once its head arrived.
/// Each server's handler reads bodies with [`read_body`], which enforces
/// it (408 `body_timeout`), so a client trickling a body cannot hold a
/// connection open for longer.
pub const BODY_READ_DEADLINE: Duration = Duration::from_secs(30);

/// How many bytes of a body refused as too large [`read_body`] reads and
/// throws away (within [`BODY_READ_DEADLINE`]) so that the client, still
/// sending, finishes and reads the 413 instead of a reset connection.
/// A body declared larger than this is refused without reading it.
pub const REFUSED_BODY_DRAIN: u64 = 16 << 20;

/// Why [`read_body`] returned no body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More than the limit (declared or sent): 413.
    TooLarge,
    /// Not all there within [`BODY_READ_DEADLINE`]: 408.
    Timeout,
    /// The connection failed while reading.
    Unreadable,
}

impl BodyError {
    /// The answer's status: 413, 408 or 400.
    pub fn status(self) -> StatusCode {
        match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyError::Unreadable => StatusCode::BAD_REQUEST,
        }
    }

    /// The answer's error code.
    pub fn code(self) -> &'static str {
        match self {
            BodyError::TooLarge => "body_too_large",
            BodyError::Timeout => "body_timeout",
            BodyError::Unreadable => "invalid_body",
        }
    }

    /// The answer's message, for a body limit of `limit` bytes.
    pub fn message(self, limit: usize) -> String {
        match self {
            BodyError::TooLarge => format!("the request body exceeds the limit of {limit} bytes"),
            BodyError::Timeout => format!(
                "the request body did not arrive within {} s",
                BODY_READ_DEADLINE.as_secs()
            ),
            BodyError::Unreadable => "the request body could not be read".to_owned(),
        }
    }
}

/// Reads a request body of at most `limit` bytes within
/// [`BODY_READ_DEADLINE`]. A body over the limit is refused, and read on
/// and discarded up to [`REFUSED_BODY_DRAIN`] bytes so that the refusal
/// reaches the client; the response to a refused body should close the
/// connection (what [`serve`] does for 408 and 413).
pub async fn read_body<B>(body: B, limit: usize) -> Result<bytes::Bytes, BodyError>
where
    B: Body<Data = bytes::Bytes> + Unpin,
{
    use http_body_util::BodyExt;
    let declared = body.size_hint().exact();
    let deadline = tokio::time::Instant::now() + BODY_READ_DEADLINE;
    if declared.is_some_and(|n| n > limit as u64) {
        if declared.is_some_and(|n| n <= REFUSED_BODY_DRAIN) {
            let _ = tokio::time::timeout_at(deadline, discard(body, REFUSED_BODY_DRAIN)).await;
        }
        return Err(BodyError::TooLarge);
    }
    let mut body = body;
    let mut collected = bytes::BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => return Ok(collected.freeze()),
            Ok(Some(Err(_))) => return Err(BodyError::Unreadable),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if collected.len() + data.len() > limit {
            let room = REFUSED_BODY_DRAIN.saturating_sub((collected.len() + data.len()) as u64);
            let _ = tokio::time::timeout_at(deadline, discard(body, room)).await;
            return Err(BodyError::TooLarge);
        }
        collected.extend_from_slice(&data);
    }
}

/// Reads and drops up to `room` bytes of `body`, or to its end.
async fn discard<B>(mut body: B, room: u64)
where
    B: Body<Data = bytes::Bytes> + Unpin,
{
    use http_body_util::BodyExt;
    let mut left = room;
    while let Some(Ok(frame)) = body.frame().await {
        let len = frame.data_ref().map_or(0, |data| data.len() as u64);
        match left.checked_sub(len) {
            Some(rest) => left = rest,
            None => return,
        }
    }
}

/// The deadlines of a listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client may take for the TLS handshake and for each
    /// request's head; a keep-alive connection idle this long is closed.
    pub header_read: Duration,
    /// Once shutdown begins, how long requests in flight (a response still
    /// streaming included) may take before their connections are closed.
    pub grace: Duration,
}

impl Limits {
    /// Ward's listeners: 10 s for a handshake or a request head, 5 s of
    /// grace for requests in flight at shutdown.
    pub const DEFAULT: Limits = Limits {
        header_read: Duration::from_secs(10),
        grace: Duration::from_secs(5),
    };
}

/// A listener `serve` accepts from: what a connection is and who is on the
/// other end.
pub trait Listener: Send {
    /// The connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Who connected: an address, or a Unix peer's credentials.
    type Peer;
    /// The next connection.
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Stream, Self::Peer)>> + Send;
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    type Peer = SocketAddr;
    async fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }
}

/// The process on the other end of a Unix socket, as the kernel reports
/// it (SO_PEERCRED / getpeereid): it cannot be forged by the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnixPeer {
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
    /// Its process id, where the system reports one.
    pub pid: Option<i32>,
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    /// `None` when the system could not say who connected (treat as a stranger).
    type Peer = Option<UnixPeer>;
    async fn accept(&self) -> std::io::Result<(UnixStream, Option<UnixPeer>)> {
        let (stream, _) = UnixListener::accept(self).await?;
        let peer = stream.peer_cred().ok().map(|cred| UnixPeer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
        });
        Ok((stream, peer))
    }
}

/// Accepts connections on `listener` until `stop` completes and serves
/// each with the service `service_for(peer)` returns, after a TLS handshake
/// when `tls` is given. Then stops accepting, closes idle connections, lets
/// requests in flight finish within `limits.grace`, closes the rest and
/// returns: a client can delay the return by at most `limits.grace`.
pub async fn serve<L, M, S, B>(
    listener: L,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    mut service_for: M,
    stop: impl Future<Output = ()>,
) where
    L: Listener,
    M: FnMut(L::Peer) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (stopping, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let service = service_for(peer);
                    let stopped = stopped.clone();
                    let tls = tls.clone();
                    connections.spawn(async move {
                        match tls {
                            Some(tls) => {
                                let handshake =
                                    tokio::time::timeout(limits.header_read, tls.accept(stream));
                                let shaken = tokio::select! {
                                    shaken = handshake => shaken,
                                    () = stopping_of(stopped.clone()) => return,
                                };
                                if let Ok(Ok(stream)) = shaken {
                                    connection(stream, service, limits, stopped).await;
                                }
                            }
                            None => connection(stream, service, limits, stopped).await,
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors, mostly: wait for some to close.
                    eprintln!("ward: accept failed: {error}; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut stop => break,
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(limits.grace, drained).await;
    connections.shutdown().await;
}

/// Serves one connection until it closes, or, once `stopped` turns true,
/// until the request in flight (if any) is answered.
async fn connection<I, S, B>(io: I, service: S, limits: Limits, stopped: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let serving = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .serve_connection(TokioIo::new(io), CloseAfterUnreadBody(service));
    let mut serving = std::pin::pin!(serving);
    tokio::select! {
        _ = serving.as_mut() => return,
        () = stopping_of(stopped) => {}
    }
    serving.as_mut().graceful_shutdown();
    let _ = serving.await;
}

/// Wraps a service so that a 408 or a 413 (the handler stopped reading the
/// body) says `Connection: close`: the rest of that body is still on the
/// wire, so hyper closes the connection after the answer, and a client
/// that reads the header does not send its next request on it.
struct CloseAfterUnreadBody<S>(S);

impl<S, B> Service<Request<Incoming>> for CloseAfterUnreadBody<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: 'static,
    S::Error: 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, S::Error>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let answer = self.0.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            let status = response.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::REQUEST_TIMEOUT {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        })
    }
}

/// Completes once `stopped` turns true (or its sender is gone): how
/// several listeners wait for one shutdown.
pub async fn stopping_of(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
