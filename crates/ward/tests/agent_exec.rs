//! `ward agent exec`: a real program confined by Landlock to the agent's
//! scopes as the daemon holds them (this kernel has Landlock ABI 7).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::desk::Desk;
use common::{stderr, ward_bin};
use serde_json::json;
use std::process::{Command, Output};

fn exec(desk: &Desk, command: &[&str]) -> Output {
    Command::new(ward_bin())
        .args(["agent", "exec", "--state-dir"])
        .arg(&desk.state_dir)
        .arg("--")
        .args(command)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confined_program_reaches_its_scopes_and_nothing_else() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let root = desk.root();
    // Readable by this user, outside every scope.
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("secret.txt");
    std::fs::write(&secret, "not yours").unwrap();
    let status = Command::new("cat").arg(&secret).output().unwrap();
    assert!(status.status.success(), "the file is readable unconfined");

    // read-all: files:read under the root.
    let read = exec(
        &desk,
        &["cat", &root.join("work/readme.txt").display().to_string()],
    );
    assert!(read.status.success(), "{}", stderr(&read));
    assert_eq!(String::from_utf8_lossy(&read.stdout), "hello");

    let outside = exec(&desk, &["cat", &secret.display().to_string()]);
    assert!(!outside.status.success(), "read outside the scopes");
    assert!(
        stderr(&outside).contains("Permission denied"),
        "{}",
        stderr(&outside)
    );

    // write-work: files:write under work/; outside/ is only readable.
    let write = |path: &str| exec(&desk, &["sh", "-c", &format!("echo x > {path}")]);
    let allowed = write(&root.join("work/new.txt").display().to_string());
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    assert_eq!(
        std::fs::read_to_string(root.join("work/new.txt")).unwrap(),
        "x\n"
    );
    let refused = write(&root.join("outside/new.txt").display().to_string());
    assert!(!refused.status.success(), "write inside a read-only scope");
    assert!(!root.join("outside/new.txt").exists());
    // Ward's own state is not in any scope of the program either.
    let key = exec(
        &desk,
        &[
            "cat",
            &desk.state_dir.join("device.key").display().to_string(),
        ],
    );
    assert!(!key.status.success());

    // No scope names port 22: a TCP connection to it is refused by the
    // kernel before it leaves (bash's /dev/tcp does the connect).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = exec(
        &desk,
        &["bash", "-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")],
    );
    assert!(!connect.status.success(), "TCP to an unscoped port");
    assert!(
        stderr(&connect).contains("Permission denied"),
        "{}",
        stderr(&connect)
    );

    // A quarantined agent runs nothing.
    let (status, body) = desk
        .server
        .post(
            &desk.admin,
            &format!("/v1/agents/{}/quarantine", desk.agent_id),
            json!({"reason": "suspicious"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    desk.wait_for(|s| s.agent_state == "quarantined").await;
    let refused = exec(&desk, &["true"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("quarantined"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn without_the_daemon_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let out = Command::new(ward_bin())
        .args(["agent", "exec", "--state-dir"])
        .arg(dir.path())
        .args(["--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!marker.exists(), "the program ran without the daemon");
}
