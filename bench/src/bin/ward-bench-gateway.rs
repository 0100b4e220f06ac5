//! `ward-bench-gateway`: `ward gateway` against nginx as a plain reverse
//! proxy, in front of the same upstream, under the same load, in one run.
//!
//! One invocation starts, each as its own child process:
//! - the upstream: this binary with `--serve-upstream`, a minimal HTTP/1.1
//!   keep-alive server on raw tokio sockets that answers every request with
//!   the same small JSON body;
//! - `ward serve` (the control plane the gateway follows), with a tenant and
//!   one enrolled agent and one DPoP-bound token per client;
//! - nginx (`proxy_pass` to an `upstream {}` block with `keepalive`,
//!   HTTP/1.1 to the upstream, access log on);
//! - `ward gateway` with every check on one POST route: JWT, DPoP proof
//!   (`ath`, `htu`, replay), revocations, kill switches, a feature flag,
//!   scope, agent/user/IP rate limits and a daily quota (all too high to
//!   throttle), and a JSON Schema body; access log on (stdout to a file).
//!
//! The same client then drives the upstream directly, nginx, and the
//! gateway: C keep-alive HTTP/1.1 connections (one per client task, raw
//! tokio sockets, so the client costs as little CPU as possible), each
//! looping on the same POST with the same body; for the gateway each request
//! also carries `Authorization: DPoP <token>` and a fresh proof (unique
//! `jti`, `ath` of the token), all signed before the timer starts. Reports
//! requests/s, latency percentiles, errors (with the first non-2xx body) and
//! the CPU of every process over the measured window (`/proc/<pid>/stat`).
//!
//! A benchmark, not a test: it fails only on a broken set-up.

use clap::Parser;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use ward_api::TokenRequest;
use ward_auth::Keypair;
use ward_bench::{clock_ticks_per_sec, command_output, machine_info, ms, s, unix_now};
use ward_client::Client;

type BResult<T> = Result<T, String>;

/// The scope every token asks for; `reader` in `examples/matrix.yaml` has it.
const SCOPE: &str = "files:read:/home/alice/projects/x";
/// The request path; the route's scope template turns it into [`SCOPE`].
const PATH: &str = "/projects/alice/x/search";
/// The request body; valid against `examples/contracts/search.json`.
const BODY: &str = r#"{"query":"fn main","limit":20,"filters":{"extension":"rs"}}"#;
/// What the upstream answers to every request.
const UPSTREAM_BODY: &str = r#"{"results":[{"path":"src/main.rs","line":1}],"total":1}"#;

