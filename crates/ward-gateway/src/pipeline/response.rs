//! Answers the gateway makes itself: refusals in the control plane's
//! error shape, `/healthz`, `/readyz` and `/metrics`, and how user input
//! is shown inside a message. Knows nothing about routes, tokens or the
//! upstream.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use serde_json::{Value, json};

use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::state::ControlState;

/// The response body type of the gateway.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// `/healthz`, `/readyz` and `/metrics`; `None` for any other path.
pub fn operations(path: &str, state: &ControlState, metrics: &Metrics) -> Option<Response<Body>> {
    match path {
        "/healthz" => Some(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        "/readyz" => Some(readiness(state)),
        "/metrics" => Some(metrics_text(metrics, state)),
        _ => None,
    }
}

/// The answer of the `admin_listen` address to anything else.
pub fn not_an_operation() -> Response<Body> {
    refusal(
        GatewayError::new(
            StatusCode::NOT_FOUND,
            "no_route",
            "this address serves /healthz, /readyz and /metrics only",
        ),
        "",
    )
}

/// A refusal in the one error shape, naming the request's correlation id.
pub fn refusal(error: GatewayError, correlation_id: &str) -> Response<Body> {
    box_full(error.into_response(correlation_id))
}

fn metrics_text(metrics: &Metrics, state: &ControlState) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(metrics.render(state))));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    box_full(response)
}

fn readiness(state: &ControlState) -> Response<Body> {
    let (since, connected) = state.contact();
    let seq = state.seq();
    match state.stale_for() {
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

/// User input as shown in a message: at most 64 characters, escaped.
pub fn shown(text: &str) -> String {
    text.chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect()
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
