//! Shipped device events, black-box: `POST /v1/events` signed by the
//! device key, `GET /v1/events` and `ward events list` against a real
//! `ward serve` on real SQLite.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::{Agent, Server, assert_error, send, stderr, stdout};
use serde_json::{Value, json};

/// An event of `agent` in the checklist's log schema, changed by `with`.
fn event(agent: &Agent, seq: u64, with: Value) -> Value {
    let mut event = json!({
        "seq": seq,
        "ts": format!("2026-03-01T10:00:{:02}.000Z", seq % 60),
        "correlation_id": format!("corr_{seq}"),
        "agent_id": agent.id,
        "user_id": "alice@example.com",
        "device_id": agent.key.public_jwk().thumbprint(),
        "class": "audit",
        "feature": "read-projects",
        "action": "files:read",
        "target": format!("/home/alice/projects/{seq}"),
        "result": "allow",
        "duration_ms": 3,
        "sampling": 1.0,
    });
    for (key, value) in with.as_object().unwrap() {
        if value.is_null() {
            event.as_object_mut().unwrap().remove(key);
        } else {
            event[key] = value.clone();
        }
    }
    event
}

/// Ships `events` as `agent` with `proof`; returns status and body.
async fn ship_with(
    server: &Server,
    agent_id: &str,
    proof: &str,
    events: Vec<Value>,
) -> (u16, Value) {
    let body = json!({"agent_id": agent_id, "events": events});
    send(
        server
            .request(reqwest::Method::POST, "/v1/events")
            .header("DPoP", proof)
            .json(&body),
    )
    .await
}

/// Ships `events` as `agent` with a fresh, correct proof.
async fn ship(server: &Server, agent: &Agent, events: Vec<Value>) -> (u16, Value) {
    let proof = server.proof(&agent.key, "POST", "/v1/events");
    ship_with(server, &agent.id, &proof, events).await
}

/// Every event `admin` sees with `query`, following the cursors.
async fn list(server: &Server, admin: &str, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = server
            .get(admin, &format!("/v1/events?{query}{cursor}"))
            .await;
        assert_eq!(status, 200, "{page}");
        all.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return all,
        }
    }
}

