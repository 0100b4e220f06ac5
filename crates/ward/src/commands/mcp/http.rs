//! `ward mcp proxy --listen ADDR --upstream URL`: an MCP server reached
//! over Streamable HTTP, behind Ward. The agent is given the proxy's URL
//! instead of the server's. Each POST is one JSON-RPC message, judged by
//! the same [`Proxy`] as over stdio; the server's answer (one JSON object,
//! or a stream of Server-Sent Events) is judged message by message on its
//! way back. Both protocol eras pass: 2025-11-25 (`initialize`,
//! `MCP-Session-Id`, the GET stream, DELETE) and the stateless 2026-07-28
//! revision, whose mirrored headers must agree with the body.
//!
//! Before anything is read: a request whose `Origin` is not allowed, or
//! whose `Host` is not the proxy's own on a loopback listener (DNS
//! rebinding), is refused with 403.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use ward_agent::mcp::http::{HEADER_MISMATCH, Mirrored, check_mirrored};
use ward_agent::mcp::{MAX_LINE, Proxy, Route};
use ward_api::sse::SseReader;
use ward_client::LocalClient;
use ward_gateway::config::UpstreamConfig;
use ward_gateway::pipeline::forward::strip_hop_by_hop;
use ward_gateway::tls::UpstreamClient;

use crate::error::{CliError, CliResult};

/// How long the server may take to start answering a message (a legacy
/// server answers a call with JSON only once the tool has run).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(300);

/// The largest answer that is not a stream Ward reads to pass on.
const MAX_PASSED: usize = 1 << 20;

/// A JSON-RPC `Invalid Request`.
const INVALID_REQUEST: i64 = -32600;

type Body = BoxBody<Bytes, Infallible>;

/// What the proxy needs to serve.
pub struct HttpProxy {
    /// The settings every request's proxy starts from.
    pub proxy: Proxy,
    /// The daemon's socket.
    pub socket: PathBuf,
    /// The server's MCP endpoint.
    pub upstream: Uri,
    /// The client towards it.
    pub client: UpstreamClient,
    /// Origins a browser may send from (exact, lower case); none by default.
    pub origins: Vec<String>,
    /// On a loopback listener, the only `Host` names accepted.
    pub loopback: bool,
}

