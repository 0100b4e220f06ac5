//! `ward gateway`: the enforcing reverse proxy in front of a protected
//! service. It follows the control plane's push stream (revocations, kill
//! switches, flags, keys) and decides every request locally, without
//! calling the control plane.
//!
//! - [`config`]: the YAML file, its checks, compiled routes and schemas.
//! - [`contract`]: OpenAPI 3 documents turned into request body schemas.
//! - [`tls`]: the serving certificate and the clients towards upstreams.
//! - [`state`]: the followed state (revocation rules, switches, flags,
//!   keys, DPoP replay cache, staleness).
//! - [`follower`]: snapshot, then the server-sent event stream.
//! - [`pipeline`]: the per-request checks and the forward.
//! - [`accesslog`]: the buffered JSON access log on stdout.
//! - [`ratelimit`]: GCRA rate limits and daily quotas.
//! - [`metrics`]: Prometheus text on `/metrics`.
//! - [`error`]: the one error type and its JSON body.

pub mod accesslog;
pub mod config;
pub mod contract;
pub mod error;
pub mod follower;
pub mod metrics;
pub mod pipeline;
pub mod ratelimit;
pub mod state;
pub mod tls;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

pub use config::{ConfigError, Loaded, load};
pub use error::GatewayError;

/// How long a client may take for the TLS handshake or a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to keep trying to get the first snapshot before giving up.
const FIRST_SNAPSHOT_DEADLINE: Duration = Duration::from_secs(30);

/// Runs the gateway until `shutdown` completes. `on_listening` is called
/// with the URL of the bound address and the public URL once the first snapshot is
/// loaded and requests can be served.
pub async fn run(
    loaded: Loaded,
    on_listening: impl FnOnce(&str, &str),
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let config = &loaded.config;
    // Replay records (DPoP `jti`s, spent single-use tokens) start empty, so
    // nothing dated up to this second plus the clock skew is trusted; the
    // gateway waits that long before it serves, so fresh proofs pass.
    let started_at = pipeline::unix_now();
    let control =
        follower::ControlClient::new(&config.control_plane.url, &config.control_plane.token)?;
    let started = Instant::now();
    let snapshot = loop {
        match control.snapshot().await {
            Ok(snapshot) => break snapshot,
            Err(error) if started.elapsed() > FIRST_SNAPSHOT_DEADLINE => {
                return Err(format!(
                    "{error}; the gateway needs one snapshot before it can serve"
                ));
            }
            Err(error) => {
                eprintln!("ward gateway: {error}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let tenant = match (&snapshot.tenant, &config.control_plane.tenant) {
        (Some(streamed), Some(configured)) if streamed != configured => {
            return Err(format!(
                "control_plane.tenant is `{configured}` but control_plane.token belongs to tenant `{streamed}`"
            ));
        }
        (Some(streamed), _) => Some(streamed.clone()),
        (None, configured) => configured.clone(),
    };
    let state = Arc::new(state::ControlState::from_snapshot(
        &snapshot,
        Duration::from_secs(config.staleness_secs),
    ));
    state.set_connected(false);
    let skew = i64::try_from(config.clock_skew_secs).unwrap_or(i64::MAX);
    let serve_from = started_at.saturating_add(skew).saturating_add(1);
    let wait = serve_from.saturating_sub(pipeline::unix_now());
    if wait > 0 {
        eprintln!(
            "ward gateway: waiting {wait} s (clock skew {skew} s) so that no proof from before this start can be replayed"
        );
        tokio::time::sleep(Duration::from_secs(wait.unsigned_abs())).await;
    }
    let listener = TcpListener::bind(&config.listen).await.map_err(|e| {
        format!(
            "cannot listen on `{}`: {e}; choose another `listen` address",
            config.listen
        )
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let acceptor = match &loaded.tls {
        Some(tls) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(tls)?)),
        None => None,
    };
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let public_url = match &config.public_url {
        Some(url) => url.clone(),
        None if local.ip().is_unspecified() => {
            return Err(format!(
                "listening on `{local}` needs `public_url`: DPoP proofs name the URL clients use, e.g. `https://gateway.example.com`"
            ));
        }
        None => format!("{scheme}://{local}"),
    };
    let follow = tokio::spawn(follower::follow(control.clone(), Arc::clone(&state)));
    let admin_listen = config.admin_listen.clone();
    let gateway = Arc::new(pipeline::Gateway::new(
        loaded,
        state,
        control,
        public_url.clone(),
        tenant,
        started_at,
    )?);
    if let Some(admin) = &admin_listen {
        let admin_listener = TcpListener::bind(admin).await.map_err(|e| {
            format!("cannot listen on `{admin}`: {e}; choose another `admin_listen` address")
        })?;
        tokio::spawn(serve_operations(admin_listener, Arc::clone(&gateway)));
    }
    let flush = tokio::spawn(accesslog::flush_periodically(gateway.access_log()));
    on_listening(&format!("{scheme}://{local}"), &public_url);

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    eprintln!("ward gateway: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let gateway = Arc::clone(&gateway);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let gateway = Arc::clone(&gateway);
                async move { Ok::<_, std::convert::Infallible>(gateway.handle(request, peer).await) }
            });
            match acceptor {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        serve_http1(stream, service).await;
                    }
                }
                None => serve_http1(stream, service).await,
            }
        });
    }
    follow.abort();
    flush.abort();
    // Lines of requests still in flight are written when the last
    // connection lets go of the gateway (the log flushes on drop).
    gateway.access_log().flush();
    Ok(())
}

/// Serves only `/healthz`, `/readyz` and `/metrics` (404 for anything else)
/// on the separate `admin_listen` address.
async fn serve_operations(listener: TcpListener, gateway: Arc<pipeline::Gateway>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let gateway = Arc::clone(&gateway);
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let gateway = Arc::clone(&gateway);
                async move {
                    let response = gateway
                        .operations(request.uri().path())
                        .unwrap_or_else(pipeline::Gateway::not_an_operation);
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            serve_http1(stream, service).await;
        });
    }
}

/// Serves HTTP/1.1 on one connection, with a deadline for each request's headers.
async fn serve_http1<S, F>(stream: S, service: F)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<pipeline::Body>,
            Error = std::convert::Infallible,
        >,
    F::Future: Send + 'static,
{
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
