//! Delivering alert notifications: queued in the database with the
//! transition that caused them, sent by one task, retried with a doubling
//! backoff, and after the receiver's last attempt kept on the dead-letter
//! list (`GET /v1/alerts/failed`, `ward alerts failed`) until someone
//! retries them.
//!
//! Due notifications of one receiver about one rule, tenant and transition
//! go out together (grouping): one Alertmanager, webhook or Slack request
//! carries them all; PagerDuty takes one event per alert (its `dedup_key`
//! is the alert's fingerprint).
//!
//! - Alertmanager: `POST {url}/api/v2/alerts`, labels `alertname`,
//!   `severity`, `tenant`, the subject (`agent_id`, `user_id`), `ward_rule`;
//!   a firing alert's `endsAt` is 5 minutes ahead and every firing alert
//!   is sent again each minute, so Alertmanager resolves it on its own if
//!   this server stops; a resolved one carries its resolution time.
//! - Webhook: Ward's JSON (`version`, `group_key`, `status`, `alerts`),
//!   signed: `X-Ward-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//!   "<t>.<body>" with the receiver's secret>`; `X-Ward-Delivery` is the
//!   first notification's id. Receivers should refuse a `t` older than a
//!   few minutes.
//! - Slack-compatible: `{"text": ...}`, one line per alert.
//! - PagerDuty Events API v2: `trigger`/`resolve` with `dedup_key` = the
//!   fingerprint; severity high/medium/low is critical/warning/info.

use std::collections::BTreeMap;
use std::time::Duration;

use ring::hmac;
use serde_json::{Value, json};
use ward_model::timestamp::rfc3339;
use ward_store::{AlertRow, Attempt, NotificationRow};
use ward_telemetry::rules::{ReceiverKind, RuleSet, Source};

use crate::AppState;
use crate::util::now_ms;

/// How long a firing alert lasts in Alertmanager without being sent again.
const ALERTMANAGER_HOLD_MS: i64 = 5 * 60 * 1000;
/// How often firing alerts are sent to Alertmanager again.
const ALERTMANAGER_RESEND: Duration = Duration::from_secs(60);
/// The longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A receiver ready to send to: its URL and secret read.
#[derive(Clone)]
pub struct Target {
    /// Its name in the rule file.
    pub name: String,
    /// What speaks there.
    pub kind: ReceiverKind,
    /// Where.
    pub url: reqwest::Url,
    /// The HMAC key (webhook) or routing key (PagerDuty).
    secret: Option<String>,
    /// Attempts before the dead-letter list.
    pub attempts: u32,
    /// First retry wait, seconds.
    pub backoff_secs: u32,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Reads every receiver's URL and secret (from the environment or a
/// file); an error names the receiver and what is missing.
pub fn resolve(set: &RuleSet) -> Result<Vec<Target>, String> {
    let read = |receiver: &str, what: &str, source: &Source| -> Result<String, String> {
        match source {
            Source::Literal(value) => Ok(value.clone()),
            Source::Env(name) => std::env::var(name)
                .ok()
                .filter(|value| !value.is_empty())
                .ok_or_else(|| {
                    format!("alert receiver `{receiver}`: environment variable `{name}` (its {what}) is not set")
                }),
            Source::File(path) => std::fs::read_to_string(path)
                .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| format!("alert receiver `{receiver}`: cannot read its {what} from `{path}`: {e}")),
        }
    };
    set.receivers
        .iter()
        .map(|receiver| {
            let text = read(&receiver.name, "URL", &receiver.url)?;
            let url = reqwest::Url::parse(&text)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
                .ok_or_else(|| {
                    format!(
                        "alert receiver `{}`: its URL is not an http(s) URL",
                        receiver.name
                    )
                })?;
            let secret = receiver
                .secret
                .as_ref()
                .map(|source| read(&receiver.name, "secret", source))
                .transpose()?;
            Ok(Target {
                name: receiver.name.clone(),
                kind: receiver.kind,
                url,
                secret,
                attempts: receiver.attempts,
                backoff_secs: receiver.backoff_secs,
            })
        })
        .collect()
}

/// Sends due notifications whenever woken or every second, and firing
/// alerts to Alertmanager every minute, until the server stops.
pub async fn run(state: AppState) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the alert delivery client; alerts stay queued");
            return;
        }
    };
    let stopped = state.streams_stopped();
    tokio::pin!(stopped);
    let mut resend = tokio::time::interval(ALERTMANAGER_RESEND);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            () = state.alerting.wake.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = resend.tick() => resend_firing(&state, &client).await,
        }
        deliver_due(&state, &client).await;
    }
}

