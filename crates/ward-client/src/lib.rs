//! Typed HTTP client for Ward's control plane. Every call returns the wire
//! type on success or a [`ClientError`] carrying the server's error body.

mod local;

pub use local::LocalClient;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::{SystemTime, UNIX_EPOCH};
use ward_api::*;
use ward_auth::Keypair;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{message} ({code}, HTTP {status}{})", field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// The server's message.
        message: String,
        /// Offending field, if any.
        field: Option<String>,
        /// Correlation id to quote.
        correlation_id: String,
    },
    /// The server could not be reached.
    #[error("cannot reach the server at `{url}`: {reason}; check --server or WARD_SERVER")]
    Transport {
        /// The URL called.
        url: String,
        /// Why.
        reason: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// A local step (key, clock, proof) failed.
    #[error("{0}")]
    Local(String),
}

/// A client of one server, optionally with an admin bearer token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    timeout: Option<std::time::Duration>,
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>) -> Result<Client, ClientError> {
        install_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Local(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
            timeout: None,
        })
    }

    /// The same client, giving up on any call after `timeout` (connecting
    /// included); a daemon must notice a control plane that stopped answering.
    /// ([`Client::agent_watch`] excepted: a stream stays open).
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Client {
        self.timeout = Some(timeout);
        self
    }

    /// `GET /v1/agents/{id}/watch` with a fresh DPoP proof: the change feed
    /// for this agent as server-sent events from after `last_event_id`.
    /// Returns the open response to read chunks from.
    pub async fn agent_watch(
        &self,
        device: &Keypair,
        agent_id: &str,
        last_event_id: i64,
    ) -> Result<reqwest::Response, ClientError> {
        let path = format!("/v1/agents/{}/watch", segment(agent_id));
        let proof = self.proof(device, "GET", &path)?;
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .header("DPoP", proof)
            .header("Last-Event-ID", last_event_id.to_string())
            .header("Accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| ClientError::Transport {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response.bytes().await.unwrap_or_default();
        Err(api_error(status, &bytes))
    }

    /// `GET /v1/events/stream` with query pairs: new events as server-sent
    /// events, after `last_event_id` if given (else from now). Returns the
    /// open response to read chunks from.
    pub async fn events_stream(
        &self,
        query: &[(&str, &str)],
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}/v1/events/stream{}", self.base, query_string(query));
        let mut request = self.http.get(&url).header("Accept", "text/event-stream");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response.bytes().await.unwrap_or_default();
        Err(api_error(status, &bytes))
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        dpop: Option<String>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.request(method, &url);
        if let Some(proof) = dpop {
            request = request.header("DPoP", proof);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()));
        }
        Err(api_error(status, &bytes))
    }

    /// A request to `url` with the client's timeout and bearer token.
    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, url);
        if let Some(timeout) = self.timeout {
            request = request.timeout(timeout);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// A call whose success has no body (202, 204).
    async fn call_empty(&self, method: Method, path: &str) -> Result<(), ClientError> {
        let url = format!("{}{path}", self.base);
        let response =
            self.request(method, &url)
                .send()
                .await
                .map_err(|e| ClientError::Transport {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let bytes = response.bytes().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        Err(api_error(status, &bytes))
    }

    /// `POST /v1/tenants`.
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant, ClientError> {
        let body = CreateTenant { name: name.into() };
        self.call(Method::POST, "/v1/tenants", Some(&body), None)
            .await
    }

    /// `GET /v1/tenants`.
    pub async fn list_tenants(&self) -> Result<TenantList, ClientError> {
        self.call(Method::GET, "/v1/tenants", None::<&()>, None)
            .await
    }

    /// `POST /v1/api-tokens`.
    pub async fn create_api_token(
        &self,
        body: &CreateApiToken,
    ) -> Result<ApiTokenCreated, ClientError> {
        self.call(Method::POST, "/v1/api-tokens", Some(body), None)
            .await
    }

    /// `POST /v1/keys/rotate`.
    pub async fn rotate_key(&self) -> Result<KeyRotated, ClientError> {
        self.call(Method::POST, "/v1/keys/rotate", None::<&()>, None)
            .await
    }

    /// `POST /v1/enroll-tokens`.
    pub async fn create_enroll_token(
        &self,
        body: &CreateEnrollToken,
    ) -> Result<EnrollTokenCreated, ClientError> {
        self.call(Method::POST, "/v1/enroll-tokens", Some(body), None)
            .await
    }

    /// `POST /v1/agents`.
    pub async fn enroll(&self, body: &EnrollAgent) -> Result<Agent, ClientError> {
        self.call(Method::POST, "/v1/agents", Some(body), None)
            .await
    }

    /// `GET /v1/agents` (one page).
    pub async fn list_agents(
        &self,
        state: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<AgentList, ClientError> {
        let mut query = Vec::new();
        if let Some(state) = state {
            query.push(("state", state));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        self.call(
            Method::GET,
            &format!("/v1/agents{}", query_string(&query)),
            None::<&()>,
            None,
        )
        .await
    }

    /// `GET /v1/agents/{id}`.
    pub async fn agent(&self, id: &str) -> Result<Agent, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/agents/{}", segment(id)),
            None::<&()>,
            None,
        )
        .await
    }

    /// `POST /v1/agents/{id}/{action}` with a reason.
    pub async fn agent_action(
        &self,
        id: &str,
        action: &str,
        reason: &str,
    ) -> Result<Agent, ClientError> {
        let body = LifecycleChange {
            reason: reason.into(),
        };
        self.call(
            Method::POST,
            &format!("/v1/agents/{}/{action}", segment(id)),
            Some(&body),
            None,
        )
        .await
    }

    /// `POST /v1/tokens` with a fresh DPoP proof signed by `device`.
    pub async fn request_token(
        &self,
        device: &Keypair,
        body: &TokenRequest,
    ) -> Result<TokenResponse, ClientError> {
        let proof = self.proof(device, "POST", "/v1/tokens")?;
        self.call(Method::POST, "/v1/tokens", Some(body), Some(proof))
            .await
    }

    /// A DPoP proof for `method` on `path` of this server, dated now.
    pub fn proof(&self, device: &Keypair, method: &str, path: &str) -> Result<String, ClientError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| ClientError::Local(format!("clock before 1970: {e}")))?
            .as_secs() as i64;
        let jti = ward_auth::dpop::new_jti().map_err(|e| ClientError::Local(e.to_string()))?;
        ward_auth::dpop::create_proof(
            device,
            method,
            &format!("{}{path}", self.base),
            now,
            &jti,
            None,
        )
        .map_err(|e| ClientError::Local(e.to_string()))
    }

    /// `POST /v1/tokens/introspect`.
    pub async fn introspect(&self, token: &str) -> Result<IntrospectResponse, ClientError> {
        let body = IntrospectRequest {
            token: token.into(),
            token_type_hint: None,
        };
        self.call(Method::POST, "/v1/tokens/introspect", Some(&body), None)
            .await
    }

    /// `POST /v1/tokens/revoke`.
    pub async fn revoke_tokens(&self, body: &RevokeTokens) -> Result<Revocation, ClientError> {
        self.call(Method::POST, "/v1/tokens/revoke", Some(body), None)
            .await
    }

    /// `GET /v1/audit` with query pairs.
    pub async fn audit(&self, query: &[(&str, &str)]) -> Result<AuditPage, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/audit{}", query_string(query)),
            None::<&()>,
            None,
        )
        .await
    }

    /// `POST /v1/policy/bundles`.
    pub async fn push_policy(&self, body: &PushPolicy) -> Result<PolicyBundle, ClientError> {
        self.call(Method::POST, "/v1/policy/bundles", Some(body), None)
            .await
    }

    /// `GET /v1/policy`.
    pub async fn policy(&self) -> Result<PolicyBundle, ClientError> {
        self.call(Method::GET, "/v1/policy", None::<&()>, None)
            .await
    }

    /// `PUT /v1/killswitch`.
    pub async fn set_killswitch(&self, body: &SetKillSwitch) -> Result<KillSwitch, ClientError> {
        self.call(Method::PUT, "/v1/killswitch", Some(body), None)
            .await
    }

    /// `GET /v1/killswitch`.
    pub async fn killswitches(&self) -> Result<KillSwitchList, ClientError> {
        self.call(Method::GET, "/v1/killswitch", None::<&()>, None)
            .await
    }

    /// `PUT /v1/flags/{key}`.
    pub async fn set_flag(&self, key: &str, body: &SetFlag) -> Result<Flag, ClientError> {
        self.call(
            Method::PUT,
            &format!("/v1/flags/{}", segment(key)),
            Some(body),
            None,
        )
        .await
    }

    /// `GET /v1/flags`.
    pub async fn flags(&self) -> Result<FlagList, ClientError> {
        self.call(Method::GET, "/v1/flags", None::<&()>, None).await
    }

    /// `POST /v1/agents/{id}/heartbeat` with a fresh DPoP proof.
    pub async fn heartbeat(
        &self,
        device: &Keypair,
        agent_id: &str,
        body: &Heartbeat,
    ) -> Result<HeartbeatResponse, ClientError> {
        let path = format!("/v1/agents/{}/heartbeat", segment(agent_id));
        let proof = self.proof(device, "POST", &path)?;
        self.call(Method::POST, &path, Some(body), Some(proof))
            .await
    }

    /// `POST /v1/agents/{id}/acks` with a fresh DPoP proof.
    pub async fn acknowledge(
        &self,
        device: &Keypair,
        agent_id: &str,
        body: &DirectiveAcks,
    ) -> Result<AcksStored, ClientError> {
        let path = format!("/v1/agents/{}/acks", segment(agent_id));
        let proof = self.proof(device, "POST", &path)?;
        self.call(Method::POST, &path, Some(body), Some(proof))
            .await
    }

    /// `POST /v1/events` with a fresh DPoP proof: ship a batch.
    pub async fn ship_events(
        &self,
        device: &Keypair,
        body: &EventBatch,
    ) -> Result<EventsAccepted, ClientError> {
        let proof = self.proof(device, "POST", "/v1/events")?;
        self.call(Method::POST, "/v1/events", Some(body), Some(proof))
            .await
    }

    /// `GET /v1/events` with query pairs (admin).
    pub async fn events(&self, query: &[(&str, &str)]) -> Result<EventPage, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/events{}", query_string(query)),
            None::<&()>,
            None,
        )
        .await
    }

    /// `GET /v1/agent-policy`.
    pub async fn agent_policy(&self) -> Result<StalenessBounds, ClientError> {
        self.call(Method::GET, "/v1/agent-policy", None::<&()>, None)
            .await
    }

    /// `PUT /v1/agent-policy`.
    pub async fn set_agent_policy(
        &self,
        body: &SetAgentPolicy,
    ) -> Result<StalenessBounds, ClientError> {
        self.call(Method::PUT, "/v1/agent-policy", Some(body), None)
            .await
    }

    /// `GET /v1/killswitch/status`.
    pub async fn killswitch_status(&self) -> Result<KillSwitchStatus, ClientError> {
        self.call(Method::GET, "/v1/killswitch/status", None::<&()>, None)
            .await
    }

    /// `POST /v1/consents`.
    pub async fn record_consent(&self, body: &RecordConsent) -> Result<Consent, ClientError> {
        self.call(Method::POST, "/v1/consents", Some(body), None)
            .await
    }

    /// `GET /v1/alerts` with query pairs.
    pub async fn alerts(&self, query: &[(&str, &str)]) -> Result<AlertPage, ClientError> {
        let path = format!("/v1/alerts{}", query_string(query));
        self.call(Method::GET, &path, None::<&()>, None).await
    }

    /// `GET /v1/alerts/{id}`.
    pub async fn alert(&self, id: &str) -> Result<AlertView, ClientError> {
        let path = format!("/v1/alerts/{}", segment(id));
        self.call(Method::GET, &path, None::<&()>, None).await
    }

    /// `GET /v1/agents/{id}/baseline`.
    pub async fn agent_baseline(&self, id: &str) -> Result<AgentBaseline, ClientError> {
        let path = format!("/v1/agents/{}/baseline", segment(id));
        self.call(Method::GET, &path, None::<&()>, None).await
    }

    /// `GET /v1/alerts/failed`: the dead-letter list.
    pub async fn failed_notifications(&self) -> Result<FailedNotifications, ClientError> {
        self.call(Method::GET, "/v1/alerts/failed", None::<&()>, None)
            .await
    }

    /// `POST /v1/alerts/failed/{id}/retry`.
    pub async fn retry_notification(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/alerts/failed/{}/retry", segment(id));
        self.call_empty(Method::POST, &path).await
    }

    /// `POST /v1/silences`.
    pub async fn create_silence(&self, body: &CreateSilence) -> Result<SilenceView, ClientError> {
        self.call(Method::POST, "/v1/silences", Some(body), None)
            .await
    }

    /// `GET /v1/silences`.
    pub async fn silences(&self) -> Result<SilenceList, ClientError> {
        self.call(Method::GET, "/v1/silences", None::<&()>, None)
            .await
    }

    /// `DELETE /v1/silences/{id}`.
    pub async fn expire_silence(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/silences/{}", segment(id));
        self.call_empty(Method::DELETE, &path).await
    }

    /// `GET /.well-known/jwks.json`.
    pub async fn jwks(&self) -> Result<Jwks, ClientError> {
        self.call(Method::GET, "/.well-known/jwks.json", None::<&()>, None)
            .await
    }
}

/// Makes `ring` the process's TLS crypto provider (idempotent). reqwest is
/// built without a provider of its own so that one crypto library serves
/// the whole binary; every HTTPS client needs this first.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => ClientError::Api {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
            field: body.error.field,
            correlation_id: body.error.correlation_id,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: "http_error".into(),
            message: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            field: None,
            correlation_id: String::new(),
        },
    }
}

/// Percent-encodes one path segment.
fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", segment(k), segment(v)))
        .collect();
    format!("?{}", joined.join("&"))
}
