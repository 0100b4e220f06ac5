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
//! - [`pipeline`]: the per-request stages (route, credentials, limits,
//!   body, forward), the access log line and metrics of each request.
//! - [`accesslog`]: the buffered JSON access log on stdout.
//! - [`ratelimit`]: GCRA rate limits and daily quotas.
//! - [`metrics`]: Prometheus text on `/metrics`.
//! - [`server`]: HTTP/1.1 connections with deadlines and a bounded
//!   graceful shutdown (knows nothing about the gateway).
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

use hyper::service::service_fn;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

pub use config::{ConfigError, Loaded, load};
pub use error::GatewayError;

/// How long a client may take for the TLS handshake or a request's head,
/// and, once shutdown begins, how long requests in flight may still take.
const LIMITS: ward_serve::Limits = ward_serve::Limits::DEFAULT;

/// How long to keep trying to get the first snapshot before giving up.
const FIRST_SNAPSHOT_DEADLINE: Duration = Duration::from_secs(30);

/// Runs the gateway until `shutdown` completes, then gives requests in
/// flight a few seconds and returns. `on_listening` is called
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
    // Stopping is honoured from here on, while starting up too.
    let mut shutdown = std::pin::pin!(shutdown);
    let snapshot = tokio::select! {
        snapshot = first_snapshot(&control) => snapshot?,
        () = &mut shutdown => return Ok(()),
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
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(wait.unsigned_abs())) => {}
            () = &mut shutdown => return Ok(()),
        }
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
    let admin_listener = match &admin_listen {
        Some(admin) => Some(TcpListener::bind(admin).await.map_err(|e| {
            format!("cannot listen on `{admin}`: {e}; choose another `admin_listen` address")
        })?),
        None => None,
    };
    let flush = tokio::spawn(accesslog::flush_periodically(gateway.access_log()));
    on_listening(&format!("{scheme}://{local}"), &public_url);

    // One signal stops both listeners; each then gives its requests in
    // flight the same grace.
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let proxy = ward_serve::serve(
        listener,
        acceptor,
        LIMITS,
        |peer| {
            let gateway = Arc::clone(&gateway);
            service_fn(move |request| {
                let gateway = Arc::clone(&gateway);
                async move { Ok::<_, Infallible>(gateway.handle(request, peer).await) }
            })
        },
        ward_serve::stopping_of(stopped.clone()),
    );
    let operations = async {
        if let Some(listener) = admin_listener {
            ward_serve::serve(
                listener,
                None,
                LIMITS,
                // `/healthz`, `/readyz` and `/metrics` only, 404 for anything else.
                |_| {
                    let gateway = Arc::clone(&gateway);
                    service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let response = gateway
                            .operations(request.uri().path())
                            .unwrap_or_else(pipeline::Gateway::not_an_operation);
                        std::future::ready(Ok::<_, Infallible>(response))
                    })
                },
                ward_serve::stopping_of(stopped.clone()),
            )
            .await;
        }
    };
    let signal = async {
        shutdown.await;
        let _ = stopping.send(true);
    };
    tokio::join!(proxy, operations, signal);
    follow.abort();
    flush.abort();
    gateway.access_log().flush();
    Ok(())
}

/// The control plane's snapshot, retried until [`FIRST_SNAPSHOT_DEADLINE`].
async fn first_snapshot(
    control: &follower::ControlClient,
) -> Result<ward_api::WatchSnapshot, String> {
    let started = Instant::now();
    loop {
        match control.snapshot().await {
            Ok(snapshot) => return Ok(snapshot),
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
    }
}
