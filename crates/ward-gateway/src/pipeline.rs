//! The per-request pipeline: route allowlist and path hygiene, the token
//! and its DPoP proof, revocations, kill switches, flags, scope, approval
//! and staleness, rate limit, content type, size and schema, then the
//! forward to the upstream with the verified identity. Every refusal is a
//! [`GatewayError`]; nothing here calls the control plane except a JWKS
//! refresh on an unknown `kid`.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ward_model::scope::Scope;

use crate::accesslog::AccessLog;
use crate::config::{BodyRule, Loaded, QueryRule, Route, Segment, substitute};
use crate::contract::QueryKind;
use crate::error::GatewayError;
use crate::follower::ControlClient;
use crate::metrics::Metrics;
use crate::ratelimit::{Limiter, Quota};
use crate::state::{ControlState, Mode, TokenFacts};
use crate::tls::UpstreamClient;

/// The response body type of the gateway.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// How long a client may take to send its request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the upstream may take to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Unknown `kid`s trigger at most one JWKS fetch per this interval.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(1);

/// Everything a request needs, shared by all connections.
pub struct Gateway {
    routes: Vec<Route>,
    limits: Vec<RouteLimits>,
    ip_limit: Option<Limiter<IpAddr>>,
    access_log: Arc<AccessLog>,
    metrics: Metrics,
    state: Arc<ControlState>,
    control: ControlClient,
    /// One client per upstream, indexed like [`crate::config::Loaded::upstreams`].
    upstreams: Vec<(String, UpstreamClient)>,
    public_url: String,
    tenant: Option<String>,
    skew: i64,
    proof_max_age: i64,
    max_body: usize,
    last_jwks_refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Tokens whose signature and claims were verified, by their exact
    /// text: an agent presents the same token on many calls, and its
    /// signature cannot change. Expiry is re-checked on every use;
    /// revocations and switches are checked per request regardless.
    verified: std::sync::Mutex<HashMap<String, Arc<Claims>>>,
    /// When this process started (Unix seconds): proofs and single-use
    /// tokens dated up to it plus the clock skew cannot be checked against
    /// the in-memory records of what was used (`run` waits that long
    /// before serving).
    started: i64,
    /// Whether `/healthz`, `/readyz` and `/metrics` have their own listener.
    separate_admin: bool,
    /// Device keys already decoded, by thumbprint (`cnf.jkt`).
    device_keys: std::sync::Mutex<HashMap<String, (ward_auth::Jwk, ward_auth::VerifyingKey)>>,
}

/// Verified tokens and decoded keys kept at most; past it a cache starts over.
const CACHE_CAPACITY: usize = 100_000;

/// The limits of one route.
struct RouteLimits {
    agent: Option<Limiter>,
    user: Option<Limiter>,
    quota: Option<Quota>,
}

/// The claims of a Ward access token the gateway uses.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    jti: String,
    iat: i64,
    tenant: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    device_id: String,
    #[serde(default)]
    agent_version: String,
    scopes: Vec<String>,
    /// `scopes`, parsed once when the token is first verified.
    #[serde(skip)]
    granted: Vec<Scope>,
    cnf: Cnf,
    #[serde(default)]
    approval_id: Option<String>,
    #[serde(default)]
    action_hash: Option<String>,
    #[serde(default)]
    single_use: bool,
    exp: i64,
}

#[derive(Debug, Deserialize)]
struct Cnf {
    jkt: String,
}

/// What the access log says about one request, as far as it got.
#[derive(Default)]
struct Record<'a> {
    route: Option<&'a str>,
    scope: Option<Scope>,
    claims: Option<Arc<Claims>>,
}

