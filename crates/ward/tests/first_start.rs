//! First start in an empty directory: what it creates, with which file
//! modes, what it prints once, and that secrets rest only as hashes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_creates_private_files_and_keeps_secrets_only_as_hashes() {
    let server = Server::start();
    let dir = server.data_dir();
    assert_eq!(mode(dir), 0o700);
    assert_eq!(mode(&dir.join("bootstrap-admin-token")), 0o600);
    assert_eq!(mode(&dir.join("keys")), 0o700);
    let keys: Vec<_> = std::fs::read_dir(dir.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(keys.len(), 1);
    assert_eq!(mode(&keys[0]), 0o600);

    let (_, admin) = server.tenant("acme").await;
    let enroll_token = server.enroll_token(&admin, "reader").await;
    let key_seed = std::fs::read_to_string(&keys[0]).unwrap();
    drop(server.get(&admin, "/healthz").await);
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file()
            && path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("ward.db")
        {
            stored.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!stored.is_empty());
    let text = String::from_utf8_lossy(&stored);
    for secret in [
        server.bootstrap.as_str(),
        admin.as_str(),
        enroll_token.as_str(),
        key_seed.trim(),
    ] {
        assert!(
            !text.contains(secret),
            "a secret is stored in the clear in the database"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bootstrap_token_is_printed_on_the_first_start_only() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut child = Command::new(ward_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("WARD_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let done = line.starts_with("ward listening on ");
            printed.push(line);
            if done {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        printed
    };
    let first = start();
    assert_eq!(first.len(), 2, "{first:?}");
    let token = std::fs::read_to_string(dir.path().join("bootstrap-admin-token")).unwrap();
    assert!(
        first[0].starts_with("bootstrap admin token (shown once; also in "),
        "{first:?}"
    );
    assert!(first[0].ends_with(token.trim()), "{first:?}");
    let second = start();
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(
        second[0].starts_with("ward listening on http://127.0.0.1:"),
        "{second:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_filters_by_time_actor_and_agent_and_pages_without_gaps() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let a = server.agent(&admin, "reader").await;
    let b = server.agent(&admin, "reader").await;
    for _ in 0..3 {
        server.token(&a, &["files:read:/home/a/projects/x"]).await;
        server.token(&b, &["files:read:/home/b/projects/x"]).await;
    }
    let all = server.audit(&admin, "").await;
    let middle = all[all.len() / 2]["ts"].as_str().unwrap().to_owned();
    let since = server.audit(&admin, &format!("since={middle}")).await;
    let until = server.audit(&admin, &format!("until={middle}")).await;
    assert_eq!(
        since.len() + until.len(),
        all.len(),
        "since and until split the log"
    );
    assert!(
        since
            .iter()
            .all(|e| e["ts"].as_str().unwrap() >= middle.as_str())
    );

    let of_a = server.audit(&admin, &format!("agent={}", a.id)).await;
    assert_eq!(of_a.len(), 4, "enrolment and three tokens: {of_a:?}");
    let by_a = server.audit(&admin, &format!("actor=agent:{}", a.id)).await;
    assert_eq!(by_a.len(), 3);

    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = server
            .get(&admin, &format!("/v1/audit?limit=3{cursor}"))
            .await;
        assert_eq!(status, 200);
        paged.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(paged, seqs);
    let chained = all.windows(2).all(|w| {
        w[1]["prev_hash"] == w[0]["hash"]
            || w[1]["seq"].as_i64() != Some(w[0]["seq"].as_i64().unwrap() + 1)
    });
    assert!(chained, "consecutive entries link by hash");
}