/// Listens on `listen` and serves until Ctrl-C or SIGTERM.
pub async fn run(
    listen: SocketAddr,
    upstream: &str,
    ca_file: Option<String>,
    origins: Vec<String>,
    proxy: Proxy,
    socket: PathBuf,
) -> CliResult {
    let uri: Uri = upstream
        .parse()
        .map_err(|e| CliError::Failed(format!("--upstream `{upstream}` is not a URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(CliError::Failed(format!(
            "--upstream `{upstream}` is not an http:// or https:// URL"
        )));
    }
    ward_client::install_tls_provider();
    let client = ward_gateway::tls::upstream_client(&UpstreamConfig {
        url: upstream.to_owned(),
        http2: false,
        ca_file,
        client_cert_file: None,
        client_key_file: None,
    })
    .map_err(CliError::Failed)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::Failed(format!("cannot listen on `{listen}`: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::Failed(format!("cannot listen on `{listen}`: {e}")))?;
    let served = Arc::new(HttpProxy {
        proxy,
        socket,
        upstream: uri,
        client,
        origins: origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect(),
        loopback: local.ip().is_loopback(),
    });
    crate::output::line(format!(
        "ward mcp proxy listening on http://{local}{}",
        served.upstream.path()
    ));
    ward_serve::serve(
        listener,
        None,
        ward_serve::Limits::DEFAULT,
        |_| {
            let served = Arc::clone(&served);
            service_fn(move |request| {
                let served = Arc::clone(&served);
                async move { Ok::<_, Infallible>(served.handle(request).await) }
            })
        },
        crate::serving::signal(),
    )
    .await;
    Ok(())
}

impl HttpProxy {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        if let Err(why) = self.trusted_sender(request.headers()) {
            return refusal(StatusCode::FORBIDDEN, None, INVALID_REQUEST, &why);
        }
        if request.uri().path() != self.upstream.path() {
            return refusal(
                StatusCode::NOT_FOUND,
                None,
                INVALID_REQUEST,
                &format!("this proxy serves `{}` only", self.upstream.path()),
            );
        }
        match *request.method() {
            Method::POST => self.post(request).await,
            Method::GET | Method::DELETE => {
                let (parts, _) = request.into_parts();
                self.pass(
                    parts.method,
                    parts.headers,
                    Bytes::new(),
                    self.proxy.fresh(),
                )
                .await
            }
            _ => {
                let mut refused = refusal(
                    StatusCode::METHOD_NOT_ALLOWED,
                    None,
                    INVALID_REQUEST,
                    "an MCP endpoint takes POST, GET and DELETE",
                );
                refused
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST, GET, DELETE"));
                refused
            }
        }
    }

    /// Whether the request may come from where it says: an `Origin` that
    /// is allowed (or none), and on loopback a `Host` that is loopback.
    fn trusted_sender(&self, headers: &HeaderMap) -> Result<(), String> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            let wanted = origin.trim_end_matches('/').to_ascii_lowercase();
            if !self.origins.contains(&wanted) {
                return Err(format!(
                    "Origin `{origin}` is not allowed (ward mcp proxy --allow-origin)"
                ));
            }
        }
        if self.loopback
            && let Some(host) = headers.get(header::HOST)
        {
            let host = host.to_str().unwrap_or_default();
            let name = match host.strip_prefix('[') {
                Some(rest) => rest.split(']').next().unwrap_or_default(),
                None => host.split(':').next().unwrap_or_default(),
            };
            if !matches!(
                name.to_ascii_lowercase().as_str(),
                "localhost" | "127.0.0.1" | "::1"
            ) {
                return Err(format!(
                    "Host `{host}` is not this loopback proxy's (DNS rebinding is refused)"
                ));
            }
        }
        Ok(())
    }

    async fn post(&self, request: Request<Incoming>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let body = match ward_serve::read_body(body, MAX_LINE).await {
            Ok(body) => body,
            Err(error) => {
                return refusal(
                    error.status(),
                    None,
                    INVALID_REQUEST,
                    &error.message(MAX_LINE),
                );
            }
        };
        let message = match serde_json::from_slice::<Value>(&body) {
            Ok(message @ Value::Object(_)) => message,
            Ok(Value::Array(_)) => {
                return refusal(
                    StatusCode::BAD_REQUEST,
                    None,
                    INVALID_REQUEST,
                    "a batch: each JSON-RPC message is its own POST",
                );
            }
            _ => {
                return refusal(
                    StatusCode::BAD_REQUEST,
                    None,
                    -32700,
                    "the body is not a JSON-RPC message",
                );
            }
        };
        let id = message.get("id").cloned();
        let mirrored = match mirrored(&parts.headers) {
            Ok(mirrored) => mirrored,
            Err(why) => return refusal(StatusCode::BAD_REQUEST, id, HEADER_MISMATCH, &why),
        };
        if let Err(why) = check_mirrored(&mirrored, &message) {
            return refusal(StatusCode::BAD_REQUEST, id, HEADER_MISMATCH, &why);
        }
        let text = String::from_utf8_lossy(&body);
        let proxy = self.proxy.fresh();
        let mut daemon = LocalClient::new(&self.socket);
        match proxy.from_client(&text, &mut daemon).await {
            Route::Forward(line) => {
                self.pass(parts.method, parts.headers, Bytes::from(line), proxy)
                    .await
            }
            Route::Reply(line) => json_response(StatusCode::OK, HeaderMap::new(), line),
            Route::Drop => refusal(
                StatusCode::BAD_REQUEST,
                None,
                INVALID_REQUEST,
                "Ward cannot judge this message; it was not passed on",
            ),
        }
    }

    /// Sends the request on to the server and judges its answer.
    async fn pass(
        &self,
        method: Method,
        mut headers: HeaderMap,
        body: Bytes,
        proxy: Proxy,
    ) -> Response<Body> {
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        // Ward reads every answer before the client does: no compression.
        headers.remove(header::ACCEPT_ENCODING);
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = self.upstream.clone();
        *request.headers_mut() = headers;
        let response =
            match tokio::time::timeout(UPSTREAM_TIMEOUT, self.client.request(request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => {
                    tracing::warn!(error = %error, "mcp proxy: the server cannot be reached");
                    return refusal(
                        StatusCode::BAD_GATEWAY,
                        None,
                        INVALID_REQUEST,
                        "the MCP server cannot be reached",
                    );
                }
                Err(_) => {
                    return refusal(
                        StatusCode::GATEWAY_TIMEOUT,
                        None,
                        INVALID_REQUEST,
                        "the MCP server did not answer in time",
                    );
                }
            };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::CONTENT_LENGTH);
        // A client following a redirect would reach the server without Ward.
        if parts.status.is_redirection() {
            return refusal(
                StatusCode::BAD_GATEWAY,
                None,
                INVALID_REQUEST,
                &format!(
                    "the MCP server redirected ({}); Ward does not follow, and its client must not: point --upstream at the final URL",
                    parts.status.as_u16()
                ),
            );
        }
        if parts
            .headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .count()
            > 1
            || parts
                .headers
                .get(header::CONTENT_ENCODING)
                .is_some_and(|e| e.as_bytes() != b"identity")
        {
            return refusal(
                StatusCode::BAD_GATEWAY,
                None,
                INVALID_REQUEST,
                "the MCP server answered with an encoded body, which Ward cannot judge; withheld",
            );
        }
        let kind = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if kind == "text/event-stream" {
            let (sender, receiver) = tokio::sync::mpsc::channel(16);
            tokio::spawn(pump(body, proxy, self.socket.clone(), sender));
            return Response::from_parts(parts, Events(receiver).boxed());
        }
        let limit = if kind == "application/json" {
            MAX_LINE
        } else {
            MAX_PASSED
        };
        let body = match ward_serve::read_body(body, limit).await {
            Ok(body) => body,
            Err(_) => {
                return refusal(
                    StatusCode::BAD_GATEWAY,
                    None,
                    INVALID_REQUEST,
                    "the MCP server's answer could not be read whole",
                );
            }
        };
        if kind == "application/json" {
            let text = String::from_utf8_lossy(&body);
            let mut daemon = LocalClient::new(&self.socket);
            return match proxy.from_server(&text, &mut daemon).await {
                Route::Forward(line) | Route::Reply(line) => {
                    json_response(parts.status, parts.headers, line)
                }
                Route::Drop => refusal(
                    StatusCode::BAD_GATEWAY,
                    None,
                    INVALID_REQUEST,
                    "the MCP server answered with JSON that is not a JSON-RPC message; withheld",
                ),
            };
        }
        if body.is_empty() || !parts.status.is_success() {
            return Response::from_parts(parts, Full::new(body).boxed());
        }
        refusal(
            StatusCode::BAD_GATEWAY,
            None,
            INVALID_REQUEST,
            &format!("the MCP server answered with `{kind}`, which Ward cannot judge; withheld"),
        )
    }
}

