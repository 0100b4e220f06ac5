//! The data directory belongs to one `ward serve` at a time (issue 9), and
//! the database files in it are private to the server's user.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs a second `ward serve` on `dir` and `listen` and returns its output,
/// failing the test if it is still running after ten seconds.
fn serve_again(dir: &Path, listen: &str) -> Output {
    let mut child = Command::new(ward_bin())
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir)
        .env("WARD_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("a second `ward serve` on the same data directory kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_the_same_data_directory_refuses_to_start_and_names_the_holder() {
    let server = Server::start();
    // On another address, and on the same one (the same configuration
    // started twice): either way the holder is named, not the address.
    let address = server.url.trim_start_matches("http://").to_owned();
    for listen in ["127.0.0.1:0", address.as_str()] {
        let output = serve_again(server.data_dir(), listen);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(message.starts_with("error: "), "{message}");
        assert!(
            message.contains(&format!("pid {}", server.child.id())),
            "{message}"
        );
        assert!(!stdout(&output).contains("ward listening"));
    }
    let (status, body) = server
        .post(&server.bootstrap, "/v1/tenants", json!({"name": "acme"}))
        .await;
    assert_eq!(status, 201, "the first server still writes: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lock_is_released_when_the_holder_is_killed() {
    let mut server = Server::start();
    server.kill_and_restart();
    let (status, body) = server
        .post(&server.bootstrap, "/v1/tenants", json!({"name": "acme"}))
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_and_its_wal_files_are_private() {
    let mut server = Server::start();
    server.tenant("acme").await;
    let dir = server.data_dir().to_owned();
    let files = ["ward.db", "ward.db-wal", "ward.db-shm"].map(|name| dir.join(name));
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }

    // An installation from before this fix: the files were 0644.
    for file in &files {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    server.kill_and_restart();
    server.tenant("globex").await;
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
}
