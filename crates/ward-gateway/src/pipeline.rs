//! The per-request pipeline, as the list of its stages (each in its own
//! module, each refusal a [`GatewayError`] that ends the request):
//!
//! 1. [`limits`]: the per-address limit; then `/healthz`, `/readyz` and
//!    `/metrics` when they share the proxy listener ([`response`]).
//! 2. [`route`]: path hygiene, the allowlist, the scope the route needs.
//! 3. [`credentials`]: the token and its DPoP proof, then revocations,
//!    kill switches, the route's flag, scope, staleness and approval.
//! 4. [`limits`]: the route's per-agent and per-user limits.
//! 5. [`body`]: the query string and the request body against the contract.
//! 6. [`limits`]: the daily quota; then a single-use token is spent.
//! 7. [`forward`]: header hygiene, identity headers, the upstream call.
//!
//! [`record`] writes what each request leaves behind (access log line,
//! metrics); [`ids`] makes correlation and trace ids. Nothing here calls
//! the control plane except a JWKS refresh on an unknown `kid`.

pub mod body;
pub mod credentials;
pub mod forward;
pub mod ids;
pub mod limits;
pub mod record;
pub mod response;
pub mod route;

use http::{Request, Response};
use hyper::body::Incoming;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::accesslog::AccessLog;
use crate::config::{Loaded, Route};
use crate::error::GatewayError;
use crate::follower::ControlClient;
use crate::metrics::Metrics;
use crate::ratelimit::Limiter;
use crate::state::ControlState;
use credentials::Verifier;
use forward::Upstream;
use limits::RouteLimits;
use record::Record;

pub use record::unix_now;
pub use response::Body;

/// Everything a request needs, shared by all connections.
pub struct Gateway {
    routes: Vec<Route>,
    /// The limits of each route, indexed like `routes`.
    limits: Vec<RouteLimits>,
    ip_limit: Option<Limiter<IpAddr>>,
    credentials: Verifier,
    /// One client per upstream, indexed like [`crate::config::Loaded::upstreams`].
    upstreams: Vec<Upstream>,
    max_body: usize,
    /// Whether `/healthz`, `/readyz` and `/metrics` have their own listener.
    separate_admin: bool,
    state: Arc<ControlState>,
    access_log: Arc<AccessLog>,
    metrics: Metrics,
}

impl Gateway {
    /// Builds the gateway from a checked configuration, the followed state,
    /// the public URL clients address and the one tenant it serves, if the
    /// stream covers only one.
    pub fn new(
        loaded: Loaded,
        state: Arc<ControlState>,
        control: ControlClient,
        public_url: String,
        tenant: Option<String>,
        started: i64,
    ) -> Result<Gateway, String> {
        let config = &loaded.config;
        let limits = loaded
            .routes
            .iter()
            .map(|r| RouteLimits::new(&r.config))
            .collect();
        let upstreams = loaded
            .upstreams
            .iter()
            .map(Upstream::new)
            .collect::<Result<_, String>>()?;
        let settings = credentials::Settings {
            public_url,
            tenant,
            skew: i64::try_from(config.clock_skew_secs).unwrap_or(i64::MAX),
            proof_max_age: i64::try_from(config.proof_max_age_secs).unwrap_or(i64::MAX),
            started,
        };
        Ok(Gateway {
            limits,
            ip_limit: config.ip_rate_limit.map(Limiter::new),
            credentials: Verifier::new(Arc::clone(&state), control, settings),
            upstreams,
            max_body: config.max_body_bytes,
            separate_admin: config.admin_listen.is_some(),
            routes: loaded.routes,
            state,
            access_log: Arc::new(AccessLog::default()),
            metrics: Metrics::default(),
        })
    }

    /// Serves one request: refuses it or forwards it, and logs it.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let mut record = Record::start(&request, peer);
        let outcome = self.serve(request, peer, &mut record).await;
        record.finish(outcome, &self.access_log, &self.metrics)
    }

    /// The access log, for the task that flushes it.
    pub fn access_log(&self) -> Arc<AccessLog> {
        Arc::clone(&self.access_log)
    }

    /// `/healthz`, `/readyz` and `/metrics`, on whichever listener serves them.
    pub fn operations(&self, path: &str) -> Option<Response<Body>> {
        response::operations(path, &self.state, &self.metrics)
    }

    /// The answer of the `admin_listen` address to anything else.
    pub fn not_an_operation() -> Response<Body> {
        response::not_an_operation()
    }

    /// The stages, in order; the first refusal ends the request.
    async fn serve<'a>(
        &'a self,
        request: Request<Incoming>,
        peer: SocketAddr,
        record: &mut Record<'a>,
    ) -> Result<Response<Body>, GatewayError> {
        let path = request.uri().path().to_owned();
        if let Some(limiter) = &self.ip_limit {
            limits::rate_limit(limiter, &peer.ip(), "this address")?;
        }
        if !self.separate_admin
            && let Some(response) = self.operations(&path)
        {
            return Ok(response);
        }

        let matched = route::find(&self.routes, &path, request.method())?;
        let route = &self.routes[matched.index];
        record.route = Some(&route.config.name);
        let required = route::required_scope(route, &matched.params)?;
        record.scope = Some(required.clone());

        let now = unix_now();
        let (token, proof) = credentials::from_headers(request.headers())?;
        let claims = self.credentials.verify_token(token, now).await?;
        record.claims = Some(Arc::clone(&claims));
        let method = request.method();
        self.credentials
            .verify_proof(proof, token, method, &path, &claims, now)?;
        self.credentials
            .authorize(route, &required, &claims, method)?;
        self.credentials
            .refuse_single_use_from_before_start(&claims)?;

        let limits = &self.limits[matched.index];
        let rate = limits.check(&claims.sub, &claims.owner)?;

        let (parts, body) = request.into_parts();
        body::check_query(route, &parts.method, parts.uri.query())?;
        let body = body::read(route, &parts.method, &parts.headers, body, self.max_body).await?;

        limits.take_quota(&claims.sub, now)?;
        // INVARIANT: a single-use (approved, action-bound) token is spent
        // only once every other check passed (body and quota
        // included), so a refusal does not burn it.
        self.credentials.spend_single_use(&claims, now)?;

        let upstream = &self.upstreams[route.upstream];
        let response = forward::forward(
            upstream,
            parts,
            body,
            route,
            &claims,
            &record.correlation_id,
            peer,
        )
        .await?;
        Ok(limits::with_headers(response, rate))
    }
}