/// The mirrored headers of a request; a value that is not visible ASCII,
/// or a header sent twice (joined, it would mean something else to the
/// server), is refused.
fn mirrored(headers: &HeaderMap) -> Result<Mirrored<'_>, String> {
    let get = |name: &str| {
        if headers.get_all(name).iter().count() > 1 {
            return Err(format!("Header mismatch: {name} is sent more than once"));
        }
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| format!("Header mismatch: {name} is not visible ASCII"))
            })
            .transpose()
    };
    Ok(Mirrored {
        protocol_version: get("mcp-protocol-version")?,
        method: get("mcp-method")?,
        name: get("mcp-name")?,
    })
}

/// Reads the server's event stream, judges each message and sends what
/// passes on, until either side is done. An event Ward cannot judge is
/// withheld; one cut short at the end is never sent.
async fn pump(
    mut body: Incoming,
    proxy: Proxy,
    socket: PathBuf,
    sender: tokio::sync::mpsc::Sender<Bytes>,
) {
    let mut reader = SseReader::new(MAX_LINE);
    let mut daemon = LocalClient::new(&socket);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            tracing::warn!("mcp proxy: the server's event stream broke");
            return;
        };
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        let events = match reader.push(&chunk) {
            Ok(events) => events,
            Err(error) => {
                tracing::error!(error = %error, "mcp proxy: the server sent an event Ward cannot judge; stream stopped");
                return;
            }
        };
        for event in events {
            let text = match event.data.as_deref() {
                None | Some("") => event.to_text(event.data.as_deref()),
                Some(data) => match proxy.from_server(data, &mut daemon).await {
                    Route::Forward(data) | Route::Reply(data) => event.to_text(Some(&data)),
                    Route::Drop => continue,
                },
            };
            if sender.send(Bytes::from(text)).await.is_err() {
                return;
            }
        }
    }
    if reader.pending() {
        tracing::warn!("mcp proxy: the server's event stream ended inside an event; withheld");
    }
}

/// A response body fed by [`pump`].
struct Events(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

fn json_response(status: StatusCode, mut headers: HeaderMap, line: String) -> Response<Body> {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut response = Response::new(Full::new(Bytes::from(line)).boxed());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A JSON-RPC error answered with `status` (`id` when the request's is
/// known).
fn refusal(status: StatusCode, id: Option<Value>, code: i64, message: &str) -> Response<Body> {
    let mut body = json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}});
    if let Some(id) = id {
        body["id"] = id;
    }
    json_response(status, HeaderMap::new(), body.to_string())
}