/// (tenant, rule, transition): notifications one request carries.
type Group = (String, String, String);

async fn deliver_due(state: &AppState, client: &reqwest::Client) {
    let now = now_ms();
    let due = match state
        .store
        .read(move |conn| ward_store::due_notifications(conn, now, 500))
        .await
    {
        Ok(due) => due,
        Err(error) => {
            tracing::error!(%error, "cannot read queued alert notifications");
            return;
        }
    };
    // Per receiver, its groups in turn; receivers side by side, so one
    // that hangs (up to the request timeout per group) delays only itself.
    let mut receivers: BTreeMap<String, BTreeMap<Group, Batch>> = BTreeMap::new();
    for (notification, alert) in due {
        let key = (
            notification.tenant_id.clone(),
            alert.rule.clone(),
            notification.transition.clone(),
        );
        receivers
            .entry(notification.receiver.clone())
            .or_default()
            .entry(key)
            .or_default()
            .push((notification, alert));
    }
    let work = receivers.into_iter().map(|(receiver, groups)| async move {
        for (key, items) in groups {
            deliver_group(state, client, &receiver, key, items).await;
        }
    });
    futures_util::future::join_all(work).await;
}

/// Notifications of one group due together.
type Batch = Vec<(NotificationRow, AlertRow)>;

/// Sends one group to `receiver` and records the attempt of each of its
/// notifications.
async fn deliver_group(
    state: &AppState,
    client: &reqwest::Client,
    receiver: &str,
    (tenant, rule, transition): Group,
    items: Batch,
) {
    let target = state
        .alerting
        .targets
        .iter()
        .find(|target| target.name == receiver);
    let result = match target {
        Some(target) => {
            let alerts: Vec<&AlertRow> = items.iter().map(|(_, alert)| alert).collect();
            let first = items.first().map_or(0, |(n, _)| n.id);
            send(
                client,
                target,
                &state.config.public_url,
                &format!("{tenant}/{rule}"),
                &transition,
                &alerts,
                first,
            )
            .await
        }
        None => Err(format!(
            "receiver `{receiver}` is no longer configured; retry after adding it back"
        )),
    };
    let now = now_ms();
    let attempts: Vec<(i64, Attempt)> = items
        .iter()
        .map(|(notification, _)| {
            let attempt = match (&result, target) {
                (Ok(()), _) => Attempt::Delivered,
                (Err(error), Some(target))
                    if notification.attempts + 1 < i64::from(target.attempts) =>
                {
                    Attempt::Retry {
                        error: error.clone(),
                        next_ms: now + backoff_ms(target.backoff_secs, notification.attempts),
                    }
                }
                (Err(error), _) => Attempt::GiveUp {
                    error: error.clone(),
                },
            };
            (notification.id, attempt)
        })
        .collect();
    if let Err(error) = &result {
        tracing::warn!(receiver = %receiver, %tenant, rule = %rule, %error, "alert notification failed");
    }
    if let Err(error) = state
        .store
        .write(move |ctx| {
            for (id, attempt) in &attempts {
                ward_store::record_attempt(ctx.conn(), *id, attempt, now)?;
            }
            Ok(())
        })
        .await
    {
        tracing::error!(%error, "cannot record alert delivery attempts");
    }
}

/// The wait after failed attempt number `attempts + 1`: the receiver's
/// backoff doubled each time, at most 5 minutes.
fn backoff_ms(backoff_secs: u32, attempts: i64) -> i64 {
    let doubling = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    (i64::from(backoff_secs) * 1000)
        .saturating_mul(1 << doubling)
        .min(MAX_BACKOFF_MS)
}

async fn resend_firing(state: &AppState, client: &reqwest::Client) {
    let managers: Vec<&Target> = state
        .alerting
        .targets
        .iter()
        .filter(|target| target.kind == ReceiverKind::Alertmanager)
        .collect();
    if managers.is_empty() {
        return;
    }
    let firing = match state.store.read(ward_store::firing_alerts).await {
        Ok(firing) => firing,
        Err(error) => {
            tracing::error!(%error, "cannot read firing alerts");
            return;
        }
    };
    for target in managers {
        let alerts: Vec<&AlertRow> = firing
            .iter()
            .filter(|alert| {
                alert.silenced_by.is_none()
                    && state
                        .alerting
                        .receivers_of(&alert.rule)
                        .contains(&target.name)
            })
            .collect();
        if alerts.is_empty() {
            continue;
        }
        let body = alertmanager(&alerts, &state.config.public_url, now_ms());
        if let Err(error) = post(client, target, alertmanager_url(&target.url), &body, &[]).await {
            tracing::warn!(receiver = %target.name, %error, "resending firing alerts to Alertmanager failed");
        }
    }
}