/// One access log line; members in alphabetical order.
#[derive(Serialize)]
struct Entry<'a> {
    action: Option<String>,
    agent_id: Option<&'a str>,
    bytes: Option<u64>,
    client_ip: IpAddr,
    code: Option<&'static str>,
    correlation_id: &'a str,
    device_id: Option<&'a str>,
    duration_ms: f64,
    method: &'a str,
    result: &'static str,
    route: Option<&'a str>,
    status: u16,
    target: Option<&'a str>,
    tenant: Option<&'a str>,
    ts: String,
    user_id: Option<&'a str>,
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
            .map(|r| RouteLimits {
                agent: r.config.rate_limit.map(Limiter::new),
                user: r.config.user_rate_limit.map(Limiter::new),
                quota: r.config.daily_quota.map(Quota::new),
            })
            .collect();
        let ip_limit = config.ip_rate_limit.map(Limiter::new);
        let upstreams = loaded
            .upstreams
            .iter()
            .map(|u| {
                let client = crate::tls::upstream_client(&u.config)
                    .map_err(|e| format!("upstream `{}`: {e}", u.name))?;
                Ok((u.config.url.trim_end_matches('/').to_owned(), client))
            })
            .collect::<Result<_, String>>()?;
        Ok(Gateway {
            upstreams,
            public_url: public_url.trim_end_matches('/').to_owned(),
            tenant,
            skew: i64::try_from(config.clock_skew_secs).unwrap_or(i64::MAX),
            proof_max_age: i64::try_from(config.proof_max_age_secs).unwrap_or(i64::MAX),
            max_body: config.max_body_bytes,
            routes: loaded.routes,
            limits,
            ip_limit,
            access_log: Arc::new(AccessLog::default()),
            metrics: Metrics::default(),
            state,
            control,
            last_jwks_refresh: tokio::sync::Mutex::new(None),
            verified: std::sync::Mutex::new(HashMap::new()),
            started,
            separate_admin: config.admin_listen.is_some(),
            device_keys: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Serves one request: refuses it or forwards it, and logs it.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let started = Instant::now();
        let correlation_id = request
            .headers()
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| ward_model::audit::valid_correlation_id(v))
            .map_or_else(new_correlation_id, str::to_owned);
        let method = request.method().clone();
        let mut record = Record::default();
        let (mut response, result, code) = match self
            .serve(request, peer, &correlation_id, &mut record)
            .await
        {
            Ok(response) => (response, "allowed", None),
            Err(error) => {
                let code = error.code;
                let result = if error.status.is_server_error() {
                    "error"
                } else {
                    "denied"
                };
                (
                    box_full(error.into_response(&correlation_id)),
                    result,
                    Some(code),
                )
            }
        };
        if let Ok(value) = HeaderValue::from_str(&correlation_id) {
            response.headers_mut().insert("x-correlation-id", value);
        }
        let bytes = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let elapsed = started.elapsed().as_secs_f64();
        let claims = record.claims.as_deref();
        self.access_log.append(&Entry {
            action: record
                .scope
                .as_ref()
                .map(|s| format!("{}:{}", s.resource(), s.action())),
            agent_id: claims.map(|c| c.sub.as_str()),
            bytes,
            client_ip: peer.ip(),
            code,
            correlation_id: &correlation_id,
            device_id: claims.map(|c| c.device_id.as_str()),
            duration_ms: elapsed * 1000.0,
            method: method.as_str(),
            result,
            route: record.route,
            status: response.status().as_u16(),
            target: record.scope.as_ref().map(Scope::pattern),
            tenant: claims.map(|c| c.tenant.as_str()),
            ts: now_rfc3339(),
            user_id: claims.map(|c| c.owner.as_str()),
        });
        self.metrics.record(
            record.route.unwrap_or("-"),
            result,
            code.unwrap_or(""),
            response.status().as_u16(),
            elapsed,
        );
        response
    }

    /// The access log, for the task that flushes it.
    pub fn access_log(&self) -> Arc<AccessLog> {
        Arc::clone(&self.access_log)
    }

    async fn serve<'a>(
        &'a self,
        request: Request<Incoming>,
        peer: SocketAddr,
        correlation_id: &str,
        record: &mut Record<'a>,
    ) -> Result<Response<Body>, GatewayError> {
        let path = request.uri().path().to_owned();
        if let Some(limiter) = &self.ip_limit {
            rate_limit(limiter, &peer.ip(), "this address")?;
        }
        if !self.separate_admin
            && let Some(response) = self.operations(&path)
        {
            return Ok(response);
        }
        let segments = clean_path(&path)?;
        let (index, params) = self.find_route(&segments, request.method())?;
        let route = &self.routes[index];
        record.route = Some(&route.config.name);
        let required = required_scope(route, &params)?;
        record.scope = Some(required.clone());

        let now = unix_now();
        let (token, proof) = credentials(request.headers())?;
        let claims = self.verify_token(token, now).await?;
        record.claims = Some(Arc::clone(&claims));
        self.verify_proof(proof, token, request.method(), &path, &claims, now)?;
        self.authorize(route, &required, &claims, request.method())?;
        // The record of spent tokens starts empty with the process: a
        // single-use token minted before the start may have been spent.
        if claims.single_use && claims.iat <= self.started.saturating_add(self.skew) {
            return Err(GatewayError::unauthorized(
                "token_used",
                "this single-use token predates the gateway's start and may have been used; request a new approval",
            ));
        }
        let limits = &self.limits[index];
        let rate = match &limits.agent {
            Some(limiter) => Some(rate_limit(limiter, claims.sub.as_str(), "this agent")?),
            None => None,
        };
        if let Some(limiter) = &limits.user {
            rate_limit(limiter, claims.owner.as_str(), "this user's agents")?;
        }

        let (parts, body) = request.into_parts();
        if let Some(rule) = route.query_rule(parts.method.as_str()) {
            check_query(rule, parts.uri.query().unwrap_or(""))?;
        }
        let body = self
            .read_body(route, &parts.method, &parts.headers, body)
            .await?;
        if let Some(quota) = &limits.quota {
            take_quota(quota, &claims.sub, now)?;
        }
        // INVARIANT: a single-use (approved, action-bound) token is spent
        // only once every other check passed (body and quota
        // included), so a refusal does not burn it.
        if claims.single_use
            && !self.state.first_use(
                format!("token:{}", claims.jti),
                now,
                claims.exp.saturating_add(self.skew).saturating_add(1),
            )
        {
            return Err(GatewayError::unauthorized(
                "token_used",
                "this single-use token was already used; request a new approval",
            ));
        }
        let mut response = self
            .forward(parts, body, route, &claims, correlation_id, peer)
            .await?;
        if let Some(headers) = rate {
            for (name, value) in headers {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
        }
        Ok(response)
    }

    /// `/healthz`, `/readyz` and `/metrics`, on whichever listener serves them.
    pub fn operations(&self, path: &str) -> Option<Response<Body>> {
        match path {
            "/healthz" => Some(json_response(StatusCode::OK, &json!({"status": "ok"}))),
            "/readyz" => Some(self.readiness()),
            "/metrics" => Some(self.metrics_response()),
            _ => None,
        }
    }

    /// The answer of the `admin_listen` address to anything else.
    pub fn not_an_operation() -> Response<Body> {
        box_full(
            GatewayError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "this address serves /healthz, /readyz and /metrics only",
            )
            .into_response(""),
        )
    }

    fn metrics_response(&self) -> Response<Body> {
        let mut response = Response::new(Full::new(Bytes::from(self.metrics.render(&self.state))));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        box_full(response)
    }

    fn readiness(&self) -> Response<Body> {
        let (since, connected) = self.state.contact();
        let seq = self.state.seq();
        match self.state.stale_for() {
            None => json_response(
                StatusCode::OK,
                &json!({"status": "ok", "stream_connected": connected, "last_contact_secs": since, "seq": seq}),
            ),
            Some(stale) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "stale", "stream_connected": connected, "staleness_secs": stale.as_secs_f64(), "seq": seq}),
            ),
        }
    }

    fn find_route(
        &self,
        segments: &[&str],
        method: &Method,
    ) -> Result<(usize, HashMap<String, String>), GatewayError> {
        let mut allowed: Vec<String> = Vec::new();
        for (index, route) in self.routes.iter().enumerate() {
            let Some(params) = match_template(&route.segments, segments)? else {
                continue;
            };
            if route.config.methods.iter().any(|m| m == method.as_str()) {
                return Ok((index, params));
            }
            allowed.extend(route.config.methods.iter().cloned());
        }
        if allowed.is_empty() {
            return Err(GatewayError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "no route of this gateway matches the path",
            ));
        }
        let mut error = GatewayError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "method `{method}` is not allowed here; use {}",
                allowed.join(", ")
            ),
        );
        error.headers.push(("allow", allowed.join(", ")));
        Err(error)
    }

    async fn verify_token(&self, token: &str, now: i64) -> Result<Arc<Claims>, GatewayError> {
        let cached = self
            .verified
            .lock()
            .ok()
            .and_then(|cache| cache.get(token).cloned());
        if let Some(claims) = cached {
            if now < claims.exp.saturating_add(self.skew) {
                return Ok(claims);
            }
            if let Ok(mut cache) = self.verified.lock() {
                cache.remove(token);
            }
        }
        let claims = Arc::new(self.verify_token_fully(token, now).await?);
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(token.to_owned(), Arc::clone(&claims));
        }
        Ok(claims)
    }

    async fn verify_token_fully(&self, token: &str, now: i64) -> Result<Claims, GatewayError> {
        let verify = || ward_auth::verify_jwt(token, now, self.skew, |kid| self.state.key(kid));
        let (header, claims) = match verify() {
            Err(ward_auth::AuthError::UnknownKey(_)) if self.refresh_jwks().await => verify()?,
            other => other?,
        };
        if header.get("typ").and_then(Value::as_str) != Some("at+jwt") {
            return Err(GatewayError::unauthorized(
                "malformed_token",
                "the token's header `typ` must be `at+jwt`; present a Ward access token",
            ));
        }
        let mut claims: Claims = serde_json::from_value(claims).map_err(|e| {
            GatewayError::unauthorized(
                "malformed_token",
                format!("the token's claims are not those of a Ward access token: {e}"),
            )
        })?;
        // Every scope must parse: the parser refuses the separators
        // (whitespace, `,`) that would let one scope forge another in the
        // `X-Ward-Scopes` header.
        claims.granted = claims
            .scopes
            .iter()
            .map(|s| s.parse::<Scope>())
            .collect::<Result<_, _>>()
            .map_err(|e| {
                GatewayError::unauthorized(
                    "malformed_token",
                    format!("the token carries an invalid scope: {e}"),
                )
            })?;
        if let Some(tenant) = &self.tenant
            && *tenant != claims.tenant
        {
            return Err(GatewayError::forbidden(
                "wrong_tenant",
                "this gateway serves another tenant",
            ));
        }
        Ok(claims)
    }

    /// Fetches the JWKS once per interval; true if it was fetched.
    async fn refresh_jwks(&self) -> bool {
        let mut last = self.last_jwks_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < JWKS_MIN_REFRESH) {
            return false;
        }
        *last = Some(Instant::now());
        match self.control.jwks().await {
            Ok(jwks) => {
                self.state.set_keys(&jwks);
                true
            }
            Err(_) => false,
        }
    }

    fn verify_proof(
        &self,
        proof: &str,
        token: &str,
        method: &Method,
        path: &str,
        claims: &Claims,
        now: i64,
    ) -> Result<(), GatewayError> {
        let htu = format!("{}{path}", self.public_url);
        let expectations = ward_auth::ProofExpectations {
            htm: method.as_str(),
            htu: &htu,
            now,
            max_age_secs: self.proof_max_age,
            max_future_secs: self.skew,
            access_token: Some(token),
        };
        let known = self
            .device_keys
            .lock()
            .ok()
            .and_then(|keys| keys.get(&claims.cnf.jkt).cloned());
        let verified = match &known {
            // A proof naming another key is checked in full and then fails
            // the thumbprint comparison below.
            Some((jwk, key)) => {
                ward_auth::dpop::verify_proof_known(proof, &expectations, jwk, key)?
            }
            None => ward_auth::dpop::verify_proof(proof, &expectations)?,
        };
        if known.is_none()
            && verified.jkt == claims.cnf.jkt
            && let Ok(key) = verified.jwk.verifying_key()
            && let Ok(mut keys) = self.device_keys.lock()
        {
            if keys.len() >= CACHE_CAPACITY {
                keys.clear();
            }
            keys.insert(verified.jkt.clone(), (verified.jwk.clone(), key));
        }
        if verified.jkt != claims.cnf.jkt {
            return Err(GatewayError::unauthorized(
                "dpop_key_mismatch",
                "the dpop proof is signed by another key than the one the token is bound to (`cnf.jkt`)",
            ));
        }
        // The replay cache starts empty: a proof made before this process
        // started may have been used with the previous one.
        if verified.iat <= self.started.saturating_add(self.skew) {
            return Err(GatewayError::unauthorized(
                "dpop_proof_stale",
                "the dpop proof predates the gateway's start and cannot be checked for replay; send a fresh proof",
            ));
        }
        let expires = verified
            .iat
            .saturating_add(self.proof_max_age)
            .saturating_add(self.skew)
            .saturating_add(1);
        if !self
            .state
            .first_use(format!("{}:{}", verified.jkt, verified.jti), now, expires)
        {
            return Err(GatewayError::unauthorized(
                "dpop_replay",
                "this dpop proof was already used; send a fresh proof with a new `jti` for every request",
            ));
        }
        Ok(())
    }

    fn authorize(
        &self,
        route: &Route,
        required: &Scope,
        claims: &Claims,
        method: &Method,
    ) -> Result<(), GatewayError> {
        if let Some(reason) = self.state.revoked(&TokenFacts {
            tenant: &claims.tenant,
            jti: &claims.jti,
            agent: &claims.sub,
            scopes: &claims.scopes,
            iat: claims.iat,
        }) {
            return Err(GatewayError::unauthorized(
                "token_revoked",
                format!("{reason}; request a new token"),
            ));
        }
        match self
            .state
            .mode_for(&claims.tenant, &claims.sub, &claims.agent_version)
        {
            (Mode::Offline, reason) => {
                return Err(GatewayError::forbidden(
                    "kill_switch_offline",
                    format!("a kill switch has taken this agent offline: {reason}"),
                ));
            }
            (Mode::ReadOnly, reason) if !(is_safe(method) && required.is_read()) => {
                return Err(GatewayError::forbidden(
                    "kill_switch_read_only",
                    format!(
                        "a kill switch allows this agent only reads with safe methods: {reason}"
                    ),
                ));
            }
            _ => {}
        }
        if let Some(flag) = &route.config.flag
            && self.state.flag_off(flag, &claims.tenant)
        {
            return Err(GatewayError::forbidden(
                "feature_disabled",
                format!("feature flag `{flag}` is off"),
            ));
        }
        let covered = claims
            .granted
            .iter()
            .any(|granted| granted.covers(required));
        if !covered {
            return Err(GatewayError::forbidden(
                "insufficient_scope",
                format!("the token has no scope covering `{required}`; request a token with it"),
            ));
        }
        let high_risk = self.state.is_high_risk(required);
        if (route.config.sensitive || high_risk)
            && let Some(stale) = self.state.stale_for()
        {
            let what = if route.config.sensitive {
                "this route"
            } else {
                "a high-risk scope"
            };
            let mut error = GatewayError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "state_stale",
                format!(
                    "{what} needs current revocation state and the control plane has been unreachable for {} s; try again later",
                    stale.as_secs()
                ),
            );
            error.retry_after = Some(5);
            return Err(error);
        }
        if route.config.sensitive && claims.approval_id.is_none() {
            return Err(GatewayError::forbidden(
                "approval_required",
                "this route needs an approval-bound token; request one with an approved `approval_id`",
            ));
        }
        Ok(())
    }

    async fn read_body(
        &self,
        route: &Route,
        method: &Method,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Result<Bytes, GatewayError> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let rule = route.body_rule(method.as_str());
        let sent =
            declared.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING);
        match rule {
            BodyRule::Empty if sent => {
                return Err(GatewayError::bad_request(
                    "unexpected_body",
                    format!("{method} on this route takes no request body"),
                ));
            }
            BodyRule::Schema { required: true, .. } if !sent => {
                return Err(GatewayError::bad_request(
                    "body_required",
                    "this route needs a JSON request body",
                ));
            }
            _ if !sent => return Ok(Bytes::new()),
            _ => {}
        }
        let expected = match rule {
            BodyRule::Schema { media_type, .. } => media_type.as_str(),
            _ => "application/json",
        };
        let mut types = headers.get_all(header::CONTENT_TYPE).iter();
        let json_type = match (types.next(), types.next()) {
            (Some(only), None) => only
                .to_str()
                .is_ok_and(|value| is_json_content_type(value, expected)),
            _ => false,
        };
        if !json_type {
            return Err(GatewayError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "request bodies of this route must be sent with `Content-Type: {expected}`"
                ),
            )
            .field("Content-Type"));
        }
        let too_large = || {
            GatewayError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body exceeds {} bytes", self.max_body),
            )
        };
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large());
        }
        let collected =
            tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, self.max_body).collect())
                .await
                .map_err(|_| {
                    GatewayError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "body_timeout",
                        format!(
                            "the request body did not arrive within {} s",
                            BODY_TIMEOUT.as_secs()
                        ),
                    )
                })?;
        let bytes = collected
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    GatewayError::bad_request("invalid_body", "the request body could not be read")
                }
            })?
            .to_bytes();
        let value = ward_auth::json::parse_unique(&bytes).map_err(|e| {
            GatewayError::bad_request("invalid_json", format!("the request body is not acceptable JSON (one document, no duplicate member names): {e}"))
        })?;
        if let BodyRule::Schema { validator, .. } = rule
            && let Err(error) = validator.validate(&value)
        {
            let pointer = error.instance_path().as_str().to_owned();
            let field = if pointer.is_empty() {
                "/".to_owned()
            } else {
                pointer
            };
            return Err(match error.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected }
                | jsonschema::error::ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                    let name = unexpected.first().cloned().unwrap_or_default();
                    GatewayError::bad_request(
                        "unknown_field",
                        format!(
                            "unknown field `{name}`; the contract of this route does not allow it"
                        ),
                    )
                    .field(format!("{}/{name}", field.trim_end_matches('/')))
                }
                jsonschema::error::ValidationErrorKind::FalseSchema => GatewayError::bad_request(
                    "forbidden_field",
                    format!("`{field}` may not be sent; the contract of this route marks it read-only or forbidden"),
                )
                .field(field),
                _ => GatewayError::bad_request(
                    "schema_violation",
                    format!("the request body does not match the route's contract: {error}"),
                )
                .field(field),
            });
        }
        Ok(bytes)
    }

    async fn forward(
        &self,
        parts: http::request::Parts,
        body: Bytes,
        route: &Route,
        claims: &Claims,
        correlation_id: &str,
        peer: SocketAddr,
    ) -> Result<Response<Body>, GatewayError> {
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let (base, client) = &self.upstreams[route.upstream];
        let uri: Uri = format!("{base}{path_and_query}").parse().map_err(|_| {
            GatewayError::bad_request("invalid_path", "the request target is not a valid URI")
        })?;
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        let incoming_trace = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(next_traceparent);
        let names: Vec<HeaderName> = headers.keys().cloned().collect();
        for name in names {
            if is_stripped(name.as_str()) {
                headers.remove(&name);
            }
        }
        let identity = [
            ("x-ward-agent-id", claims.sub.clone()),
            ("x-ward-user", claims.owner.clone()),
            ("x-ward-device-id", claims.device_id.clone()),
            ("x-ward-tenant", claims.tenant.clone()),
            ("x-ward-scopes", claims.scopes.join(" ")),
            ("x-ward-route", route.config.name.clone()),
            ("x-correlation-id", correlation_id.to_owned()),
            ("x-forwarded-for", peer.ip().to_string()),
            (
                "traceparent",
                incoming_trace.unwrap_or_else(new_traceparent),
            ),
        ];
        for (name, value) in identity {
            let value = HeaderValue::from_str(&value).map_err(|_| {
                GatewayError::unauthorized(
                    "malformed_token",
                    "the token's claims cannot be sent as headers",
                )
            })?;
            headers.insert(name, value);
        }
        for (name, value) in [
            ("x-ward-approval-id", &claims.approval_id),
            ("x-ward-action-hash", &claims.action_hash),
        ] {
            if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, value);
            }
        }
        let mut upstream = Request::new(Full::new(body));
        *upstream.method_mut() = parts.method;
        *upstream.uri_mut() = uri;
        *upstream.headers_mut() = headers;
        let response = tokio::time::timeout(UPSTREAM_TIMEOUT, client.request(upstream))
            .await
            .map_err(|_| {
                GatewayError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    "the protected service did not answer in time",
                )
            })?
            .map_err(|_| {
                GatewayError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unavailable",
                    "the protected service cannot be reached",
                )
            })?;
        if response.status().is_server_error() {
            // Never pass an upstream's internal error page to the client.
            return Err(GatewayError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!(
                    "the protected service failed ({})",
                    response.status().as_u16()
                ),
            ));
        }
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body.boxed()))
    }
}

