//! A desktop under Ward for tests: a real `ward serve` on a matrix whose
//! scopes point into a temporary work tree, an agent enrolled with the real
//! `ward agent enroll`, and a real `ward agent run` daemon on its Unix
//! socket.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use ward_api::{AuthorizeRequest, AuthorizeResponse, LocalStatus};
use ward_client::LocalClient;

use super::{Server, ward_bin};

/// The staleness bounds the tests use, seconds: heartbeat 1, high-risk 2,
/// read-only 3, offline 5.
pub const FAST_POLICY: [u64; 4] = [1, 2, 3, 5];

/// A desktop with one enrolled agent and its daemon.
pub struct Desk {
    pub server: Server,
    pub admin: String,
    pub tenant: String,
    pub root: TempDir,
    pub state_dir: PathBuf,
    pub agent_id: String,
    pub daemon: Option<Child>,
}

impl Desk {
    /// The real path of the temporary root (the matrix names it).
    pub fn root(&self) -> PathBuf {
        std::fs::canonicalize(self.root.path()).unwrap()
    }

    /// The work tree the profile may read and write.
    pub fn work(&self) -> PathBuf {
        self.root().join("work")
    }

    /// The daemon's socket.
    pub fn socket(&self) -> PathBuf {
        self.state_dir.join("agent.sock")
    }

    /// Starts a server on a matrix over a fresh work tree, enrols an agent
    /// into profile `desk`, sets the tenant's staleness `policy` and starts
    /// the daemon; returns once the daemon holds its tokens.
    pub async fn start(policy: [u64; 4]) -> Desk {
        Desk::start_with(policy, &[]).await
    }