async fn send(
    client: &reqwest::Client,
    target: &Target,
    public_url: &str,
    group_key: &str,
    transition: &str,
    alerts: &[&AlertRow],
    first_id: i64,
) -> Result<(), String> {
    let now = now_ms();
    match target.kind {
        ReceiverKind::Alertmanager => {
            let body = alertmanager(alerts, public_url, now);
            post(client, target, alertmanager_url(&target.url), &body, &[]).await
        }
        ReceiverKind::Webhook => {
            let body = webhook(group_key, transition, alerts, public_url);
            let text = body.to_string();
            let secret = target.secret.as_deref().unwrap_or_default();
            let t = now / 1000;
            let signature = sign(secret, t, &text);
            let headers = [
                ("x-ward-signature", format!("t={t},v1={signature}")),
                ("x-ward-delivery", first_id.to_string()),
            ];
            post_text(client, target, target.url.clone(), text, &headers).await
        }
        ReceiverKind::Slack => {
            let body = slack(transition, alerts, public_url);
            post(client, target, target.url.clone(), &body, &[]).await
        }
        ReceiverKind::PagerDuty => {
            let key = target.secret.as_deref().unwrap_or_default();
            for alert in alerts {
                let body = pagerduty(key, transition, alert, public_url);
                post(client, target, target.url.clone(), &body, &[]).await?;
            }
            Ok(())
        }
    }
}