/// Counts a request against a limit keyed by `key`; on success the
/// `RateLimit-*` headers to send.
fn rate_limit<K, Q>(
    limiter: &Limiter<K>,
    key: &Q,
    whose: &str,
) -> Result<Vec<(&'static str, String)>, GatewayError>
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    let decision = limiter.check(key, Instant::now());
    let headers = vec![
        ("ratelimit-limit", limiter.burst().to_string()),
        ("ratelimit-remaining", decision.remaining.to_string()),
        (
            "ratelimit-reset",
            decision.reset.as_secs_f64().ceil().to_string(),
        ),
    ];
    if decision.allowed {
        return Ok(headers);
    }
    let mut error = GatewayError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests from {whose}; retry after the time in `Retry-After`"),
    );
    error.retry_after = Some(decision.retry_after.as_secs_f64().ceil().max(1.0) as u64);
    error.headers = headers;
    Err(error)
}

fn take_quota(quota: &Quota, agent: &str, now: i64) -> Result<(), GatewayError> {
    quota.take(agent, now).map(|_| ()).map_err(|until_tomorrow| {
        let mut error = GatewayError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            format!(
                "this agent has used its {} requests for today on this route; the quota resets at 00:00 UTC",
                quota.limit()
            ),
        );
        error.retry_after = Some(until_tomorrow);
        error
    })
}

