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

    // Its supervisor (outside the sandbox) cannot be signalled: no
    // stopping the freeze from inside.
    let signal = exec(&desk, &["sh", "-c", "kill -STOP $PPID"]);
    assert!(
        !signal.status.success(),
        "the sandbox signalled its supervisor"
    );
    assert!(
        stderr(&signal).contains("not permitted"),
        "{}",
        stderr(&signal)
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

/// The state letters of `pid`'s descendants (and its own), from `/proc`.
fn states(root: u32) -> Vec<char> {
    ward_agent::supervise::descendants(root)
        .into_iter()
        .map(|(_, state)| state)
        .collect()
}

/// Lines in `file` (0 when absent).
fn lines(file: &std::path::Path) -> usize {
    std::fs::read_to_string(file).map_or(0, |t| t.lines().count())
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_freezes_the_running_agent_tree_and_lifting_it_resumes() {
    let desk = Desk::start([1, 60, 120, 300]).await;
    let ticks = desk.root().join("work/ticks");
    // A parent that ticks, and a child it detaches (setsid, double fork).
    let script = format!(
        "setsid sh -c 'while :; do echo c >> {t}; sleep 0.05; done' & while :; do echo p >> {t}; sleep 0.05; done",
        t = ticks.display()
    );
    let mut supervisor = Command::new(ward_bin())
        .args(["agent", "exec", "--state-dir"])
        .arg(&desk.state_dir)
        .args(["--", "sh", "-c", &script])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let me = supervisor.id();
    until("the program ticks", || lines(&ticks) > 5).await;
    assert!(states(me).len() >= 2, "{:?}", states(me));

    let (status, body) = desk
        .server
        .post(
            &desk.admin,
            &format!("/v1/agents/{}/quarantine", desk.agent_id),
            json!({"reason": "incident 42"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    until("every process is stopped", || {
        let states = states(me);
        !states.is_empty() && states.iter().all(|&s| s == 'T')
    })
    .await;
    let frozen = lines(&ticks);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(lines(&ticks), frozen, "a frozen agent kept writing");

    let (status, body) = desk
        .server
        .post(
            &desk.admin,
            &format!("/v1/agents/{}/activate", desk.agent_id),
            json!({"reason": "incident 42 closed"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    until("the program resumes", || lines(&ticks) > frozen + 5).await;
    // The daemon ships the supervisor's events on its own schedule.
    for action in ["agent.confine", "agent.release"] {
        desk.server_has(action, |e| e["action"] == action && e["target"] == "sh")
            .await;
    }

    // Stopped, the supervisor ends the whole tree, the detached child too.
    let tree = ward_agent::supervise::descendants(me);
    terminate(&supervisor);
    let exit = supervisor.wait().unwrap();
    assert_eq!(exit.code(), Some(143), "{exit:?}");
    until("the tree is gone", || all_gone(&tree)).await;
}

fn terminate(child: &std::process::Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

fn all_gone(tree: &[(u32, char)]) -> bool {
    tree.iter().all(|(pid, _)| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| ward_agent::supervise::parse_stat(&t))
            .is_none_or(|(_, _, state)| state == 'Z')
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_daemon_freezes_the_agent_and_the_exit_code_is_the_programs() {
    let mut desk = Desk::start([1, 60, 120, 300]).await;
    let code = exec(&desk, &["sh", "-c", "exit 7"]);
    assert_eq!(code.status.code(), Some(7), "{}", stderr(&code));

    // The supervisor killed outright: the program dies with it.
    let mut supervisor = Command::new(ward_bin())
        .args(["agent", "exec", "--state-dir"])
        .arg(&desk.state_dir)
        .args(["--", "sleep", "30"])
        .spawn()
        .unwrap();
    let me = supervisor.id();
    until("the program runs", || !states(me).is_empty()).await;
    let tree = ward_agent::supervise::descendants(me);
    supervisor.kill().unwrap();
    let _ = supervisor.wait();
    until("the program died with its supervisor", || all_gone(&tree)).await;

    let ticks = desk.root().join("work/ticks");
    let mut supervisor = Command::new(ward_bin())
        .args(["agent", "exec", "--state-dir"])
        .arg(&desk.state_dir)
        .args([
            "--",
            "sh",
            "-c",
            &format!(
                "while :; do echo p >> {}; sleep 0.05; done",
                ticks.display()
            ),
        ])
        .spawn()
        .unwrap();
    let me = supervisor.id();
    until("the program ticks", || lines(&ticks) > 3).await;
    desk.kill_daemon();
    until("the program is frozen", || {
        let states = states(me);
        !states.is_empty() && states.iter().all(|&s| s == 'T')
    })
    .await;
    let tree = ward_agent::supervise::descendants(me);
    terminate(&supervisor);
    assert_eq!(supervisor.wait().unwrap().code(), Some(143));
    until("the frozen tree is gone", || all_gone(&tree)).await;
}
