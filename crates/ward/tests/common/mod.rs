//! Test harness: real `ward serve` processes on loopback, real SQLite files,
//! and helpers that speak the HTTP API the way a client would.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod desk;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;
use ward_auth::Keypair;

/// The `ward` binary under test.
pub fn ward_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ward")
}

/// The example matrix shipped in the repository.
pub fn example_matrix() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/matrix.yaml")
}

/// A running server with its own data directory.
pub struct Server {
    pub dir: TempDir,
    pub url: String,
    pub bootstrap: String,
    pub child: Child,
    extra: Vec<String>,
    matrix: PathBuf,
    pub http: reqwest::Client,
}

impl Server {
    /// Starts a server on the example matrix.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts a server that trusts `idp` for sign-in, with extra flags.
    pub fn trusting(idp: &Idp, extra: &[&str]) -> Server {
        let mut flags = idp.serve_flags();
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Server::start_with(&flags)
    }

    /// Starts a server with extra `ward serve` flags.
    pub fn start_with(extra: &[&str]) -> Server {
        Server::with_matrix(&example_matrix(), extra)
    }

    /// Starts a server on the matrix at `matrix`, with extra flags.
    pub fn with_matrix(matrix: &Path, extra: &[&str]) -> Server {
        ward_client::install_tls_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, url) = spawn(dir.path(), matrix, &extra, "127.0.0.1:0");
        let bootstrap = std::fs::read_to_string(dir.path().join("bootstrap-admin-token"))
            .expect("bootstrap token file")
            .trim()
            .to_owned();
        Server {
            dir,
            url,
            bootstrap,
            child,
            extra,
            matrix: matrix.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Kills the server with SIGKILL and starts it again on the same port and data.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// Kills the server with SIGKILL.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Starts the killed server again on the same port and data.
    pub fn restart(&mut self) {
        let addr = self.url.trim_start_matches("http://").to_owned();
        let (child, url) = spawn(self.dir.path(), &self.matrix, &self.extra, &addr);
        assert_eq!(url, self.url);
        self.child = child;
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A raw request builder for `path`.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    /// POSTs JSON with a bearer token; returns status and body.
    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, token, path, body)
            .await
    }

    /// PUTs JSON with a bearer token; returns status and body.
    pub async fn put(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.send_json(reqwest::Method::PUT, token, path, body)
            .await
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        send(self.request(method, path).bearer_auth(token).json(&body)).await
    }

