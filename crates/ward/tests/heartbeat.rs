//! Heartbeats, directives and their acknowledgements, the staleness policy,
//! kill-switch reach and the agent's watch stream, against a real
//! `ward serve`: the device proves its key on every call, the answer says
//! what it must do, and an admin can see which devices applied a kill
//! switch and by when the others are in safe mode on their own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn report() -> Value {
    json!({
        "version": "1.5.0", "uptime_secs": 42, "os": "macos 15.2", "health": "ok",
        "problems": [], "mode": "normal", "spool_depth": 3, "spool_bytes": 4096, "spool_dropped": 0,
    })
}

fn heartbeat_path(agent: &Agent) -> String {
    format!("/v1/agents/{}/heartbeat", agent.id)
}

/// Sends a heartbeat of `agent` with a fresh, correct proof.
async fn heartbeat(server: &Server, agent: &Agent, body: Value) -> (u16, Value) {
    let path = heartbeat_path(agent);
    let proof = server.proof(&agent.key, "POST", &path);
    heartbeat_with(server, agent, &proof, body).await
}

async fn heartbeat_with(server: &Server, agent: &Agent, proof: &str, body: Value) -> (u16, Value) {
    send(
        server
            .request(reqwest::Method::POST, &heartbeat_path(agent))
            .header("DPoP", proof)
            .json(&body),
    )
    .await
}

async fn acks(server: &Server, agent: &Agent, acks: Value) -> (u16, Value) {
    let path = format!("/v1/agents/{}/acks", agent.id);
    let proof = server.proof(&agent.key, "POST", &path);
    send(
        server
            .request(reqwest::Method::POST, &path)
            .header("DPoP", proof)
            .json(&json!({"acks": acks})),
    )
    .await
}

fn directives_of_kind<'a>(answer: &'a Value, kind: &str) -> Vec<&'a Value> {
    answer["directives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == kind)
        .collect()
}

async fn engage(
    server: &Server,
    admin: &str,
    scope: &str,
    target: Option<&str>,
    mode: &str,
) -> Value {
    let mut body = json!({"scope": scope, "mode": mode, "reason": "incident 12"});
    if let Some(target) = target {
        body["target"] = json!(target);
    }
    let (status, switch) = server.put(admin, "/v1/killswitch", body).await;
    assert_eq!(status, 200, "{switch}");
    switch
}