/// The `DPoP` access token and the single `DPoP` proof header.
fn credentials(headers: &HeaderMap) -> Result<(&str, &str), GatewayError> {
    let mut authorizations = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(authorization), None) = (authorizations.next(), authorizations.next()) else {
        return Err(GatewayError::unauthorized(
            "missing_token",
            "send exactly one `Authorization: DPoP <access token>` header",
        ));
    };
    let authorization = authorization.to_str().unwrap_or_default();
    let token = match authorization.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("dpop") && !token.trim().is_empty() =>
        {
            token.trim()
        }
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => {
            return Err(GatewayError::unauthorized(
                "dpop_required",
                "tokens are DPoP-bound: use `Authorization: DPoP <token>` with a `DPoP` proof, not `Bearer`",
            ));
        }
        _ => {
            return Err(GatewayError::unauthorized(
                "missing_token",
                "send `Authorization: DPoP <access token>`",
            ));
        }
    };
    let mut proofs = headers.get_all("dpop").iter();
    let (Some(proof), None) = (proofs.next(), proofs.next()) else {
        return Err(GatewayError::unauthorized(
            "invalid_dpop_proof",
            "send exactly one `DPoP` proof header, made for this request",
        ));
    };
    let proof = proof.to_str().map_err(|_| {
        GatewayError::unauthorized("invalid_dpop_proof", "the `DPoP` header is not ASCII")
    })?;
    Ok((token, proof))
}

