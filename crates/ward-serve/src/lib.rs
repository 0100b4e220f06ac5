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
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How long a handler waits for a request's body once its head arrived.
/// This crate does not see bodies: each server's handler enforces it as it
/// reads (408 `body_timeout`), so a client trickling a body cannot hold a
/// connection open for longer.
pub const BODY_READ_DEADLINE: Duration = Duration::from_secs(30);

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
        .serve_connection(TokioIo::new(io), service);
    let mut serving = std::pin::pin!(serving);
    tokio::select! {
        _ = serving.as_mut() => return,
        () = stopping_of(stopped) => {}
    }
    serving.as_mut().graceful_shutdown();
    let _ = serving.await;
}

/// Completes once `stopped` turns true (or its sender is gone): how
/// several listeners wait for one shutdown.
pub async fn stopping_of(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
