//! The per-agent series of the control plane's `/metrics`, black-box,
//! against a real `ward serve`: health gauges read from each agent's latest
//! heartbeat at every scrape, the signal counters of shipped events, the
//! tenant scoping of both, and the whole page linted by `promtool`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use serde_json::{Value, json};
use ward_api::{EventBatch, Heartbeat};

/// What a device reports in a heartbeat.
fn report() -> Heartbeat {
    Heartbeat {
        version: "1.5.0".into(),
        uptime_secs: 42,
        os: "macos 15.2".into(),
        health: "ok".into(),
        problems: Vec::new(),
        mode: "normal".into(),
        spool_depth: 3,
        spool_bytes: 4096,
        spool_dropped: 2,
        acks: Vec::new(),
    }
}

/// A shipped event of `agent` in the checklist's log schema.
fn event(agent: &Agent, seq: u64, feature: &str, action: &str, result: &str) -> Value {
    json!({
        "seq": seq,
        "ts": "2026-03-01T10:00:00.000Z",
        "correlation_id": format!("corr_{seq}"),
        "agent_id": agent.id,
        "user_id": "alice@example.com",
        "device_id": agent.key.public_jwk().thumbprint(),
        "class": "audit",
        "feature": feature,
        "action": action,
        "target": format!("/home/alice/projects/{seq}"),
        "result": result,
        "duration_ms": 3,
        "sampling": 1.0,
    })
}

/// Ships `events` of `agent` through the typed client the device's shipper
/// uses (DPoP proof by its key); returns the number newly stored.
async fn ship(server: &Server, agent: &Agent, events: Vec<Value>) -> u64 {
    let client = ward_client::Client::new(&server.url, None).unwrap();
    let batch: EventBatch =
        serde_json::from_value(json!({"agent_id": agent.id, "events": events})).unwrap();
    client.ship_events(&agent.key, &batch).await.unwrap().stored
}

/// Sends a heartbeat of `agent` through the typed client.
async fn heartbeat(server: &Server, agent: &Agent) {
    let client = ward_client::Client::new(&server.url, None).unwrap();
    client
        .heartbeat(&agent.key, &agent.id, &report())
        .await
        .unwrap();
}

