//! The daemon's conversation with the control plane: heartbeats (which
//! bring the whole view), the change feed (which brings changes within a
//! second), tokens for each feature (refreshed before expiry, with
//! jitter), and acknowledgements of the directives applied. Failures
//! change the view (a refusal, no contact), never stop the daemon.

use std::sync::Arc;
use std::time::Duration;
use ward_api::sse::SseReader;
use ward_api::{DirectiveAcks, Heartbeat};
use ward_client::ClientError;
use ward_model::feed::Event;
use ward_model::timestamp::rfc3339;

use super::Runtime;
use super::record::{self, Entry};
use super::view::{Applied, HeldToken};

/// Heartbeat interval before the server has said one.
const FIRST_INTERVAL: Duration = Duration::from_secs(30);
/// Longest wait between attempts to reopen the change feed.
const MAX_FEED_BACKOFF: Duration = Duration::from_secs(2);
/// A feed that sends nothing for this long (keep-alives come every 15 s)
/// is dropped and reopened.
const FEED_READ_TIMEOUT: Duration = Duration::from_secs(45);

/// Sends a heartbeat every interval the server sets, and whenever woken.
pub async fn heartbeats(runtime: Arc<Runtime>) {
    loop {
        let interval = beat(&runtime).await;
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = runtime.wake_heartbeat.notified() => {}
        }
    }
}

/// One heartbeat; returns how long to wait for the next.
async fn beat(runtime: &Runtime) -> Duration {
    let (body, interval) = {
        let view = runtime.read();
        let (mode, _) = view.mode_now(Runtime::now_ms());
        let spool = runtime.spool.status();
        let mut problems = Vec::new();
        if spool.corrupt > 0 {
            problems.push(format!(
                "{} spool records were torn or corrupt and set aside",
                spool.corrupt
            ));
        }
        if spool.dropped > 0 {
            problems.push(format!(
                "{} telemetry events were dropped because the spool was full",
                spool.dropped
            ));
        }
        let body = Heartbeat {
            version: runtime.config.version.clone(),
            uptime_secs: runtime.started.elapsed().as_secs(),
            os: runtime.config.os.clone(),
            health: if problems.is_empty() {
                "ok"
            } else {
                "degraded"
            }
            .to_owned(),
            problems,
            mode: mode.as_str().to_owned(),
            spool_depth: spool.depth,
            spool_bytes: spool.bytes,
            spool_dropped: spool.dropped,
            acks: view.unsent_acks.clone(),
        };
        let interval = view.bounds.map_or(FIRST_INTERVAL, |b| {
            Duration::from_secs(b.heartbeat_interval_secs.max(1))
        });
        (body, interval)
    };
    let sent_acks = body.acks.len();
    match runtime
        .client
        .heartbeat(&runtime.device, &runtime.record.agent_id, &body)
        .await
    {
        Ok(answer) => {
            let now = Runtime::now_ms();
            let applied = {
                let mut view = runtime.write();
                let sent = sent_acks.min(view.unsent_acks.len());
                view.unsent_acks.drain(..sent);
                view.apply_heartbeat(&answer, now)
            };
            after_applied(runtime, applied, "heartbeat").await;
            Duration::from_secs(answer.interval_secs.max(1))
        }
        Err(error) => {
            tracing::warn!(error = %error, "heartbeat failed");
            interval
        }
    }
}

/// Acts on what a heartbeat answer or a feed event changed: acknowledges
/// and records the directives that took effect, and fetches tokens again
/// when they were dropped or the profile changed.
async fn after_applied(runtime: &Runtime, applied: Applied, source: &str) {
    if applied.tokens_dropped || applied.profile_changed {
        runtime.wake_tokens.notify_one();
    }
    if applied.directives.is_empty() {
        return;
    }
    let applied_at = rfc3339(Runtime::now_ms());
    let mut entries = Vec::new();
    {
        let mut view = runtime.write();
        for directive in &applied.directives {
            if view.acknowledge(directive.clone(), applied_at.clone()) {
                entries.push(Entry::audit(
                    "directive",
                    directive,
                    "applied",
                    Some(source),
                ));
            }
        }
    }
    if entries.is_empty() {
        return;
    }
    for directive in &applied.directives {
        tracing::info!(directive = %directive, source, "directive applied");
    }
    runtime.wake_acks.notify_one();
    if let Err(error) = record::append(runtime, entries).await {
        tracing::error!(error = %error, "cannot record applied directives");
    }
}

