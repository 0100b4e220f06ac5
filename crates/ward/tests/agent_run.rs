//! `ward agent run` as a desktop sees it: a real daemon on its Unix socket
//! in front of a real `ward serve`, deciding locally, following kill
//! switches and quarantine, going to safe mode on its own, spooling and
//! shipping events through crashes, and uninstalling itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::desk::{Desk, FAST_POLICY};
use common::{stderr, ward_bin};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};
use ward_api::{AuthorizeRequest, LocalEvent, LocalEvents};

/// A normal policy: no safe mode during a test.
const CALM: [u64; 4] = [1, 60, 120, 300];

fn allow(answer: &ward_api::AuthorizeResponse) -> bool {
    answer.decision == "allow"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_judged_by_their_real_path_and_ward_state_is_never_reachable() {
    let desk = Desk::start(CALM).await;
    let work = desk.work();
    let root = desk.root();
    std::os::unix::fs::symlink("/etc/passwd", work.join("src/passwd")).unwrap();
    std::os::unix::fs::symlink(desk.state_file("device.key"), work.join("key")).unwrap();
    std::fs::hard_link(desk.state_file("device.key"), root.join("outside/key-link")).unwrap();

    let read = desk
        .authorize("files:read", &work.join("readme.txt").display().to_string())
        .await;
    assert!(allow(&read), "{read:?}");
    assert_eq!(read.feature.as_deref(), Some("read-all"));
    assert!(read.correlation_id.starts_with("corr_"));
    let write = desk
        .authorize("files:write", &format!("{}/src/new.rs", work.display()))
        .await;
    assert!(
        allow(&write),
        "a file that does not exist yet is judged by its parent: {write:?}"
    );

    for (action, path, why) in [
        (
            "files:write",
            "/etc/passwd".to_owned(),
            "outside every grant",
        ),
        (
            "files:write",
            format!("{}/../outside/secret.txt", work.display()),
            "`..` escape",
        ),
        (
            "files:write",
            format!("{}//..//outside/x", work.display()),
            "doubled slashes",
        ),
        (
            "files:read",
            format!("{}/src/passwd", work.display()),
            "symlink out of the tree",
        ),
        (
            "files:write",
            format!("{}/src/nope/../../../outside/x", work.display()),
            "`..` after a missing directory",
        ),
        (
            "files:read",
            format!("{}/readme.txt\0.png", work.display()),
            "NUL byte",
        ),
        (
            "files:read",
            "work/readme.txt".to_owned(),
            "relative path without cwd",
        ),
    ] {
        let answer = desk.authorize(action, &path).await;
        assert!(!allow(&answer), "{why}: {answer:?}");
        assert!(!answer.reason.is_empty());
    }

    for path in [
        desk.state_file("device.key"),
        desk.state_file("agent.json"),
        desk.state_file("spool"),
        desk.socket(),
        work.join("key"),
        root.join("outside/key-link"),
        desk.state_dir.join("../state/./device.key"),
    ] {
        let answer = desk
            .authorize("files:read", &path.display().to_string())
            .await;
        assert!(
            !allow(&answer),
            "{} must be out of reach: {answer:?}",
            path.display()
        );
        assert!(answer.reason.contains("Ward"), "{answer:?}");
    }

    let ls = desk.authorize("exec:run", "ls").await;
    assert!(allow(&ls), "argv[0] resolved through PATH: {ls:?}");
    assert_eq!(
        ls.resource,
        std::fs::canonicalize("/usr/bin/ls")
            .unwrap()
            .display()
            .to_string()
    );
    let cat = desk.authorize("exec:run", "cat").await;
    assert!(!allow(&cat), "{cat:?}");

    let url = desk
        .authorize(
            "http:get",
            "HTTPS://API.Example.COM:443/v1/./weather/%7euser",
        )
        .await;
    assert!(allow(&url), "{url:?}");
    assert_eq!(url.resource, "https://api.example.com/v1/weather/~user");
    for url in [
        "https://user:pw@api.example.com/v1/x",
        "https://api.example.com/v2/x",
        "https://api.example.com/v1/../admin",
        "http://api.example.com/v1/x",
        "file:///etc/passwd",
    ] {
        let answer = desk.authorize("http:get", url).await;
        assert!(!allow(&answer), "{url}: {answer:?}");
    }

    let unknown = desk
        .local()
        .authorize(&AuthorizeRequest {
            feature: Some("not-a-feature".into()),
            action: "files:read".into(),
            resource: work.join("readme.txt").display().to_string(),
            cwd: None,
            correlation_id: Some("corr-test-1".into()),
        })
        .await
        .unwrap();
    assert!(!allow(&unknown));
    assert_eq!(unknown.correlation_id, "corr-test-1");

    // Every decision is an event, shipped with its correlation id.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = desk.server_events("correlation_id=corr-test-1").await;
        if let Some(event) = events.first() {
            assert_eq!(event["result"], "deny");
            assert_eq!(event["class"], "audit");
            assert_eq!(event["agent_id"], desk.agent_id.as_str());
            break;
        }
        assert!(Instant::now() < deadline, "the decision was not shipped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_refuses_bad_input_with_the_field_named() {
    let desk = Desk::start(CALM).await;
    let mut local = desk.local();
    for (body, field) in [
        (json!({"action": "files:read"}), None),
        (
            json!({"action": "files:read", "resource": "/x", "colour": "red"}),
            None,
        ),
        (
            json!({"action": "files:read", "resource": 7}),
            Some("resource"),
        ),
        (
            json!({"action": "files:read", "resource": "/x", "correlation_id": "bad id!"}),
            Some("correlation_id"),
        ),
    ] {
        let (status, answer) = local
            .raw("POST", "/v1/authorize", Some(body.to_string().into_bytes()))
            .await
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(status, 400, "{body}: {answer}");
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], field, "{answer}");
        }
    }
    let spoofed = json!({"events": [{"action": "a", "target": "t", "result": "ok", "agent_id": "agt_other"}]});
    let (status, answer) = local
        .raw("POST", "/v1/events", Some(spoofed.to_string().into_bytes()))
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        status, 400,
        "identity fields come from the daemon: {answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agent_id"),
        "{answer}"
    );
    let bad_class =
        json!({"events": [{"action": "a", "target": "t", "result": "ok", "class": "gossip"}]});
    let (status, answer) = local
        .raw(
            "POST",
            "/v1/events",
            Some(bad_class.to_string().into_bytes()),
        )
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["field"], "events[0].class");
    let huge = vec![b'x'; 2 * 1024 * 1024];
    let (status, _) = local
        .raw("POST", "/v1/authorize", Some(huge))
        .await
        .unwrap();
    assert_eq!(status, 413);
    let (status, doc) = local.raw("GET", "/openapi.json", None).await.unwrap();
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    assert!(doc["paths"]["/v1/authorize"]["post"].is_object(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_another_uid_is_refused() {
    if !rustix_is_root() {
        eprintln!("SKIPPED: needs root to connect as another uid with setpriv");
        return;
    }
    let mut desk = Desk::start(CALM).await;
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = shared.path().join("agent.sock");
    desk.kill_daemon();
    let socket_arg = socket.display().to_string();
    desk.start_daemon(&["--socket", &socket_arg, "--allow-uid", "65533"]);
    let ask = |uid: &str| {
        Command::new("setpriv")
            .args(["--reuid", uid, "--regid", uid, "--clear-groups", "--"])
            .args([
                "curl",
                "-sS",
                "--max-time",
                "10",
                "--unix-socket",
                &socket_arg,
            ])
            .args(["-w", "\n%{http_code}", "http://ward/v1/status"])
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let stranger = loop {
        let out = ask("65534");
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = String::from_utf8_lossy(&stranger.stdout).into_owned();
    assert!(text.ends_with("\n403"), "{text} {}", stderr(&stranger));
    assert!(text.contains("peer_not_allowed"), "{text}");
    let admitted = ask("65533");
    let text = String::from_utf8_lossy(&admitted.stdout).into_owned();
    assert!(text.ends_with("\n200"), "{text} {}", stderr(&admitted));
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_switch_and_a_quarantine_reach_the_daemon_in_under_a_second() {
    let desk = Desk::start(CALM).await;
    let file = desk.work().join("readme.txt").display().to_string();
    assert!(allow(&desk.authorize("files:write", &file).await));

    let engaged = Instant::now();
    let (status, body) = desk
        .server
        .put(
            &desk.admin,
            "/v1/killswitch",
            json!({"scope": "agent", "target": desk.agent_id, "mode": "read-only", "reason": "incident 7"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    loop {
        if !allow(&desk.authorize("files:write", &file).await) {
            break;
        }
        assert!(
            engaged.elapsed() < Duration::from_secs(1),
            "the kill switch took over a second"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = engaged.elapsed();
    let answer = desk.authorize("files:write", &file).await;
    assert!(answer.reason.contains("incident 7"), "{answer:?}");
    assert!(
        allow(&desk.authorize("files:read", &file).await),
        "read-only still reads"
    );
    eprintln!("kill switch reached the daemon in {took:?}");

    // The server knows the device applied it, and when.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, reach) = desk.server.get(&desk.admin, "/v1/killswitch/status").await;
        assert_eq!(status, 200, "{reach}");
        let acked = &reach["switches"][0]["acknowledged"];
        if acked.as_array().is_some_and(|a| !a.is_empty()) {
            assert_eq!(acked[0]["agent_id"], desk.agent_id.as_str());
            assert!(
                acked[0]["time_to_apply_ms"].as_i64().unwrap() < 1000,
                "{reach}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no acknowledgement: {reach}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, body) = desk
        .server
        .put(
            &desk.admin,
            "/v1/killswitch",
            json!({"scope": "agent", "target": desk.agent_id, "mode": "normal", "reason": "resolved"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    desk.wait_for(|s| s.mode == "normal").await;

    let quarantined = Instant::now();
    let (status, body) = desk
        .server
        .post(
            &desk.admin,
            &format!("/v1/agents/{}/quarantine", desk.agent_id),
            json!({"reason": "suspicious reads"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    loop {
        if !allow(&desk.authorize("files:read", &file).await) {
            break;
        }
        assert!(
            quarantined.elapsed() < Duration::from_secs(1),
            "quarantine took over a second"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answer = desk.authorize("files:read", &file).await;
    assert!(answer.reason.contains("quarantine"), "{answer:?}");
    let status = desk.status().await;
    assert_eq!(status.agent_state, "quarantined", "status still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_control_plane_the_daemon_goes_read_only_then_offline_then_back() {
    let mut desk = Desk::start(FAST_POLICY).await;
    let file = desk.work().join("readme.txt").display().to_string();
    assert!(allow(&desk.authorize("files:write", &file).await));
    let status = desk.status().await;
    let bounds = status.bounds.unwrap();
    assert_eq!(bounds.read_only_after_secs, 3);
    assert_eq!(bounds.offline_after_secs, 5);

    desk.server.kill();
    let read_only = desk.wait_for(|s| s.mode == "read-only").await;
    assert!(
        read_only.mode_reason.contains("bound"),
        "{}",
        read_only.mode_reason
    );
    assert!(!allow(&desk.authorize("files:write", &file).await));
    assert!(allow(&desk.authorize("files:read", &file).await));
    let offline = desk.wait_for(|s| s.mode == "offline").await;
    assert!(
        offline.mode_reason.contains("5 s"),
        "{}",
        offline.mode_reason
    );
    assert!(!allow(&desk.authorize("files:read", &file).await));

    desk.server.restart();
    desk.wait_for(|s| s.mode == "normal").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !allow(&desk.authorize("files:write", &file).await) {
        assert!(Instant::now() < deadline, "writes did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn burst(from: usize, count: usize) -> LocalEvents {
    LocalEvents {
        events: (from..from + count)
            .map(|i| LocalEvent {
                ts: None,
                correlation_id: Some(format!("burst-{i}")),
                class: Some("audit".into()),
                feature: None,
                action: "burst".into(),
                target: format!("item {i}"),
                result: "ok".into(),
                reason: None,
                duration_ms: Some(1),
                sampling: None,
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_of_a_burst_loses_and_doubles_nothing() {
    let mut desk = Desk::start(CALM).await;
    const TOTAL: usize = 10_000;
    const BATCH: usize = 100;
    let mut sent = 0;
    while sent < TOTAL / 2 {
        desk.local().events(&burst(sent, BATCH)).await.unwrap();
        sent += BATCH;
    }
    // Kill while the shipper is still at work.
    desk.kill_daemon();
    let shipped_before = desk.server_events("result=ok").await.len();
    eprintln!("killed with {shipped_before} of {sent} accepted events on the server");
    desk.start_daemon(&[]);
    while sent < TOTAL {
        desk.local().events(&burst(sent, BATCH)).await.unwrap();
        sent += BATCH;
    }
    desk.wait_for(|s| s.spool.depth == 0).await;
    let events = desk.server_events("result=ok").await;
    let burst: Vec<_> = events.iter().filter(|e| e["action"] == "burst").collect();
    let distinct: std::collections::HashSet<&str> = burst
        .iter()
        .map(|e| e["correlation_id"].as_str().unwrap())
        .collect();
    assert_eq!(burst.len(), TOTAL, "every accepted event once");
    assert_eq!(distinct.len(), TOTAL, "none doubled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_spool_segment_is_set_aside_and_reported_and_the_rest_ships() {
    let mut desk = Desk::start(CALM).await;
    desk.server.kill();
    desk.local().events(&burst(0, 300)).await.unwrap();
    assert_eq!(desk.stop_daemon().code(), Some(0));
    let spool = desk.state_file("spool");
    let segment = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && std::fs::metadata(p).unwrap().len() > 10_000)
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a segment with the burst in it");
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 16] {
        *byte ^= 0x5a;
    }
    std::fs::write(&segment, &bytes).unwrap();
    desk.server.restart();
    desk.start_daemon(&[]);
    let status = desk.wait_for(|s| s.spool.depth == 0).await;
    assert!(status.spool.corrupt >= 1, "{:?}", status.spool);
    let shipped = desk
        .server_events("result=ok")
        .await
        .into_iter()
        .filter(|e| e["action"] == "burst")
        .count();
    assert!((290..300).contains(&shipped), "the rest ships: {shipped}");
    let set_aside = std::fs::read_dir(spool.join("corrupt")).unwrap().count();
    assert!(set_aside >= 1, "the bad bytes are kept for inspection");
    // The heartbeat says so too.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, agent) = desk
            .server
            .get(&desk.admin, &format!("/v1/agents/{}", desk.agent_id))
            .await;
        if agent["last_heartbeat_at"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_ships_acknowledges_and_leaves_nothing_behind() {
    let mut desk = Desk::start(CALM).await;
    desk.local().events(&burst(0, 50)).await.unwrap();
    let exit = desk.uninstall().await;
    assert_eq!(exit.code(), Some(0));
    for name in ["device.key", "agent.json", "spool", "agent.sock"] {
        assert!(!desk.state_file(name).exists(), "{name} left behind");
    }
    let shipped = desk.server_events("result=ok").await;
    assert_eq!(
        shipped.iter().filter(|e| e["action"] == "burst").count(),
        50
    );
    let audit = desk.server.audit(&desk.admin, "").await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"].as_str().is_some_and(|a| a.contains("ack"))),
        "the acknowledgement is evidence: {audit:?}"
    );
    let again = desk.daemon_command(&[]).output().unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("ward agent enroll"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refuses_to_start_on_a_bad_state_dir_key_or_socket() {
    let mut desk = Desk::start(CALM).await;
    let second = desk.daemon_command(&[]).output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("another `ward agent run`"),
        "{}",
        stderr(&second)
    );
    desk.kill_daemon();

    let missing = Command::new(ward_bin())
        .args(["agent", "run", "--state-dir", "/nonexistent/ward"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("/nonexistent/ward"),
        "{}",
        stderr(&missing)
    );

    let key = desk.state_file("device.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = desk.daemon_command(&[]).output().unwrap();
    assert_eq!(open.status.code(), Some(1));
    assert!(stderr(&open).contains("chmod 600"), "{}", stderr(&open));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let busy = tempfile::tempdir().unwrap();
    let socket = busy.path().join("busy.sock");
    let _holder = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let socket_arg = socket.display().to_string();
    let in_use = desk
        .daemon_command(&["--socket", &socket_arg])
        .output()
        .unwrap();
    assert_eq!(in_use.status.code(), Some(1));
    assert!(stderr(&in_use).contains("in use"), "{}", stderr(&in_use));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feature_that_needs_consent_is_denied_until_the_owner_signs_in_and_grants_it() {
    let idp = common::Idp::start();
    let flags = idp.serve_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let desk = Desk::start_with(CALM, &flags).await;
    idp.user("alice", &[], false).await;
    let note = desk.root().join("notes/today.md").display().to_string();
    let denied = desk.authorize("files:write", &note).await;
    assert!(!allow(&denied));
    assert!(denied.reason.contains("consent"), "{denied:?}");
    assert!(denied.reason.contains("ward agent consent"), "{denied:?}");

    // The agent's own key cannot consent: without the owner's sign-in the
    // command refuses before asking anything.
    let unsigned = Command::new(ward_bin())
        .args(["agent", "consent", "--grant", "--state-dir"])
        .arg(&desk.state_dir)
        .env("XDG_CONFIG_HOME", desk.root().join("no-config"))
        .env_remove("WARD_TOKEN")
        .output()
        .unwrap();
    assert_eq!(unsigned.status.code(), Some(1));
    assert!(
        stderr(&unsigned).contains("ward login"),
        "{}",
        stderr(&unsigned)
    );

    let alice = idp.token("alice", json!({})).await;
    let granted = Command::new(ward_bin())
        .args(["agent", "consent", "--grant", "--state-dir"])
        .arg(&desk.state_dir)
        .env("WARD_TOKEN", &alice)
        .output()
        .unwrap();
    assert!(granted.status.success(), "{}", stderr(&granted));
    let shown = String::from_utf8_lossy(&granted.stdout).into_owned();
    assert!(shown.contains("Feature `write-notes`"), "{shown}");
    assert!(
        shown.contains("write files under"),
        "the scope in plain words: {shown}"
    );
    assert!(shown.contains("granted: recorded"), "{shown}");
    desk.wait_for(|s| {
        s.tokens
            .iter()
            .any(|t| t.feature == "write-notes" && t.expires_at.is_some())
    })
    .await;
    assert!(allow(&desk.authorize("files:write", &note).await));
}

/// The arguments a packaging example starts `ward` with.
fn example_arguments(file: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(file);
    let text = std::fs::read_to_string(path).unwrap();
    if file.ends_with(".service") {
        let line = text.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
        line.trim_start_matches("ExecStart=")
            .split_whitespace()
            .skip(1)
            .map(|a| a.replace("%h", "/nonexistent-home"))
            .collect()
    } else {
        let array = text
            .split("<array>")
            .nth(1)
            .unwrap()
            .split("</array>")
            .next()
            .unwrap();
        array
            .split("<string>")
            .skip(2)
            .map(|s| s.split("</string>").next().unwrap().to_owned())
            .collect()
    }
}

#[test]
fn the_packaging_examples_start_the_daemon_with_arguments_it_accepts() {
    for file in ["ward-agent.service", "com.ward.agent.plist"] {
        let args = example_arguments(file);
        assert_eq!(&args[..2], ["agent", "run"], "{file}: {args:?}");
        let output = Command::new(ward_bin()).args(&args).output().unwrap();
        // Exit 1 (no such state directory here), not 2 (a usage error).
        assert_eq!(output.status.code(), Some(1), "{file}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("ward agent enroll"),
            "{file}: {}",
            stderr(&output)
        );
    }
}
