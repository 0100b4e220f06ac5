//! The audit log's hash chain against someone editing the SQLite file behind
//! the server's back, and its durability when the server is killed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use rusqlite::Connection;
use std::sync::Arc;

async fn populated() -> (Server, String) {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let agent = server.agent(&admin, "reader").await;
    for _ in 0..5 {
        let (status, _) = server
            .token(&agent, &["files:read:/home/alice/projects/a"])
            .await;
        assert_eq!(status, 200);
    }
    (server, admin)
}

fn verify(server: &Server) -> (Option<i32>, String, String) {
    let out = server.cli(
        "",
        &[
            "audit",
            "verify",
            "--data-dir",
            server.data_dir().to_str().unwrap(),
        ],
    );
    (out.status.code(), stdout(&out), stderr(&out))
}

fn db(server: &Server) -> Connection {
    Connection::open(server.data_dir().join("ward.db")).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_field_is_named() {
    let (server, _) = populated().await;
    assert_eq!(verify(&server).0, Some(0));
    db(&server)
        .execute("UPDATE audit SET result = 'denied' WHERE seq = 7", [])
        .unwrap();
    let (code, _, err) = verify(&server);
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim(),
        "error: audit chain broken at entry 7: entry 7 was altered: its content does not match its hash"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_row_is_named() {
    let (server, _) = populated().await;
    db(&server)
        .execute("DELETE FROM audit WHERE seq = 6", [])
        .unwrap();
    let (code, _, err) = verify(&server);
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim(),
        "error: audit chain broken at entry 6: entries 6 to 6 were removed (next present entry is 7)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn swapped_rows_are_named() {
    let (server, _) = populated().await;
    let conn = db(&server);
    conn.execute_batch(
        "BEGIN;
         UPDATE audit SET seq = -1 WHERE seq = 8;
         UPDATE audit SET seq = 8 WHERE seq = 9;
         UPDATE audit SET seq = 9 WHERE seq = -1;
         COMMIT;",
    )
    .unwrap();
    let (code, _, err) = verify(&server);
    assert_eq!(code, Some(1));
    assert!(err.contains("audit chain broken at entry 8"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rehashed_forgery_is_caught_at_the_next_link() {
    let (server, _) = populated().await;
    let conn = db(&server);
    conn.execute(
        "UPDATE audit SET reason = 'nothing to see' WHERE seq = 5",
        [],
    )
    .unwrap();
    let (prev, record) = {
        let mut statement = conn
            .prepare("SELECT prev_hash, seq, ts, tenant_id, actor, action, target, result, reason, correlation_id, details FROM audit WHERE seq = 5")
            .unwrap();
        statement
            .query_row([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    ward_model::audit::AuditRecord {
                        seq: row.get(1)?,
                        ts: row.get(2)?,
                        tenant: row.get(3)?,
                        actor: row.get(4)?,
                        action: row.get(5)?,
                        target: row.get(6)?,
                        result: row.get::<_, String>(7)?.parse().unwrap(),
                        reason: row.get(8)?,
                        correlation_id: row.get(9)?,
                        details: row.get(10)?,
                    },
                ))
            })
            .unwrap()
    };
    conn.execute(
        "UPDATE audit SET hash = ?1 WHERE seq = 5",
        [record.chain_hash(&prev)],
    )
    .unwrap();
    let (code, _, err) = verify(&server);
    assert_eq!(code, Some(1));
    assert!(err.contains("entry 6 does not follow entry 5"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_explains_a_wrong_data_dir() {
    let out = std::process::Command::new(ward_bin())
        .args(["audit", "verify", "--data-dir", "/nonexistent/ward"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "error: no ward database at `/nonexistent/ward/ward.db`; check --data-dir"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_token_a_client_received_survives_sigkill() {
    let mut server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let mut agents = Vec::new();
    for _ in 0..8 {
        agents.push(Arc::new(server.agent(&admin, "reader").await));
    }
    let url = server.url.clone();
    let received = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for agent in agents {
        let (url, received, stop) = (url.clone(), received.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let jti = ward_auth::dpop::new_jti().unwrap();
                let proof = ward_auth::dpop::create_proof(&agent.key, "POST", &format!("{url}/v1/tokens"), now(), &jti, None).unwrap();
                let response = http
                    .post(format!("{url}/v1/tokens"))
                    .header("DPoP", proof)
                    .json(&serde_json::json!({"agent_id": agent.id, "requested_scopes": ["files:read:/home/a/projects/x"]}))
                    .send()
                    .await;
                let Ok(response) = response else { break };
                if response.status() != 200 {
                    break;
                }
                let Ok(body) = response.json::<serde_json::Value>().await else { break };
                let token = body["token"].as_str().unwrap();
                let claims = token.split('.').nth(1).unwrap();
                use base64::Engine;
                let claims: serde_json::Value = serde_json::from_slice(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap(),
                )
                .unwrap();
                received.lock().unwrap().push(claims["jti"].as_str().unwrap().to_owned());
            }
        }));
    }
    // Kill mid-burst: once enough tokens went out (however loaded the machine).
    let burst = std::time::Instant::now();
    while received.lock().unwrap().len() < 100
        && burst.elapsed() < std::time::Duration::from_secs(30)
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.child.kill().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let received = received.lock().unwrap().clone();
    assert!(
        received.len() > 50,
        "the burst was a burst: {}",
        received.len()
    );
    server.kill_and_restart();
    let conn = db(&server);
    let mut statement = conn
        .prepare("SELECT 1 FROM audit WHERE action = 'token.issue' AND result = 'success' AND target = ?1")
        .unwrap();
    let missing: Vec<&String> = received
        .iter()
        .filter(|jti| !statement.exists([jti.as_str()]).unwrap())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} received tokens have no audit entry: {missing:?}",
        missing.len(),
        received.len()
    );
    assert_eq!(
        verify(&server).0,
        Some(0),
        "the chain is intact after the crash"
    );
    let (status, _) = server.get(&admin, "/v1/agents").await;
    assert_eq!(status, 200, "the server serves again");
}

/// The result is stored as a name the writer knows; one it does not know
/// can only come from an edit, and is reported as one, not as a read error.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_result_name_is_an_edited_field() {
    let (server, _) = populated().await;
    db(&server)
        .execute("UPDATE audit SET result = 'approved' WHERE seq = 7", [])
        .unwrap();
    let (code, _, err) = verify(&server);
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim(),
        "error: audit chain broken at entry 7: entry 7 was altered: its content does not match its hash"
    );
}