    /// GETs with a bearer token; returns status and body.
    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        send(self.request(reqwest::Method::GET, path).bearer_auth(token)).await
    }

    /// Creates a tenant and returns (tenant id, tenant admin token).
    pub async fn tenant(&self, name: &str) -> (String, String) {
        let (status, tenant) = self
            .post(&self.bootstrap, "/v1/tenants", json!({"name": name}))
            .await;
        assert_eq!(status, 201, "{tenant}");
        let (status, token) = self
            .post(
                &self.bootstrap,
                "/v1/api-tokens",
                json!({"tenant": name, "role": "admin"}),
            )
            .await;
        assert_eq!(status, 201, "{token}");
        (
            tenant["id"].as_str().unwrap().to_owned(),
            token["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates an enrolment token for `profile`.
    pub async fn enroll_token(&self, admin: &str, profile: &str) -> String {
        let (status, body) = self
            .post(
                admin,
                "/v1/enroll-tokens",
                json!({"owner": "alice@example.com", "profile": profile}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Enrols a fresh device into `profile`; returns the agent and its key.
    pub async fn agent(&self, admin: &str, profile: &str) -> Agent {
        let enroll_token = self.enroll_token(admin, profile).await;
        let key = Keypair::generate().unwrap();
        let (status, body) = self.enroll_with(&enroll_token, &key).await;
        assert_eq!(status, 201, "{body}");
        Agent {
            id: body["id"].as_str().unwrap().to_owned(),
            key,
            state: body["state"].as_str().unwrap().to_owned(),
        }
    }

    /// Enrols `key` with an enrolment token; returns status and body.
    pub async fn enroll_with(&self, enroll_token: &str, key: &Keypair) -> (u16, Value) {
        let jwk = key.public_jwk();
        let body = json!({
            "enroll_token": enroll_token,
            "device_key": {"kty": jwk.kty, "crv": jwk.crv, "x": jwk.x},
            "device": {"os": "macos 15.2", "agent_version": "1.4.0", "host_id": "host-77"},
        });
        send(
            self.request(reqwest::Method::POST, "/v1/agents")
                .json(&body),
        )
        .await
    }

    /// A DPoP proof by `key` for `method` on `path` of this server.
    pub fn proof(&self, key: &Keypair, method: &str, path: &str) -> String {
        let jti = ward_auth::dpop::new_jti().unwrap();
        ward_auth::dpop::create_proof(
            key,
            method,
            &format!("{}{path}", self.url),
            now(),
            &jti,
            None,
        )
        .unwrap()
    }

    /// Asks for a token with a given proof; returns status and body.
    pub async fn token_with_proof(
        &self,
        agent_id: &str,
        proof: &str,
        scopes: &[&str],
    ) -> (u16, Value) {
        let body = json!({"agent_id": agent_id, "requested_scopes": scopes});
        send(
            self.request(reqwest::Method::POST, "/v1/tokens")
                .header("DPoP", proof)
                .json(&body),
        )
        .await
    }

    /// Asks for a token with a fresh, correct proof.
    pub async fn token(&self, agent: &Agent, scopes: &[&str]) -> (u16, Value) {
        let proof = self.proof(&agent.key, "POST", "/v1/tokens");
        self.token_with_proof(&agent.id, &proof, scopes).await
    }

    /// Records consent for `agent` as `by`: the owner's sign-in token.
    pub async fn consent(
        &self,
        by: &str,
        agent: &Agent,
        scopes: &[&str],
        decision: &str,
    ) -> (u16, Value) {
        let body = json!({"agent_id": agent.id, "scopes": scopes, "decision": decision, "text_version": "2026-11"});
        self.post(by, "/v1/consents", body).await
    }

    /// Records consent for `agent` as an admin acting for the owner.
    pub async fn consent_for_owner(
        &self,
        admin: &str,
        agent: &Agent,
        scopes: &[&str],
        decision: &str,
        reason: &str,
    ) -> (u16, Value) {
        let body = json!({"agent_id": agent.id, "scopes": scopes, "decision": decision, "text_version": "2026-11", "reason": reason});
        self.post(admin, "/v1/consents", body).await
    }

    /// Introspects a token as `admin`; returns the `active` flag and body.
    pub async fn introspect(&self, admin: &str, token: &str) -> (bool, Value) {
        let (status, body) = self
            .post(admin, "/v1/tokens/introspect", json!({"token": token}))
            .await;
        assert_eq!(status, 200, "{body}");
        (body["active"].as_bool().unwrap(), body)
    }

    /// Audit entries visible to `admin` matching a query string.
    pub async fn audit(&self, admin: &str, query: &str) -> Vec<Value> {
        let (status, body) = self
            .get(admin, &format!("/v1/audit?limit=1000&{query}"))
            .await;
        assert_eq!(status, 200, "{body}");
        body["entries"].as_array().unwrap().clone()
    }

    /// Runs the CLI against this server with `token`.
    pub fn cli(&self, token: &str, args: &[&str]) -> Output {
        Command::new(ward_bin())
            .args(args)
            .env("WARD_SERVER", &self.url)
            .env("WARD_TOKEN", token)
            .output()
            .expect("run ward")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An enrolled agent and its device key.
pub struct Agent {
    pub id: String,
    pub key: Keypair,
    pub state: String,
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sends a request; returns status and JSON body (or `null`).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Asserts an error body has the one error shape and the given code.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        body["error"]["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{body}"
    );
}

/// Sends `request`, expects a 429 with `code` and a `Retry-After` within
/// `retry`; the response headers.
pub async fn refused_429(
    request: reqwest::RequestBuilder,
    retry: std::ops::RangeInclusive<u64>,
    code: &str,
) -> reqwest::header::HeaderMap {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 429);
    let headers = response.headers().clone();
    let after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry.contains(&after), "{after}");
    let body: Value = response.json().await.unwrap();
    assert_error(429, &body, 429, code);
    headers
}

/// Output's stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Output's stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[allow(
    clippy::zombie_processes,
    reason = "the caller owns the child and reaps it on drop"
)]
fn spawn(dir: &Path, matrix: &Path, extra: &[String], listen: &str) -> (Child, String) {
    let mut child = Command::new(ward_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg(listen)
        .arg("--matrix")
        .arg(matrix)
        .args(extra)
        .env("WARD_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ward serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "ward serve did not start"
        );
        let line = lines
            .next()
            .expect("ward serve exited before listening")
            .expect("read");
        if let Some(rest) = line.strip_prefix("ward listening on ") {
            let url = rest.split_whitespace().next().unwrap().to_owned();
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (child, url);
        }
    }
}

/// A real OpenID provider (npm `oidc-provider`, `tests/oidc-provider`) on loopback.
pub struct Idp {
    pub issuer: String,
    pub child: Child,
    pub keys: PathBuf,
    pub http: reqwest::Client,
    _dir: TempDir,
}

impl Idp {
    /// Starts the provider with fresh RS256 keys on a free port.
    pub fn start() -> Idp {
        ward_client::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys.json");
        let (child, issuer) = spawn_idp(&keys, "0", &[]);
        Idp {
            issuer,
            child,
            keys,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Restarts on the same port and key file, with extra flags
    /// (`--rotate`, `--retire-old`).
    pub fn restart(&mut self, extra: &[&str]) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let port = self.issuer.rsplit(':').next().unwrap().to_owned();
        let (child, issuer) = spawn_idp(&self.keys, &port, extra);
        assert_eq!(issuer, self.issuer);
        self.child = child;
    }

    /// Creates or replaces a user.
    pub async fn user(&self, sub: &str, groups: &[&str], mfa: bool) {
        let body = json!({"sub": sub, "email": format!("{sub}@example.com"), "groups": groups, "mfa": mfa});
        let (status, answer) = send(
            self.http
                .post(format!("{}/__test/users", self.issuer))
                .json(&body),
        )
        .await;
        assert!(status == 200 || status == 201, "{answer}");
    }

    /// Mints a token for `user` through the provider itself.
    pub async fn token(&self, user: &str, extra: Value) -> String {
        let mut body = json!({"user": user, "kind": "access"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (status, answer) = send(
            self.http
                .post(format!("{}/__test/tokens", self.issuer))
                .json(&body),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        answer["token"].as_str().unwrap().to_owned()
    }

    /// Completes a pending device login for `user`.
    pub async fn approve_device(&self, user_code: &str, user: &str) {
        let body = json!({"user_code": user_code, "user": user});
        let (status, answer) = send(
            self.http
                .post(format!("{}/__test/device/approve", self.issuer))
                .json(&body),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }

    /// `ward serve` flags trusting this provider.
    pub fn serve_flags(&self) -> Vec<String> {
        vec![
            "--oidc-issuer".into(),
            self.issuer.clone(),
            "--oidc-audience".into(),
            "ward".into(),
            "--oidc-jwks-min-refresh-secs".into(),
            "0".into(),
            "--oidc-jwks-max-age-secs".into(),
            "1".into(),
        ]
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(
    clippy::zombie_processes,
    reason = "the caller owns the child and reaps it on drop"
)]
fn spawn_idp(keys: &Path, port: &str, extra: &[&str]) -> (Child, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc-provider");
    assert!(
        root.join("node_modules").exists(),
        "the test OpenID provider is not installed: run `npm ci --prefix tests/oidc-provider` (./scripts/test does)"
    );
    let mut child = Command::new("node")
        .arg(root.join("server.mjs"))
        .args(["--port", port, "--keys"])
        .arg(keys)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node must be installed to run the OpenID provider");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .expect("oidc-provider exited before listening")
        .unwrap();
    let issuer = line
        .strip_prefix("oidc-provider listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    std::thread::spawn(move || for _ in lines {});
    (child, issuer)
}

/// A child process, killed and reaped when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` and waits up to 30 s for a line on its stdout (or
/// stderr, with `on_stderr`) that starts with `prefix`; returns the rest
/// of that line. The stream is drained afterwards so the child never
/// blocks on a full pipe.
pub fn start_until(command: &mut Command, on_stderr: bool, prefix: &str) -> (Running, String) {
    if on_stderr {
        command.stderr(Stdio::piped());
    } else {
        command.stdout(Stdio::piped());
    }
    let mut child = Running(command.spawn().expect("spawn"));
    let stream: Box<dyn std::io::Read + Send> = if on_stderr {
        Box::new(child.0.stderr.take().expect("stderr"))
    } else {
        Box::new(child.0.stdout.take().expect("stdout"))
    };
    let (found, seen) = std::sync::mpsc::channel();
    let wanted = prefix.to_owned();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(rest) = line.strip_prefix(&wanted) {
                let _ = found.send(rest.to_owned());
                sent = true;
            }
        }
    });
    let rest = seen
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("`{command:?}` did not print `{prefix}…` within 30 s"));
    (child, rest)
}

/// A scripted stand-in for an agent's model API (`tests/AGENT/model.py
/// SCRIPT LOG`, printing `listening on PORT`), stopped on drop.
pub struct ScriptedModel {
    _child: Running,
    /// Its base URL on loopback.
    pub url: String,
    /// Where it logs every request, one JSON line each.
    pub log: PathBuf,
}

impl ScriptedModel {
    /// Starts `tests/<agent>/model.py` with `script`, logging to `log`.
    pub fn start(agent: &str, script: &Path, log: &Path) -> ScriptedModel {
        let program = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests")
            .join(agent)
            .join("model.py");
        let mut command = Command::new("python3");
        command.arg(program).arg(script).arg(log);
        let (child, port) = start_until(&mut command, false, "listening on ");
        ScriptedModel {
            _child: child,
            url: format!("http://127.0.0.1:{}", port.trim()),
            log: log.to_owned(),
        }
    }

    /// Every request it was sent, in order.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// Checks a metrics page with Prometheus' own linter, `promtool check
/// metrics` (`$PROMTOOL`, else `promtool` on the path; `scripts/test`
/// provides it). Without it, says so and checks nothing.
pub fn promtool_check(metrics: &str) {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("SKIPPED: promtool not found (set PROMTOOL); /metrics not linted");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{metrics}",
        stdout(&out),
        stderr(&out)
    );
}