/// Splits a request path into segments, refusing anything ambiguous:
/// `.` and `..` segments, encoded `/`, `.`, `\`, `%` and NUL, backslashes
/// and empty segments. The path is never rewritten.
pub fn clean_path(path: &str) -> Result<Vec<&str>, GatewayError> {
    let refuse = |why: &str| {
        GatewayError::bad_request(
            "invalid_path",
            format!("the request path is ambiguous ({why}); send the canonical path"),
        )
    };
    let Some(rest) = path.strip_prefix('/') else {
        return Err(refuse("it does not start with `/`"));
    };
    if path.contains('\\') {
        return Err(refuse("it contains `\\`"));
    }
    let lower = path.to_ascii_lowercase();
    for encoded in ["%2f", "%2e", "%5c", "%25", "%00"] {
        if lower.contains(encoded) {
            return Err(refuse("it contains an encoded `/`, `.`, `\\`, `%` or NUL"));
        }
    }
    let mut decoded = Vec::with_capacity(path.len());
    let mut bytes = path.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'%' {
            decoded.push(byte);
            continue;
        }
        let escaped = match (bytes.next(), bytes.next()) {
            (Some(high), Some(low)) => hex_digit(high).zip(hex_digit(low)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        let Some(escaped) = escaped else {
            return Err(refuse("it has a `%` not followed by two hex digits"));
        };
        // RFC 3986 §2.3: `%67` is `g`, so it could spell a scope two ways.
        if escaped.is_ascii_alphanumeric() || matches!(escaped, b'-' | b'_' | b'~') {
            return Err(refuse("it percent-encodes an unreserved character"));
        }
        if escaped.is_ascii_control() {
            return Err(refuse("it encodes a control character"));
        }
        decoded.push(escaped);
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(refuse("its escapes do not decode to UTF-8"));
    }
    let segments: Vec<&str> = rest.split('/').collect();
    for segment in &segments {
        match *segment {
            "" => return Err(refuse("it has an empty segment")),
            "." | ".." => return Err(refuse("it has a `.` or `..` segment")),
            _ => {}
        }
    }
    Ok(segments)
}

/// Matches segments against a template; `Err` when a parameter's value is
/// not allowed in a scope.
fn match_template(
    template: &[Segment],
    segments: &[&str],
) -> Result<Option<HashMap<String, String>>, GatewayError> {
    if template.len() != segments.len() {
        return Ok(None);
    }
    let mut params = HashMap::new();
    for (part, segment) in template.iter().zip(segments) {
        match part {
            Segment::Literal(text) if text == segment => {}
            Segment::Literal(_) => return Ok(None),
            Segment::Param(name) => {
                params.insert(name.clone(), (*segment).to_owned());
            }
        }
    }
    for value in params.values() {
        let ok = value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'~' | b'@' | b'+' | b',' | b'=' | b'%' | b':'
                )
        });
        if !ok {
            return Err(GatewayError::bad_request(
                "invalid_path",
                format!(
                    "path segment `{}` has characters a route parameter may not hold",
                    shown(value)
                ),
            ));
        }
    }
    Ok(Some(params))
}