/// `(agent_id, seq)` of listed events, in order.
fn ids(events: &[Value]) -> Vec<(String, u64)> {
    events
        .iter()
        .map(|e| {
            (
                e["agent_id"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shipped_batch_is_listed_back_with_each_filter_through_the_api_and_the_cli() {
    let server = Server::start();
    let (tenant, admin) = server.tenant("acme").await;
    let alice = server.agent(&admin, "reader").await;
    let bob = server.agent(&admin, "reader").await;
    let batch = vec![
        event(&alice, 1, json!({})),
        event(
            &alice,
            2,
            json!({"result": "deny", "reason": "outside the project", "target": "/etc/shadow"}),
        ),
        event(
            &alice,
            3,
            json!({"class": "telemetry", "sampling": 0.25, "feature": null, "action": "heartbeat", "duration_ms": null}),
        ),
        event(
            &alice,
            4,
            json!({"correlation_id": "corr_shared", "feature": "run-git", "action": "exec", "target": "git status\n--short"}),
        ),
    ];
    let (status, accepted) = ship(&server, &alice, batch.clone()).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted, json!({"stored": 4, "duplicates": 0}));

    // The typed client the device's shipper uses.
    let client = ward_client::Client::new(&server.url, None).unwrap();
    let typed: ward_api::EventBatch = serde_json::from_value(json!({
        "agent_id": bob.id,
        "events": [event(&bob, 1, json!({"correlation_id": "corr_shared", "result": "error"}))],
    }))
    .unwrap();
    let accepted = client.ship_events(&bob.key, &typed).await.unwrap();
    assert_eq!((accepted.stored, accepted.duplicates), (1, 0));

    let all = list(&server, &admin, "").await;
    assert_eq!(
        ids(&all),
        [
            (alice.id.clone(), 1),
            (alice.id.clone(), 2),
            (alice.id.clone(), 3),
            (alice.id.clone(), 4),
            (bob.id.clone(), 1)
        ],
        "oldest received first"
    );
    let stored = &all[1];
    for (key, value) in batch[1].as_object().unwrap() {
        assert_eq!(&stored[key], value, "`{key}` is stored as sent");
    }
    assert_eq!(stored["tenant"], tenant);
    assert!(stored["received_at"].as_str().unwrap().ends_with('Z'));
    assert!(all[2].get("feature").is_none() && all[2].get("duration_ms").is_none());
    assert_eq!(all[2]["sampling"], 0.25);

    // The typed client reads them back.
    let admin_client = ward_client::Client::new(&server.url, Some(admin.clone())).unwrap();
    let page = admin_client.events(&[("agent", &bob.id)]).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].event.result, "error");

    for (query, expected) in [
        (format!("agent={}", alice.id), vec![1, 2, 3, 4]),
        ("correlation_id=corr_shared".to_owned(), vec![4, 1]),
        ("feature=read-projects".to_owned(), vec![1, 2, 1]),
        ("result=deny".to_owned(), vec![2]),
        ("class=telemetry".to_owned(), vec![3]),
        ("class=audit&result=allow".to_owned(), vec![1, 4]),
        ("since=2026-03-01T10:00:02Z".to_owned(), vec![2, 3, 4]),
        ("until=2026-03-01T10:00:02Z".to_owned(), vec![1, 1]),
        (
            "since=2026-03-01T11:00:02%2B01:00&until=2026-03-01T10:00:04Z".to_owned(),
            vec![2, 3],
        ),
    ] {
        assert_eq!(
            seqs(&list(&server, &admin, &query).await),
            expected,
            "{query}"
        );
    }

    // Pages of two: the cursor walks through all of them once.
    let (status, first) = server.get(&admin, "/v1/events?limit=2").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(seqs(first["events"].as_array().unwrap()), [1, 2]);
    assert_eq!(list(&server, &admin, "limit=2").await, all);
    let (_, last) = server.get(&admin, "/v1/events?limit=5").await;
    assert!(last.get("next_cursor").is_none(), "{last}");

    // The command line: a table, JSON, each filter, --limit and --all.
    let out = server.cli(&admin, &["events", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "TS\tAGENT\tFEATURE\tACTION\tTARGET\tRESULT");
    assert_eq!(
        lines[2],
        format!(
            "2026-03-01T10:00:02.000Z\t{}\tread-projects\tfiles:read\t/etc/shadow\tdeny",
            alice.id
        )
    );
    assert_eq!(
        lines[3],
        format!(
            "2026-03-01T10:00:03.000Z\t{}\t-\theartbeat\t/home/alice/projects/3\tallow",
            alice.id
        )
    );
    assert_eq!(
        lines[4],
        format!(
            "2026-03-01T10:00:04.000Z\t{}\trun-git\texec\tgit status\\n--short\tallow",
            alice.id
        ),
        "control characters are escaped, not printed"
    );
    assert_eq!(lines.len(), 6);
    let cli_json = |args: &[&str]| -> Vec<Value> {
        let mut full = vec!["events", "list", "--json"];
        full.extend_from_slice(args);
        let out = server.cli(&admin, &full);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    assert_eq!(cli_json(&[]), all);
    for (args, expected) in [
        (vec!["--agent", bob.id.as_str()], vec![1]),
        (vec!["--correlation-id", "corr_shared"], vec![4, 1]),
        (vec!["--feature", "read-projects"], vec![1, 2, 1]),
        (vec!["--result", "deny"], vec![2]),
        (vec!["--class", "telemetry"], vec![3]),
        (vec!["--since", "2026-03-01T10:00:03Z"], vec![3, 4]),
        (vec!["--until", "2026-03-01T10:00:02Z"], vec![1, 1]),
        (vec!["--limit", "3"], vec![1, 2, 3]),
        (vec!["--all"], vec![1, 2, 3, 4, 1]),
    ] {
        assert_eq!(seqs(&cli_json(&args)), expected, "{args:?}");
    }
    let out = server.cli(&admin, &["events", "list", "--class", "debug"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a class clap knows nothing of is a usage error"
    );
    let out = server.cli(&admin, &["events", "list", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("field `since`"), "{}", stderr(&out));
    let out = server.cli(&admin, &["events", "list", "--result", "nothing-like-this"]);
    assert_eq!(stdout(&out).trim(), "no events match");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resent_batch_is_all_duplicates_and_nothing_is_doubled() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let batch: Vec<Value> = (1..=3).map(|seq| event(&agent, seq, json!({}))).collect();
    let (status, body) = ship(&server, &agent, batch.clone()).await;
    assert_eq!((status, body), (200, json!({"stored": 3, "duplicates": 0})));
    let (status, body) = ship(&server, &agent, batch).await;
    assert_eq!(
        (status, body),
        (200, json!({"stored": 0, "duplicates": 3})),
        "the device retried after a crash"
    );
    let overlap = vec![
        event(&agent, 3, json!({})),
        event(&agent, 4, json!({})),
        event(&agent, 4, json!({})),
    ];
    let (status, body) = ship(&server, &agent, overlap).await;
    assert_eq!((status, body), (200, json!({"stored": 1, "duplicates": 2})));
    assert_eq!(seqs(&list(&server, &admin, "").await), [1, 2, 3, 4]);
    assert!(
        server.audit(&admin, "action=events.ship").await.is_empty(),
        "accepted batches are the agent's log, not audit entries"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_claiming_another_agent_or_device_is_refused_whole() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let alice = server.agent(&admin, "reader").await;
    let mallory = server.agent(&admin, "reader").await;
    for (field, with) in [
        ("agent_id", json!({"agent_id": mallory.id})),
        (
            "device_id",
            json!({"device_id": mallory.key.public_jwk().thumbprint()}),
        ),
    ] {
        let batch = vec![event(&alice, 1, json!({})), event(&alice, 2, with)];
        let (status, body) = ship(&server, &alice, batch).await;
        assert_error(status, &body, 403, "event_identity_mismatch");
        assert_eq!(
            body["error"]["field"],
            format!("events[1].{field}"),
            "{body}"
        );
    }
    // The batch names the other agent: its key did not sign the proof.
    let batch = vec![event(&mallory, 1, json!({}))];
    let proof = server.proof(&alice.key, "POST", "/v1/events");
    let (status, body) = ship_with(&server, &mallory.id, &proof, batch).await;
    assert_error(status, &body, 401, "dpop_key_mismatch");
    assert!(
        list(&server, &admin, "").await.is_empty(),
        "nothing of a refused batch is stored"
    );
    let refused = server.audit(&admin, "action=events.ship").await;
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused.iter().all(|e| e["result"] == "denied"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn proofs_that_do_not_prove_the_device_are_refused() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let alice = server.agent(&admin, "reader").await;
    let other = server.agent(&admin, "reader").await;
    let batch = || vec![event(&alice, 1, json!({}))];

    let proof = server.proof(&other.key, "POST", "/v1/events");
    let (status, body) = ship_with(&server, &alice.id, &proof, batch()).await;
    assert_error(status, &body, 401, "dpop_key_mismatch");

    let proof = server.proof(&alice.key, "POST", "/v1/tokens");
    let (status, body) = ship_with(&server, &alice.id, &proof, batch()).await;
    assert_eq!(status, 401, "a proof for another path: {body}");

    let proof = server.proof(&alice.key, "GET", "/v1/events");
    let (status, body) = ship_with(&server, &alice.id, &proof, batch()).await;
    assert_eq!(status, 401, "a proof for another method: {body}");

    let (status, body) = ship_with(
        &server,
        "agt_00000000000000000000000000",
        &server.proof(&alice.key, "POST", "/v1/events"),
        batch(),
    )
    .await;
    assert_error(status, &body, 401, "invalid_client");

    let (status, body) = send(
        server
            .request(reqwest::Method::POST, "/v1/events")
            .json(&json!({"agent_id": alice.id, "events": batch()})),
    )
    .await;
    assert_error(status, &body, 401, "invalid_dpop_proof");
    assert!(list(&server, &admin, "").await.is_empty());

    let proof = server.proof(&alice.key, "POST", "/v1/events");
    let (status, body) = ship_with(&server, &alice.id, &proof, batch()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ship_with(&server, &alice.id, &proof, batch()).await;
    assert_error(status, &body, 401, "dpop_replay");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_never_sees_another_tenants_events() {
    let server = Server::start();
    let (_, acme) = server.tenant("acme").await;
    let (_, globex) = server.tenant("globex").await;
    let agent = server.agent(&acme, "reader").await;
    let (status, body) = ship(&server, &agent, vec![event(&agent, 1, json!({}))]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(list(&server, &acme, "").await.len(), 1);
    assert!(list(&server, &globex, "").await.is_empty());
    assert!(
        list(&server, &globex, &format!("agent={}", agent.id))
            .await
            .is_empty(),
        "naming another tenant's agent matches nothing, as in the audit log"
    );
    assert!(
        list(&server, &globex, "correlation_id=corr_1")
            .await
            .is_empty()
    );
    let (status, body) = server.get(&server.bootstrap, "/v1/events").await;
    assert_error(status, &body, 403, "tenant_required");
    let (status, body) = server.get("", "/v1/events").await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = server
        .post(
            &server.bootstrap,
            "/v1/api-tokens",
            json!({"tenant": "acme", "role": "approver"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .get(body["token"].as_str().unwrap(), "/v1/events")
        .await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_fields_are_refused_naming_the_field() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    for (with, field) in [
        (json!({"seq": 0}), "seq"),
        (json!({"seq": -1}), "seq"),
        (json!({"seq": 9_223_372_036_854_775_808u64}), "seq"),
        (json!({"ts": "yesterday"}), "ts"),
        (json!({"ts": "2026-03-01 10:00:00"}), "ts"),
        (json!({"correlation_id": "has space"}), "correlation_id"),
        (json!({"correlation_id": "x".repeat(129)}), "correlation_id"),
        (json!({"class": "debug"}), "class"),
        (json!({"sampling": 0}), "sampling"),
        (json!({"sampling": -0.5}), "sampling"),
        (json!({"sampling": 1.01}), "sampling"),
        (json!({"feature": "Not A Feature"}), "feature"),
        (json!({"result": ""}), "result"),
        (json!({"result": "r".repeat(33)}), "result"),
        (json!({"action": ""}), "action"),
        (json!({"action": "a".repeat(129)}), "action"),
        (json!({"user_id": "alice\u{1b}[2J"}), "user_id"),
        (json!({"target": "t".repeat(2049)}), "target"),
        (json!({"target": "a\u{0}b"}), "target"),
        (json!({"reason": "r".repeat(1025)}), "reason"),
        (
            json!({"duration_ms": 9_223_372_036_854_775_808u64}),
            "duration_ms",
        ),
        (json!({"extra": 1}), "extra"),
        (json!({"class": null}), ""),
    ] {
        let batch = vec![event(&agent, 1, json!({})), event(&agent, 2, with.clone())];
        let (status, body) = ship(&server, &agent, batch).await;
        assert_eq!(status, 400, "{with}: {body}");
        let named = body["error"]["field"].as_str().unwrap_or_default();
        if field.is_empty() {
            assert!(named.starts_with("events[1]"), "{with}: {body}");
        } else {
            assert_eq!(named, format!("events[1].{field}"), "{with}: {body}");
        }
    }
    let (status, body) = ship(&server, &agent, vec![]).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("events")),
        "{body}"
    );
    let many: Vec<Value> = (1..=1001)
        .map(|seq| event(&agent, seq, json!({})))
        .collect();
    let (status, body) = ship(&server, &agent, many).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("events")),
        "{body}"
    );
    let proof = server.proof(&agent.key, "POST", "/v1/events");
    let (status, body) = ship_with(
        &server,
        "Not-An-Id",
        &proof,
        vec![event(&agent, 1, json!({}))],
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("agent_id")),
        "{body}"
    );
    assert!(
        list(&server, &admin, "").await.is_empty(),
        "no refused event is stored"
    );

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=abc", "cursor"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("class=debug", "class"),
        ("agent=Not-An-Id", "agent"),
        ("correlation_id=a%20b", "correlation_id"),
        ("feature=Bad%20Name", "feature"),
        ("result=%1b", "result"),
        ("agnet=agt_1", "agnet"),
        ("class=audit&class=telemetry", "class"),
    ] {
        let (status, body) = server.get(&admin, &format!("/v1/events?{query}")).await;
        assert_error(status, &body, 400, "invalid_field");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, page) = server.get(&admin, "/v1/events?limit=1000").await;
    assert_eq!(status, 200, "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_batch_fits_the_body_limit_and_an_oversized_body_is_413() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    // 1000 events with targets at their bound: about 2.4 MB.
    let full: Vec<Value> = (1..=1000)
        .map(|seq| {
            event(
                &agent,
                seq,
                json!({"target": "t".repeat(2048), "reason": "r".repeat(200)}),
            )
        })
        .collect();
    let (status, body) = ship(&server, &agent, full).await;
    assert_eq!(
        (status, body),
        (200, json!({"stored": 1000, "duplicates": 0}))
    );
    let page = list(&server, &admin, "limit=1000").await;
    assert_eq!(page.len(), 1000);

    let oversized: Vec<Value> = (1001..=2000)
        .map(|seq| event(&agent, seq, json!({"target": "t".repeat(4500)})))
        .collect();
    let (status, body) = ship(&server, &agent, oversized).await;
    assert_error(status, &body, 413, "body_too_large");
    assert_eq!(list(&server, &admin, "limit=1000").await.len(), 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn contained_agents_still_ship_what_they_have() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    let reason = json!({"reason": "incident 7"});
    for (seq, action, state) in [
        (1, "quarantine", "quarantined"),
        (2, "revoke", "revoked"),
        (3, "uninstall", "uninstalled"),
    ] {
        let (status, body) = server
            .post(
                &admin,
                &format!("/v1/agents/{}/{action}", agent.id),
                reason.clone(),
            )
            .await;
        assert_eq!(
            (status, body["state"].as_str()),
            (200, Some(state)),
            "{body}"
        );
        let (status, body) = ship(&server, &agent, vec![event(&agent, seq, json!({}))]).await;
        assert_eq!(
            (status, body),
            (200, json!({"stored": 1, "duplicates": 0})),
            "a {state} agent's events are evidence"
        );
    }
    assert_eq!(seqs(&list(&server, &admin, "").await), [1, 2, 3]);
}

/// A GitHub token that no edge redacted (a client that is not Ward's runtime).
const PLANTED: &str = "ghp_4Zq9cV2mT7xL1pR8sK3nB6wH0yJ5dF9gA2eU";

#[tokio::test(flavor = "multi_thread")]
async fn events_are_searched_redacted_by_the_server_and_every_read_is_audited() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let alice = server.agent(&admin, "reader").await;
    let (status, body) = ship(
        &server,
        &alice,
        vec![
            event(
                &alice,
                1,
                json!({"action": "files:write", "target": "/etc/passwd", "result": "deny"}),
            ),
            event(&alice, 2, json!({"result": "deny", "reason": "outside /home/alice/projects"})),
            event(
                &alice,
                3,
                json!({"action": "http:get", "target": format!("curl -H 'Authorization: token {PLANTED}' https://api.github.com/user")}),
            ),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");

    assert_eq!(seqs(&list(&server, &admin, "q=passwd").await), [1]);
    assert_eq!(seqs(&list(&server, &admin, "q=projects").await), [2]);
    assert_eq!(
        seqs(&list(&server, &admin, "action=files:write").await),
        [1]
    );
    assert_eq!(
        seqs(&list(&server, &admin, "user=bob%40example.com").await),
        Vec::<u64>::new()
    );
    // The secret was redacted by the server before it was stored: no query,
    // and no look at the database file, finds it.
    let all = list(&server, &admin, "").await;
    let fetched = &all[2]["target"];
    assert!(
        fetched.as_str().unwrap().contains("[redacted:"),
        "{fetched}"
    );
    assert!(!serde_json::to_string(&all).unwrap().contains(PLANTED));
    assert_eq!(
        seqs(&list(&server, &admin, &format!("q={PLANTED}")).await),
        Vec::<u64>::new()
    );
    let db = rusqlite::Connection::open(server.data_dir().join("ward.db")).unwrap();
    let stored: i64 = db
        .query_row(
            "SELECT count(*) FROM agent_events WHERE instr(target, 'ghp_') > 0",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(stored, 0);

    for (query, field) in [
        ("q=a%0Ab", "q"),
        (&*format!("q={}", "x".repeat(257)), "q"),
        ("action=", "action"),
        ("user=a%07", "user"),
    ] {
        let (status, body) = server.get(&admin, &format!("/v1/events?{query}")).await;
        assert_error(status, &body, 400, "invalid_field");
        assert_eq!(body["error"]["field"], field, "{query}");
    }

    let found = server.cli(&admin, &["events", "search", "passwd", "--result", "deny"]);
    assert!(found.status.success(), "{}", stderr(&found));
    assert!(stdout(&found).contains("/etc/passwd"), "{}", stdout(&found));
    assert_eq!(stdout(&found).lines().count(), 2, "{}", stdout(&found));

    // Every read is in the audit log: who, with what filter, how many.
    let reads: Vec<Value> = server
        .audit(&admin, "")
        .await
        .into_iter()
        .filter(|e| e["action"] == "events.read")
        .collect();
    let searched = reads
        .iter()
        .map(|e| e["details"].clone())
        .find(|d| d["filter"]["q"] == "passwd" && d["filter"]["result"] == "deny")
        .unwrap_or_else(|| panic!("the CLI search is not audited: {reads:?}"));
    assert_eq!(searched["count"], 1);
    assert!(
        reads
            .iter()
            .all(|e| e["actor"].as_str().unwrap().starts_with("token:"))
    );
}

/// Reads server-sent events from `response` into `into` until it ends.
async fn collect(
    mut response: reqwest::Response,
    into: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
) {
    let mut reader = ward_api::sse::SseReader::new(1 << 20);
    while let Ok(Some(chunk)) = response.chunk().await {
        for event in reader.push(&chunk).unwrap() {
            if let (Some(data), "event") = (event.data.as_deref(), event.kind()) {
                into.lock()
                    .unwrap()
                    .push(serde_json::from_str(data).unwrap());
            }
        }
    }
}

async fn until_seqs(seen: &std::sync::Mutex<Vec<Value>>, wanted: &[u64]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = seqs(&seen.lock().unwrap());
        if now == wanted {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tail saw {now:?}, wanted {wanted:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tail_follows_new_events_live_filtered_and_resumes_after_the_last_one() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let alice = server.agent(&admin, "reader").await;
    let (status, _) = ship(
        &server,
        &alice,
        vec![event(&alice, 1, json!({"result": "deny"}))],
    )
    .await;
    assert_eq!(status, 200);

    // From now: the event before the tail opened is not replayed.
    let open = |query: &str, last: Option<&str>| {
        let mut request = server
            .request(reqwest::Method::GET, &format!("/v1/events/stream?{query}"))
            .bearer_auth(&admin);
        if let Some(last) = last {
            request = request.header("Last-Event-ID", last);
        }
        request.send()
    };
    let denied = open("result=deny", None).await.unwrap();
    assert_eq!(denied.status(), 200);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::spawn(collect(denied, seen.clone()));
    let mut tail = std::process::Command::new(common::ward_bin())
        .args(["events", "tail", "--json", "--action", "files:write"])
        .env(
            "WARD_SERVER",
            server
                .request(reqwest::Method::GET, "/")
                .build()
                .unwrap()
                .url()
                .as_str()
                .trim_end_matches('/'),
        )
        .env("WARD_TOKEN", &admin)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (status, _) = ship(
        &server,
        &alice,
        vec![
            event(&alice, 2, json!({})),
            event(&alice, 3, json!({"result": "deny"})),
            event(
                &alice,
                4,
                json!({"action": "files:write", "result": "deny"}),
            ),
        ],
    )
    .await;
    assert_eq!(status, 200);
    until_seqs(&seen, &[3, 4]).await;

    // The CLI prints each new event as one JSON line.
    let stdout = tail.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let _ = tail.kill();
    let _ = tail.wait();
    let printed: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(printed["seq"], 4);

    // Resumed after a position: everything after it, in received order.
    let again = open("", Some("0")).await.unwrap();
    let resumed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::spawn(collect(again, resumed.clone()));
    until_seqs(&resumed, &[1, 2, 3, 4]).await;

    let bad = open("", Some("last")).await.unwrap();
    assert_eq!(bad.status(), 400);
    let bad = open("q=", None).await.unwrap();
    assert_eq!(bad.status(), 400);
    let tails = server
        .audit(&admin, "")
        .await
        .into_iter()
        .filter(|e| e["action"] == "events.tail")
        .count();
    assert!(tails >= 3, "every tail opened is audited ({tails})");
}