/// Sends acknowledgements as soon as there are some; what cannot be sent
/// rides on the next heartbeat.
pub async fn acks(runtime: Arc<Runtime>) {
    loop {
        runtime.wake_acks.notified().await;
        let acks = runtime.read().unsent_acks.clone();
        if acks.is_empty() {
            continue;
        }
        let body = DirectiveAcks { acks };
        match runtime
            .client
            .acknowledge(&runtime.device, &runtime.record.agent_id, &body)
            .await
        {
            Ok(_) => {
                let mut view = runtime.write();
                view.unsent_acks.retain(|ack| !body.acks.contains(ack));
            }
            Err(error) => {
                tracing::warn!(error = %error, "acknowledgements not sent; the next heartbeat carries them")
            }
        }
    }
}

/// Follows the agent's change feed, reopening it with backoff; every
/// event or keep-alive counts as contact.
pub async fn follow(runtime: Arc<Runtime>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match follow_once(&runtime).await {
            Ok(()) => tracing::info!("the control plane closed the change feed; reopening"),
            Err(error) => tracing::warn!(error = %error, "change feed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_FEED_BACKOFF);
        // What happened while the feed was down: the heartbeat answer
        // carries the whole view.
        runtime.wake_heartbeat.notify_one();
    }
}

async fn follow_once(runtime: &Runtime) -> Result<(), ClientError> {
    let after = runtime.read().feed_seq;
    let mut response = runtime
        .client
        .agent_watch(&runtime.device, &runtime.record.agent_id, after)
        .await?;
    let mut reader = SseReader::new(ward_api::sse::MAX_FEED_EVENT_BYTES);
    loop {
        let chunk = tokio::time::timeout(FEED_READ_TIMEOUT, response.chunk())
            .await
            .map_err(|_| ClientError::Local("no data or keep-alive for 45 s".into()))?
            .map_err(|e| ClientError::Local(format!("read failed: {e}")))?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        let now = Runtime::now_ms();
        runtime.write().touch(now);
        let events = reader
            .push(&chunk)
            .map_err(|e| ClientError::Local(format!("the change feed sent {e}")))?;
        for event in events {
            let (Some(seq), Some(data)) = (
                event.id().and_then(|id| id.parse::<i64>().ok()),
                event.data.as_deref(),
            ) else {
                continue;
            };
            let applied = match Event::decode(event.kind(), data) {
                Ok(Some(decoded)) => runtime.write().apply_event(seq, decoded, now),
                Ok(None) => {
                    runtime.write().skip_event(seq);
                    continue;
                }
                Err(error) => {
                    // An event this version should understand but cannot
                    // read may be a restriction: fail closed by asking for
                    // the whole view now, and drop the tokens it might
                    // have revoked.
                    tracing::error!(seq, error = %error, "unreadable change-feed event; dropping tokens and asking for a heartbeat");
                    let mut view = runtime.write();
                    view.tokens.clear();
                    view.skip_event(seq);
                    drop(view);
                    runtime.wake_heartbeat.notify_one();
                    runtime.wake_tokens.notify_one();
                    continue;
                }
            };
            after_applied(runtime, applied, "change feed").await;
        }
    }
}

/// Keeps a token for every feature that may have one: asks the broker
/// (DPoP) for the feature's scopes when it holds none or its refresh time
/// (two thirds of the lifetime, ±10 % jitter) has come.
pub async fn tokens(runtime: Arc<Runtime>) {
    loop {
        let next = refresh(&runtime).await;
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = runtime.wake_tokens.notified() => {}
        }
    }
}

