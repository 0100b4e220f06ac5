//! `ward gateway` as a black box: a real control plane, a real upstream on
//! loopback that echoes what it received, and the gateway as a child
//! process in between. Timings of revocations and kill switches are
//! measured and printed; the tests assert the refusals, not the times.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ward_auth::Keypair;

const READ: &str = "files:read:/home/alice/projects/**";

/// An HTTP/1.1 server that answers every request with the request it saw
/// as JSON, except `/boom/...`, which fails with internals in its body.
struct Upstream {
    url: String,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || serve_connection(stream));
            }
        });
        Upstream { url }
    }
}

fn serve_connection(stream: TcpStream) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = serde_json::Map::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
            if name == "content-length" {
                length = value.parse().unwrap();
            }
            let joined = match headers.get(&name) {
                Some(Value::String(old)) => format!("{old}, {value}"),
                _ => value,
            };
            headers.insert(name, Value::String(joined));
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        if path.starts_with("/stream/") {
            let hold = path
                .split_once("?hold=")
                .and_then(|(_, secs)| secs.parse().ok())
                .map(Duration::from_secs);
            if stream_in_two_parts(&mut writer, hold).is_err() {
                return;
            }
            continue;
        }
        let (status, answer) = if path.starts_with("/boom/") {
            (
                "500 Internal Server Error",
                "panic at db.rs:42: password=hunter2".to_owned(),
            )
        } else {
            let echo = json!({"method": method, "path": path, "headers": headers,
                "body": String::from_utf8_lossy(&body)});
            ("200 OK", echo.to_string())
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Lets `/stream/...` send its second part.
static RELEASE_STREAM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A chunked answer whose first part is sent at once and whose second part
/// waits for [`RELEASE_STREAM`] (or, with `hold`, that long regardless): a
/// client sees the first part through the gateway only if the gateway
/// streams.
fn stream_in_two_parts(writer: &mut TcpStream, hold: Option<Duration>) -> std::io::Result<()> {
    writer.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n",
    )?;
    writer.flush()?;
    let waiting = Instant::now();
    if let Some(hold) = hold {
        std::thread::sleep(hold);
    }
    while hold.is_none()
        && !RELEASE_STREAM.load(std::sync::atomic::Ordering::SeqCst)
        && waiting.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    writer.write_all(b"5\r\nlast\n\r\n0\r\n\r\n")?;
    writer.flush()
}

/// A running `ward gateway` and the access log lines it printed.
struct Gateway {
    child: Child,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn contract() -> String {
    example("contracts/search.json")
}

/// The absolute path of a file under `examples/`.
fn example(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(file)
        .display()
        .to_string()
}

fn gateway_config(server: &Server, upstream: &Upstream, staleness: u64, extra: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:0
control_plane:
  url: {cp}
  token: {token}
upstream: {up}
staleness_secs: {staleness}
clock_skew_secs: 1
max_body_bytes: 512
{extra}
routes:
  - name: read-file
    methods: [GET, HEAD]
    path: /files/{{user}}/{{project}}/{{name}}
    scope: files:read:/home/{{user}}/projects/{{project}}/{{name}}
  - name: search
    methods: [POST]
    path: /projects/{{user}}/{{project}}/search
    scope: files:read:/home/{{user}}/projects/{{project}}
    schema: {schema}
  - name: flagged
    methods: [GET]
    path: /flagged/{{user}}
    scope: files:read:/home/{{user}}/projects/flagged
    flag: project-search
  - name: limited
    methods: [GET]
    path: /limited/{{user}}
    scope: files:read:/home/{{user}}/projects/limited
    rate_limit: {{per_second: 0.5, burst: 3}}
  - name: secrets
    methods: [GET]
    path: /secrets/db/{{name}}
    scope: secrets:read:db/{{name}}
  - name: reports
    methods: [GET]
    path: /reports/{{user}}
    scope: files:read:/home/{{user}}/projects/reports
    sensitive: true
  - name: boom
    methods: [GET]
    path: /boom/{{user}}
    scope: files:read:/home/{{user}}/projects/boom
  - name: quota
    methods: [GET]
    path: /quota/{{user}}
    scope: files:read:/home/{{user}}/projects/quota
    daily_quota: 2
  - name: shared
    methods: [GET]
    path: /shared/{{user}}
    scope: files:read:/home/{{user}}/projects/shared
    user_rate_limit: {{per_second: 0.5, burst: 2}}
  - name: stream
    methods: [GET]
    path: /stream/{{user}}
    scope: files:read:/home/{{user}}/projects/stream
  - name: notes
    methods: [GET, POST]
    path: /notes/{{user}}
    scope: files:read:/home/{{user}}/projects/notes
    openapi: {notes}
"#,
        cp = server.url,
        token = server.bootstrap,
        up = upstream.url,
        schema = contract(),
        notes = example("contracts/notes.openapi.yaml"),
    )
}