/// Gateway (full checks) versus nginx (plain reverse proxy), same upstream,
/// same load.
#[derive(Parser, Debug)]
#[command(name = "ward-bench-gateway")]
#[command(args_override_self = true)]
struct Args {
    /// The `ward` binary (build it with `--release`).
    #[arg(long, default_value = "target/release/ward")]
    ward_bin: PathBuf,
    /// Capability matrix given to `ward serve`.
    #[arg(long, default_value = "examples/matrix.yaml")]
    matrix: PathBuf,
    /// JSON Schema of the gateway route's body.
    #[arg(long, default_value = "examples/contracts/search.json")]
    schema: PathBuf,
    /// The nginx binary.
    #[arg(long, default_value = "nginx")]
    nginx_bin: String,
    /// nginx `worker_processes` (the gateway's tokio runtime has one worker
    /// per core, 2 here).
    #[arg(long, default_value_t = 2)]
    nginx_workers: usize,
    /// Concurrent keep-alive connections, one per client task.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Measured seconds per target.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Unmeasured seconds before each target's timer starts.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Proofs presigned for the gateway run = this rate x (warm-up +
    /// duration). Default: 1.3 x nginx's measured rate (at least 5,000/s).
    #[arg(long)]
    presign_rate: Option<u64>,
    /// Then each target again at this fixed total rate (requests/s over all
    /// connections, evenly spaced), where nothing saturates: the latency a
    /// proxy adds when it is not queueing. 0 skips the paced runs.
    #[arg(long, default_value_t = 2000)]
    paced_rate: u64,
    /// Measured seconds of each paced run.
    #[arg(long, default_value_t = 5)]
    paced_secs: u64,
    /// Which targets, in order.
    #[arg(long, value_delimiter = ',', default_value = "upstream,nginx,gateway")]
    targets: Vec<String>,
    /// The gateway's `proof_max_age_secs` (its default, 60). Presigned
    /// proofs age during a run; a run that could outlive them is warned of.
    #[arg(long, default_value_t = 60)]
    proof_max_age_secs: u64,
    /// After the measured runs, one extra (unreported) gateway run with
    /// `perf record --call-graph dwarf` attached to the gateway; the profile
    /// is written here and summarised in the results.
    #[arg(long)]
    perf_out: Option<PathBuf>,
    /// Seconds of profile.
    #[arg(long, default_value_t = 5)]
    perf_secs: u64,
    /// Where `gateway.md` and `gateway.json` go.
    #[arg(long, default_value = "bench/results")]
    out_dir: PathBuf,
    /// The command recorded as the one that reproduces the results.
    #[arg(long)]
    reproduce: Option<String>,
    /// Keep the temporary directory (configs, logs, data) afterwards.
    #[arg(long)]
    keep_tmp: bool,
    /// Internal: run only the upstream server on this address.
    #[arg(long, hide = true)]
    serve_upstream: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(addr) = args.serve_upstream.clone() {
        return serve_upstream_main(&addr);
    }
    ward_client::install_tls_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ward-bench-gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ward-bench-gateway: {message}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP/1.1 framing on raw tokio sockets (tokio's `io-util` is not enabled
// in this workspace, so `readable`/`try_read` and `writable`/`try_write`).

async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match stream.try_write(buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends what the socket has to `buf`; 0 at end of stream.
async fn read_some(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    scratch: &mut [u8],
) -> std::io::Result<usize> {
    loop {
        match stream.try_read(scratch) {
            Ok(n) => {
                buf.extend_from_slice(&scratch[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => stream.readable().await?,
            Err(e) => return Err(e),
        }
    }
}

/// The parts of a message head the benchmark needs.
struct Head {
    /// Bytes of the head, blank line included.
    len: usize,
    /// Status code of a response (0 for a request).
    status: u16,
    content_length: usize,
    chunked: bool,
    close: bool,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `None` until the head is complete; `Err` when it is not HTTP/1.x.
fn parse_head(buf: &[u8], response: bool) -> Result<Option<Head>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            return Err("head larger than 64 KiB".into());
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "head is not UTF-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let status = if response {
        let mut parts = first.split(' ');
        if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
            return Err(format!("not an HTTP/1 status line: `{first}`"));
        }
        parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status code in `{first}`"))?
    } else {
        0
    };
    let mut head = Head {
        len: end + 4,
        status,
        content_length: 0,
        chunked: false,
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().map_err(|_| "bad Content-Length".to_owned())?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Some(head))
}

/// Length of a complete chunked body at the start of `buf` (trailers
/// included), `None` if incomplete.
fn chunked_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(eol) = find(&buf[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[at..at + eol]).map_err(s)?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size `{line}`"))?;
        at += eol + 2;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let Some(eol) = find(&buf[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

/// Reads one whole message from `stream` into `buf` (which may already
/// hold some of it); returns the head and the body's range. `Ok(None)` at a
/// clean end of stream before any byte of a new message.
async fn read_message(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    scratch: &mut [u8],
    response: bool,
) -> Result<Option<(Head, std::ops::Range<usize>)>, String> {
    let head = loop {
        if let Some(head) = parse_head(buf, response)? {
            break head;
        }
        if read_some(stream, buf, scratch).await.map_err(s)? == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err("connection closed in the middle of a head".into());
        }
    };
    let body_len = loop {
        let have = &buf[head.len..];
        if head.chunked {
            if let Some(n) = chunked_len(have)? {
                break n;
            }
        } else if have.len() >= head.content_length {
            break head.content_length;
        }
        if read_some(stream, buf, scratch).await.map_err(s)? == 0 {
            return Err("connection closed in the middle of a body".into());
        }
    };
    let range = head.len..head.len + body_len;
    Ok(Some((head, range)))
}

// ---------------------------------------------------------------------------
// The upstream: its own process, so its CPU is measured apart.

fn serve_upstream_main(addr: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("upstream: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: BResult<()> = runtime.block_on(async {
        let listener = TcpListener::bind(addr).await.map_err(s)?;
        println!(
            "upstream listening on {}",
            listener.local_addr().map_err(s)?
        );
        loop {
            let (stream, _) = listener.accept().await.map_err(s)?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(upstream_connection(stream));
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upstream: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn upstream_connection(stream: TcpStream) {
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{UPSTREAM_BODY}",
        UPSTREAM_BODY.len()
    );
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut scratch = vec![0u8; 16 * 1024];
    loop {
        let (head, body) = match read_message(&stream, &mut buf, &mut scratch, false).await {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(_) => {
                let _ = write_all(
                    &stream,
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
                return;
            }
        };
        buf.drain(..body.end);
        if write_all(&stream, response.as_bytes()).await.is_err() || head.close {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// Child processes.

struct Proc {
    name: &'static str,
    child: Child,
}

/// Keeps `child` among the processes to stop at the end; the child, to wait
/// for its first words.
fn keep<'a>(procs: &'a mut Vec<Proc>, name: &'static str, child: Child) -> &'a mut Child {
    procs.push(Proc { name, child });
    let last = procs.len() - 1;
    &mut procs[last].child
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after 10 s.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("warning: {} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a stdout line starting with `prefix`; returns the rest. Other
/// lines keep being drained (and dropped) by the reading thread.
fn wait_for_line(child: &mut Child, prefix: &'static str, what: &str) -> BResult<String> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| format!("no stdout from {what}"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(rest) = line.strip_prefix(prefix) {
                let _ = tx.send(rest.to_owned());
                sent = true;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .map_err(|_| format!("{what} did not print `{prefix}` within 30 s"))
}

/// Polls a file for a line starting with `prefix` (the gateway's stdout is
/// its access log, so it goes to a file, not a pipe we would have to drain).
fn wait_for_file_line(child: &mut Child, path: &Path, prefix: &str, what: &str) -> BResult<String> {
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(line) = text.lines().find_map(|l| l.strip_prefix(prefix))
        {
            return Ok(line.to_owned());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited ({status}) before it was ready"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{what} did not print `{prefix}` within 40 s"))
}

fn free_port() -> BResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(s)?;
    Ok(listener.local_addr().map_err(s)?.port())
}

/// Each start_* pushes its child onto `procs` as soon as it runs, so the
/// caller stops it whatever happens next.
fn start_upstream(tmp: &Path, procs: &mut Vec<Proc>) -> BResult<(u32, SocketAddr)> {
    let exe = std::env::current_exe().map_err(s)?;
    let log = std::fs::File::create(tmp.join("upstream.err")).map_err(s)?;
    let child = Command::new(exe)
        .args(["--serve-upstream", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start the upstream: {e}"))?;
    let pid = child.id();
    let child = keep(procs, "upstream", child);
    let addr = wait_for_line(child, "upstream listening on ", "the upstream")?;
    let addr: SocketAddr = addr.trim().parse().map_err(s)?;
    Ok((pid, addr))
}

struct ControlPlane {
    base: String,
    bootstrap: String,
}

fn start_control_plane(
    args: &Args,
    tmp: &Path,
    procs: &mut Vec<Proc>,
) -> BResult<(u32, ControlPlane)> {
    let data = tmp.join("serve");
    let log = std::fs::File::create(tmp.join("serve.err")).map_err(s)?;
    let child = Command::new(&args.ward_bin)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--matrix"])
        .arg(&args.matrix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", args.ward_bin.display()))?;
    let pid = child.id();
    let child = keep(procs, "ward serve", child);
    let base = wait_for_line(child, "ward listening on ", "ward serve")?
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let bootstrap = std::fs::read_to_string(data.join("bootstrap-admin-token"))
        .map_err(|e| format!("cannot read the bootstrap token: {e}"))?
        .trim()
        .to_owned();
    Ok((pid, ControlPlane { base, bootstrap }))
}

fn nginx_conf(tmp: &Path, port: u16, upstream: SocketAddr, workers: usize) -> String {
    let t = tmp.display();
    format!(
        r#"# Written by ward-bench-gateway: nginx as a plain reverse proxy.
worker_processes {workers};
pid {t}/nginx.pid;
error_log {t}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {t}/nginx-access.log;
    client_body_temp_path {t}/nginx-client-body;
    proxy_temp_path {t}/nginx-proxy;
    fastcgi_temp_path {t}/nginx-fastcgi;
    uwsgi_temp_path {t}/nginx-uwsgi;
    scgi_temp_path {t}/nginx-scgi;
    upstream app {{
        server {upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 1000000;
        keepalive_timeout 75s;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#
    )
}

fn start_nginx(
    args: &Args,
    tmp: &Path,
    upstream: SocketAddr,
    procs: &mut Vec<Proc>,
) -> BResult<(u32, SocketAddr, String)> {
    let port = free_port()?;
    let conf = tmp.join("nginx.conf");
    let text = nginx_conf(tmp, port, upstream, args.nginx_workers);
    std::fs::write(&conf, &text).map_err(s)?;
    let log = std::fs::File::create(tmp.join("nginx.err")).map_err(s)?;
    let child = Command::new(&args.nginx_bin)
        .arg("-p")
        .arg(tmp)
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", args.nginx_bin))?;
    let pid = child.id();
    let child = keep(procs, "nginx", child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().map_err(s)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let err = std::fs::read_to_string(tmp.join("nginx.err")).unwrap_or_default();
            return Err(format!("nginx exited ({status}): {err}"));
        }
        if Instant::now() > deadline {
            return Err("nginx did not listen within 15 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((pid, addr, text))
}

fn gateway_conf(args: &Args, cp: &ControlPlane, upstream: SocketAddr) -> BResult<String> {
    let schema = std::fs::canonicalize(&args.schema)
        .map_err(|e| format!("schema `{}`: {e}", args.schema.display()))?;
    Ok(format!(
        r#"# Written by ward-bench-gateway: every check on, limits too high to throttle.
listen: 127.0.0.1:0
control_plane:
  url: {cp}
  token: {token}
upstream: http://{upstream}
proof_max_age_secs: {age}
max_body_bytes: 65536
ip_rate_limit: {{per_second: 1000000, burst: 1000000}}
routes:
  - name: search
    methods: [POST]
    path: /projects/{{user}}/{{project}}/search
    scope: files:read:/home/{{user}}/projects/{{project}}
    schema: {schema}
    flag: project-search
    rate_limit: {{per_second: 1000000, burst: 1000000}}
    user_rate_limit: {{per_second: 1000000, burst: 1000000}}
    daily_quota: 1000000000
"#,
        cp = cp.base,
        token = cp.bootstrap,
        age = args.proof_max_age_secs,
        schema = schema.display(),
    ))
}

fn start_gateway(
    args: &Args,
    tmp: &Path,
    cp: &ControlPlane,
    upstream: SocketAddr,
    procs: &mut Vec<Proc>,
) -> BResult<(u32, SocketAddr, String, String)> {
    let conf = tmp.join("gateway.yaml");
    let text = gateway_conf(args, cp, upstream)?;
    std::fs::write(&conf, &text).map_err(s)?;
    let access = tmp.join("gateway-access.log");
    let out = std::fs::File::create(&access).map_err(s)?;
    let err = std::fs::File::create(tmp.join("gateway.err")).map_err(s)?;
    let child = Command::new(&args.ward_bin)
        .arg("gateway")
        .arg("--config")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("cannot start `ward gateway`: {e}"))?;
    let pid = child.id();
    let child = keep(procs, "ward gateway", child);
    let line = wait_for_file_line(
        child,
        &access,
        "ward gateway listening on http://",
        "ward gateway",
    )?;
    let addr: SocketAddr = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|e| format!("gateway address in `{line}`: {e}"))?;
    let public_url = line
        .split_once("(public URL ")
        .map(|(_, rest)| rest.trim_end_matches(')').trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{addr}"));
    Ok((pid, addr, public_url, text))
}

// ---------------------------------------------------------------------------
// Set-up through the API: a tenant, one agent and one token per client.

struct Agent {
    key: Keypair,
    token: String,
    ath: String,
}

async fn setup_agents(cp: &ControlPlane, count: usize) -> BResult<Vec<Agent>> {
    let enrolled =
        ward_bench::enrol_agents(&cp.base, &cp.bootstrap, "bench-gateway", count, None).await?;
    let anonymous = Client::new(&cp.base, None).map_err(s)?;
    let mut out = Vec::with_capacity(count);
    for (i, (id, key)) in enrolled.into_iter().enumerate() {
        let token = anonymous
            .request_token(
                &key,
                &TokenRequest {
                    agent_id: id.clone(),
                    requested_scopes: vec![SCOPE.into()],
                    requested_duration: None,
                    approval_id: None,
                    action: None,
                },
            )
            .await
            .map_err(|e| format!("token for agent {i}: {e}"))?
            .token;
        let ath = ward_auth::dpop::ath_for(&token);
        out.push(Agent { key, token, ath });
    }
    Ok(out)
}

fn sign(agent: &Agent, htu: &str) -> BResult<String> {
    let jti = ward_auth::dpop::new_jti().map_err(s)?;
    ward_auth::dpop::create_proof(&agent.key, "POST", htu, unix_now(), &jti, Some(&agent.ath))
        .map_err(s)
}

/// `per_client` proofs for each agent, signed on every core.
fn presign(agents: &[Agent], per_client: usize, htu: &str) -> BResult<Vec<Vec<String>>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(agents.len().max(1));
    let chunk = agents.len().div_ceil(threads).max(1);
    let mut out: Vec<Vec<String>> = vec![Vec::new(); agents.len()];
    std::thread::scope(|scope| -> BResult<()> {
        let mut handles = Vec::new();
        for (lists, owners) in out.chunks_mut(chunk).zip(agents.chunks(chunk)) {
            handles.push(scope.spawn(move || -> BResult<()> {
                for (list, agent) in lists.iter_mut().zip(owners) {
                    list.reserve_exact(per_client);
                    for _ in 0..per_client {
                        list.push(sign(agent, htu)?);
                    }
                }
                Ok(())
            }));
        }
        for handle in handles {
            handle
                .join()
                .map_err(|_| "a presigning thread panicked".to_owned())??;
        }
        Ok(())
    })?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// The load.

struct Timing {
    start: Instant,
    measure_start: Instant,
    end: Instant,
}

#[derive(Default)]
struct ClientOut {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    lat_us: Vec<u32>,
    exhausted: bool,
    reconnects: u64,
    requests_total: u64,
}

/// What a client sends: the fixed head (request line, Host, Content-Type,
/// Content-Length), optional credentials, the body.
struct Shape {
    addr: SocketAddr,
    head: Vec<u8>,
    body: &'static [u8],
}

fn shape(addr: SocketAddr) -> Shape {
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ward-bench-gateway\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        BODY.len()
    );
    Shape {
        addr,
        head: head.into_bytes(),
        body: BODY.as_bytes(),
    }
}

/// One request and its answer on an open connection: status and, for a
/// non-2xx answer, the start of the body.
async fn exchange(
    stream: &TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
    scratch: &mut [u8],
) -> Result<(u16, Option<String>, bool), String> {
    write_all(stream, request)
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let (head, body) = match read_message(stream, buf, scratch, true).await {
        Ok(Some(message)) => message,
        Ok(None) => return Err("transport: connection closed".into()),
        Err(e) => return Err(format!("transport: {e}")),
    };
    let detail = (!(200..300).contains(&head.status)).then(|| {
        let text = String::from_utf8_lossy(&buf[body.clone()]);
        text.chars().take(600).collect::<String>()
    });
    buf.drain(..body.end);
    Ok((head.status, detail, head.close))
}

async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn client_loop(
    shape: Arc<Shape>,
    auth: Option<String>,
    mut proofs: Option<Vec<String>>,
    timing: Arc<Timing>,
    pace: Option<(Duration, Duration)>,
) -> ClientOut {
    let mut out = ClientOut {
        lat_us: Vec::with_capacity(128 * 1024),
        ..ClientOut::default()
    };
    let mut request = Vec::with_capacity(4096);
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut scratch = vec![0u8; 16 * 1024];
    tokio::time::sleep_until(timing.start.into()).await;
    let mut stream: Option<TcpStream> = None;
    // Paced: send at start + offset + k * interval. Latency counts from the
    // actual send (tokio's timer wakes up to ~1 ms late, which would
    // otherwise be charged to the target); at these rates a connection is
    // idle long before its next turn, so nothing queues in the client.
    let mut next = pace.map(|(_, offset)| timing.start + offset);
    while Instant::now() < timing.end {
        if let Some(at) = next {
            tokio::time::sleep_until(at.into()).await;
            if at >= timing.end {
                break;
            }
        }
        request.clear();
        request.extend_from_slice(&shape.head);
        if let Some(auth) = &auth {
            request.extend_from_slice(auth.as_bytes());
        }
        if let Some(list) = &mut proofs {
            let Some(proof) = list.pop() else {
                out.exhausted = true;
                break;
            };
            request.extend_from_slice(b"DPoP: ");
            request.extend_from_slice(proof.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(shape.body);
        let t0 = Instant::now();
        if let (Some(at), Some((interval, _))) = (next.as_mut(), pace) {
            *at += interval;
        }
        if stream.is_none() {
            match connect(shape.addr).await {
                Ok(s) => {
                    stream = Some(s);
                    if out.requests_total > 0 {
                        out.reconnects += 1;
                    }
                }
                Err(e) => {
                    out.errors += 1;
                    out.first_error.get_or_insert(format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(conn) = &stream else { continue };
        buf.clear();
        let outcome = exchange(conn, &request, &mut buf, &mut scratch).await;
        let micros = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        out.requests_total += 1;
        let measured = t0 >= timing.measure_start;
        match outcome {
            Ok((status, None, close)) => {
                if measured {
                    out.ok += 1;
                    out.lat_us.push(micros);
                }
                if close {
                    stream = None;
                }
                let _ = status;
            }
            Ok((status, Some(body), close)) => {
                out.errors += 1;
                out.first_error
                    .get_or_insert(format!("HTTP {status}: {body}"));
                if close {
                    stream = None;
                }
            }
            Err(message) => {
                out.errors += 1;
                out.first_error.get_or_insert(message);
                stream = None;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    out
}

/// utime + stime in clock ticks, and the parent pid, of a process.
fn proc_stat(pid: u32) -> Option<(u64, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = text.rfind(')')?;
    let fields: Vec<&str> = text.get(close + 2..)?.split_whitespace().collect();
    let ppid: u32 = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime, ppid))
}

fn self_ticks() -> u64 {
    let pid = std::process::id();
    proc_stat(pid).map(|(t, _)| t).unwrap_or(0)
}

/// A process and its direct children (nginx's master and workers).
fn with_children(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if proc_stat(child).is_some_and(|(_, ppid)| ppid == pid) {
                out.push(child);
            }
        }
    }
    out
}

fn ticks_of(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|&p| proc_stat(p))
        .map(|(t, _)| t)
        .sum()
}

/// The processes whose CPU a run reports.
struct Watched {
    proxy: Vec<u32>,
    upstream: u32,
    control: u32,
    /// A file whose growth over the window is reported (the access log).
    log: Option<PathBuf>,
}

#[derive(Clone, Debug, Default)]
struct RunResult {
    target: String,
    /// The fixed offered rate of a paced run.
    paced_rate: Option<u64>,
    window_secs: f64,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    rate: f64,
    p50_us: u32,
    p90_us: u32,
    p99_us: u32,
    p999_us: u32,
    max_us: u32,
    mean_us: f64,
    proxy_cpu_secs: f64,
    upstream_cpu_secs: f64,
    control_cpu_secs: f64,
    client_cpu_secs: f64,
    reconnects: u64,
    exhausted_clients: usize,
    presign_secs: f64,
    proofs_presigned: u64,
    log_bytes: u64,
}

struct RunSpec<'a> {
    target: &'a str,
    addr: SocketAddr,
    /// Gateway only: the agents and the `htu` to sign for.
    auth: Option<(&'a [Agent], String, u64)>,
    watched: Watched,
    duration: u64,
    perf_out: Option<(PathBuf, u64)>,
    paced_rate: Option<u64>,
}

async fn run_target(
    args: &Args,
    spec: RunSpec<'_>,
    tick: f64,
) -> BResult<(RunResult, Option<Child>)> {
    let mut result = RunResult {
        target: spec.target.to_owned(),
        paced_rate: spec.paced_rate,
        ..RunResult::default()
    };
    let clients = args.clients;
    let total_secs = args.warmup_secs + spec.duration;
    let mut lists: Vec<Option<Vec<String>>> = (0..clients).map(|_| None).collect();
    let mut auths: Vec<Option<String>> = (0..clients).map(|_| None).collect();
    if let Some((agents, htu, rate)) = &spec.auth {
        let per_client = ((rate * total_secs) as usize).div_ceil(clients) + 64;
        eprintln!(
            "ward-bench-gateway: presigning {} proofs ({per_client} per client) for {htu}",
            per_client * clients
        );
        let started = Instant::now();
        let signed = presign(agents, per_client, htu)?;
        result.presign_secs = started.elapsed().as_secs_f64();
        result.proofs_presigned = (per_client * clients) as u64;
        eprintln!(
            "ward-bench-gateway: presigned in {:.1} s",
            result.presign_secs
        );
        if result.presign_secs + total_secs as f64 + 2.0 > args.proof_max_age_secs as f64 {
            eprintln!(
                "warning: presigning plus the run exceed the gateway's proof max age ({} s); raise --proof-max-age-secs",
                args.proof_max_age_secs
            );
        }
        for (i, list) in signed.into_iter().enumerate() {
            lists[i] = Some(list);
            auths[i] = Some(format!("Authorization: DPoP {}\r\n", agents[i].token));
        }
    }
    let shape = Arc::new(shape(spec.addr));
    let start = Instant::now() + Duration::from_millis(200);
    let timing = Arc::new(Timing {
        start,
        measure_start: start + Duration::from_secs(args.warmup_secs),
        end: start + Duration::from_secs(total_secs),
    });
    let mut tasks = Vec::with_capacity(clients);
    for (i, (auth, proofs)) in auths.into_iter().zip(lists).enumerate() {
        let pace = spec.paced_rate.filter(|&r| r > 0).map(|rate| {
            let interval = Duration::from_secs_f64(clients as f64 / rate as f64);
            (interval, interval.mul_f64(i as f64 / clients as f64))
        });
        tasks.push(tokio::spawn(client_loop(
            Arc::clone(&shape),
            auth,
            proofs,
            Arc::clone(&timing),
            pace,
        )));
    }
    let watched = spec.watched;
    let perf_out = spec.perf_out;
    let sample_timing = Arc::clone(&timing);
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(sample_timing.measure_start.into()).await;
        let log_len = |p: &Option<PathBuf>| {
            p.as_ref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or(0, |m| m.len())
        };
        let before = (
            Instant::now(),
            ticks_of(&watched.proxy),
            ticks_of(&[watched.upstream]),
            ticks_of(&[watched.control]),
            self_ticks(),
            log_len(&watched.log),
        );
        let perf = perf_out.and_then(|(out, secs)| {
            let pid = watched.proxy.first().copied().unwrap_or(0);
            Command::new("perf")
                .args(["record", "--call-graph", "dwarf,16384", "-F", "499", "-p"])
                .arg(pid.to_string())
                .arg("-o")
                .arg(out)
                .args(["--", "sleep", &secs.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| eprintln!("warning: cannot run perf: {e}"))
                .ok()
        });
        tokio::time::sleep_until(sample_timing.end.into()).await;
        let after = (
            Instant::now(),
            ticks_of(&watched.proxy),
            ticks_of(&[watched.upstream]),
            ticks_of(&[watched.control]),
            self_ticks(),
            log_len(&watched.log),
        );
        (before, after, perf)
    });
    let mut outs = Vec::with_capacity(clients);
    for task in tasks {
        outs.push(task.await.map_err(s)?);
    }
    let (before, after, perf) = sampler.await.map_err(s)?;
    result.window_secs = (after.0 - before.0).as_secs_f64();
    result.proxy_cpu_secs = after.1.saturating_sub(before.1) as f64 / tick;
    result.upstream_cpu_secs = after.2.saturating_sub(before.2) as f64 / tick;
    result.control_cpu_secs = after.3.saturating_sub(before.3) as f64 / tick;
    result.client_cpu_secs = after.4.saturating_sub(before.4) as f64 / tick;
    result.log_bytes = after.5.saturating_sub(before.5);
    let mut lat: Vec<u32> = Vec::new();
    for out in outs {
        result.ok += out.ok;
        result.errors += out.errors;
        result.reconnects += out.reconnects;
        if result.first_error.is_none() {
            result.first_error = out.first_error;
        }
        result.exhausted_clients += usize::from(out.exhausted);
        lat.extend_from_slice(&out.lat_us);
        let _ = out.requests_total;
    }
    let summary = ward_bench::summarize(&mut lat);
    let window = (timing.end - timing.measure_start).as_secs_f64();
    result.rate = result.ok as f64 / window;
    result.p50_us = summary.p50;
    result.p90_us = summary.p90;
    result.p99_us = summary.p99;
    result.p999_us = summary.p999;
    result.max_us = summary.max;
    result.mean_us = summary.mean;
    Ok((result, perf))
}

/// One request through a target before its run, so a broken set-up fails
/// with the answer instead of a table of errors.
async fn sanity(addr: SocketAddr, auth: Option<(&Agent, &str)>) -> BResult<()> {
    let shape = shape(addr);
    let mut request = shape.head.clone();
    if let Some((agent, htu)) = auth {
        let proof = sign(agent, htu)?;
        request.extend_from_slice(
            format!("Authorization: DPoP {}\r\nDPoP: {proof}\r\n", agent.token).as_bytes(),
        );
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(shape.body);
    let stream = connect(addr).await.map_err(s)?;
    let mut buf = Vec::new();
    let mut scratch = vec![0u8; 16 * 1024];
    match exchange(&stream, &request, &mut buf, &mut scratch).await? {
        (_, None, _) => Ok(()),
        (status, Some(body), _) => Err(format!("sanity request to {addr}: HTTP {status}: {body}")),
    }
}

// ---------------------------------------------------------------------------
// Reporting.

fn result_json(r: &RunResult) -> Value {
    let per_req = |cpu: f64| {
        if r.ok > 0 {
            cpu * 1e6 / r.ok as f64
        } else {
            0.0
        }
    };
    json!({
        "target": r.target,
        "paced_rate": r.paced_rate,
        "window_secs": r.window_secs,
        "ok": r.ok,
        "errors": r.errors,
        "first_error": r.first_error,
        "per_sec": r.rate,
        "latency_us": {"p50": r.p50_us, "p90": r.p90_us, "p99": r.p99_us, "p999": r.p999_us,
            "max": r.max_us, "mean": r.mean_us},
        "cpu_secs": {"proxy": r.proxy_cpu_secs, "upstream": r.upstream_cpu_secs,
            "control_plane": r.control_cpu_secs, "client": r.client_cpu_secs},
        "cpu_us_per_request": {"proxy": per_req(r.proxy_cpu_secs),
            "upstream": per_req(r.upstream_cpu_secs), "client": per_req(r.client_cpu_secs)},
        "reconnects": r.reconnects,
        "exhausted_clients": r.exhausted_clients,
        "presign_secs": r.presign_secs,
        "proofs_presigned": r.proofs_presigned,
        "access_log_bytes": r.log_bytes,
    })
}

/// Self and inclusive time of the profile's hottest frames.
fn perf_summary(data: &Path) -> Option<String> {
    let report = |extra: &[&str]| -> Vec<String> {
        let mut cmd = Command::new("perf");
        cmd.arg("report").arg("-i").arg(data);
        cmd.args(["--stdio", "--sort", "sym", "-g", "none"]);
        cmd.args(extra);
        cmd.output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.trim_start()
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            })
            .map(|l| l.chars().take(150).collect())
            .collect()
    };
    let own = report(&["--no-children"]);
    if own.is_empty() {
        return None;
    }
    let inclusive = report(&["--children", "--percent-limit", "0.7"]);
    // The gateway's own steps and the costs under them; the async and
    // runtime scaffolding above them (100 % down to the pipeline) is left out.
    const FRAMES: &[&str] = &[
        "pipeline::Gateway::serve::",
        "Gateway::handle",
        "verify_jwt",
        "Verifier::verify_proof",
        "dpop::verify_proof",
        "jws::verify",
        "verify_strict",
        "decompress",
        "Jwk::verifying_key",
        "decode_unverified",
        "Verifier::authorize",
        "pipeline::body::read",
        "jsonschema",
        "pipeline::forward::forward",
        "client::Client<C,B>::send_request",
        "std::io::stdio::_print",
        "Metrics::record",
        "Limiter::check",
        "first_use",
        "random_hex",
        "__GI___writev",
        "__sys_recvfrom",
        "ksys_write",
        "[k] schedule",
        "Value as core::fmt::Display",
        "_mi_page_malloc",
        "mi_free",
    ];
    let mut out = String::new();
    out.push_str(
        "Inclusive time of the gateway's steps (share of its samples, children included):\n\n```\n",
    );
    let mut seen = std::collections::HashSet::new();
    for line in inclusive
        .iter()
        .filter(|l| FRAMES.iter().any(|f| l.contains(f)))
        .filter(|l| seen.insert(l.split("] ").nth(1).unwrap_or_default().to_owned()))
    {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("```\n\nSelf time, top 30:\n\n```\n");
    for line in own.iter().take(30) {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("```\n");
    Some(out)
}

struct Meta {
    reproduce: String,
    nginx_version: String,
    nginx_conf: String,
    gateway_conf: String,
    clients: usize,
    perf: Option<(String, Option<RunResult>)>,
    access_log_lines: Option<u64>,
}

fn write_results(args: &Args, results: &[RunResult], meta: &Meta) -> BResult<()> {
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty =
        !command_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let commit = if dirty {
        format!("{commit} (with uncommitted changes)")
    } else {
        commit
    };
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let machine = machine_info();
    let compare = |paced: bool| {
        let get = |name: &str| {
            results
                .iter()
                .find(|r| r.target == name && r.paced_rate.is_some() == paced)
        };
        match (get("nginx"), get("gateway")) {
            (Some(n), Some(g)) if n.rate > 0.0 => Some(json!({
                "throughput_ratio": g.rate / n.rate,
                "throughput_goal": 0.70,
                "throughput_goal_met": g.rate / n.rate >= 0.70,
                "p99_added_us": i64::from(g.p99_us) - i64::from(n.p99_us),
                "p99_goal_us": 1000,
                "p99_goal_met": i64::from(g.p99_us) - i64::from(n.p99_us) < 1000,
                "p50_added_us": i64::from(g.p50_us) - i64::from(n.p50_us),
                "gateway_cpu_us_per_request": if g.ok > 0 { g.proxy_cpu_secs * 1e6 / g.ok as f64 } else { 0.0 },
                "nginx_cpu_us_per_request": if n.ok > 0 { n.proxy_cpu_secs * 1e6 / n.ok as f64 } else { 0.0 },
            })),
            _ => None,
        }
    };
    let comparison = compare(false);
    let paced_comparison = compare(true);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Gateway vs nginx: {} keep-alive connections, same upstream\n",
        meta.clients
    );
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| date | {date} |");
    let _ = writeln!(md, "| git commit | {commit} |");
    let _ = writeln!(md, "| command | `{}` |", meta.reproduce);
    let _ = writeln!(
        md,
        "| machine | {} cores, {}, {}, kernel {} |",
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or(""),
        machine["memory"].as_str().unwrap_or(""),
        machine["kernel"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        md,
        "| nginx | {}, `worker_processes {}`, access log on |",
        meta.nginx_version, args.nginx_workers
    );
    let _ = writeln!(
        md,
        "| gateway | `ward gateway`, tokio multi-thread runtime (one worker per core), access log on (stdout to a file) |"
    );
    let _ = writeln!(
        md,
        "| upstream | `ward-bench-gateway --serve-upstream`: raw tokio HTTP/1.1 keep-alive server, its own process, fixed {}-byte JSON answer |",
        UPSTREAM_BODY.len()
    );
    let _ = writeln!(
        md,
        "| load | {} connections (one per client task, raw HTTP/1.1 on tokio, this process), {} s warm-up + {} s measured per target, `POST {PATH}` with a {}-byte JSON body |",
        meta.clients,
        args.warmup_secs,
        args.duration_secs,
        BODY.len()
    );
    let _ = writeln!(
        md,
        "| gateway requests | also `Authorization: DPoP <token>` and a presigned `DPoP` proof (unique `jti`, `ath`, `htu`) per request |"
    );
    let _ = writeln!(md);
    let table = |md: &mut String, paced: bool| {
        let _ = writeln!(
            md,
            "| target | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | proxy CPU s | µs proxy CPU/req | upstream CPU s | client CPU s |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in results.iter().filter(|r| r.paced_rate.is_some() == paced) {
            let per = if r.ok > 0 {
                r.proxy_cpu_secs * 1e6 / r.ok as f64
            } else {
                0.0
            };
            let (proxy, per) = if r.target == "upstream" {
                ("–".to_owned(), "–".to_owned())
            } else {
                (format!("{:.2}", r.proxy_cpu_secs), format!("{per:.1}"))
            };
            let _ = writeln!(
                md,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {proxy} | {per} | {:.2} | {:.2} |",
                r.target,
                r.rate,
                ms(r.p50_us),
                ms(r.p90_us),
                ms(r.p99_us),
                ms(r.p999_us),
                ms(r.max_us),
                r.errors,
                r.upstream_cpu_secs,
                r.client_cpu_secs
            );
        }
        let _ = writeln!(md);
    };
    let _ = writeln!(
        md,
        "## Saturated: {} connections as fast as each is answered\n",
        meta.clients
    );
    table(&mut md, false);
    if let Some(c) = &comparison {
        let ratio = c["throughput_ratio"].as_f64().unwrap_or(0.0);
        let added = c["p99_added_us"].as_i64().unwrap_or(0);
        let _ = writeln!(
            md,
            "- **gateway ÷ nginx throughput: {:.1} %** (goal ≥ 70 %: {})",
            ratio * 100.0,
            if ratio >= 0.70 { "met" } else { "not met" }
        );
        let _ = writeln!(
            md,
            "- **p99 added by the gateway over nginx: {:+.2} ms** (goal < 1 ms: {}); p50 {:+.2} ms",
            added as f64 / 1000.0,
            if added < 1000 { "met" } else { "not met" },
            c["p50_added_us"].as_i64().unwrap_or(0) as f64 / 1000.0
        );
        let _ = writeln!(
            md,
            "- CPU per request: gateway {:.1} µs, nginx (master + workers) {:.1} µs",
            c["gateway_cpu_us_per_request"].as_f64().unwrap_or(0.0),
            c["nginx_cpu_us_per_request"].as_f64().unwrap_or(0.0)
        );
    }
    if args.paced_rate > 0 && results.iter().any(|r| r.paced_rate.is_some()) {
        let _ = writeln!(
            md,
            "\n## Paced: {} req/s in all, evenly spaced over the {} connections\n\nNothing saturates here, so this is the latency a proxy adds to one request rather than queueing behind the others; latency counts from each request's actual send.\n",
            args.paced_rate, meta.clients
        );
        table(&mut md, true);
        if let Some(c) = &paced_comparison {
            let _ = writeln!(
                md,
                "- at {} req/s the gateway adds {:+.2} ms at p50 and {:+.2} ms at p99 over nginx; CPU per request: gateway {:.1} µs, nginx {:.1} µs\n",
                args.paced_rate,
                c["p50_added_us"].as_i64().unwrap_or(0) as f64 / 1000.0,
                c["p99_added_us"].as_i64().unwrap_or(0) as f64 / 1000.0,
                c["gateway_cpu_us_per_request"].as_f64().unwrap_or(0.0),
                c["nginx_cpu_us_per_request"].as_f64().unwrap_or(0.0)
            );
        }
        let _ = writeln!(md, "## Notes\n");
    }
    for r in results {
        let mut notes = Vec::new();
        if r.reconnects > 0 {
            notes.push(format!("{} reconnects", r.reconnects));
        }
        if r.exhausted_clients > 0 {
            notes.push(format!(
                "{} clients ran out of presigned proofs (raise --presign-rate)",
                r.exhausted_clients
            ));
        }
        if r.proofs_presigned > 0 {
            notes.push(format!(
                "{} proofs presigned in {:.1} s before the timer",
                r.proofs_presigned, r.presign_secs
            ));
        }
        if r.log_bytes > 0 && r.ok > 0 {
            notes.push(format!(
                "access log {:.0} bytes/request",
                r.log_bytes as f64 / r.ok as f64
            ));
        }
        if r.control_cpu_secs > 0.0 {
            notes.push(format!(
                "`ward serve` {:.2} CPU s in the window",
                r.control_cpu_secs
            ));
        }
        if let Some(e) = &r.first_error {
            notes.push(format!(
                "first error: `{}`",
                e.replace('`', "'").replace('\n', " ")
            ));
        }
        if !notes.is_empty() {
            let label = match r.paced_rate {
                Some(rate) => format!("{} @ {rate}/s", r.target),
                None => r.target.clone(),
            };
            let _ = writeln!(md, "- {label}: {}", notes.join("; "));
        }
    }
    if let Some(lines) = meta.access_log_lines {
        let _ = writeln!(
            md,
            "- gateway access log: {lines} request lines over the whole run (warm-up, sanity and profiled runs included)"
        );
    }
    let _ = writeln!(
        md,
        "\nCPU columns are `/proc/<pid>/stat` utime + stime over the measured window: proxy = nginx master + workers or the gateway process; upstream = the upstream process; client = this benchmark process. All share the machine's {} cores.",
        machine["nproc"]
    );
    if let Some((summary, run)) = &meta.perf {
        let _ = writeln!(md, "\n## Where the gateway's time goes\n");
        if let Some(run) = run {
            let _ = writeln!(
                md,
                "`perf record --call-graph dwarf -F 499 -p <ward gateway>` for {} s of an extra, unreported gateway run ({:.0} req/s under perf). Shares of the gateway's on-CPU samples.\n",
                args.perf_secs, run.rate
            );
        }
        let _ = writeln!(md, "{summary}");
    }
    let _ = writeln!(
        md,
        "\n<details><summary>nginx.conf (temp paths)</summary>\n\n```nginx\n{}```\n</details>\n",
        meta.nginx_conf
    );
    let gateway_conf_shown = meta
        .gateway_conf
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("token:") {
                "  token: <bootstrap token>"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let _ = writeln!(
        md,
        "<details><summary>gateway.yaml (temp paths)</summary>\n\n```yaml\n{gateway_conf_shown}\n```\n</details>"
    );

    let json = json!({
        "benchmark": "gateway-vs-nginx",
        "date": date,
        "git_commit": commit,
        "command": meta.reproduce,
        "machine": machine,
        "nginx": {"version": meta.nginx_version, "worker_processes": args.nginx_workers},
        "clients": meta.clients,
        "warmup_secs": args.warmup_secs,
        "duration_secs": args.duration_secs,
        "path": PATH,
        "body_bytes": BODY.len(),
        "results": results.iter().map(result_json).collect::<Vec<_>>(),
        "comparison": comparison,
        "paced_rate": (args.paced_rate > 0).then_some(args.paced_rate),
        "paced_comparison": paced_comparison,
        "gateway_access_log_lines": meta.access_log_lines,
        "perf": meta.perf.as_ref().map(|(summary, run)| json!({"summary": summary, "run": run.as_ref().map(result_json)})),
    });
    std::fs::create_dir_all(&args.out_dir).map_err(s)?;
    let md_path = args.out_dir.join("gateway.md");
    let json_path = args.out_dir.join("gateway.json");
    std::fs::write(&md_path, &md).map_err(s)?;
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&json).map_err(s)? + "\n",
    )
    .map_err(s)?;
    println!("{md}");
    eprintln!(
        "ward-bench-gateway: wrote {} and {}",
        md_path.display(),
        json_path.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------

async fn run(args: Args) -> BResult<()> {
    for t in &args.targets {
        if !matches!(t.as_str(), "upstream" | "nginx" | "gateway") {
            return Err(format!(
                "unknown target `{t}`: use upstream, nginx, gateway"
            ));
        }
    }
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    let reproduce = args
        .reproduce
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let tmp = std::env::temp_dir().join(format!("ward-bench-gateway-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(s)?;
    }
    std::fs::create_dir_all(&tmp).map_err(s)?;
    let mut procs: Vec<Proc> = Vec::new();
    let outcome = drive(&args, &tmp, &mut procs, reproduce).await;
    for proc in procs.iter_mut().rev() {
        proc.stop();
    }
    if args.keep_tmp || outcome.is_err() {
        eprintln!(
            "ward-bench-gateway: logs and configs kept in {}",
            tmp.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    outcome
}

async fn drive(args: &Args, tmp: &Path, procs: &mut Vec<Proc>, reproduce: String) -> BResult<()> {
    let tick = clock_ticks_per_sec();
    let (upstream_pid, upstream_addr) = start_upstream(tmp, procs)?;
    let (control_pid, cp) = start_control_plane(args, tmp, procs)?;
    eprintln!(
        "ward-bench-gateway: control plane at {}, upstream at {upstream_addr}",
        cp.base
    );
    let agents = setup_agents(&cp, args.clients).await?;
    let (nginx_pid, nginx_addr, nginx_conf) = start_nginx(args, tmp, upstream_addr, procs)?;
    let nginx_pids = with_children(nginx_pid);
    let (gateway_pid, gateway_addr, public_url, gateway_conf) =
        start_gateway(args, tmp, &cp, upstream_addr, procs)?;
    let htu = format!("{public_url}{PATH}");
    eprintln!(
        "ward-bench-gateway: nginx at {nginx_addr} (pids {nginx_pids:?}), gateway at {gateway_addr}"
    );

    sanity(upstream_addr, None).await?;
    sanity(nginx_addr, None).await?;
    let first = agents.first().ok_or("no agents")?;
    sanity(gateway_addr, Some((first, &htu))).await?;

    let mut results: Vec<RunResult> = Vec::new();
    let mut phases = vec![None];
    if args.paced_rate > 0 {
        phases.push(Some(args.paced_rate));
    }
    for paced in phases {
        for target in &args.targets {
            let (addr, proxy, log) = match target.as_str() {
                "upstream" => (upstream_addr, Vec::new(), None),
                "nginx" => (
                    nginx_addr,
                    nginx_pids.clone(),
                    Some(tmp.join("nginx-access.log")),
                ),
                _ => (
                    gateway_addr,
                    vec![gateway_pid],
                    Some(tmp.join("gateway-access.log")),
                ),
            };
            let auth = (target == "gateway").then(|| {
                let rate = match paced {
                    Some(rate) => rate + rate / 20 + 1,
                    None => args.presign_rate.unwrap_or_else(|| {
                        let nginx = results
                            .iter()
                            .find(|r| r.target == "nginx" && r.paced_rate.is_none())
                            .map_or(20_000.0, |r| r.rate);
                        (nginx * 1.3).clamp(5_000.0, 30_000.0) as u64
                    }),
                };
                (agents.as_slice(), htu.clone(), rate)
            });
            let duration = if paced.is_some() {
                args.paced_secs
            } else {
                args.duration_secs
            };
            let label = match paced {
                Some(rate) => format!("{target} @ {rate}/s"),
                None => target.clone(),
            };
            eprintln!(
                "ward-bench-gateway: {label}: {} s warm-up + {duration} s",
                args.warmup_secs
            );
            let (result, _) = run_target(
                args,
                RunSpec {
                    target,
                    addr,
                    auth,
                    watched: Watched {
                        proxy,
                        upstream: upstream_pid,
                        control: control_pid,
                        log,
                    },
                    duration,
                    perf_out: None,
                    paced_rate: paced,
                },
                tick,
            )
            .await?;
            eprintln!(
                "ward-bench-gateway: {label}: {:.0} req/s, p50 {} ms, p99 {} ms, {} errors",
                result.rate,
                ms(result.p50_us),
                ms(result.p99_us),
                result.errors
            );
            results.push(result);
            // Let the previous target's sockets and threads settle.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    let mut perf = None;
    if let Some(out) = &args.perf_out {
        let rate = results
            .iter()
            .find(|r| r.target == "gateway")
            .map_or(10_000.0, |r| r.rate * 1.3)
            .max(2_000.0) as u64;
        eprintln!(
            "ward-bench-gateway: profiled gateway run ({} s of perf)",
            args.perf_secs
        );
        let (run, child) = run_target(
            args,
            RunSpec {
                target: "gateway (under perf)",
                addr: gateway_addr,
                auth: Some((agents.as_slice(), htu.clone(), rate)),
                watched: Watched {
                    proxy: vec![gateway_pid],
                    upstream: upstream_pid,
                    control: control_pid,
                    log: None,
                },
                duration: args.perf_secs + 1,
                perf_out: Some((out.clone(), args.perf_secs)),
                paced_rate: None,
            },
            tick,
        )
        .await?;
        if let Some(mut child) = child {
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
        perf = Some(match perf_summary(out) {
            Some(summary) => (summary, Some(run)),
            None => (
                "`perf` gave no samples (not installed, or not permitted here).\n".to_owned(),
                Some(run),
            ),
        });
    }

    let access_log_lines = std::fs::read_to_string(tmp.join("gateway-access.log"))
        .ok()
        .map(|t| t.lines().filter(|l| l.starts_with('{')).count() as u64);
    let nginx_version = Command::new(&args.nginx_bin)
        .arg("-v")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .trim_start_matches("nginx version: ")
                .to_owned()
        })
        .unwrap_or_default();
    let meta = Meta {
        reproduce,
        nginx_version,
        nginx_conf,
        gateway_conf,
        clients: args.clients,
        perf,
        access_log_lines,
    };
    write_results(args, &results, &meta)
}
