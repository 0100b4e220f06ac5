//! The forward to the route's upstream: header hygiene (credentials,
//! forwarding, trace, method-override, URL-rewrite and client-address
//! headers and names with `_` dropped; hop-by-hop headers removed), the
//! identity headers, the call with its deadline, and the streamed answer
//! (an upstream's 5xx page never reaches the client). Knows nothing about
//! how the request was checked.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::time::Duration;

use super::credentials::Claims;
use super::ids::{new_traceparent, next_traceparent};
use super::response::Body;
use crate::config::{self, Route};
use crate::error::GatewayError;
use crate::tls::UpstreamClient;

/// How long the upstream may take to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// A protected service: its base URL and the pooled client towards it.
pub struct Upstream {
    base: String,
    client: UpstreamClient,
}

impl Upstream {
    /// The client towards a configured upstream.
    pub fn new(upstream: &config::Upstream) -> Result<Upstream, String> {
        let client = crate::tls::upstream_client(&upstream.config)
            .map_err(|e| format!("upstream `{}`: {e}", upstream.name))?;
        Ok(Upstream {
            base: upstream.config.url.trim_end_matches('/').to_owned(),
            client,
        })
    }
}

/// Sends the checked request to `upstream` with the verified identity and
/// streams its answer back.
pub async fn forward(
    upstream: &Upstream,
    parts: http::request::Parts,
    body: Bytes,
    route: &Route,
    claims: &Claims,
    correlation_id: &str,
    peer: SocketAddr,
) -> Result<Response<Body>, GatewayError> {
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri = format!("{}{path_and_query}", upstream.base)
        .parse()
        .map_err(|_| {
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
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = parts.method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let response = tokio::time::timeout(UPSTREAM_TIMEOUT, upstream.client.request(request))
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

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1): the fixed ones and
/// those `Connection` names, except `Content-Type`. Also what `ward mcp
/// proxy` does to what it passes either way.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
