//! Alerts, black-box: a real `ward serve` with an alert rule file, events
//! shipped signed by device keys, a real Prometheus Alertmanager (Debian's
//! `prometheus-alertmanager`, `$ALERTMANAGER`) receiving the alerts, and a
//! webhook receiver in the test that fails twice before it accepts, so
//! retries, HMAC signatures, the dead-letter list, silences, resolution,
//! `ward alerts export` under `promtool check rules`, and the bad inputs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Agent, Server, assert_error, send, stderr, stdout};
use serde_json::{Value, json};

/// One request the webhook receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    signature: String,
    body: String,
    answered: u16,
}

/// An HTTP receiver that answers 500 to its first `fail` requests, then 200.
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl Hook {
    async fn start(fail: usize) -> Hook {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let seen = got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let seen = seen.clone();
                            async move {
                                let signature = request
                                    .headers()
                                    .get("x-ward-signature")
                                    .map(|v| v.to_str().unwrap().to_owned())
                                    .unwrap_or_default();
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                let mut seen = seen.lock().unwrap();
                                let answered = if seen.len() < fail { 500 } else { 200 };
                                seen.push(Delivery {
                                    signature,
                                    body: String::from_utf8(body.to_vec()).unwrap(),
                                    answered,
                                });
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(answered)
                                        .body(http_body_util::Full::new(bytes::Bytes::from("{}")))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Hook { url, got }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }
}

/// A real Alertmanager on a free loopback port.
struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    async fn start() -> Option<Alertmanager> {
        ward_client::install_tls_provider();
        let binary =
            std::env::var("ALERTMANAGER").unwrap_or_else(|_| "prometheus-alertmanager".into());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: nobody\n  group_wait: 1s\nreceivers:\n  - name: nobody\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!(
                "SKIPPED: Alertmanager not found (set ALERTMANAGER); its delivery not checked"
            );
            return None;
        };
        let manager = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = reqwest::get(format!("{}/-/ready", manager.url)).await
                && response.status().is_success()
            {
                return Some(manager);
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn alerts(&self) -> Vec<Value> {
        let body: Value = reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body.as_array().unwrap().clone()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 100 ms until it returns something, for up to `secs`.
async fn until<T>(secs: u64, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A denied write of `agent`: a failed privileged operation.
fn failure(agent: &Agent, seq: u64) -> Value {
    json!({
        "seq": seq,
        "ts": now_rfc3339(),
        "correlation_id": format!("corr-{}-{seq}", &agent.id[4..10]),
        "agent_id": agent.id,
        "user_id": "alice@example.com",
        "device_id": agent.key.public_jwk().thumbprint(),
        "class": "audit",
        "action": "files:write",
        "target": "/etc/passwd",
        "result": "deny",
        "reason": "no feature covers it",
        "sampling": 1.0,
    })
}

fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    ward_model::timestamp::rfc3339(ms)
}

async fn ship(server: &Server, agent: &Agent, events: Vec<Value>) {
    let proof = server.proof(&agent.key, "POST", "/v1/events");
    let (status, body) = send(
        server
            .request(reqwest::Method::POST, "/v1/events")
            .header("DPoP", proof)
            .json(&json!({"agent_id": agent.id, "events": events})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn alerts(server: &Server, token: &str, query: &str) -> Vec<Value> {
    let (status, body) = server.get(token, &format!("/v1/alerts?{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().unwrap().clone()
}

fn hmac_hex(secret: &str, message: &str) -> String {
    // HMAC-SHA256 (RFC 2104) from SHA-256, independent of the server's code.
    use sha2_for_test::sha256;
    let mut key = secret.as_bytes().to_vec();
    if key.len() > 64 {
        key = sha256(&key).to_vec();
    }
    key.resize(64, 0);
    let inner: Vec<u8> = key
        .iter()
        .map(|b| b ^ 0x36)
        .chain(message.bytes())
        .collect();
    let outer: Vec<u8> = key.iter().map(|b| b ^ 0x5c).chain(sha256(&inner)).collect();
    sha256(&outer).iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 through the `sha256sum` command, so the check shares no code
/// with the server.
mod sha2_for_test {
    use std::io::Write;
    use std::process::{Command, Stdio};

    pub fn sha256(data: &[u8]) -> [u8; 32] {
        let mut child = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        let hex = String::from_utf8(out.stdout).unwrap();
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        bytes
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn privileged_failures_alert_at_the_sixth_reach_alertmanager_and_a_signed_webhook_then_resolve()
 {
    let manager = Alertmanager::start().await;
    let hook = Hook::start(2).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hook-secret");
    std::fs::write(&secret, "s3cret-hmac-key\n").unwrap();
    let manager_url = manager
        .as_ref()
        .map_or("http://127.0.0.1:9".to_owned(), |m| m.url.clone());
    let rules = dir.path().join("alerts.yaml");
    // The default rule's shape with a 12 s window, so it also resolves
    // within the test (the 5 minute default is checked in ward-telemetry).
    std::fs::write(
        &rules,
        format!(
            "version: 1\nrules:\n  - name: privileged-failures\n    severity: high\n    summary: More than 5 failed privileged operations from one agent\n    signal: privileged_failure\n    by: agent\n    window: 12s\n    above: 5\nreceivers:\n  - name: alertmanager\n    type: alertmanager\n    url: {manager_url}\n  - name: security\n    type: webhook\n    url: {}\n    secret_file: {}\n    attempts: 5\n    backoff: 1s\n  - name: unreachable\n    type: webhook\n    url: http://127.0.0.1:9/nothing-listens\n    secret_file: {}\n    attempts: 2\n    backoff: 1s\n",
            hook.url,
            secret.display(),
            secret.display()
        ),
    )
    .unwrap();
    let server = Server::start_with(&["--alerts", rules.to_str().unwrap()]);
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let quiet = server.agent(&admin, "reader").await;

    // Five failures: the rule holds its fire; a denied read is not privileged.
    ship(
        &server,
        &agent,
        (1..=5).map(|seq| failure(&agent, seq)).collect(),
    )
    .await;
    let mut read = failure(&agent, 6);
    read["action"] = json!("files:read");
    ship(&server, &agent, vec![read]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(alerts(&server, &admin, "").await, Vec::<Value>::new());

    // The sixth fires, once.
    ship(&server, &agent, vec![failure(&agent, 7)]).await;
    let firing = alerts(&server, &admin, "").await;
    assert_eq!(firing.len(), 1, "{firing:?}");
    let alert = &firing[0];
    assert_eq!(alert["rule"], "privileged-failures");
    assert_eq!(alert["severity"], "high");
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["subject_label"], "agent_id");
    assert_eq!(alert["subject"], agent.id.as_str());
    assert_eq!(alert["value"], 6.0);
    assert_eq!(
        alert["explanation"],
        format!(
            "6 failed privileged operations from agent `{}` in the last 12s: more than 5",
            agent.id
        )
    );
    assert_eq!(alert["evidence"].as_array().unwrap().len(), 6);
    let id = alert["id"].as_i64().unwrap();

    // Alertmanager shows it with Ward's labels.
    if let Some(manager) = &manager {
        let shown = until(15, "Alertmanager to show the alert", async || {
            manager
                .alerts()
                .await
                .into_iter()
                .find(|a| a["labels"]["alertname"] == "privileged-failures")
        })
        .await;
        assert_eq!(shown["labels"]["agent_id"], agent.id.as_str());
        assert_eq!(shown["labels"]["severity"], "high");
        assert_eq!(shown["status"]["state"], "active");
        assert!(
            shown["annotations"]["description"]
                .as_str()
                .unwrap()
                .contains("6 failed privileged operations")
        );
    }

    // The webhook failed twice, then took it, signed.
    let accepted = until(15, "the webhook to accept the alert", async || {
        hook.deliveries().into_iter().find(|d| d.answered == 200)
    })
    .await;
    assert_eq!(
        hook.deliveries()
            .iter()
            .filter(|d| d.answered == 500)
            .count(),
        2
    );
    let payload: Value = serde_json::from_str(&accepted.body).unwrap();
    assert_eq!(payload["status"], "firing");
    assert_eq!(payload["alerts"][0]["id"], id);
    let (t, v1) = accepted
        .signature
        .split_once(",v1=")
        .map(|(t, v)| (t.trim_start_matches("t=").to_owned(), v.to_owned()))
        .unwrap();
    assert_eq!(
        v1,
        hmac_hex("s3cret-hmac-key", &format!("{t}.{}", accepted.body))
    );

    // The window passes: resolved, and the webhook hears of it.
    let resolved = until(30, "the alert to resolve", async || {
        let (_, alert) = server.get(&admin, &format!("/v1/alerts/{id}")).await;
        (alert["status"] == "resolved").then_some(alert)
    })
    .await;
    assert!(resolved["resolved_at"].is_string());
    assert_eq!(alerts(&server, &admin, "").await, Vec::<Value>::new());
    assert_eq!(alerts(&server, &admin, "state=all").await.len(), 1);
    until(15, "the webhook to hear of the resolution", async || {
        hook.deliveries()
            .iter()
            .any(|d| d.answered == 200 && d.body.contains("\"status\":\"resolved\""))
            .then_some(())
    })
    .await;
    if let Some(manager) = &manager {
        until(15, "Alertmanager to see the resolution", async || {
            manager
                .alerts()
                .await
                .into_iter()
                .all(|a| a["labels"]["alertname"] != "privileged-failures")
                .then_some(())
        })
        .await;
    }

    // The unreachable receiver gave up after two attempts: the dead-letter list.
    let failed = until(20, "the dead-letter list", async || {
        let (_, body) = server.get(&admin, "/v1/alerts/failed").await;
        let list = body["notifications"].as_array().unwrap().clone();
        (list.len() == 2).then_some(list)
    })
    .await;
    for notification in &failed {
        assert_eq!(notification["receiver"], "unreachable");
        assert_eq!(notification["attempts"], 2);
        assert_eq!(notification["alert"]["id"], id);
        assert!(
            notification["last_error"]
                .as_str()
                .unwrap()
                .contains("unreachable"),
            "{notification}"
        );
    }
    let shown = server.cli(&admin, &["alerts", "failed"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert!(stdout(&shown).contains("unreachable"), "{}", stdout(&shown));
    let retry_id = failed[0]["id"].as_i64().unwrap().to_string();
    let retried = server.cli(&admin, &["alerts", "retry", &retry_id]);
    assert!(retried.status.success(), "{}", stderr(&retried));
    let (_, body) = server.get(&admin, "/v1/alerts/failed").await;
    assert_eq!(body["notifications"].as_array().unwrap().len(), 1);
    let again = server.cli(&admin, &["alerts", "retry", &retry_id]);
    assert_eq!(again.status.code(), Some(1), "only a failed one is retried");

    // Firing, resolving and the retry are in the audit log.
    let audit = server.audit(&admin, "").await;
    for action in ["alert.fire", "alert.resolve", "alert.retry"] {
        assert!(
            audit.iter().any(|e| e["action"] == action),
            "{action} not audited"
        );
    }

    // A silenced agent's alert is recorded but nobody is told.
    let silenced = server.cli(
        &admin,
        &[
            "alerts",
            "silence",
            "--match",
            &format!("agent_id={}", quiet.id),
            "--for",
            "1h",
            "--comment",
            "reimaging this laptop",
        ],
    );
    assert!(silenced.status.success(), "{}", stderr(&silenced));
    let before = hook.deliveries().len();
    ship(
        &server,
        &quiet,
        (1..=6).map(|seq| failure(&quiet, seq)).collect(),
    )
    .await;
    let firing = alerts(&server, &admin, "").await;
    assert_eq!(firing.len(), 1);
    assert!(
        firing[0]["silenced_by"]
            .as_str()
            .unwrap()
            .starts_with("sil_")
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        hook.deliveries().len(),
        before,
        "a silenced alert was notified"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missed_heartbeat_alerts_after_three_intervals_and_resolves_on_the_next() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let (status, body) = server
        .put(
            &admin,
            "/v1/agent-policy",
            json!({"heartbeat_interval_secs": 1, "high_risk_after_secs": 2, "read_only_after_secs": 3,
                   "offline_after_secs": 4, "reason": "alert drill"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let agent = server.agent(&admin, "reader").await;
    let alert = until(20, "the heartbeat alert", async || {
        alerts(&server, &admin, "")
            .await
            .into_iter()
            .find(|a| a["rule"] == "heartbeat-missed")
    })
    .await;
    assert_eq!(alert["severity"], "low");
    assert_eq!(alert["subject"], agent.id.as_str());
    assert!(
        alert["explanation"]
            .as_str()
            .unwrap()
            .starts_with(&format!("no heartbeat from agent `{}` for ", agent.id)),
        "{alert}"
    );
    // The device comes back and keeps its interval: the alert resolves.
    let report = json!({"version": "1.0.0", "uptime_secs": 5, "os": "linux", "health": "ok",
        "mode": "normal", "spool_depth": 0, "spool_bytes": 0, "spool_dropped": 0});
    let id = alert["id"].as_i64().unwrap();
    until(15, "the heartbeat alert to resolve", async || {
        let path = format!("/v1/agents/{}/heartbeat", agent.id);
        let proof = server.proof(&agent.key, "POST", &path);
        let (status, body) = send(
            server
                .request(reqwest::Method::POST, &path)
                .header("DPoP", proof)
                .json(&report),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (_, alert) = server.get(&admin, &format!("/v1/alerts/{id}")).await;
        (alert["status"] == "resolved").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_stay_in_their_tenant_and_bad_silences_are_refused() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let (_, other) = server.tenant("globex").await;
    let agent = server.agent(&admin, "reader").await;
    ship(
        &server,
        &agent,
        (1..=6).map(|seq| failure(&agent, seq)).collect(),
    )
    .await;
    let firing = alerts(&server, &admin, "").await;
    assert_eq!(firing.len(), 1);
    let id = firing[0]["id"].as_i64().unwrap();
    assert_eq!(
        alerts(&server, &other, "state=all").await,
        Vec::<Value>::new()
    );
    let (status, body) = server.get(&other, &format!("/v1/alerts/{id}")).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server
        .post(&other, &format!("/v1/alerts/failed/{id}/retry"), json!({}))
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.get(&server.bootstrap, "/v1/alerts").await;
    assert_error(status, &body, 403, "tenant_required");
    let (status, body) = server.get(&admin, "/v1/alerts?state=maybe").await;
    assert_error(status, &body, 400, "invalid_field");
    assert_eq!(body["error"]["field"], "state");

    for (silence, field) in [
        (
            json!({"matchers": {}, "duration_secs": 60, "comment": "x"}),
            "matchers",
        ),
        (
            json!({"matchers": {"tenant": "globex"}, "duration_secs": 60, "comment": "x"}),
            "matchers",
        ),
        (
            json!({"matchers": {"agent_id": "a"}, "duration_secs": 0, "comment": "x"}),
            "duration_secs",
        ),
        (
            json!({"matchers": {"agent_id": "a"}, "duration_secs": 60, "comment": " "}),
            "comment",
        ),
    ] {
        let (status, body) = server.post(&admin, "/v1/silences", silence.clone()).await;
        assert_error(status, &body, 400, "invalid_field");
        assert_eq!(body["error"]["field"], field, "{silence}");
    }
    let (status, body) = server
        .post(
            &admin,
            "/v1/silences",
            json!({"matchers": {"agent_id": "a"}, "duration_secs": 60, "comment": "x", "tenant": "globex"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, created) = server
        .post(
            &admin,
            "/v1/silences",
            json!({"matchers": {"alertname": "heartbeat-missed"}, "duration_secs": 60, "comment": "drill"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let sid = created["id"].as_str().unwrap();
    let (_, listed) = server.get(&other, "/v1/silences").await;
    assert_eq!(listed["silences"], json!([]));
    let (status, body) = send(
        server
            .request(reqwest::Method::DELETE, &format!("/v1/silences/{sid}"))
            .bearer_auth(&other),
    )
    .await;
    assert_error(status, &body, 404, "not_found");
    let ended = server.cli(&admin, &["alerts", "unsilence", sid]);
    assert!(ended.status.success(), "{}", stderr(&ended));
    let (_, listed) = server.get(&admin, "/v1/silences").await;
    assert_eq!(listed["silences"], json!([]));
}

#[test]
fn the_example_rules_check_and_export_for_prometheus() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/alerts.yaml");
    let checked = Command::new(common::ward_bin())
        .args(["alerts", "check"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", stderr(&checked));
    assert!(
        stdout(&checked).ends_with("5 rules, 2 receivers\n"),
        "{}",
        stdout(&checked)
    );
    let out = Command::new(common::ward_bin())
        .args(["alerts", "export", "--format", "prometheus", "--rules"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("- alert: mass_export"), "{text}");
    assert!(
        text.contains("# `sensitive-path` counts only some paths"),
        "{text}"
    );
    promtool_rules(&text);
}

/// `promtool check rules` on a rule file's text (SKIPPED without promtool).
fn promtool_rules(text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ward-rules.yml");
    std::fs::write(&file, text).unwrap();
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    match Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
    {
        Ok(checked) => assert!(
            checked.status.success(),
            "promtool: {}{}",
            stdout(&checked),
            stderr(&checked)
        ),
        Err(_) => eprintln!("SKIPPED: promtool not found (set PROMTOOL); export not linted"),
    }
}

#[test]
fn exported_rules_pass_promtool_and_bad_rule_files_name_line_and_column() {
    let out = Command::new(common::ward_bin())
        .args(["alerts", "export", "--format", "prometheus"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("sum by(agent_id) (increase(agent_privileged_failures_total[5m])) > 5"),
        "{text}"
    );
    promtool_rules(&text);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("alerts.yaml");
    std::fs::write(
        &bad,
        "version: 1\nrules:\n  - name: surge\n    severity: high\n    signal: external_calls\n    by: user\n    window: 15m\n    above: 10\n",
    )
    .unwrap();
    let checked = Command::new(common::ward_bin())
        .args(["alerts", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(checked.status.code(), Some(1));
    let message = stderr(&checked);
    assert!(
        message.contains(&format!(
            "{}:5:13: unknown signal `external_calls`",
            bad.display()
        )),
        "{message}"
    );
    let served = Command::new(common::ward_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--alerts"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(served.status.code(), Some(1));
    assert!(
        stderr(&served).contains("unknown signal"),
        "{}",
        stderr(&served)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_remembers_the_failures_in_the_window_and_raises_no_alert_twice() {
    let mut server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    ship(
        &server,
        &agent,
        (1..=3).map(|seq| failure(&agent, seq)).collect(),
    )
    .await;
    // SIGKILL: the three failures are on disk, the engine's memory is gone.
    server.kill_and_restart();
    ship(
        &server,
        &agent,
        (4..=6).map(|seq| failure(&agent, seq)).collect(),
    )
    .await;
    let firing = alerts(&server, &admin, "").await;
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0]["value"], 6.0);
    assert_eq!(firing[0]["evidence"].as_array().unwrap().len(), 6);
    // Restarted while it fires: restored, replayed, not raised again.
    server.kill_and_restart();
    ship(&server, &agent, vec![failure(&agent, 7)]).await;
    let all = alerts(&server, &admin, "state=all").await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["status"], "firing");
    // The seventh raises the stored figure on the next tick.
    until(10, "the alert's value to reach 7", async || {
        let firing = alerts(&server, &admin, "").await;
        (firing[0]["value"] == 7.0).then_some(())
    })
    .await;
    let fired = server
        .audit(&admin, "")
        .await
        .into_iter()
        .filter(|e| e["action"] == "alert.fire")
        .count();
    assert_eq!(fired, 1);
}

/// A web fetch of `agent` at `ts_ms`.
fn fetch(agent: &Agent, seq: u64, ts_ms: i64) -> Value {
    json!({
        "seq": seq,
        "ts": ward_model::timestamp::rfc3339(ts_ms),
        "correlation_id": format!("corr-fetch-{seq}"),
        "agent_id": agent.id,
        "user_id": "alice@example.com",
        "device_id": agent.key.public_jwk().thumbprint(),
        "class": "audit",
        "action": "http:get",
        "target": "https://api.example.com/v1/items",
        "result": "allow",
        "sampling": 1.0,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_surge_of_external_calls_is_judged_against_the_users_own_baseline() {
    let mut server = Server::start();
    let (tenant, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    // Eight hours of history ending half an hour ago: 10 calls per 15 minutes.
    let now = common::now() * 1000;
    let slot = 900_000;
    let start = (now / slot - 34) * slot;
    let history: Vec<Value> = (0..320u64)
        .map(|i| {
            fetch(
                &agent,
                i + 1,
                start + (i / 10) as i64 * slot + (i % 10) as i64 * 1000,
            )
        })
        .collect();
    ship(&server, &agent, history).await;
    // Baselines are recomputed at start (and every minute).
    server.kill_and_restart();
    let metrics = {
        let (status, _) = server.get(&admin, "/v1/alerts").await;
        assert_eq!(status, 200);
        server
            .request(reqwest::Method::GET, "/metrics")
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(
        metrics.contains(&format!(
            "ward_alert_baseline{{rule=\"external-call-surge\",tenant=\"{tenant}\",user_id=\"alice@example.com\"}} 10\n"
        )),
        "{metrics}"
    );
    common::promtool_check(&metrics);

    // 30 calls now are 3x the baseline: not above it.
    ship(
        &server,
        &agent,
        (0..30)
            .map(|i| fetch(&agent, 1000 + i, now + i as i64))
            .collect(),
    )
    .await;
    assert_eq!(alerts(&server, &admin, "").await, Vec::<Value>::new());
    ship(&server, &agent, vec![fetch(&agent, 2000, now + 40)]).await;
    let firing = alerts(&server, &admin, "").await;
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0]["rule"], "external-call-surge");
    assert_eq!(firing[0]["severity"], "medium");
    assert_eq!(firing[0]["subject"], "alice@example.com");
    assert_eq!(firing[0]["threshold"], 30.0);
    let explanation = firing[0]["explanation"].as_str().unwrap();
    assert!(
        explanation.starts_with("31 external API calls from user `alice@example.com` in the last 15m: 3.1x the baseline of 10 per 15m (median of the last "),
        "{explanation}"
    );

    // `ward baselines show` says the same, per subject and signal.
    let shown = server.cli(&admin, &["baselines", "show", &agent.id, "--json"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let shown: Value = serde_json::from_str(&stdout(&shown)).unwrap();
    let user_calls = shown["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == "user" && s["signal"] == "external_call")
        .unwrap()
        .clone();
    assert_eq!(user_calls["per_15m"], 10.0);
    assert_eq!(user_calls["this_slot"], 31);
    assert_eq!(user_calls["last_24h"], 351);
    let (status, body) = server.get(&admin, "/v1/agents/agt_nope/baseline").await;
    assert_error(status, &body, 404, "not_found");
    let (_, other) = server.tenant("globex").await;
    let (status, body) = server
        .get(&other, &format!("/v1/agents/{}/baseline", agent.id))
        .await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_to_a_sensitive_path_alerts_once_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("alerts.yaml");
    std::fs::write(
        &rules,
        "version: 1\nrules:\n  - name: sensitive-path\n    severity: high\n    signal: file_access\n    by: agent\n    window: 15m\n    above: 0\n    paths: [\"/home/*/.ssh/**\"]\n",
    )
    .unwrap();
    let server = Server::start_with(&["--alerts", rules.to_str().unwrap()]);
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let mut read = failure(&agent, 1);
    read["action"] = json!("files:read");
    read["target"] = json!("/home/alice/projects/notes.md");
    read["result"] = json!("allow");
    ship(&server, &agent, vec![read.clone()]).await;
    assert_eq!(alerts(&server, &admin, "").await, Vec::<Value>::new());
    read["seq"] = json!(2);
    read["target"] = json!("/home/alice/.ssh/id_ed25519");
    ship(&server, &agent, vec![read.clone()]).await;
    read["seq"] = json!(3);
    ship(&server, &agent, vec![read]).await;
    let firing = alerts(&server, &admin, "state=all").await;
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert!(
        firing[0]["explanation"]
            .as_str()
            .unwrap()
            .ends_with("latest: files:read /home/alice/.ssh/id_ed25519"),
        "{}",
        firing[0]["explanation"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn events_dated_in_the_future_count_when_received_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("alerts.yaml");
    std::fs::write(
        &rules,
        "version: 1\nrules:\n  - name: privileged-failures\n    severity: high\n    signal: privileged_failure\n    by: agent\n    window: 3s\n    above: 5\n",
    )
    .unwrap();
    let mut server = Server::start_with(&["--alerts", rules.to_str().unwrap()]);
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let dated = |seq: u64| {
        let mut event = failure(&agent, seq);
        event["ts"] = json!("2100-01-01T00:00:00.000Z");
        event
    };
    // Three now and three four seconds later: never six in three seconds.
    ship(&server, &agent, (1..=3).map(dated).collect()).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    ship(&server, &agent, (4..=6).map(dated).collect()).await;
    assert_eq!(
        alerts(&server, &admin, "state=all").await,
        Vec::<Value>::new()
    );
    // A restart replays them by when they arrived, not by their date, so
    // they are not all counted at once.
    server.kill_and_restart();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        alerts(&server, &admin, "state=all").await,
        Vec::<Value>::new()
    );
}