#[tokio::test(flavor = "multi_thread")]
async fn the_answer_carries_the_directives_in_force() {
    let server = Server::start();
    let (tenant, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "writer").await;

    let (status, answer) = heartbeat(&server, &agent, report()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "active");
    assert_eq!(answer["tenant"], tenant.as_str());
    assert_eq!(answer["owner"], "alice@example.com");
    assert_eq!(answer["interval_secs"], 30);
    assert_eq!(
        answer["bounds"],
        json!({"heartbeat_interval_secs": 30, "high_risk_after_secs": 90, "read_only_after_secs": 300, "offline_after_secs": 900})
    );
    assert!(answer["feed_seq"].as_i64().unwrap() >= 0);
    let features: Vec<&str> = answer["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(features, ["read-projects", "write-projects"]);
    assert_eq!(answer["features"][1]["consent_required"], true);
    assert_eq!(answer["features"][1]["consented"], false);
    let reconsent = directives_of_kind(&answer, "reconsent");
    assert_eq!(reconsent.len(), 1, "{answer}");
    assert_eq!(reconsent[0]["features"], json!(["write-projects"]));
    assert!(directives_of_kind(&answer, "mode").is_empty());

    // Consent on record (by an admin for the owner): no more re-consent.
    let (status, body) = server
        .consent_for_owner(
            &admin,
            &agent,
            &["files:write:/home/*/projects/**"],
            "granted",
            "asked in person",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, answer) = heartbeat(&server, &agent, report()).await;
    assert!(
        directives_of_kind(&answer, "reconsent").is_empty(),
        "{answer}"
    );
    assert_eq!(answer["features"][1]["consented"], true);

    // An agent kill switch: one `mode` directive, with the switch's id.
    let before = answer["feed_seq"].as_i64().unwrap();
    let switch = engage(&server, &admin, "agent", Some(&agent.id), "read-only").await;
    let (_, answer) = heartbeat(&server, &agent, report()).await;
    let modes = directives_of_kind(&answer, "mode");
    assert_eq!(modes.len(), 1, "{answer}");
    let id = format!(
        "killswitch:agent:{tenant}:{}:{}",
        agent.id,
        switch["set_at"].as_str().unwrap()
    );
    assert_eq!(modes[0]["id"], id.as_str());
    assert_eq!(modes[0]["mode"], "read-only");
    assert!(
        answer["feed_seq"].as_i64().unwrap() > before,
        "the switch is on the feed"
    );

    // A switch on another version does not apply; one on the reported version does.
    engage(&server, &admin, "agent_version", Some("1.4.0"), "offline").await;
    let (_, answer) = heartbeat(&server, &agent, report()).await;
    assert_eq!(
        directives_of_kind(&answer, "mode").len(),
        1,
        "enrolled 1.4.0, runs 1.5.0: {answer}"
    );
    engage(&server, &admin, "agent_version", Some("1.5.0"), "offline").await;
    let (_, answer) = heartbeat(&server, &agent, report()).await;
    assert_eq!(directives_of_kind(&answer, "mode").len(), 2, "{answer}");

    // Quarantine, then uninstall: each a directive, still answered.
    let (status, quarantined) = server
        .post(
            &admin,
            &format!("/v1/agents/{}/quarantine", agent.id),
            json!({"reason": "odd traffic"}),
        )
        .await;
    assert_eq!(status, 200, "{quarantined}");
    let (status, answer) = heartbeat(&server, &agent, report()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "quarantined");
    let quarantine = directives_of_kind(&answer, "quarantine");
    assert_eq!(quarantine.len(), 1, "{answer}");
    assert_eq!(
        quarantine[0]["id"],
        format!(
            "quarantine:{}:{}",
            agent.id,
            quarantined["updated_at"].as_str().unwrap()
        )
        .as_str()
    );
    let (status, uninstalled) = server
        .post(
            &admin,
            &format!("/v1/agents/{}/uninstall", agent.id),
            json!({"reason": "laptop returned"}),
        )
        .await;
    assert_eq!(status, 200, "{uninstalled}");
    let (status, answer) = heartbeat(&server, &agent, report()).await;
    assert_eq!(status, 200, "an uninstalled device must learn it: {answer}");
    assert_eq!(answer["state"], "uninstalled");
    let uninstall = directives_of_kind(&answer, "uninstall");
    assert_eq!(
        uninstall[0]["id"],
        format!(
            "uninstall:{}:{}",
            agent.id,
            uninstalled["updated_at"].as_str().unwrap()
        )
        .as_str()
    );

    // A revoked agent is told it is revoked, and gets no directive to act on.
    let other = server.agent(&admin, "reader").await;
    let (status, _) = server
        .post(
            &admin,
            &format!("/v1/agents/{}/revoke", other.id),
            json!({"reason": "stolen"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, answer) = heartbeat(&server, &other, report()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "revoked");

    // The agent list shows the heartbeat and what the device reported.
    let (_, shown) = server
        .get(&admin, &format!("/v1/agents/{}", agent.id))
        .await;
    assert_eq!(shown["runtime_version"], "1.5.0");
    assert_eq!(shown["mode"], "normal");
    assert!(
        shown["heartbeat_age_secs"].as_u64().unwrap() <= 5,
        "{shown}"
    );
    assert!(shown["last_heartbeat_at"].is_string());
    // Heartbeats stay out of the audit log; refusals do not.
    assert!(
        server
            .audit(&admin, "action=agent.heartbeat")
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn proofs_that_are_not_the_devices_own_fresh_proof_for_this_call_are_refused() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let (_, other_admin) = server.tenant("globex").await;
    let foreign = server.agent(&other_admin, "reader").await;
    let path = heartbeat_path(&agent);

    let forged = server.proof(&ward_auth::Keypair::generate().unwrap(), "POST", &path);
    let (status, body) = heartbeat_with(&server, &agent, &forged, report()).await;
    assert_error(status, &body, 401, "dpop_key_mismatch");

    let proof = server.proof(&agent.key, "POST", &path);
    let (status, body) = heartbeat_with(&server, &agent, &proof, report()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = heartbeat_with(&server, &agent, &proof, report()).await;
    assert_error(status, &body, 401, "dpop_replay");

    let for_tokens = server.proof(&agent.key, "POST", "/v1/tokens");
    let (status, body) = heartbeat_with(&server, &agent, &for_tokens, report()).await;
    assert_eq!(status, 401, "{body}");
    let as_get = server.proof(&agent.key, "GET", &path);
    let (status, body) = heartbeat_with(&server, &agent, &as_get, report()).await;
    assert_eq!(status, 401, "{body}");

    // Another tenant's agent with its own key, for this agent's path.
    let theirs = server.proof(&foreign.key, "POST", &path);
    let (status, body) = heartbeat_with(&server, &agent, &theirs, report()).await;
    assert_error(status, &body, 401, "dpop_key_mismatch");

    let (status, body) = send(
        server
            .request(reqwest::Method::POST, "/v1/agents/agt_nobody/heartbeat")
            .header(
                "DPoP",
                server.proof(&agent.key, "POST", "/v1/agents/agt_nobody/heartbeat"),
            )
            .json(&report()),
    )
    .await;
    assert_error(status, &body, 401, "invalid_client");

    let (status, body) = send(server.request(reqwest::Method::POST, &path).json(&report())).await;
    assert_error(status, &body, 401, "invalid_dpop_proof");
    // The refusals are audited to the agent's tenant.
    assert!(
        !server
            .audit(&admin, "action=agent.heartbeat")
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_reports_are_refused_naming_the_field() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"admin": true}), "admin"),
        (json!({"uptime_secs": "long"}), "uptime_secs"),
        (json!({"spool_depth": -1}), "spool_depth"),
        (json!({"health": "great"}), "health"),
        (json!({"mode": "yolo"}), "mode"),
        (json!({"version": ""}), "version"),
        (json!({"problems": ["a\u{0}b"]}), "problems[0]"),
        (
            json!({"acks": [{"directive": "launch:missiles", "applied_at": "2026-12-02T10:00:00Z"}]}),
            "acks[0].directive",
        ),
        (
            json!({"acks": [{"directive": "killswitch:x", "applied_at": "yesterday"}]}),
            "acks[0].applied_at",
        ),
    ];
    for (change, field) in cases {
        let mut body = report();
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, answer) = heartbeat(&server, &agent, body).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let mut body = report();
    body["problems"] = json!(["x".repeat(70_000)]);
    let (status, answer) = heartbeat(&server, &agent, body).await;
    assert_error(status, &answer, 413, "body_too_large");
    let (status, answer) = acks(&server, &agent, json!([])).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "acks");
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_are_stored_once_and_show_in_the_kill_switch_status() {
    let server = Server::start();
    let (tenant, admin) = server.tenant("acme").await;
    let fast = server.agent(&admin, "reader").await;
    let slow = server.agent(&admin, "reader").await;
    let silent = server.agent(&admin, "reader").await;
    let (status, _) = server
        .put(
            &admin,
            "/v1/agent-policy",
            json!({"heartbeat_interval_secs": 10, "high_risk_after_secs": 60, "read_only_after_secs": 120,
                   "offline_after_secs": 600, "reason": "tighter for the drill"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = heartbeat(&server, &slow, report()).await;
    assert_eq!(status, 200, "{body}");
    let switch = engage(&server, &admin, "tenant", None, "read-only").await;
    let set_at = switch["set_at"].as_str().unwrap();
    let set_ms = chrono_ms(set_at);
    let id = format!("killswitch:tenant:{tenant}:{tenant}:{set_at}");
    let applied = rfc3339(set_ms + 250);
    let ack = json!([{"directive": id, "applied_at": applied}]);
    let (status, body) = acks(&server, &fast, ack.clone()).await;
    assert_eq!((status, body["stored"].as_u64()), (200, Some(1)), "{body}");
    let (status, body) = acks(&server, &fast, ack.clone()).await;
    assert_eq!(
        (status, body["stored"].as_u64()),
        (200, Some(0)),
        "stored once: {body}"
    );
    // The same ack inside a heartbeat is not stored again either.
    let mut with_ack = report();
    with_ack["acks"] = ack;
    let (status, _) = heartbeat(&server, &fast, with_ack).await;
    assert_eq!(status, 200);

    let (status, reach) = server.get(&admin, "/v1/killswitch/status").await;
    assert_eq!(status, 200, "{reach}");
    let entry = &reach["switches"][0];
    assert_eq!(entry["directive"], id.as_str());
    let acknowledged = entry["acknowledged"].as_array().unwrap();
    assert_eq!(acknowledged.len(), 1, "{reach}");
    assert_eq!(acknowledged[0]["agent_id"], fast.id.as_str());
    assert_eq!(acknowledged[0]["time_to_apply_ms"], 250);
    let pending = entry["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 2, "{reach}");
    let slow_entry = pending
        .iter()
        .find(|p| p["agent_id"] == slow.id.as_str())
        .unwrap();
    let contact = chrono_ms(slow_entry["last_contact"].as_str().unwrap());
    assert_eq!(
        chrono_ms(slow_entry["safe_by"].as_str().unwrap()) - contact,
        120_000,
        "read-only switch: last contact + read_only_after"
    );
    let silent_entry = pending
        .iter()
        .find(|p| p["agent_id"] == silent.id.as_str())
        .unwrap();
    assert!(
        silent_entry.get("safe_by").is_none(),
        "never in contact: {silent_entry}"
    );

    // The ack is incident evidence: audited once.
    let audited = server.audit(&admin, "action=directive.ack").await;
    assert_eq!(audited.len(), 1, "{audited:?}");

    let out = server.cli(&admin, &["admin", "killswitch", "status"]);
    let text = stdout(&out);
    assert!(text.contains(&fast.id) && text.contains("250 ms"), "{text}");
    assert!(
        text.contains(&slow.id) && text.contains("pending"),
        "{text}"
    );
    let out = server.cli(&admin, &["admin", "killswitch", "status", "--json"]);
    let parsed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(parsed["switches"][0]["directive"], id.as_str());

    // Another tenant sees neither the switch nor these agents.
    let (_, other) = server.tenant("globex").await;
    let (_, reach) = server.get(&other, "/v1/killswitch/status").await;
    assert_eq!(reach["switches"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_policy_is_checked_and_agents_silent_for_three_intervals_are_stale() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let bad = [
        (json!([0, 90, 300, 900]), "heartbeat_interval_secs"),
        (json!([90, 90, 300, 900]), "high_risk_after_secs"),
        (json!([30, 90, 60, 900]), "read_only_after_secs"),
        (json!([30, 90, 300, 200]), "offline_after_secs"),
        (json!([30, 90, 300, 901]), "offline_after_secs"),
    ];
    for (values, field) in bad {
        let v = values.as_array().unwrap();
        let body = json!({"heartbeat_interval_secs": v[0], "high_risk_after_secs": v[1],
            "read_only_after_secs": v[2], "offline_after_secs": v[3], "reason": "test"});
        let (status, answer) = server.put(&admin, "/v1/agent-policy", body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let (status, answer) = server
        .put(
            &admin,
            "/v1/agent-policy",
            json!({"heartbeat_interval_secs": 1, "high_risk_after_secs": 2,
            "read_only_after_secs": 3, "offline_after_secs": 4}),
        )
        .await;
    assert_error(status, &answer, 400, "invalid_field");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `reason`"),
        "a policy change says why: {answer}"
    );
    let (status, answer) = server.get(&server.bootstrap, "/v1/agent-policy").await;
    assert_error(status, &answer, 403, "tenant_required");

    let agent = server.agent(&admin, "reader").await;
    let out = server.cli(
        &admin,
        &[
            "admin",
            "agent-policy",
            "set",
            "--heartbeat-interval",
            "1",
            "--high-risk-after",
            "2",
            "--read-only-after",
            "3",
            "--offline-after",
            "4",
            "--reason",
            "stale drill",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&admin, &["admin", "agent-policy", "show", "--json"]);
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["heartbeat_interval_secs"], 1);
    let audited = server.audit(&admin, "action=agent_policy.set").await;
    assert_eq!(audited[0]["reason"], "stale drill");

    let (status, answer) = heartbeat(&server, &agent, report()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["interval_secs"], 1);
    let (_, shown) = server
        .get(&admin, &format!("/v1/agents/{}", agent.id))
        .await;
    assert_eq!(shown["stale"], false, "{shown}");
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let (_, list) = server.get(&admin, "/v1/agents").await;
    assert_eq!(list["agents"][0]["stale"], true, "{list}");
    let out = server.cli(&admin, &["admin", "agents", "list"]);
    assert!(stdout(&out).contains("STALE"), "{}", stdout(&out));
    let (status, _) = heartbeat(&server, &agent, report()).await;
    assert_eq!(status, 200);
    let (_, list) = server.get(&admin, "/v1/agents").await;
    assert_eq!(
        list["agents"][0]["stale"], false,
        "a heartbeat ends it: {list}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_watch_stream_delivers_a_kill_switch_and_refuses_other_proofs() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let other = server.agent(&admin, "reader").await;
    let path = format!("/v1/agents/{}/watch", agent.id);

    let (status, body) = send(
        server
            .request(reqwest::Method::GET, &path)
            .header("DPoP", server.proof(&other.key, "GET", &path)),
    )
    .await;
    assert_error(status, &body, 401, "dpop_key_mismatch");
    let other_path = format!("/v1/agents/{}/watch", other.id);
    let (status, body) = send(
        server
            .request(reqwest::Method::GET, &path)
            .header("DPoP", server.proof(&agent.key, "GET", &other_path)),
    )
    .await;
    assert_eq!(status, 401, "a proof for another agent's path: {body}");
    let (status, body) = send(
        server
            .request(reqwest::Method::GET, &path)
            .header("DPoP", server.proof(&agent.key, "POST", &path)),
    )
    .await;
    assert_eq!(status, 401, "a proof for POST: {body}");

    let mut response = server
        .request(reqwest::Method::GET, &path)
        .header("DPoP", server.proof(&agent.key, "GET", &path))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let switch = engage(&server, &admin, "agent", Some(&agent.id), "offline").await;
    let started = Instant::now();
    let mut text = String::new();
    while !text.contains("event: killswitch") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        text.contains(&agent.id) && text.contains(switch["set_at"].as_str().unwrap()),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_agents_heartbeats_and_acks_per_tenant() {
    let server = Server::start();
    let (tenant, admin) = server.tenant("acme").await;
    let (other_tenant, other) = server.tenant("globex").await;
    let agent = server.agent(&admin, "reader").await;
    server.agent(&other, "reader").await;
    let (status, _) = heartbeat(&server, &agent, report()).await;
    assert_eq!(status, 200);
    let ack = json!([{"directive": format!("quarantine:{}:2026-12-02T10:00:00.000Z", agent.id),
                      "applied_at": "2026-12-02T10:00:01.000Z"}]);
    let (status, _) = acks(&server, &agent, ack).await;
    assert_eq!(status, 200);

    let response = server
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "no anonymous scraping");
    let scrape = |token: String| {
        let request = server
            .request(reqwest::Method::GET, "/metrics")
            .bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert!(
                response.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain")
            );
            response.text().await.unwrap()
        }
    };
    let all = scrape(server.bootstrap.clone()).await;
    assert!(
        all.contains(&format!(
            "ward_agents{{tenant=\"{tenant}\",state=\"active\"}} 1"
        )),
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "ward_agents{{tenant=\"{other_tenant}\",state=\"active\"}} 1"
        )),
        "{all}"
    );
    assert!(
        all.contains(&format!("ward_agents_stale{{tenant=\"{tenant}\"}} 0")),
        "{all}"
    );
    assert!(
        all.contains(&format!("ward_heartbeats_total{{tenant=\"{tenant}\"}} 1")),
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "ward_directive_acks_total{{tenant=\"{tenant}\",kind=\"quarantine\"}} 1"
        )),
        "{all}"
    );
    let own = scrape(admin.clone()).await;
    assert!(
        own.contains(&tenant) && !own.contains(&other_tenant),
        "{own}"
    );
    promtool_check(&all);
}

/// Unix milliseconds of an RFC 3339 time the server wrote (UTC, `Z`).
fn chrono_ms(text: &str) -> i64 {
    ward_model::timestamp::parse_rfc3339(text).unwrap()
}

/// RFC 3339 with milliseconds, UTC.
fn rfc3339(ms: i64) -> String {
    ward_model::timestamp::rfc3339(ms)
}