/// Reads a query string into the object its contract describes and
/// checks it: only declared names, a name more than once only for arrays,
/// values typed by their schemas.
fn check_query(rule: &QueryRule, query: &str) -> Result<(), GatewayError> {
    let mut object = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (form_decode(name)?, form_decode(value)?);
        let field = format!("?{name}");
        let Some(param) = rule.params.iter().find(|p| p.name == name) else {
            return Err(GatewayError::bad_request(
                "unknown_query_parameter",
                format!(
                    "query parameter `{}` is not in the route's contract",
                    shown(&name)
                ),
            )
            .field(field));
        };
        match (&param.kind, object.get_mut(&name)) {
            (QueryKind::Array(item), Some(Value::Array(items))) => items.push(item.read(&value)),
            (QueryKind::Array(item), None) => {
                object.insert(name, Value::Array(vec![item.read(&value)]));
            }
            (kind, None) => {
                object.insert(name, kind.read(&value));
            }
            (_, Some(_)) => {
                return Err(GatewayError::bad_request(
                    "duplicate_query_parameter",
                    format!("query parameter `{}` is given more than once", shown(&name)),
                )
                .field(field));
            }
        }
    }
    if let Err(error) = rule.validator.validate(&Value::Object(object)) {
        let path = error.instance_path().as_str().to_owned();
        let name = match error.kind() {
            jsonschema::error::ValidationErrorKind::Required { property } => {
                property.as_str().unwrap_or_default().to_owned()
            }
            _ => path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        return Err(GatewayError::bad_request(
            "schema_violation",
            format!("the query does not match the route's contract: {error}"),
        )
        .field(format!("?{name}")));
    }
    Ok(())
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
fn form_decode(text: &str) -> Result<String, GatewayError> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.bytes();
    while let Some(byte) = rest.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let decoded = match (rest.next(), rest.next()) {
                    (Some(high), Some(low)) => hex_digit(high).zip(hex_digit(low)),
                    _ => None,
                };
                let Some((high, low)) = decoded else {
                    return Err(GatewayError::bad_request(
                        "invalid_query",
                        "the query has a `%` not followed by two hex digits",
                    ));
                };
                bytes.push(high * 16 + low);
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).map_err(|_| {
        GatewayError::bad_request("invalid_query", "the query does not decode to UTF-8")
    })
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn required_scope(route: &Route, params: &HashMap<String, String>) -> Result<Scope, GatewayError> {
    // `,` separates scopes in lists, so a scope spells it `%2C`.
    let text = substitute(&route.config.scope, |name| {
        params.get(name).map(|value| value.replace(',', "%2C"))
    })
    .map_err(|_| {
        GatewayError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "gateway_misconfigured",
            "the route's scope template is broken",
        )
    })?;
    text.parse::<Scope>().map_err(|e| {
        GatewayError::bad_request(
            "invalid_path",
            format!("the path does not make a valid scope: {}", e.reason),
        )
    })
}