fn alertmanager_url(base: &reqwest::Url) -> reqwest::Url {
    let mut url = base.clone();
    let path = format!("{}/api/v2/alerts", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

async fn post(
    client: &reqwest::Client,
    target: &Target,
    url: reqwest::Url,
    body: &Value,
    headers: &[(&str, String)],
) -> Result<(), String> {
    post_text(client, target, url, body.to_string(), headers).await
}

async fn post_text(
    client: &reqwest::Client,
    target: &Target,
    url: reqwest::Url,
    body: String,
    headers: &[(&str, String)],
) -> Result<(), String> {
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    // Errors drop the URL: a Slack URL is itself the secret.
    let response = request.send().await.map_err(|e| {
        format!(
            "{} receiver unreachable: {}",
            target.kind.as_str(),
            e.without_url()
        )
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let excerpt: String = text.chars().take(200).collect();
    Err(format!(
        "{} receiver answered HTTP {}: {}",
        target.kind.as_str(),
        status.as_u16(),
        excerpt.trim()
    ))
}

/// The hex HMAC-SHA256 of `"<t>.<body>"` with `secret`.
pub fn sign(secret: &str, t: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{t}.{body}").as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn link(public_url: &str, alert: &AlertRow) -> String {
    format!("{public_url}/v1/alerts/{}", alert.id)
}

fn evidence(alert: &AlertRow) -> Vec<String> {
    serde_json::from_str(&alert.evidence).unwrap_or_default()
}

/// Alertmanager's postable alerts.
fn alertmanager(alerts: &[&AlertRow], public_url: &str, now: i64) -> Value {
    Value::Array(
        alerts
            .iter()
            .map(|alert| {
                let mut labels = super::labels(alert);
                labels.insert("ward_rule".into(), alert.rule.clone());
                let ends = alert.resolved_ms.unwrap_or(now + ALERTMANAGER_HOLD_MS);
                json!({
                    "labels": labels,
                    "annotations": {
                        "summary": alert.summary,
                        "description": alert.explanation,
                        "evidence": evidence(alert).join(" "),
                    },
                    "startsAt": rfc3339(alert.started_ms),
                    "endsAt": rfc3339(ends),
                    "generatorURL": link(public_url, alert),
                })
            })
            .collect(),
    )
}

/// One alert as the API and Ward's own payloads show it.
pub fn view(alert: &AlertRow, public_url: &str) -> ward_api::AlertView {
    ward_api::AlertView {
        id: alert.id,
        status: if alert.resolved_ms.is_some() {
            "resolved"
        } else {
            "firing"
        }
        .to_owned(),
        rule: alert.rule.clone(),
        severity: alert.severity.clone(),
        tenant: alert.tenant_id.clone(),
        subject_label: alert.subject_label.clone(),
        subject: alert.subject.clone(),
        summary: alert.summary.clone(),
        explanation: alert.explanation.clone(),
        value: alert.value,
        threshold: alert.threshold,
        evidence: evidence(alert),
        started_at: rfc3339(alert.started_ms),
        resolved_at: alert.resolved_ms.map(rfc3339),
        silenced_by: alert.silenced_by.clone(),
        fingerprint: alert.fingerprint.clone(),
        url: link(public_url, alert),
    }
}

fn webhook(group_key: &str, transition: &str, alerts: &[&AlertRow], public_url: &str) -> Value {
    json!({
        "version": "1",
        "group_key": group_key,
        "status": if transition == "fired" { "firing" } else { "resolved" },
        "alerts": alerts.iter().map(|alert| view(alert, public_url)).collect::<Vec<_>>(),
    })
}

fn slack(transition: &str, alerts: &[&AlertRow], public_url: &str) -> Value {
    let status = if transition == "fired" {
        "FIRING"
    } else {
        "RESOLVED"
    };
    let lines: Vec<String> = alerts
        .iter()
        .map(|alert| {
            format!(
                "[{}] {status} {} ({}): {} <{}|details>",
                alert.severity.to_uppercase(),
                slack_escape(&alert.rule),
                slack_escape(&alert.tenant_id),
                slack_escape(&alert.explanation),
                link(public_url, alert)
            )
        })
        .collect();
    json!({ "text": lines.join("\n") })
}

/// Text Slack shows as written: its control sequences (`<!channel>`,
/// `<url|label>`) start with `<`, and `&` escapes; a path or name an agent
/// chose must not become a mention or a disguised link.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn pagerduty(routing_key: &str, transition: &str, alert: &AlertRow, public_url: &str) -> Value {
    let severity = match alert.severity.as_str() {
        "high" => "critical",
        "medium" => "warning",
        _ => "info",
    };
    let summary: String = format!("{}: {}", alert.rule, alert.explanation)
        .chars()
        .take(1024)
        .collect();
    json!({
        "routing_key": routing_key,
        "event_action": if transition == "fired" { "trigger" } else { "resolve" },
        "dedup_key": alert.fingerprint,
        "payload": {
            "summary": summary,
            "source": format!("ward/{}", alert.tenant_id),
            "severity": severity,
            "timestamp": rfc3339(alert.started_ms),
            "component": alert.subject,
            "class": alert.rule,
            "custom_details": view(alert, public_url),
        },
        "links": [{ "href": link(public_url, alert), "text": "Ward alert" }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_the_timestamp_and_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let signature = sign("Jefe", 0, "what do ya want for nothing?");
        assert_ne!(signature, "");
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert!(
            hmac::verify(
                &key,
                b"0.what do ya want for nothing?",
                &(0..signature.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&signature[i..i + 2], 16).unwrap_or(0))
                    .collect::<Vec<_>>()
            )
            .is_ok()
        );
        assert_eq!(sign("Jefe", 1, "x"), sign("Jefe", 1, "x"), "deterministic");
        assert_ne!(sign("Jefe", 1, "x"), sign("Jefe", 2, "x"));
    }

    #[test]
    fn slack_text_cannot_mention_or_link() {
        assert_eq!(
            slack_escape("/home/a/.ssh/<!channel> & <https://x|y>"),
            "/home/a/.ssh/&lt;!channel&gt; &amp; &lt;https://x|y&gt;"
        );
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff_ms(1, 0), 1000);
        assert_eq!(backoff_ms(1, 3), 8000);
        assert_eq!(backoff_ms(1, 30), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(300, 1), MAX_BACKOFF_MS);
    }

    #[test]
    fn the_alertmanager_path_is_appended_to_the_base() {
        let url = |text: &str| {
            alertmanager_url(&reqwest::Url::parse(text).unwrap_or_else(|_| unreachable!()))
        };
        assert_eq!(
            url("http://127.0.0.1:9093").as_str(),
            "http://127.0.0.1:9093/api/v2/alerts"
        );
        assert_eq!(url("http://h/am/").as_str(), "http://h/am/api/v2/alerts");
    }
}
