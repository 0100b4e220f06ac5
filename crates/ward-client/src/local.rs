//! A client of the desktop runtime's local API (`ward agent run`) over its
//! Unix socket: what the adapters, `ward agent consent` and the tests use.
//! One HTTP/1.1 connection per client, opened on first use.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;
use ward_api::{
    AuthorizeRequest, AuthorizeResponse, LocalEvents, LocalEventsAccepted, LocalStatus,
};

use crate::{ClientError, api_error};

/// How long a call to the daemon may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one daemon's socket.
pub struct LocalClient {
    socket: PathBuf,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl LocalClient {
    /// A client of the daemon serving `socket`.
    pub fn new(socket: &Path) -> LocalClient {
        LocalClient {
            socket: socket.to_owned(),
            sender: None,
        }
    }

    /// `POST /v1/authorize`.
    pub async fn authorize(
        &mut self,
        body: &AuthorizeRequest,
    ) -> Result<AuthorizeResponse, ClientError> {
        self.call(Method::POST, "/v1/authorize", Some(body)).await
    }

    /// `GET /v1/status`.
    pub async fn status(&mut self) -> Result<LocalStatus, ClientError> {
        self.call(Method::GET, "/v1/status", None::<&()>).await
    }

    /// `POST /v1/events`.
    pub async fn events(&mut self, body: &LocalEvents) -> Result<LocalEventsAccepted, ClientError> {
        self.call(Method::POST, "/v1/events", Some(body)).await
    }

    /// `POST /v1/refresh`: contact the control plane now.
    pub async fn refresh(&mut self) -> Result<serde_json::Value, ClientError> {
        self.call(Method::POST, "/v1/refresh", None::<&()>).await
    }

    /// One call; the raw status and body, for callers that check errors
    /// themselves.
    pub async fn raw(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|e| ClientError::Local(format!("method `{method}`: {e}")))?;
        tokio::time::timeout(CALL_TIMEOUT, self.send(method, path, body))
            .await
            .map_err(|_| self.unreachable("no answer within 10 s"))?
    }

    async fn call<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Local(format!("cannot encode the request: {e}")))?;
        let (status, answer) = tokio::time::timeout(CALL_TIMEOUT, self.send(method, path, bytes))
            .await
            .map_err(|_| self.unreachable("no answer within 10 s"))??;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&answer).map_err(|e| ClientError::Decode(e.to_string()));
        }
        Err(api_error(
            reqwest::StatusCode::from_u16(status).unwrap_or(reqwest::StatusCode::BAD_GATEWAY),
            &answer,
        ))
    }

    fn unreachable(&self, reason: &str) -> ClientError {
        ClientError::Transport {
            url: format!("unix:{}", self.socket.display()),
            reason: reason.to_owned(),
        }
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let ready = match self.sender.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            self.sender = Some(self.connect().await?);
        }
        let not_connected = self.unreachable("not connected");
        let sender = self.sender.as_mut().ok_or(not_connected)?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "ward-agent");
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Local(format!("cannot build the request: {e}")))?;
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(error) => {
                self.sender = None;
                return Err(self.unreachable(&error.to_string()));
            }
        };
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.unreachable(&e.to_string()))?
            .to_bytes();
        Ok((status, bytes.to_vec()))
    }

    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| {
            self.unreachable(&format!(
                "{e}; is `ward agent run` running with this state directory?"
            ))
        })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(&e.to_string()))?;
        tokio::spawn(connection);
        Ok(sender)
    }
}
