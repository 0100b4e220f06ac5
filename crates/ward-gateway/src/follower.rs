//! Follows the control plane: fetches the snapshot, then reads the
//! `GET /v1/watch` server-sent events and applies them in order,
//! reconnecting with backoff and resuming from the last applied event.

use std::sync::Arc;
use std::time::Duration;
use ward_api::sse::SseReader;
use ward_api::{Jwks, WatchSnapshot};

use crate::state::{ControlState, EventEffect};

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A stream that sends nothing (keep-alives come every 15 s) for this long
/// is dropped and reopened.
const READ_TIMEOUT: Duration = Duration::from_secs(45);

/// A client of the control plane's watch API.
#[derive(Clone)]
pub struct ControlClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ControlClient {
    /// A client for `base` with a bearer `token`.
    pub fn new(base: &str, token: &str) -> Result<ControlClient, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(ControlClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// `GET /v1/watch/snapshot`.
    pub async fn snapshot(&self) -> Result<WatchSnapshot, String> {
        let response = self
            .http
            .get(format!("{}/v1/watch/snapshot", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("cannot reach the control plane at `{}`: {e}", self.base))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "the control plane answered {status} to GET /v1/watch/snapshot; check control_plane.token"
            ));
        }
        response
            .json()
            .await
            .map_err(|e| format!("unreadable snapshot from the control plane: {e}"))
    }

    /// `GET /.well-known/jwks.json`.
    pub async fn jwks(&self) -> Result<Jwks, String> {
        let response = self
            .http
            .get(format!("{}/.well-known/jwks.json", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("cannot fetch the JWKS: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("the JWKS answered {}", response.status()));
        }
        response
            .json()
            .await
            .map_err(|e| format!("unreadable JWKS: {e}"))
    }
}

/// Follows the stream forever, applying events to `state`.
pub async fn follow(client: ControlClient, state: Arc<ControlState>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match follow_once(&client, &state).await {
            Ok(()) => {
                eprintln!("ward gateway: the control plane closed the watch stream; reconnecting")
            }
            Err(error) => eprintln!("ward gateway: watch stream: {error}; reconnecting"),
        }
        if state.contact().1 {
            backoff = Duration::from_millis(100);
        }
        state.set_connected(false);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn follow_once(client: &ControlClient, state: &ControlState) -> Result<(), String> {
    let after = state.seq();
    let mut response = client
        .http
        .get(format!("{}/v1/watch", client.base))
        .bearer_auth(&client.token)
        .header("Last-Event-ID", after.to_string())
        .header("Accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("the control plane answered {}", response.status()));
    }
    // Keys may have rotated while the stream was down; the rotation event
    // is replayed too, but fetching now costs one request per reconnect.
    if let Ok(jwks) = client.jwks().await {
        state.set_keys(&jwks);
    }
    // Only the matrix's high-risk scopes are taken from this snapshot; the
    // rest of the state comes from the stream, in order.
    match client.snapshot().await {
        Ok(snapshot) => state.set_high_risk(&snapshot.high_risk_scopes),
        Err(error) => return Err(error),
    }
    state.set_connected(true);
    let mut reader = SseReader::new(ward_api::sse::MAX_FEED_EVENT_BYTES);
    loop {
        let chunk = tokio::time::timeout(READ_TIMEOUT, response.chunk())
            .await
            .map_err(|_| "no data or keep-alive for 45 s".to_owned())?
            .map_err(|e| format!("read failed: {e}"))?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        state.touch();
        let events = reader
            .push(&chunk)
            .map_err(|e| format!("the stream sent {e}"))?;
        for event in events {
            let (Some(seq), Some(data)) = (
                event.id().and_then(|id| id.parse::<i64>().ok()),
                event.data.as_deref(),
            ) else {
                continue;
            };
            match state.apply(seq, event.kind(), data) {
                EventEffect::Applied => {}
                EventEffect::RefetchKeys => match client.jwks().await {
                    Ok(jwks) => state.set_keys(&jwks),
                    Err(error) => eprintln!("ward gateway: after a key rotation: {error}"),
                },
                EventEffect::Malformed => {
                    eprintln!(
                        "ward gateway: event {seq} (`{}`) does not read as one; skipped",
                        event.kind()
                    );
                }
            }
        }
    }
}