    /// [`Desk::start`] with extra `ward serve` flags.
    pub async fn start_with(policy: [u64; 4], server_flags: &[&str]) -> Desk {
        let root = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(root.path()).unwrap();
        std::fs::create_dir_all(real.join("work/src")).unwrap();
        std::fs::create_dir_all(real.join("notes")).unwrap();
        std::fs::create_dir_all(real.join("outside")).unwrap();
        std::fs::write(real.join("work/readme.txt"), "hello").unwrap();
        std::fs::write(real.join("outside/secret.txt"), "secret").unwrap();
        let ls = std::fs::canonicalize("/usr/bin/ls").unwrap();
        let matrix = format!(
            r#"version: 1
features:
  read-all:
    description: Read any file under the test root
    risk: low
    scopes: ["files:read:{root}/**", "files:list:{root}/**"]
  write-work:
    description: Edit files in the work tree
    risk: low
    scopes: ["files:write:{root}/work/**"]
  run-ls:
    description: List directories
    risk: low
    scopes: ["exec:run:{ls}"]
  call-api:
    description: Call the example API
    risk: low
    scopes: ["http:get:https://api.example.com/v1/**"]
  write-notes:
    description: Write notes
    risk: low
    consent: required
    scopes: ["files:write:{root}/notes/**"]
  mcp-tools:
    description: Read through the filesystem MCP server; echo and read settings on the HTTP ones
    risk: low
    scopes: ["mcp:call:fs/read_text_file", "mcp:call:fs/list_directory", "mcp:call:fs/list_allowed_directories", "mcp:call:everything/echo", "mcp:call:everything/get-env", "mcp:call:modern/echo", "mcp:call:modern/read_config"]
profiles:
  desk:
    description: The test desktop
    features: [read-all, write-work, run-ls, call-api, write-notes, mcp-tools]
"#,
            root = real.display(),
            ls = ls.display()
        );
        let matrix_path = real.join("matrix.yaml");
        std::fs::write(&matrix_path, matrix).unwrap();
        let server = Server::with_matrix(&matrix_path, server_flags);
        let (tenant, admin) = server.tenant("desk").await;
        let (status, body) = server
            .put(
                &admin,
                "/v1/agent-policy",
                json!({
                    "heartbeat_interval_secs": policy[0],
                    "high_risk_after_secs": policy[1],
                    "read_only_after_secs": policy[2],
                    "offline_after_secs": policy[3],
                    "reason": "test bounds",
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let enroll_token = server.enroll_token(&admin, "desk").await;
        let state_dir = real.join("state");
        let output = Command::new(ward_bin())
            .args(["agent", "enroll", "--json", "--server", &server.url])
            .arg("--enroll-token")
            .arg(&enroll_token)
            .arg("--state-dir")
            .arg(&state_dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", super::stderr(&output));
        let agent: Value = serde_json::from_slice(&output.stdout).unwrap();
        let mut desk = Desk {
            server,
            admin,
            tenant,
            root,
            state_dir,
            agent_id: agent["id"].as_str().unwrap().to_owned(),
            daemon: None,
        };
        desk.start_daemon(&[]);
        // Every feature but `write-notes` (it waits for consent).
        desk.wait_for(|s| s.tokens.iter().filter(|t| t.expires_at.is_some()).count() == 5)
            .await;
        desk
    }

    /// Starts `ward agent run` on the state directory with extra flags;
    /// returns once its socket accepts connections.
    pub fn start_daemon(&mut self, extra: &[&str]) {
        let child = self
            .daemon_command(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let socket = extra
            .iter()
            .position(|arg| *arg == "--socket")
            .and_then(|at| extra.get(at + 1))
            .map_or_else(|| self.socket(), PathBuf::from);
        // A socket left by a killed daemon exists but refuses connections.
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "the daemon did not serve its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `ward agent run` command for this desk.
    pub fn daemon_command(&self, extra: &[&str]) -> Command {
        let mut command = Command::new(ward_bin());
        command
            .args(["agent", "run", "--state-dir"])
            .arg(&self.state_dir)
            .args(extra)
            .env("WARD_LOG", "warn");
        command
    }

    /// Kills the daemon with SIGKILL.
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Stops the daemon with SIGTERM and waits for it.
    pub fn stop_daemon(&mut self) -> std::process::ExitStatus {
        let mut child = self.daemon.take().unwrap();
        Command::new("kill")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        child.wait().unwrap()
    }

    /// A client of the daemon's socket.
    pub fn local(&self) -> LocalClient {
        LocalClient::new(&self.socket())
    }

    /// The daemon's status.
    pub async fn status(&self) -> LocalStatus {
        self.local().status().await.unwrap()
    }

    /// Waits (up to 20 s) until the status satisfies `ready`; returns it.
    pub async fn wait_for(&self, ready: impl Fn(&LocalStatus) -> bool) -> LocalStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(status) = self.local().status().await
                && ready(&status)
            {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not get there: {:?}",
                self.local().status().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Asks the daemon whether `action` may be done to `resource`.
    pub async fn authorize(&self, action: &str, resource: &str) -> AuthorizeResponse {
        self.local()
            .authorize(&AuthorizeRequest {
                feature: None,
                action: action.to_owned(),
                resource: resource.to_owned(),
                cwd: None,
                correlation_id: None,
            })
            .await
            .unwrap()
    }

    /// Events the server holds for this agent, all pages.
    pub async fn server_events(&self, query: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/events?agent={}&limit=1000&{query}", self.agent_id);
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let (status, page) = self.server.get(&self.admin, &path).await;
            assert_eq!(status, 200, "{page}");
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return events,
            }
        }
    }

    /// Waits (20 s at most) until the server holds an event matching
    /// `wanted`; `what` names it in the failure.
    pub async fn server_has(&self, what: &str, wanted: impl Fn(&Value) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.server_events("").await;
            if events.iter().any(&wanted) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {what} among {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An admin uninstalls the agent; waits (20 s at most) for the daemon
    /// to act on it and exit, and returns how it exited.
    pub async fn uninstall(&mut self) -> std::process::ExitStatus {
        let (status, body) = self
            .server
            .post(
                &self.admin,
                &format!("/v1/agents/{}/uninstall", self.agent_id),
                json!({"reason": "laptop returned"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let mut child = self.daemon.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(exit) = child.try_wait().unwrap() {
                return exit;
            }
            assert!(Instant::now() < deadline, "the daemon did not uninstall");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Path of a file in the state directory.
    pub fn state_file(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        self.kill_daemon();
    }
}
