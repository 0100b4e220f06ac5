//! What one request leaves behind: its correlation id on the answer, its
//! access log line and its metrics, from what the pipeline learnt before
//! it answered or refused. Knows nothing about how the checks are made.

use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use ward_model::scope::Scope;

use super::credentials::Claims;
use super::ids;
use super::response::{Body, refusal};
use crate::accesslog::AccessLog;
use crate::error::GatewayError;
use crate::metrics::Metrics;

/// What is known about one request, as far as the pipeline got.
pub struct Record<'a> {
    started: Instant,
    /// The request's correlation id, taken or made.
    pub correlation_id: String,
    method: Method,
    peer: SocketAddr,
    /// The route's name, once the route is known.
    pub route: Option<&'a str>,
    /// The scope the route needs, once made.
    pub scope: Option<Scope>,
    /// The token's claims, once verified.
    pub claims: Option<Arc<Claims>>,
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

impl<'a> Record<'a> {
    /// Starts the record of `request` from `peer`.
    pub fn start<B>(request: &Request<B>, peer: SocketAddr) -> Record<'a> {
        let started = Instant::now();
        Record {
            started,
            correlation_id: ids::correlation_id(request.headers()),
            method: request.method().clone(),
            peer,
            route: None,
            scope: None,
            claims: None,
        }
    }

    /// Turns the pipeline's outcome into the answer with the correlation
    /// id, writes the access log line and counts the request.
    pub fn finish(
        self,
        outcome: Result<Response<Body>, GatewayError>,
        access_log: &AccessLog,
        metrics: &Metrics,
    ) -> Response<Body> {
        let correlation_id = self.correlation_id;
        let (mut response, result, code) = match outcome {
            Ok(response) => (response, "allowed", None),
            Err(error) => {
                let code = error.code;
                let result = if error.status.is_server_error() {
                    "error"
                } else {
                    "denied"
                };
                (refusal(error, &correlation_id), result, Some(code))
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
        let elapsed = self.started.elapsed().as_secs_f64();
        let claims = self.claims.as_deref();
        access_log.append(&Entry {
            action: self
                .scope
                .as_ref()
                .map(|s| format!("{}:{}", s.resource(), s.action())),
            agent_id: claims.map(|c| c.sub.as_str()),
            bytes,
            client_ip: self.peer.ip(),
            code,
            correlation_id: &correlation_id,
            device_id: claims.map(|c| c.device_id.as_str()),
            duration_ms: elapsed * 1000.0,
            method: self.method.as_str(),
            result,
            route: self.route,
            status: response.status().as_u16(),
            target: self.scope.as_ref().map(Scope::pattern),
            tenant: claims.map(|c| c.tenant.as_str()),
            ts: now_rfc3339(),
            user_id: claims.map(|c| c.owner.as_str()),
        });
        metrics.record(
            self.route.unwrap_or("-"),
            result,
            code.unwrap_or(""),
            response.status().as_u16(),
            elapsed,
        );
        response
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
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