fn is_safe(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD
}

/// Whether a `Content-Type` is `expected` (a JSON media type), with no
/// parameter but `charset=utf-8`.
fn is_json_content_type(value: &str, expected: &str) -> bool {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(expected) {
        return false;
    }
    parts.all(|p| {
        let p = p.trim();
        p.is_empty() || p.eq_ignore_ascii_case("charset=utf-8")
    })
}

/// Whether an incoming request header must not reach the upstream: the
/// credentials, what the gateway itself sets (identity, forwarding, trace),
/// headers that make frameworks change the method, path or client address
/// behind the route's back, and any name with `_` (CGI-style servers read
/// `X_Ward_User` as `X-Ward-User`; nginx drops them too).
fn is_stripped(name: &str) -> bool {
    name.contains('_')
        || name.starts_with("x-ward-")
        || name.starts_with("x-forwarded-")
        || matches!(
            name,
            "authorization"
                | "dpop"
                | "forwarded"
                | "x-real-ip"
                | "x-correlation-id"
                | "traceparent"
                | "tracestate"
                | "host"
                | "content-length"
                | "x-http-method-override"
                | "x-http-method"
                | "x-method-override"
                | "x-original-method"
                | "x-original-url"
                | "x-rewrite-url"
                | "x-original-uri"
                | "true-client-ip"
                | "x-client-ip"
                | "x-cluster-client-ip"
                | "cf-connecting-ip"
                | "fastly-client-ip"
        )
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in named {
        // The body's type was checked against the contract: a client
        // cannot make it disappear by calling it hop-by-hop.
        if name == "content-type" {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// A valid incoming `traceparent` continued with a new parent id.
fn next_traceparent(value: &str) -> Option<String> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let [version, trace, parent, flags] = parts.as_slice() else {
        return None;
    };
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let valid = *version == "00"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then(|| format!("00-{trace}-{}-{flags}", random_hex(8)))
}

fn new_traceparent() -> String {
    format!("00-{}-{}-01", random_hex(16), random_hex(8))
}

/// `bytes` random bytes in lower-case hex, from a per-thread SplitMix64
/// generator seeded by the OS once per thread: correlation and trace ids
/// are not secrets and only need to be unlikely to collide, and a
/// `getrandom` system call per id was measurable under load.
fn random_hex(bytes: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes * 2);
    let mut left = bytes;
    while left > 0 {
        let word = next_random().to_le_bytes();
        for b in word.iter().take(left) {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        left = left.saturating_sub(word.len());
    }
    out
}

thread_local! {
    static RANDOM_STATE: std::cell::Cell<u64> = std::cell::Cell::new(random_seed());
}

fn next_random() -> u64 {
    RANDOM_STATE.with(|state| {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn random_seed() -> u64 {
    let mut seed = [0u8; 8];
    if getrandom::fill(&mut seed).is_ok() {
        return u64::from_le_bytes(seed);
    }
    // No OS randomness: the time and the thread still make ids unlikely
    // to collide.
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    std::thread::current().id().hash(&mut hasher);
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(1)
        .hash(&mut hasher);
    hasher.finish()
}

fn new_correlation_id() -> String {
    format!("corr_{}", random_hex(12))
}

fn shown(text: &str) -> String {
    text.chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect()
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn now_rfc3339() -> String {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    ward_model::timestamp::rfc3339(now_ms)
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    box_full(response)
}

fn box_full(response: Response<Full<Bytes>>) -> Response<Body> {
    response.map(|body| body.map_err(|never| match never {}).boxed())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
    use super::*;

    #[test]
    fn ambiguous_paths_are_refused_not_resolved() {
        for path in [
            "/a/../b",
            "/a/./b",
            "/a//b",
            "/a/%2e%2e/b",
            "/a%2Fb",
            "/a/%5c",
            "/a\\b",
            "/a/b/",
            "/exec/%67it",
            "/a/%7E",
            "/a/%C0%AE",
            "/a/%ff",
            "/a/%0a",
            "/a/%zz",
            "/a/%4",
            "/a/%+1",
        ] {
            assert_eq!(clean_path(path).unwrap_err().code, "invalid_path", "{path}");
        }
        assert_eq!(clean_path("/a/b.c/d").unwrap(), vec!["a", "b.c", "d"]);
        assert_eq!(
            clean_path("/a/%C3%A9t%C3%A9").unwrap(),
            vec!["a", "%C3%A9t%C3%A9"]
        );
        assert_eq!(clean_path("/a/x%20y").unwrap(), vec!["a", "x%20y"]);
    }

    #[test]
    fn only_json_content_types_pass() {
        let json = "application/json";
        assert!(is_json_content_type("application/json", json));
        assert!(is_json_content_type(
            "Application/JSON; charset=utf-8",
            json
        ));
        assert!(!is_json_content_type(
            "application/json; charset=latin1",
            json
        ));
        assert!(!is_json_content_type("text/plain", json));
        assert!(!is_json_content_type("application/jsonx", json));
        let patch = "application/merge-patch+json";
        assert!(is_json_content_type("application/merge-patch+json", patch));
        assert!(!is_json_content_type("application/json", patch));
    }

    #[test]
    fn a_valid_traceparent_is_continued_and_a_bad_one_replaced() {
        let next =
            next_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert!(next.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!next.contains("00f067aa0ba902b7"));
        assert_eq!(next_traceparent("00-0000-00f067aa0ba902b7-01"), None);
        assert_eq!(new_traceparent().len(), 55);
    }
}