/// One round; returns when to look again.
async fn refresh(runtime: &Runtime) -> Duration {
    let now = Runtime::now_ms();
    let due: Vec<(String, Vec<String>)> = {
        let mut view = runtime.write();
        let state = view.state;
        let mut due = Vec::new();
        let features = view.features.clone();
        view.tokens.retain(|name, held| {
            held.expires_at_ms > now && features.iter().any(|f| &f.name == name)
        });
        for feature in &features {
            if let Some(state) = state.filter(|s| !s.may_obtain_tokens()) {
                view.refused.insert(
                    feature.name.clone(),
                    format!("the agent is {state}; it may not obtain tokens"),
                );
                continue;
            }
            if feature.consent_required && !feature.consented {
                view.refused.insert(
                    feature.name.clone(),
                    format!(
                        "feature `{}` needs the owner's consent; run `ward agent consent --state-dir {}`",
                        feature.name,
                        runtime.dir.path().display()
                    ),
                );
                view.tokens.remove(&feature.name);
                continue;
            }
            let fresh = view
                .tokens
                .get(&feature.name)
                .is_some_and(|held| held.refresh_at_ms > now);
            if !fresh {
                due.push((feature.name.clone(), feature.scopes.clone()));
            }
        }
        due
    };
    let mut retry = false;
    for (feature, scopes) in due {
        let wanted = ward_api::TokenRequest {
            agent_id: runtime.record.agent_id.clone(),
            requested_scopes: scopes,
            requested_duration: None,
            approval_id: None,
            action: None,
        };
        match runtime.client.request_token(&runtime.device, &wanted).await {
            Ok(granted) => {
                let held = held_token(granted, Runtime::now_ms());
                let mut view = runtime.write();
                view.refused.remove(&feature);
                view.tokens.insert(feature, held);
            }
            Err(ClientError::Api { code, message, .. }) => {
                tracing::warn!(feature = %feature, code = %code, "the broker refused a token");
                runtime.write().refused.insert(
                    feature,
                    format!("the broker refused a token: {message} ({code})"),
                );
                retry = true;
            }
            Err(error) => {
                tracing::warn!(feature = %feature, error = %error, "no token");
                let mut view = runtime.write();
                if !view.tokens.contains_key(&feature) {
                    view.refused.insert(feature, format!("no token: {error}"));
                }
                retry = true;
            }
        }
    }
    let view = runtime.read();
    let soonest = view
        .tokens
        .values()
        .map(|held| held.refresh_at_ms)
        .min()
        .map_or(i64::MAX, |at| at - Runtime::now_ms());
    let cap: i64 = if retry { 2_000 } else { 30_000 };
    Duration::from_millis(soonest.clamp(100, cap) as u64)
}

/// What to keep of a granted token: expiry and the refresh time, two
/// thirds into its life give or take 10 % so that many devices do not ask
/// in the same second.
fn held_token(granted: ward_api::TokenResponse, now_ms: i64) -> HeldToken {
    let life_ms = (granted.expires_in as i64).saturating_mul(1000);
    let jitter = (life_ms / 10).max(1);
    let offset = (random_u64() % (2 * jitter as u64)) as i64 - jitter;
    let claims = ward_auth::jws::decode_unverified(&granted.token)
        .map(|decoded| decoded.claims)
        .unwrap_or_default();
    HeldToken {
        jti: claims["jti"].as_str().unwrap_or_default().to_owned(),
        iat: claims["iat"].as_i64().unwrap_or(now_ms / 1000),
        expires_at_ms: now_ms + life_ms,
        refresh_at_ms: now_ms + life_ms * 2 / 3 + offset,
        scopes: granted.scopes,
        token: granted.token,
    }
}

/// A random number for jitter (not a secret).
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return Runtime::now_ms() as u64;
    }
    u64::from_le_bytes(bytes)
}

/// Completes once the server has told the device to uninstall.
pub async fn uninstall_requested(runtime: Arc<Runtime>) {
    loop {
        if runtime.read().uninstall.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Before wiping: ship what the spool holds within the bound, then
/// acknowledge the uninstall directive.
pub async fn ship_and_acknowledge_uninstall(runtime: &Runtime) {
    let deadline = tokio::time::Instant::now() + runtime.config.uninstall_ship_bound;
    let directive = runtime.read().uninstall.clone().unwrap_or_default();
    // The hooks and deny rules `ward hook install` put in agents' settings
    // go first, each outcome recorded (managed settings may need root).
    let mut entries = Vec::new();
    for (settings, done) in crate::install::uninstall_all(runtime.dir.path()) {
        let target = settings.display().to_string();
        entries.push(match done {
            Ok(()) => Entry::audit("hooks.uninstall", &target, "ok", None),
            Err(error) => {
                tracing::error!(settings = %target, error = %error, "uninstall: cannot remove Ward's hooks");
                Entry::audit("hooks.uninstall", &target, "error", Some(&error.to_string()))
            }
        });
    }
    entries.push(Entry::audit(
        "directive",
        &directive,
        "applied",
        Some("uninstall"),
    ));
    if let Err(error) = record::append(runtime, entries).await {
        tracing::error!(error = %error, "cannot record the uninstall");
    }
    while tokio::time::Instant::now() < deadline {
        match super::ship::ship_batch(runtime).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %error, "uninstall: shipping");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let left = runtime.spool.status().depth;
    if left > 0 {
        tracing::warn!(
            left,
            "uninstall: events not shipped within the bound are wiped with the spool"
        );
    }
    let applied_at = rfc3339(Runtime::now_ms());
    runtime.write().acknowledge(directive.clone(), applied_at);
    let body = DirectiveAcks {
        acks: runtime.read().unsent_acks.clone(),
    };
    if let Err(error) = runtime
        .client
        .acknowledge(&runtime.device, &runtime.record.agent_id, &body)
        .await
    {
        tracing::warn!(error = %error, "uninstall: the acknowledgement was not delivered");
    }
}