/// A tenant API token with `role`, made by the bootstrap token.
async fn api_token(server: &Server, tenant_name: &str, role: &str) -> String {
    let (status, body) = server
        .post(
            &server.bootstrap,
            "/v1/api-tokens",
            json!({"tenant": tenant_name, "role": role}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// The `/metrics` page as `token` sees it.
async fn scrape(server: &Server, token: &str) -> String {
    let response = server
        .request(reqwest::Method::GET, "/metrics")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of the one sample of `series` (name and labels, exactly as
/// rendered) on `page`, if there is one.
fn sample(page: &str, series: &str) -> Option<String> {
    let prefix = format!("{series} ");
    let mut found = page.lines().filter_map(|line| line.strip_prefix(&prefix));
    let value = found.next().map(str::to_owned);
    assert!(found.next().is_none(), "{series} twice:\n{page}");
    value
}

/// `{tenant="…",agent_id="…"}`.
fn agent_labels(tenant: &str, agent: &Agent) -> String {
    format!("tenant=\"{tenant}\",agent_id=\"{}\"", agent.id)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_live_agents_heartbeat_age_interval_version_and_spool_are_scraped_per_tenant() {
    let server = Server::start();
    let (tenant, admin) = server.tenant("acme").await;
    let (other_tenant, other_admin) = server.tenant("globex").await;
    let (status, body) = server
        .put(
            &admin,
            "/v1/agent-policy",
            json!({"heartbeat_interval_secs": 10, "high_risk_after_secs": 60, "read_only_after_secs": 120,
                   "offline_after_secs": 600, "reason": "tighter for the dashboards"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let reporting = server.agent(&admin, "writer").await;
    let silent = server.agent(&admin, "reader").await;
    let quarantined = server.agent(&admin, "reader").await;
    let revoked = server.agent(&admin, "reader").await;
    let foreign = server.agent(&other_admin, "reader").await;
    for agent in [&reporting, &quarantined, &revoked, &foreign] {
        heartbeat(&server, agent).await;
    }
    for (agent, action) in [(&quarantined, "quarantine"), (&revoked, "revoke")] {
        let (status, body) = server
            .post(
                &admin,
                &format!("/v1/agents/{}/{action}", agent.id),
                json!({"reason": "drill"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let stored = ship(
        &server,
        &reporting,
        vec![
            event(&reporting, 1, "read-projects", "files:read", "allow"),
            event(&reporting, 2, "write-projects", "files:write", "deny"),
        ],
    )
    .await;
    assert_eq!(stored, 2);

    let all = scrape(&server, &server.bootstrap).await;
    let r = agent_labels(&tenant, &reporting);
    let age: f64 = sample(&all, &format!("agent_heartbeat_age_seconds{{{r}}}"))
        .expect("the reporting agent's age")
        .parse()
        .unwrap();
    assert!((0.0..10.0).contains(&age), "{age}\n{all}");
    assert_eq!(
        sample(&all, &format!("agent_heartbeat_interval_seconds{{{r}}}")).as_deref(),
        Some("10"),
        "the tenant's policy: {all}"
    );
    assert_eq!(
        sample(
            &all,
            &format!("agent_info{{{r},version=\"1.5.0\",os=\"macos 15.2\"}}")
        )
        .as_deref(),
        Some("1"),
        "the heartbeat's version, not the enrolled 1.4.0: {all}"
    );
    for (name, value) in [
        ("agent_uptime_seconds", "42"),
        ("agent_spool_depth", "3"),
        ("agent_spool_bytes", "4096"),
        ("agent_spool_dropped", "2"),
    ] {
        assert_eq!(
            sample(&all, &format!("{name}{{{r}}}")).as_deref(),
            Some(value),
            "{name}: {all}"
        );
    }

    // Never sent a heartbeat: counted from enrolment, as enrolled, no report.
    let s = agent_labels(&tenant, &silent);
    let age: f64 = sample(&all, &format!("agent_heartbeat_age_seconds{{{s}}}"))
        .expect("age since enrolment")
        .parse()
        .unwrap();
    assert!((0.0..60.0).contains(&age), "{age}");
    assert_eq!(
        sample(
            &all,
            &format!("agent_info{{{s},version=\"1.4.0\",os=\"macos 15.2\"}}")
        )
        .as_deref(),
        Some("1"),
        "{all}"
    );
    for name in [
        "agent_uptime_seconds",
        "agent_spool_depth",
        "agent_spool_bytes",
        "agent_spool_dropped",
    ] {
        assert_eq!(sample(&all, &format!("{name}{{{s}}}")), None, "{all}");
    }

    // Quarantined agents are watched; revoked ones are gone.
    let q = agent_labels(&tenant, &quarantined);
    assert_eq!(
        sample(&all, &format!("agent_spool_depth{{{q}}}")).as_deref(),
        Some("3")
    );
    assert!(
        !all.contains(&format!("agent_id=\"{}\"", revoked.id)),
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "ward_agents{{tenant=\"{tenant}\",state=\"revoked\"}} 1\n"
        )),
        "the existing series stay: {all}"
    );

    // Another tenant's agent is in the instance-wide page, with its own interval.
    let f = agent_labels(&other_tenant, &foreign);
    assert_eq!(
        sample(&all, &format!("agent_heartbeat_interval_seconds{{{f}}}")).as_deref(),
        Some("30"),
        "the default policy: {all}"
    );
    // Every family is described, even before its first sample.
    for name in [
        "agent_actions_total",
        "agent_privileged_failures_total",
        "agent_external_calls_total",
        "agent_file_accesses_total",
        "agent_exports_total",
        "agent_denials_total",
        "ward_metrics_overflow_total",
    ] {
        assert!(
            all.contains(&format!("# TYPE {name} counter\n")),
            "{name}: {all}"
        );
    }
    promtool_check(&all);

    // What Prometheus is given, an auditor token, sees only its tenant.
    let auditor = api_token(&server, "acme", "auditor").await;
    let own = scrape(&server, &auditor).await;
    assert!(
        own.contains(&format!("agent_spool_bytes{{{r}}} 4096\n")),
        "{own}"
    );
    assert!(
        !own.contains(&other_tenant) && !own.contains(&foreign.id),
        "{own}"
    );
    promtool_check(&own);
    let theirs = scrape(&server, &other_admin).await;
    assert!(
        theirs.contains(&foreign.id)
            && !theirs.contains(&reporting.id)
            && !theirs.contains(&tenant),
        "{theirs}"
    );
}

// Counts once the ingest path calls `Counters::signal` for each newly
// stored event; until then this test fails on its first assertion.
#[tokio::test(flavor = "multi_thread")]
async fn a_shipped_denied_write_counts_as_a_privileged_failure_once_for_the_enrolled_owner() {
    let server = Server::start();
    let (tenant, admin) = server.tenant("acme").await;
    let (_, other_admin) = server.tenant("globex").await;
    let agent = server.agent(&admin, "writer").await;
    let denied = vec![event(&agent, 1, "write-projects", "files:write", "deny")];
    assert_eq!(ship(&server, &agent, denied.clone()).await, 1);
    // A resend is a duplicate, not a second event.
    assert_eq!(ship(&server, &agent, denied).await, 0);
    // A device that writes another user into its event cannot make a
    // series of its own: figures go to the agent's enrolled owner.
    let mut forged = event(&agent, 2, "write-projects", "files:write", "deny");
    forged["user_id"] = serde_json::json!("mallory@example.com");
    assert_eq!(ship(&server, &agent, vec![forged]).await, 1);

    let all = scrape(&server, &server.bootstrap).await;
    let labels = format!(
        "tenant=\"{tenant}\",agent_id=\"{}\",user_id=\"alice@example.com\"",
        agent.id
    );
    assert_eq!(
        sample(
            &all,
            &format!("agent_privileged_failures_total{{{labels}}}")
        )
        .as_deref(),
        Some("2"),
        "{all}"
    );
    assert_eq!(
        sample(
            &all,
            &format!("agent_actions_total{{{labels},result=\"deny\"}}")
        )
        .as_deref(),
        Some("2"),
        "{all}"
    );
    assert_eq!(
        sample(&all, &format!("agent_denials_total{{{labels}}}")).as_deref(),
        Some("2"),
        "{all}"
    );
    assert_eq!(
        sample(&all, &format!("agent_file_accesses_total{{{labels}}}")).as_deref(),
        Some("2"),
        "{all}"
    );
    assert!(!all.contains("mallory"), "{all}");
    assert_eq!(
        sample(&all, &format!("agent_external_calls_total{{{labels}}}")),
        None,
        "{all}"
    );
    promtool_check(&all);
    let theirs = scrape(&server, &other_admin).await;
    assert!(!theirs.contains(&agent.id), "{theirs}");
}