impl Gateway {
    #[allow(
        clippy::zombie_processes,
        reason = "the Gateway owns the child and reaps it on drop"
    )]
    fn start(server: &Server, upstream: &Upstream, staleness: u64, extra: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let config = gateway_config(server, upstream, staleness, extra);
        Gateway::launch(dir, &config, reqwest::Client::new())
    }

    /// Starts `ward gateway` on `config`, written into `dir`; `http` is the
    /// client the test speaks to it with.
    fn launch(dir: tempfile::TempDir, config: &str, http: reqwest::Client) -> Gateway {
        let path = dir.path().join("gateway.yaml");
        std::fs::write(&path, config).unwrap();
        let config = path;
        let mut child = Command::new(ward_bin())
            .args(["gateway", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ward gateway");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("ward gateway exited before listening")
                .unwrap();
            if let Some(rest) = line.strip_prefix("ward gateway listening on ") {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Gateway {
            child,
            url,
            log,
            http,
            _dir: dir,
        }
    }

    /// A request with a fresh, correct proof by `key` for `token`.
    fn request(
        &self,
        key: &Keypair,
        token: &str,
        method: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let proof = proof(key, token, method, &format!("{}{path}", self.url));
        self.http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
    }

    async fn get(&self, key: &Keypair, token: &str, path: &str) -> (u16, Value) {
        send(self.request(key, token, "GET", path)).await
    }

    async fn post(&self, key: &Keypair, token: &str, path: &str, body: Value) -> (u16, Value) {
        send(self.request(key, token, "POST", path).json(&body)).await
    }

    async fn ready(&self) -> (u16, Value) {
        send(self.http.get(format!("{}/readyz", self.url))).await
    }

    async fn metrics(&self) -> String {
        let response = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Sends raw bytes (for paths a client library would rewrite).
    fn raw(&self, request_line: &str) -> (u16, Value) {
        let addr = self.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "{request_line}\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

fn proof(key: &Keypair, token: &str, method: &str, url: &str) -> String {
    let jti = ward_auth::dpop::new_jti().unwrap();
    let ath = ward_auth::dpop::ath_for(token);
    ward_auth::dpop::create_proof(key, method, url, now(), &jti, Some(&ath)).unwrap()
}

/// A control plane with one tenant and reader agents, an upstream and a gateway.
struct World {
    server: Server,
    admin: String,
    upstream: Upstream,
    gateway: Gateway,
}

impl World {
    async fn start(staleness: u64) -> World {
        let server = Server::start();
        let (_, admin) = server.tenant("acme").await;
        let upstream = Upstream::start();
        let gateway = Gateway::start(&server, &upstream, staleness, "");
        World {
            server,
            admin,
            upstream,
            gateway,
        }
    }

    /// A fresh reader agent and a token for `scopes`.
    async fn agent(&self, scopes: &[&str]) -> (Agent, String) {
        let agent = self.server.agent(&self.admin, "reader").await;
        let token = self.token(&agent, scopes).await;
        (agent, token)
    }

    async fn token(&self, agent: &Agent, scopes: &[&str]) -> String {
        let (status, body) = self.server.token(agent, scopes).await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Revokes with `body` at the control plane, then polls `path` with
    /// `token` until the gateway refuses it as revoked; prints how long
    /// that took after the call (the test asserts the refusal, not the time).
    async fn revoke_and_wait(
        &self,
        what: &str,
        body: Value,
        key: &Keypair,
        token: &str,
        path: &str,
    ) {
        let started = Instant::now();
        let (status, answer) = self
            .server
            .post(&self.admin, "/v1/tokens/revoke", body)
            .await;
        assert_eq!(status, 201, "{answer}");
        let answered = started.elapsed();
        let (_, refused) = self.until_refused(key, token, path, 401).await;
        eprintln!(
            "{what}: refused {:?} after the revoke call (which answered after {answered:?})",
            started.elapsed()
        );
        assert_error(401, &refused, 401, "token_revoked");
    }

    /// Polls `path` until the gateway refuses it with `status`; returns
    /// how long that took.
    async fn until_refused(
        &self,
        key: &Keypair,
        token: &str,
        path: &str,
        status: u16,
    ) -> (Duration, Value) {
        let started = Instant::now();
        loop {
            let (got, body) = self.gateway.get(key, token, path).await;
            if got == status {
                return (started.elapsed(), body);
            }
            assert_eq!(got, 200, "{body}");
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "still allowed after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn claims(token: &str) -> Value {
    ward_auth::jws::decode_unverified(token).unwrap().claims
}

/// The same claims re-signed by the control plane's own key with `edit`
/// applied: a genuinely signed token the server never issued.
fn resigned(server: &Server, token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let decoded = ward_auth::jws::decode_unverified(token).unwrap();
    let kid = decoded.header_str("kid").unwrap().to_owned();
    let seed =
        std::fs::read_to_string(server.data_dir().join("keys").join(format!("{kid}.key"))).unwrap();
    let seed: [u8; 32] = URL_SAFE_NO_PAD
        .decode(seed.trim())
        .unwrap()
        .try_into()
        .unwrap();
    let key = Keypair::from_seed(&seed);
    let mut claims = decoded.claims;
    edit(&mut claims);
    ward_auth::jws::sign(&key, &decoded.header, &claims).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_call_reaches_the_upstream_with_the_verified_identity_only() {
    let w = World::start(30).await;
    let (agent, token) = w.agent(&[READ]).await;
    let response = w
        .gateway
        .request(
            &agent.key,
            &token,
            "GET",
            "/files/alice/site/readme.md?rev=3",
        )
        .header("X-Ward-Agent-Id", "agt_forged")
        .header("X-Ward-Tenant", "ten_forged")
        .header("X-Ward-Scopes", "*:*:/**")
        .header("X-Forwarded-For", "10.9.9.9")
        .header("Forwarded", "for=10.9.9.9")
        .header("X-Correlation-Id", "corr-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-correlation-id"], "corr-test-1");
    let echo: Value = response.json().await.unwrap();
    let headers = &echo["headers"];
    assert_eq!(echo["path"], "/files/alice/site/readme.md?rev=3");
    assert_eq!(headers["x-ward-agent-id"], agent.id.as_str(), "{echo}");
    let facts = claims(&token);
    assert_eq!(headers["x-ward-tenant"], facts["tenant"]);
    assert_eq!(headers["x-ward-user"], "alice@example.com");
    assert_eq!(headers["x-ward-device-id"], facts["device_id"]);
    assert_eq!(headers["x-ward-scopes"], READ);
    assert_eq!(headers["x-correlation-id"], "corr-test-1");
    let traceparent = headers["traceparent"].as_str().unwrap();
    assert_eq!(traceparent.len(), 55, "{traceparent}");
    assert!(headers.get("authorization").is_none(), "{echo}");
    assert!(headers.get("dpop").is_none(), "{echo}");
    assert!(!echo.to_string().contains("forged"), "{echo}");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{echo}");
    assert!(headers.get("forwarded").is_none(), "{echo}");

    // A valid incoming traceparent keeps its trace id.
    let response = w
        .gateway
        .request(&agent.key, &token, "GET", "/files/alice/site/a")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    let echo: Value = response.json().await.unwrap();
    assert!(
        echo["headers"]["traceparent"]
            .as_str()
            .unwrap()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{echo}"
    );

    // A failing upstream's internals never reach the client.
    let (status, body) = w.gateway.get(&agent.key, &token, "/boom/alice").await;
    assert_error(status, &body, 502, "upstream_error");
    assert!(!body.to_string().contains("hunter2"), "{body}");

    // One JSON access log line per request, without the token (the log is
    // written in batches, at least every 50 ms).
    let waiting = Instant::now();
    let log = loop {
        let log = w.gateway.log.lock().unwrap().clone();
        if log
            .iter()
            .any(|l| l.contains("/boom/") || l.contains("\"route\":\"boom\""))
        {
            break log;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(5),
            "no access log: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let line = log
        .iter()
        .find(|l| l.contains("corr-test-1"))
        .expect("an access log line");
    assert!(!line.contains(&token), "{line}");
    let entry: Value = serde_json::from_str(line).unwrap();
    for field in [
        "ts",
        "correlation_id",
        "agent_id",
        "user_id",
        "device_id",
        "tenant",
        "route",
        "action",
        "target",
        "result",
        "status",
        "duration_ms",
        "bytes",
    ] {
        assert!(entry.get(field).is_some(), "{field} missing in {entry}");
    }
    assert_eq!(entry["agent_id"], agent.id.as_str());
    assert_eq!(entry["route"], "read-file");
    assert_eq!(entry["action"], "files:read");
    assert_eq!(entry["target"], "/home/alice/projects/site/readme.md");
    assert_eq!(entry["result"], "allowed");
    assert_eq!(entry["status"], 200);
    assert!(
        !log.iter().any(|l| l.contains("rev=3")),
        "no query strings in the log"
    );
    let (status, ready) = w.gateway.ready().await;
    assert_eq!(status, 200, "{ready}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_proofs_that_do_not_verify_are_refused() {
    let w = World::start(30).await;
    let (agent, token) = w.agent(&[READ]).await;
    let path = "/files/alice/site/a";
    let url = format!("{}{path}", w.gateway.url);
    let http = &w.gateway.http;

    let (status, body) = send(http.get(&url)).await;
    assert_error(status, &body, 401, "missing_token");
    let (status, body) = send(http.get(&url).bearer_auth(&token)).await;
    assert_error(status, &body, 401, "dpop_required");
    let (status, body) = send(
        http.get(&url)
            .header("Authorization", format!("DPoP {token}")),
    )
    .await;
    assert_error(status, &body, 401, "invalid_dpop_proof");

    // Altered signature (a character in the middle of it).
    let mut bad = token.clone().into_bytes();
    let at = bad.len() - 20;
    bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    let (status, body) = w.gateway.get(&agent.key, &bad, path).await;
    assert_error(status, &body, 401, "bad_signature");

    // Signed by a key the control plane does not publish.
    let stranger = Keypair::generate().unwrap();
    let decoded = ward_auth::jws::decode_unverified(&token).unwrap();
    let forged = ward_auth::jws::sign(&stranger, &decoded.header, &decoded.claims).unwrap();
    let (status, body) = w.gateway.get(&agent.key, &forged, path).await;
    assert_error(status, &body, 401, "bad_signature");

    // Expired (beyond the 5 s skew) and not yet valid, signed by the real key.
    let expired = resigned(&w.server, &token, |c| {
        c["iat"] = json!(now() - 600);
        c["nbf"] = json!(now() - 600);
        c["exp"] = json!(now() - 10);
    });
    let (status, body) = w.gateway.get(&agent.key, &expired, path).await;
    assert_error(status, &body, 401, "token_expired");
    let early = resigned(&w.server, &token, |c| c["nbf"] = json!(now() + 60));
    let (status, body) = w.gateway.get(&agent.key, &early, path).await;
    assert_error(status, &body, 401, "token_not_yet_valid");

    // A proof by another key than the token's `cnf.jkt`.
    let (status, body) = w.gateway.get(&stranger, &token, path).await;
    assert_error(status, &body, 401, "dpop_key_mismatch");

    // A replayed proof.
    let once = proof(&agent.key, &token, "GET", &url);
    let call = || {
        http.get(&url)
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", once.clone())
    };
    assert_eq!(send(call()).await.0, 200);
    let (status, body) = send(call()).await;
    assert_error(status, &body, 401, "dpop_replay");

    // `ath` for another token.
    let (_, other_token) = w.agent(&[READ]).await;
    let wrong_ath = proof(&agent.key, &other_token, "GET", &url);
    let (status, body) = send(
        http.get(&url)
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", wrong_ath),
    )
    .await;
    assert_error(status, &body, 401, "dpop_ath_mismatch");

    // A proof for another URL or method.
    let elsewhere = proof(
        &agent.key,
        &token,
        "GET",
        &format!("{}/files/alice/site/b", w.gateway.url),
    );
    let (status, body) = send(
        http.get(&url)
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", elsewhere),
    )
    .await;
    assert_error(status, &body, 401, "dpop_url_mismatch");
    let posted = proof(&agent.key, &token, "POST", &url);
    let (status, body) = send(
        http.get(&url)
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", posted),
    )
    .await;
    assert_error(status, &body, 401, "dpop_method_mismatch");
}

#[tokio::test(flavor = "multi_thread")]
async fn revocations_take_effect_while_the_gateway_runs() {
    let w = World::start(30).await;
    let path = "/files/alice/site/a";

    let (by_jti, token) = w.agent(&[READ]).await;
    let (kept, kept_token) = w.agent(&[READ]).await;
    assert_eq!(w.gateway.get(&by_jti.key, &token, path).await.0, 200);
    let jti = claims(&token)["jti"].as_str().unwrap().to_owned();
    w.revoke_and_wait(
        "revocation by jti",
        json!({"jti": jti, "reason": "leaked"}),
        &by_jti.key,
        &token,
        path,
    )
    .await;
    assert_eq!(w.gateway.get(&kept.key, &kept_token, path).await.0, 200);

    let (by_agent, token) = w.agent(&[READ]).await;
    assert_eq!(w.gateway.get(&by_agent.key, &token, path).await.0, 200);
    w.revoke_and_wait(
        "revocation by agent",
        json!({"agent_id": by_agent.id, "reason": "lost laptop"}),
        &by_agent.key,
        &token,
        path,
    )
    .await;
    assert_eq!(w.gateway.get(&kept.key, &kept_token, path).await.0, 200);

    w.revoke_and_wait(
        "revocation by scope prefix",
        json!({"scope_prefix": "files:read:/home/alice", "reason": "bug"}),
        &kept.key,
        &kept_token,
        path,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_switches_take_effect_while_the_gateway_runs() {
    let w = World::start(30).await;
    let (agent, token) = w.agent(&[READ]).await;
    let (other, other_token) = w.agent(&[READ]).await;
    let read = "/files/alice/site/a";
    let search = "/projects/alice/site/search";
    let query = json!({"query": "todo"});
    assert_eq!(
        w.gateway
            .post(&agent.key, &token, search, query.clone())
            .await
            .0,
        200
    );

    let started = Instant::now();
    let (status, body) = w.server.put(&w.admin,
        "/v1/killswitch",
        json!({"scope": "agent", "target": agent.id, "mode": "read-only", "reason": "odd writes"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answered = started.elapsed();
    let (status, body) = loop {
        let (status, body) = w
            .gateway
            .post(&agent.key, &token, search, query.clone())
            .await;
        if status != 200 || started.elapsed() > Duration::from_secs(10) {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    eprintln!(
        "kill switch read-only: refused {:?} after the call (which answered after {answered:?})",
        started.elapsed()
    );
    assert_error(status, &body, 403, "kill_switch_read_only");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("odd writes"),
        "{body}"
    );
    assert_eq!(
        w.gateway.get(&agent.key, &token, read).await.0,
        200,
        "reads pass"
    );
    assert_eq!(
        w.gateway
            .post(&other.key, &other_token, search, query.clone())
            .await
            .0,
        200,
        "other agents are untouched"
    );

    let started = Instant::now();
    let (status, body) = w
        .server
        .put(
            &w.admin,
            "/v1/killswitch",
            json!({"scope": "tenant", "mode": "offline", "reason": "incident 7"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answered = started.elapsed();
    let (_, refused) = w.until_refused(&other.key, &other_token, read, 403).await;
    eprintln!(
        "kill switch offline: refused {:?} after the call (which answered after {answered:?})",
        started.elapsed()
    );
    assert_error(403, &refused, 403, "kill_switch_offline");
    let (status, body) = w.gateway.get(&agent.key, &token, read).await;
    assert_error(status, &body, 403, "kill_switch_offline");

    let (status, _) = w
        .server
        .put(
            &w.admin,
            "/v1/killswitch",
            json!({"scope": "tenant", "mode": "normal", "reason": "resolved"}),
        )
        .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    loop {
        if w.gateway.get(&other.key, &other_token, read).await.0 == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "release not applied"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_paths_and_bodies_are_checked_against_the_contract() {
    let w = World::start(30).await;
    let (agent, token) = w.agent(&[READ]).await;
    let g = &w.gateway;
    let search = "/projects/alice/site/search";

    let (status, body) = g.get(&agent.key, &token, "/admin/users").await;
    assert_error(status, &body, 404, "no_route");
    let (status, body) = g.get(&agent.key, &token, search).await;
    assert_error(status, &body, 405, "method_not_allowed");
    for trick in [
        "GET /files/alice/../bob/x HTTP/1.1",
        "GET /files/alice/./site/x HTTP/1.1",
        "GET /files/alice/site%2F..%2Fbob/x HTTP/1.1",
        "GET /files/alice/%2e%2e/x HTTP/1.1",
        "GET /files//alice/site/x HTTP/1.1",
        "GET /files/alice/site\\x/y HTTP/1.1",
        "GET /files/alice/*/x HTTP/1.1",
    ] {
        let (status, body) = g.raw(trick);
        assert_error(status, &body, 400, "invalid_path");
    }

    // Scope not covered by the token.
    let (status, body) = g.get(&agent.key, &token, "/secrets/db/main").await;
    assert_error(status, &body, 403, "insufficient_scope");
    let (status, body) = g.get(&agent.key, &token, "/files/bob/site/a").await;
    assert_error(status, &body, 403, "insufficient_scope");

    // Bodies.
    let (status, echo) = g
        .post(
            &agent.key,
            &token,
            search,
            json!({"query": "todo", "limit": 5}),
        )
        .await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["body"], r#"{"limit":5,"query":"todo"}"#);
    let (status, body) = send(
        g.request(&agent.key, &token, "POST", search)
            .header("Content-Type", "text/plain")
            .body(r#"{"query":"todo"}"#),
    )
    .await;
    assert_error(status, &body, 415, "unsupported_media_type");
    let (status, body) = g
        .post(
            &agent.key,
            &token,
            search,
            json!({"query": "todo", "sort": "asc"}),
        )
        .await;
    assert_error(status, &body, 400, "unknown_field");
    assert_eq!(body["error"]["field"], "/sort");
    let (status, body) = g
        .post(
            &agent.key,
            &token,
            search,
            json!({"query": "todo", "filters": {"extension": "rs", "hidden": true}}),
        )
        .await;
    assert_error(status, &body, 400, "unknown_field");
    assert_eq!(body["error"]["field"], "/filters/hidden");
    let (status, body) = g
        .post(
            &agent.key,
            &token,
            search,
            json!({"query": "todo", "limit": 1000}),
        )
        .await;
    assert_error(status, &body, 400, "schema_violation");
    assert_eq!(body["error"]["field"], "/limit");
    let (status, body) = g
        .post(&agent.key, &token, search, json!({"limit": 3}))
        .await;
    assert_error(status, &body, 400, "schema_violation");
    let (status, body) = send(
        g.request(&agent.key, &token, "POST", search)
            .header("Content-Type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_error(status, &body, 400, "invalid_json");
    let (status, body) = g
        .post(
            &agent.key,
            &token,
            search,
            json!({"query": "x".repeat(600)}),
        )
        .await;
    assert_error(status, &body, 413, "body_too_large");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openapi_document_is_the_contract_of_each_method() {
    let w = World::start(30).await;
    let (agent, token) = w.agent(&[READ]).await;
    let (k, t) = (&agent.key, token.as_str());
    let good = json!({"title": "Plan", "due": null,
        "tags": [{"name": "q3", "colour": "red"}]});
    let (status, echo) = w.gateway.post(k, t, "/notes/alice", good).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["method"], "POST");

    for (body, code, field) in [
        // Read-only in the document: only the service sets it.
        (
            json!({"title": "x", "id": "note_9"}),
            "forbidden_field",
            "/id",
        ),
        // Not in the document, at the top and inside a referenced schema.
        (
            json!({"title": "x", "owner": "bob"}),
            "unknown_field",
            "/owner",
        ),
        (
            json!({"title": "x", "tags": [{"name": "a", "admin": true}]}),
            "unknown_field",
            "/tags/0/admin",
        ),
        (json!({"title": ""}), "schema_violation", "/title"),
        (json!({"title": "x", "due": 5}), "schema_violation", "/due"),
        (
            json!({"title": "x", "tags": [{"name": "A B"}]}),
            "schema_violation",
            "/tags/0/name",
        ),
        (json!({"body": "no title"}), "schema_violation", "/"),
    ] {
        let (status, error) = w.gateway.post(k, t, "/notes/alice", body.clone()).await;
        assert_error(status, &error, 400, code);
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    // The document says the body is required for POST...
    let (status, error) = send(w.gateway.request(k, t, "POST", "/notes/alice")).await;
    assert_error(status, &error, 400, "body_required");
    // ...and that GET takes none.
    let (status, echo) = w.gateway.get(k, t, "/notes/alice").await;
    assert_eq!(status, 200, "{echo}");
    let smuggled = w
        .gateway
        .request(k, t, "GET", "/notes/alice")
        .json(&json!({"smuggled": true}));
    let (status, error) = send(smuggled).await;
    assert_error(status, &error, 400, "unexpected_body");

    // The query string is part of the contract too.
    let (status, echo) = w
        .gateway
        .get(k, t, "/notes/alice?limit=5&tag=q3&tag=ops&archived=false")
        .await;
    assert_eq!(status, 200, "{echo}");
    for (query, code, field) in [
        ("?limit=abc", "schema_violation", "?limit"),
        ("?limit=500", "schema_violation", "?limit"),
        ("?tag=Not+Valid", "schema_violation", "?tag"),
        ("?archived=yes", "schema_violation", "?archived"),
        ("?limit=1&limit=2", "duplicate_query_parameter", "?limit"),
        ("?_method=DELETE", "unknown_query_parameter", "?_method"),
        ("?limit=%FF", "invalid_query", ""),
    ] {
        let (status, error) = w.gateway.get(k, t, &format!("/notes/alice{query}")).await;
        assert_error(status, &error, 400, code);
        if !field.is_empty() {
            assert_eq!(error["error"]["field"], field, "{query}: {error}");
        }
    }
    let (status, error) = send(
        w.gateway
            .request(k, t, "POST", "/notes/alice?limit=1")
            .json(&json!({"title": "x"})),
    )
    .await;
    assert_error(status, &error, 400, "unknown_query_parameter");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_and_feature_flags_refuse_with_their_codes() {
    let w = World::start(30).await;
    let (agent, token) = w.agent(&[READ]).await;
    let (other, other_token) = w.agent(&[READ]).await;
    for _ in 0..3 {
        assert_eq!(
            w.gateway.get(&agent.key, &token, "/limited/alice").await.0,
            200
        );
    }
    let headers = refused_429(
        w.gateway
            .request(&agent.key, &token, "GET", "/limited/alice"),
        1..=2,
        "rate_limited",
    )
    .await;
    assert_eq!(headers["ratelimit-limit"], "3");
    assert_eq!(headers["ratelimit-remaining"], "0");
    assert_eq!(
        w.gateway
            .get(&other.key, &other_token, "/limited/alice")
            .await
            .0,
        200,
        "the limit is per agent"
    );

    // A daily quota per agent.
    for _ in 0..2 {
        assert_eq!(
            w.gateway.get(&agent.key, &token, "/quota/alice").await.0,
            200
        );
    }
    refused_429(
        w.gateway.request(&agent.key, &token, "GET", "/quota/alice"),
        1..=86_400,
        "quota_exceeded",
    )
    .await;
    assert_eq!(
        w.gateway
            .get(&other.key, &other_token, "/quota/alice")
            .await
            .0,
        200
    );

    // A limit per user spans the user's agents.
    assert_eq!(
        w.gateway.get(&agent.key, &token, "/shared/alice").await.0,
        200
    );
    assert_eq!(
        w.gateway
            .get(&other.key, &other_token, "/shared/alice")
            .await
            .0,
        200
    );
    let (status, body) = w.gateway.get(&agent.key, &token, "/shared/alice").await;
    assert_error(status, &body, 429, "rate_limited");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("user"),
        "{body}"
    );

    // A limit per client address applies before the credentials are looked at.
    let strict = Gateway::start(
        &w.server,
        &w.upstream,
        30,
        "ip_rate_limit: {per_second: 0.5, burst: 2}",
    );
    let url = format!("{}/files/alice/site/a", strict.url);
    for _ in 0..2 {
        assert_eq!(send(strict.http.get(&url)).await.0, 401);
    }
    let (status, body) = send(strict.http.get(&url)).await;
    assert_error(status, &body, 429, "rate_limited");

    let metrics = w.gateway.metrics().await;
    promtool_check(&metrics);
    assert!(
        metrics.contains(r#"ward_gateway_requests_total{route="quota",result="denied",code="quota_exceeded",status="429"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("ward_gateway_stream_connected 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ward_gateway_request_duration_seconds_count{route=\"limited\"}"),
        "{metrics}"
    );

    assert_eq!(
        w.gateway.get(&agent.key, &token, "/flagged/alice").await.0,
        200
    );
    let (status, body) = w
        .server
        .put(
            &w.admin,
            "/v1/flags/project-search",
            json!({"enabled": false, "scope": "tenant", "reason": "bad release"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, refused) = w
        .until_refused(&agent.key, &token, "/flagged/alice", 403)
        .await;
    assert_error(403, &refused, 403, "feature_disabled");
    assert_eq!(
        w.gateway
            .get(&agent.key, &token, "/files/alice/site/a")
            .await
            .0,
        200,
        "routes without the flag are untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_control_plane_low_risk_routes_keep_working_and_sensitive_or_high_risk_ones_fail_closed()
 {
    let mut w = World::start(2).await;
    let (agent, token) = w.agent(&[READ]).await;
    let read = "/files/alice/site/a";
    let (status, body) = w.gateway.get(&agent.key, &token, "/reports/alice").await;
    assert_error(status, &body, 403, "approval_required");
    // A route not marked sensitive, whose scope is one of the matrix's
    // high-risk features (`read-db-secrets`); a genuinely signed token for it.
    let risky = resigned(&w.server, &token, |c| {
        c["scopes"] = json!([READ, "secrets:read:db/main"]);
    });
    let secret = "/secrets/db/main";
    let (status, body) = w.gateway.get(&agent.key, &risky, secret).await;
    assert_eq!(status, 200, "{body}");

    w.server.child.kill().unwrap();
    w.server.child.wait().unwrap();
    let started = Instant::now();
    let ready = loop {
        let (status, ready) = w.gateway.ready().await;
        if status == 503 {
            break ready;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never stale: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready["status"], "stale", "{ready}");
    assert!(ready["staleness_secs"].as_f64().unwrap() > 2.0, "{ready}");
    assert_eq!(
        w.gateway.get(&agent.key, &token, read).await.0,
        200,
        "cached state serves low-risk routes"
    );
    let (status, body) = w.gateway.get(&agent.key, &token, "/reports/alice").await;
    assert_error(status, &body, 503, "state_stale");
    let (status, body) = w.gateway.get(&agent.key, &risky, secret).await;
    assert_error(status, &body, 503, "state_stale");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("high-risk"),
        "{body}"
    );
    let metrics = w.gateway.metrics().await;
    assert!(metrics.contains("ward_gateway_state_stale 1"), "{metrics}");
    assert!(
        metrics.contains("ward_gateway_stream_connected 0"),
        "{metrics}"
    );

    // Revoke right after the restart, before the gateway's backoff
    // reconnects: the event must arrive through the resumed stream.
    w.server.kill_and_restart();
    let (_, ready) = w.gateway.ready().await;
    eprintln!("gateway before the revoke: {ready}");
    w.revoke_and_wait(
        "revocation during reconnect",
        json!({"agent_id": agent.id, "reason": "lost laptop"}),
        &agent.key,
        &token,
        read,
    )
    .await;
    let (status, ready) = w.gateway.ready().await;
    assert_eq!(status, 200, "{ready}");
    let _ = &w.upstream;
}

#[test]
fn gateway_check_accepts_the_example_and_names_the_line_of_a_mistake() {
    let out = Command::new(ward_bin())
        .args(["gateway", "check"])
        .arg(example("gateway.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ok (5 routes, 2 contracts, 1 upstreams)"),
        "{}",
        stdout(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let base = "listen: 127.0.0.1:0\ncontrol_plane: {url: 'http://127.0.0.1:1', token: t}\nupstream: http://127.0.0.1:2\n";
    for (routes, expected) in [
        (
            "routes:\n  - name: a\n    methods: [GET]\n    path: /a\n    scope: x:read:/a\n    colour: red\n",
            "line 9",
        ),
        (
            "routes:\n  - name: a\n    methods: [GET]\n    path: /a/{id}\n    scope: x:read:/a/{other}\n",
            "`{other}` is not a parameter",
        ),
        (
            "routes:\n  - name: a\n    methods: [GET]\n    path: /a/{id}\n    scope: 'x:read:/a/../{id}'\n",
            "does not make a valid scope",
        ),
        (
            "routes:\n  - name: a\n    methods: [GET]\n    path: /a\n    scope: x:read:/a\n    schema: missing.json\n",
            "cannot read",
        ),
    ]
    .map(|(routes, expected)| (routes.to_owned(), expected))
    .into_iter()
    .chain(
        [
            ("[DELETE], path: '/notes/{u}'", "no `DELETE` operation on `/notes/{owner}`"),
            ("[POST], path: '/notes/{u}/x'", "path `/notes/{u}/x` is not in the OpenAPI document"),
            (
                "[POST], path: '/notes/{u}', operation_id: listNotes",
                "operationId `listNotes` is `GET /notes/{owner}`",
            ),
            ("[POST], path: '/notes/{u}', schema: x.json", "either `schema` or `openapi`"),
        ]
        .map(|(route, expected)| {
            let notes = example("contracts/notes.openapi.yaml");
            let routes = format!(
                "routes:\n  - {{name: a, scope: 'x:read:/a', openapi: '{notes}', methods: {route}}}\n"
            );
            (routes, expected)
        }),
    ) {
        std::fs::write(&bad, format!("{base}{routes}")).unwrap();
        let out = Command::new(ward_bin())
            .args(["gateway", "check"])
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains(expected),
            "{expected}: {}",
            stderr(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_signed_by_a_rotated_key_verify_at_once() {
    let w = World::start(30).await;
    let (agent, old_token) = w.agent(&[READ]).await;
    let path = "/files/alice/site/a";
    assert_eq!(w.gateway.get(&agent.key, &old_token, path).await.0, 200);
    let (status, body) = w
        .server
        .post(&w.server.bootstrap, "/v1/keys/rotate", json!({}))
        .await;
    assert!(status == 200 || status == 201, "{body}");
    let new_token = w.token(&agent, &[READ]).await;
    let old_kid = ward_auth::jws::decode_unverified(&old_token)
        .unwrap()
        .header_str("kid")
        .unwrap()
        .to_owned();
    let new_kid = ward_auth::jws::decode_unverified(&new_token)
        .unwrap()
        .header_str("kid")
        .unwrap()
        .to_owned();
    assert_ne!(old_kid, new_kid);
    // Immediately: either the rotation event or the unknown `kid` refresh
    // brings the new key.
    let (status, body) = w.gateway.get(&agent.key, &new_token, path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        w.gateway.get(&agent.key, &old_token, path).await.0,
        200,
        "the previous key still verifies until it leaves the JWKS"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smuggling_tricks_are_refused_or_neutralised() {
    let w = World::start(30).await;
    let (agent, token) = w.agent(&[READ]).await;
    let (k, t) = (&agent.key, token.as_str());
    let search = "/projects/alice/site/search";

    // Headers some frameworks read as identity, method, path or client
    // address never reach the upstream; nor do names with `_`.
    let response = w
        .gateway
        .request(k, t, "GET", "/files/alice/site/a")
        .header("X_Ward_User", "mallory@example.com")
        .header("X-Ward_Approval_Id", "apr_forged")
        .header("X_Forwarded_For", "10.9.9.9")
        .header("X-HTTP-Method-Override", "DELETE")
        .header("X-Method-Override", "DELETE")
        .header("X-Original-URL", "/secrets/db/prod")
        .header("X-Rewrite-URL", "/secrets/db/prod")
        .header("True-Client-IP", "10.9.9.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    for name in [
        "x_ward_user",
        "x-ward_approval_id",
        "x_forwarded_for",
        "x-http-method-override",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
        "true-client-ip",
    ] {
        assert!(echo["headers"].get(name).is_none(), "{name}: {echo}");
    }
    assert_eq!(echo["method"], "GET");

    // The body's type, checked by the gateway, cannot be dropped by
    // naming it hop-by-hop.
    let response = w
        .gateway
        .request(k, t, "POST", search)
        .header("Connection", "content-type")
        .json(&json!({"query": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(
        echo["headers"]["content-type"], "application/json",
        "{echo}"
    );

    // A document two parsers would read differently is refused.
    let (status, body) = send(
        w.gateway
            .request(k, t, "POST", search)
            .header("Content-Type", "application/json")
            .body(r#"{"query": "x", "limit": 100000, "limit": 5}"#),
    )
    .await;
    assert_error(status, &body, 400, "invalid_json");
    assert!(body.to_string().contains("duplicate member"), "{body}");

    // A `,` in a path parameter is fine; its scope spells it `%2C`.
    let (status, echo) = w.gateway.get(k, t, "/files/alice/site/a,b").await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["path"], "/files/alice/site/a,b");

    // `%67` is `g`: one target, one spelling.
    let (status, body) = w.gateway.get(k, t, "/files/alice/site/%72eadme").await;
    assert_error(status, &body, 400, "invalid_path");
    let (status, body) = w.gateway.get(k, t, "/files/alice/site/%C0%AE").await;
    assert_error(status, &body, 400, "invalid_path");

    // One scope cannot carry another past the matrix by a separator: the
    // broker refuses it, and the gateway refuses a token that carries one.
    let forged = "files:read:/home/alice/projects/x files:write:/home/alice/projects/**";
    let (status, body) = w.server.token(&agent, &[READ, forged]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("whitespace"), "{body}");
    let smuggled = resigned(&w.server, t, |c| c["scopes"] = json!([READ, forged]));
    let (status, body) = w.gateway.get(k, &smuggled, "/files/alice/site/a").await;
    assert_error(status, &body, 401, "malformed_token");

    // A single-use token is spent only by a request that passes every check.
    let single = resigned(&w.server, t, |c| {
        c["single_use"] = json!(true);
        c["approval_id"] = json!("apr_test");
    });
    let (status, body) = w
        .gateway
        .post(k, &single, search, json!({"query": "x", "limit": 1000}))
        .await;
    assert_error(status, &body, 400, "schema_violation");
    let (status, body) = w
        .gateway
        .post(k, &single, search, json!({"query": "x"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = w
        .gateway
        .post(k, &single, search, json!({"query": "x"}))
        .await;
    assert_error(status, &body, 401, "token_used");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_following_one_tenant_refuses_other_tenants_tokens() {
    let server = Server::start();
    let (_, acme_admin) = server.tenant("acme").await;
    let (_, beta_admin) = server.tenant("beta").await;
    let upstream = Upstream::start();
    // A tenant token, and no `tenant:` in the file: the stream says which.
    let config = gateway_config(&server, &upstream, 30, "").replace(
        &format!("token: {}", server.bootstrap),
        &format!("token: {acme_admin}"),
    );
    let gateway = Gateway::launch(
        tempfile::tempdir().unwrap(),
        &config,
        reqwest::Client::new(),
    );
    for (admin, expected) in [(&acme_admin, 200), (&beta_admin, 403)] {
        let agent = server.agent(admin, "reader").await;
        let (status, granted) = server.token(&agent, &[READ]).await;
        assert_eq!(status, 200, "{granted}");
        let token = granted["token"].as_str().unwrap();
        let (status, body) = gateway.get(&agent.key, token, "/files/alice/site/a").await;
        assert_eq!(status, expected, "{body}");
        if expected == 403 {
            assert_error(status, &body, 403, "wrong_tenant");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn proofs_and_single_use_tokens_from_before_a_restart_are_refused() {
    let w = World::start(30).await;
    let (agent, token) = w.agent(&[READ]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = gateway_config(&w.server, &w.upstream, 30, "")
        .replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"));
    let start = || {
        Gateway::launch(
            tempfile::tempdir().unwrap(),
            &config,
            reqwest::Client::new(),
        )
    };
    let path = "/files/alice/site/a";
    let url = format!("http://127.0.0.1:{port}{path}");
    let call = |gateway: &Gateway, token: &str, proof: String| {
        send(
            gateway
                .http
                .get(&url)
                .header("Authorization", format!("DPoP {token}"))
                .header("DPoP", proof),
        )
    };

    let first = start();
    // Made once the first process runs: it can tell whether they were used.
    let replay = proof(&agent.key, &token, "GET", &url);
    // An approval-bound single-use token, genuinely signed (the broker's
    // approval flow is tested elsewhere).
    let single = resigned(&w.server, &token, |c| {
        c["single_use"] = json!(true);
        c["approval_id"] = json!("apr_test");
        c["iat"] = json!(now());
    });
    let (status, body) = call(&first, &token, replay.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&first, &token, replay.clone()).await;
    assert_error(status, &body, 401, "dpop_replay");
    let (status, body) = call(&first, &single, proof(&agent.key, &single, "GET", &url)).await;
    assert_eq!(status, 200, "{body}");

    // A new process has an empty replay cache: what it cannot check, it
    // refuses, including a proof dated into its first seconds by a clock
    // that runs ahead (within the allowed skew).
    let ahead = ward_auth::dpop::create_proof(
        &agent.key,
        "GET",
        &url,
        now() + 1,
        &ward_auth::dpop::new_jti().unwrap(),
        Some(&ward_auth::dpop::ath_for(&token)),
    )
    .unwrap();
    let (status, body) = call(&first, &token, ahead.clone()).await;
    assert_eq!(status, 200, "{body}");
    drop(first);
    let second = start();
    let (status, body) = call(&second, &token, replay).await;
    assert_error(status, &body, 401, "dpop_proof_stale");
    let (status, body) = call(&second, &token, ahead).await;
    assert_error(status, &body, 401, "dpop_proof_stale");
    let (status, body) = call(&second, &single, proof(&agent.key, &single, "GET", &url)).await;
    assert_error(status, &body, 401, "token_used");
    let (status, body) = second.get(&agent.key, &token, path).await;
    assert_eq!(status, 200, "a fresh proof passes: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_separate_admin_address_keeps_metrics_away_from_agents() {
    let server = Server::start();
    server.tenant("acme").await;
    let upstream = Upstream::start();
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = Gateway::start(
        &server,
        &upstream,
        30,
        &format!("admin_listen: 127.0.0.1:{admin_port}"),
    );
    let on_proxy = gateway
        .http
        .get(format!("{}/metrics", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        on_proxy.status(),
        404,
        "the proxy listener does not answer /metrics"
    );
    let admin = format!("http://127.0.0.1:{admin_port}");
    let metrics = gateway
        .http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("# TYPE"), "{text}");
    let ready = gateway
        .http
        .get(format!("{admin}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let other = gateway
        .http
        .get(format!("{admin}/files/a/b/c"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

/// Serves HTTP/2 on one connection, answering every request with the
/// protocol, the path, the agent header and whether the client presented a
/// certificate.
async fn serve_h2_echo<S>(stream: S, client_cert: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(
        move |request: hyper::Request<hyper::body::Incoming>| async move {
            let body = json!({
                "version": format!("{:?}", request.version()),
                "client_cert": client_cert,
                "path": request.uri().path(),
                "agent": request.headers().get("x-ward-agent-id").and_then(|v| v.to_str().ok()),
            })
            .to_string();
            Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                bytes::Bytes::from(body),
            )))
        },
    );
    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

/// An HTTP/2-only (h2c) upstream answering with the protocol it was spoken
/// to in and the agent header it received.
async fn start_h2_upstream() -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(serve_h2_echo(stream, false));
        }
    });
    Upstream { url }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http2_upstream_is_spoken_to_in_http2() {
    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let upstream = start_h2_upstream().await;
    let gateway = Gateway::start(&server, &upstream, 30, "upstream_http2: true");
    let agent = server.agent(&admin, "reader").await;
    let (status, granted) = server.token(&agent, &[READ]).await;
    assert_eq!(status, 200, "{granted}");
    let token = granted["token"].as_str().unwrap();
    let (status, echo) = gateway
        .get(&agent.key, token, "/files/alice/site/readme.md")
        .await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echo["agent"], agent.id.as_str());
}

/// Runs `openssl` in `dir` and fails the test with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the `openssl` command (Debian package openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
}

/// `openssl req` arguments for a new P-256 key without a passphrase.
const NEW_P256_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// A self-signed P-256 CA in `dir`: `<name>.pem` and `<name>.key`.
fn test_ca(dir: &Path, name: &str) -> String {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let rest = [
        "-keyout",
        &key,
        "-out",
        &pem,
        "-days",
        "1",
        "-subj",
        "/CN=Ward test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ];
    openssl(dir, &[&["req", "-x509"][..], &NEW_P256_KEY, &rest].concat());
    dir.join(pem).display().to_string()
}

/// A certificate for 127.0.0.1, usable by a server and a client, signed by
/// the CA `ca`: the paths of `<name>.pem` and `<name>.key`.
fn test_cert(dir: &Path, ca: &str, name: &str) -> (String, String) {
    let (key, csr, pem, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    let subject = format!("/CN={name}");
    let rest = ["-keyout", &key, "-out", &csr, "-subj", &subject];
    openssl(dir, &[&["req"][..], &NEW_P256_KEY, &rest].concat());
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "1",
            "-extfile",
            &ext,
        ],
    );
    let path = |file: &str| dir.join(file).display().to_string();
    (path(&pem), path(&key))
}

/// An HTTPS upstream speaking HTTP/2 only and requiring a client
/// certificate issued by `ca`; it answers with the protocol, whether a
/// client certificate was presented and the agent header.
async fn start_tls_upstream(ca: &str, cert: &str, key: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let client_cert = stream.get_ref().1.peer_certificates().is_some();
                serve_h2_echo(stream, client_cert).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_on_both_sides_one_upstream_per_route_and_streamed_responses() {
    ward_client::install_tls_provider();
    let pki = tempfile::tempdir().unwrap();
    let ca = test_ca(pki.path(), "ca");
    let (server_cert, server_key) = test_cert(pki.path(), "ca", "server");
    let (client_cert, client_key) = test_cert(pki.path(), "ca", "client");
    let other_ca = test_ca(pki.path(), "other");
    let secure = start_tls_upstream(&ca, &server_cert, &server_key).await;
    // The same server by a name its certificate does not carry.
    let wrong_name = secure.replace("127.0.0.1", "localhost");

    let server = Server::start();
    let (_, admin) = server.tenant("acme").await;
    let plain = Upstream::start();
    let extra = format!(
        "tls: {{cert_file: '{server_cert}', key_file: '{server_key}'}}
upstreams:
  secure: {{url: '{secure}', http2: true, ca_file: '{ca}', client_cert_file: '{client_cert}', client_key_file: '{client_key}'}}
  untrusted: {{url: '{secure}', http2: true, ca_file: '{other_ca}', client_cert_file: '{client_cert}', client_key_file: '{client_key}'}}
  anonymous: {{url: '{secure}', http2: true, ca_file: '{ca}'}}
  wrongname: {{url: '{wrong_name}', http2: true, ca_file: '{ca}', client_cert_file: '{client_cert}', client_key_file: '{client_key}'}}"
    );
    let mut config = gateway_config(&server, &plain, 30, &extra);
    for name in ["secure", "untrusted", "anonymous", "wrongname"] {
        config.push_str(&format!(
            "  - name: {name}\n    methods: [GET]\n    path: /{name}/{{user}}\n    scope: files:read:/home/{{user}}/projects/{name}\n    upstream: {name}\n"
        ));
    }
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let gateway = Gateway::launch(tempfile::tempdir().unwrap(), &config, http);
    assert!(
        gateway.url.starts_with("https://127.0.0.1:"),
        "{}",
        gateway.url
    );

    let agent = server.agent(&admin, "reader").await;
    let (status, granted) = server.token(&agent, &[READ]).await;
    assert_eq!(status, 200, "{granted}");
    let token = granted["token"].as_str().unwrap();

    // Routes without `upstream` go to the default one, over TLS from the agent.
    let (status, echo) = gateway.get(&agent.key, token, "/files/alice/site/a").await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["path"], "/files/alice/site/a");

    // A named upstream over HTTPS, HTTP/2 by ALPN, with the gateway's client certificate.
    let (status, echo) = gateway.get(&agent.key, token, "/secure/alice").await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echo["client_cert"], true);
    assert_eq!(echo["path"], "/secure/alice");
    assert_eq!(echo["agent"], agent.id.as_str());

    // An upstream whose certificate the gateway does not trust, one whose
    // certificate names another host, and one that refuses a gateway
    // without a client certificate: 502, no details.
    for path in ["/untrusted/alice", "/wrongname/alice", "/anonymous/alice"] {
        let (status, body) = gateway.get(&agent.key, token, path).await;
        assert_error(status, &body, 502, "upstream_unavailable");
        assert!(!body.to_string().contains("certificate"), "{body}");
    }

    // Plain HTTP to the TLS listener gets no answer from the pipeline.
    let plain_http = reqwest::Client::new()
        .get(gateway.url.replace("https://", "http://") + "/files/alice/site/a")
        .send()
        .await;
    assert!(
        plain_http.is_err() || plain_http.is_ok_and(|r| r.status() != 200),
        "plain HTTP must not be served"
    );

    // The response is streamed: the first part arrives while the upstream
    // still holds back the second.
    let mut response = gateway
        .request(&agent.key, token, "GET", "/stream/alice")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .expect("the first part arrives before the upstream finishes")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first\n");
    RELEASE_STREAM.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(response.text().await.unwrap(), "last\n");
}

#[test]
fn gateway_check_names_tls_and_upstream_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca(dir.path(), "ca");
    let (cert, key) = test_cert(dir.path(), "ca", "server");
    let (_, other_key) = test_cert(dir.path(), "ca", "other");
    let route = "routes:\n  - {name: a, methods: [GET], path: /a, scope: 'x:read:/a'";
    let head = "listen: 127.0.0.1:0\ncontrol_plane: {url: 'http://127.0.0.1:1', token: t}\n";
    let bad = dir.path().join("bad.yaml");
    for (text, expected) in [
        (format!("{head}{route}}}\n"), "no upstream"),
        (
            format!("{head}upstream: http://127.0.0.1:2\n{route}, upstream: billing}}\n"),
            "`billing` is not a key of `upstreams`",
        ),
        (
            format!(
                "{head}upstreams: {{b: {{url: 'http://127.0.0.1:2', ca_file: '{ca}'}}}}\n{route}, upstream: b}}\n"
            ),
            "is not an `https://` URL",
        ),
        (
            format!(
                "{head}upstreams: {{b: {{url: 'https://127.0.0.1:2', client_cert_file: '{cert}'}}}}\n{route}, upstream: b}}\n"
            ),
            "go together",
        ),
        (
            format!(
                "{head}upstreams: {{b: {{url: 'https://127.0.0.1:2', ca_file: missing.pem}}}}\n{route}, upstream: b}}\n"
            ),
            "missing.pem",
        ),
        (
            format!(
                "{head}upstream: http://127.0.0.1:2\ntls: {{cert_file: '{cert}', key_file: '{other_key}'}}\n{route}}}\n"
            ),
            "do not make a usable certificate",
        ),
        (
            format!(
                "{head}upstream: http://127.0.0.1:2\ntls: {{cert_file: '{key}', key_file: '{key}'}}\n{route}}}\n"
            ),
            "holds no PEM certificate",
        ),
    ] {
        std::fs::write(&bad, &text).unwrap();
        let out = Command::new(ward_bin())
            .args(["gateway", "check"])
            .arg(&bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{text}\n{}", stdout(&out));
        assert!(stderr(&out).contains(expected), "{text}\n{}", stderr(&out));
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    }
    let good = format!(
        "{head}upstream: http://127.0.0.1:2\nupstreams: {{b: {{url: 'https://127.0.0.1:3', http2: true, ca_file: '{ca}'}}}}\ntls: {{cert_file: '{cert}', key_file: '{key}'}}\n{route}, upstream: b}}\n"
    );
    std::fs::write(&bad, good).unwrap();
    let out = Command::new(ward_bin())
        .args(["gateway", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 upstreams"), "{}", stdout(&out));
}

/// Sends SIGTERM to `child` and returns its exit status; fails the test if
/// it is still running 10 s later.
async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM failed");
    let sent = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `host:port` of a gateway listening on plain HTTP.
fn address(gateway: &Gateway) -> String {
    gateway.url.trim_start_matches("http://").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_gateway_while_a_keep_alive_connection_is_idle() {
    let mut world = World::start(30).await;
    let addr = address(&world.gateway);
    let mut idle = TcpStream::connect(&addr).unwrap();
    write!(idle, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");

    let status = terminate(&mut world.gateway.child).await;
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_gateway_while_hundreds_of_clients_hold_half_sent_headers() {
    let mut world = World::start(30).await;
    let addr = address(&world.gateway);
    let held: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            write!(stream, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").unwrap();
            stream
        })
        .collect();

    // Everyone else is still served.
    let (agent, token) = world.agent(&[READ]).await;
    let (status, echo) = world
        .gateway
        .get(&agent.key, &token, "/files/alice/site/a")
        .await;
    assert_eq!(status, 200, "{echo}");

    let status = terminate(&mut world.gateway.child).await;
    assert!(status.success(), "{status}");
    drop(held);
}

/// Starts a streamed response whose upstream holds its second part back
/// for `hold_secs`; returns it once its first part has arrived.
async fn streaming(world: &World, hold_secs: u64) -> reqwest::Response {
    let (agent, token) = world.agent(&[READ]).await;
    let path = format!("/stream/alice?hold={hold_secs}");
    let mut response = world
        .gateway
        .request(&agent.key, &token, "GET", &path)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .expect("the first part arrives")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first\n");
    response
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_response_in_flight_finish_within_the_grace() {
    let mut world = World::start(30).await;
    let response = streaming(&world, 2).await;
    let (status, rest) = tokio::join!(terminate(&mut world.gateway.child), response.text());
    assert_eq!(
        rest.unwrap(),
        "last\n",
        "the response in flight was completed"
    );
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_gateway_within_its_grace_while_a_response_still_streams() {
    let mut world = World::start(30).await;
    let response = streaming(&world, 30).await;

    // The upstream holds the rest back for 30 s: the gateway closes the
    // response when its grace ends instead of waiting for it.
    let status = terminate(&mut world.gateway.child).await;
    assert!(status.success(), "{status}");
    let rest = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("the client sees the response end when the gateway exits");
    assert!(rest.is_err(), "the held-back part never came: {rest:?}");
}

#[test]
fn a_client_sending_its_headers_slower_than_the_deadline_is_disconnected() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let world = runtime.block_on(World::start(30));
    let addr = address(&world.gateway);
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    write!(slow, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n").unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    for line in 0.. {
        let mut buffer = [0u8; 512];
        match slow.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a client still sending headers after 30 s is still connected"
        );
        // One more header line a second; a write fails once the gateway
        // has closed the connection.
        if write!(slow, "X-Slow-{line}: 1\r\n").is_err() {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        !answer.contains(" 200 "),
        "the request was served: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_a_gateway_still_waiting_for_its_first_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: the gateway keeps retrying the snapshot.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncontrol_plane: {{url: 'http://{closed}', token: t}}\nupstream: http://127.0.0.1:9\nroutes:\n  - {{name: a, methods: [GET], path: '/a/{{x}}', scope: 'files:read:/home/{{x}}'}}\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(ward_bin())
        .args(["gateway", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
    let retrying = errors.next().unwrap().unwrap();
    assert!(retrying.contains("retrying"), "{retrying}");
    std::thread::spawn(move || for _ in errors {});

    let status = terminate(&mut child).await;
    assert!(status.success(), "{status}");
}
