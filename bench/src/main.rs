//! `ward-bench`: the token-issuance benchmark.
//!
//! Starts the real `ward serve` as a child process, sets up a tenant and one
//! enrolled agent (own device key) per client through the HTTP API, then
//! drives `POST /v1/tokens` (DPoP proof verified, `token.issue` audit entry
//! durable before the answer) from C concurrent keep-alive HTTP/1.1 clients,
//! one connection each, and `GET /healthz` at the same concurrency as the
//! pure round-trip baseline. Reports tokens/s, latency percentiles and the
//! CPU split between the server (per thread) and this process, then checks
//! through `GET /v1/audit` that every token received has its audit entry.
//!
//! This is a benchmark, not a test: it never fails on a slow figure, only
//! on a broken setup or a durability shortfall.

use clap::{Parser, ValueEnum};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward_api::TokenRequest;
use ward_auth::Keypair;
use ward_bench::{clock_ticks_per_sec, command_output, machine_info, ms, s, unix_now};
use ward_client::Client;

type BResult<T> = Result<T, String>;

/// The scope every benchmark token asks for (granted to `reader` by
/// `examples/matrix.yaml`).
const SCOPE: &str = "files:read:/home/alice/projects/x";

/// Token-issuance benchmark for `ward serve`.
#[derive(Parser, Debug)]
#[command(name = "ward-bench")]
#[command(args_override_self = true)]
struct Args {
    /// The `ward` binary to benchmark (build it with `--release`).
    #[arg(long)]
    ward_bin: PathBuf,
    /// Capability matrix given to `ward serve`.
    #[arg(long, default_value = "examples/matrix.yaml")]
    matrix: PathBuf,
    /// How clients get DPoP proofs: signed right before each request, or
    /// all signed before the timer starts.
    #[arg(long, value_enum, default_value = "inline")]
    mode: Mode,
    /// Concurrent clients; one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    concurrency: Vec<usize>,
    /// Measured seconds per token run.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Unmeasured seconds before each run's timer starts.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Measured seconds per `/healthz` baseline run (0 skips the baseline).
    #[arg(long, default_value_t = 5)]
    healthz_secs: u64,
    /// Presigned mode: proofs signed per run = this rate x (warm-up +
    /// duration), split over the clients. A client that runs out stops
    /// early and the run is flagged.
    #[arg(long, default_value_t = 20_000)]
    presign_rate: u64,
    /// Where the Markdown and JSON results go.
    #[arg(long, default_value = "bench/results")]
    out_dir: PathBuf,
    /// Data directory for the server (default: a fresh one under the
    /// system temp dir, removed afterwards). Must be on a real disk for the
    /// durability figures to mean anything.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the data directory afterwards.
    #[arg(long)]
    keep_data: bool,
    /// After the measured runs, one extra (unreported) token run at
    /// `--perf-concurrency` with `perf record -g` attached to the server;
    /// the profile is written here.
    #[arg(long)]
    perf_out: Option<PathBuf>,
    /// Clients of the profiled run.
    #[arg(long, default_value_t = 32)]
    perf_concurrency: usize,
    /// Seconds of profile.
    #[arg(long, default_value_t = 5)]
    perf_secs: u64,
    /// The command to record as the one that reproduces the results
    /// (default: this process's own command line).
    #[arg(long)]
    reproduce: Option<String>,
    /// Push this directory's Rego bundle as the tenant's policy before the
    /// runs, so every token decision also evaluates it; results go to
    /// `tokens-<mode>-policy.{md,json}`.
    #[arg(long)]
    policy: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
enum Mode {
    Inline,
    Presigned,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Inline => "inline",
            Mode::Presigned => "presigned",
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    ward_client::install_tls_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ward-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ward-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// The server child process.

struct Server {
    child: Child,
    pid: u32,
    base: String,
    data_dir: PathBuf,
    remove_data: bool,
    bootstrap: String,
    /// Tid of `ward-store-writer`: tokio threads with a lower tid are the
    /// runtime's workers, later ones its blocking pool.
    writer_tid: Option<u32>,
}

fn start_server(args: &Args) -> BResult<Server> {
    let (data_dir, remove_data) = match &args.data_dir {
        Some(dir) => (dir.clone(), !args.keep_data),
        None => (
            std::env::temp_dir().join(format!(
                "ward-bench-{}-{}",
                args.mode.name(),
                std::process::id()
            )),
            !args.keep_data,
        ),
    };
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)
            .map_err(|e| format!("cannot clear `{}`: {e}", data_dir.display()))?;
    }
    let log_path = data_dir.with_extension("log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create `{}`: {e}", log_path.display()))?;
    let mut child = Command::new(&args.ward_bin)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--matrix")
        .arg(&args.matrix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", args.ward_bin.display()))?;
    let pid = child.id();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| "no stdout from the server".to_owned())?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let base = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("ward listening on ") {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    break url.trim_end_matches('/').to_owned();
                }
            }
            Err(_) => {
                let _ = child.kill();
                return Err(format!(
                    "the server did not say `ward listening on` within 30 s; see {}",
                    log_path.display()
                ));
            }
        }
    };
    let bootstrap = std::fs::read_to_string(data_dir.join("bootstrap-admin-token"))
        .map_err(|e| format!("cannot read the bootstrap token: {e}"))?
        .trim()
        .to_owned();
    let writer_tid = thread_ticks(pid)
        .into_iter()
        .find(|(_, (comm, _))| comm.starts_with("ward-store-wri"))
        .map(|(tid, _)| tid);
    Ok(Server {
        child,
        pid,
        base,
        data_dir,
        remove_data,
        bootstrap,
        writer_tid,
    })
}

impl Server {
    /// SIGTERM (graceful shutdown), then SIGKILL after 10 s.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// /proc readings (no unsafe: the workspace forbids it, so no getrusage).

/// utime + stime in clock ticks and the thread name, from a `stat` file.
fn stat_ticks(path: &Path) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 2..)?.split_whitespace().collect();
    // Field 3 (state) is index 0; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

fn process_ticks(pid: &str) -> u64 {
    stat_ticks(Path::new(&format!("/proc/{pid}/stat")))
        .map(|(_, t)| t)
        .unwrap_or(0)
}

/// Per-thread (name, ticks) of a process.
fn thread_ticks(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(reading) = stat_ticks(&entry.path().join("stat")) {
            out.insert(tid, reading);
        }
    }
    out
}

/// Voluntary + involuntary context switches summed over a process's threads.
fn context_switches(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut total = 0;
    for entry in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += rest.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

/// Established TCP connections whose remote end is `port` (our clients).
fn established_to(port: u16) -> usize {
    let Ok(text) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    let wanted = format!("{port:04X}");
    text.lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.get(2).and_then(|r| r.rsplit(':').next()) == Some(wanted.as_str())
                && cols.get(3) == Some(&"01")
        })
        .count()
}

/// `/proc/<pid>/io`: rchar, wchar, syscr, syscw.
fn process_io(pid: u32) -> [u64; 4] {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let mut out = [0u64; 4];
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let index = match key {
            "rchar" => 0,
            "wchar" => 1,
            "syscr" => 2,
            "syscw" => 3,
            _ => continue,
        };
        out[index] = value.trim().parse().unwrap_or(0);
    }
    out
}

#[derive(Clone)]
struct Snapshot {
    at: Instant,
    io: [u64; 4],
    server: BTreeMap<u32, (String, u64)>,
    server_total: u64,
    server_ctx: u64,
    bench_total: u64,
}

fn snapshot(pid: u32) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        io: process_io(pid),
        server: thread_ticks(pid),
        server_total: process_ticks(&pid.to_string()),
        server_ctx: context_switches(pid),
        bench_total: process_ticks("self"),
    }
}

// ---------------------------------------------------------------------------
// Set-up through the API.

struct Agent {
    id: String,
    key: Keypair,
    body: String,
}

async fn setup(
    server: &Server,
    agents: usize,
    policy: Option<&std::path::Path>,
) -> BResult<Vec<Agent>> {
    let enrolled =
        ward_bench::enrol_agents(&server.base, &server.bootstrap, "bench", agents, policy).await?;
    let anonymous = Client::new(&server.base, None).map_err(s)?;
    let mut out = Vec::with_capacity(agents);
    for (id, key) in enrolled {
        let body = serde_json::to_string(&TokenRequest {
            agent_id: id.clone(),
            requested_scopes: vec![SCOPE.into()],
            requested_duration: None,
            approval_id: None,
            action: None,
        })
        .map_err(s)?;
        out.push(Agent { id, key, body });
    }
    // One token through the typed client proves the set-up is right.
    if let Some(first) = out.first() {
        let token = anonymous
            .request_token(
                &first.key,
                &TokenRequest {
                    agent_id: first.id.clone(),
                    requested_scopes: vec![SCOPE.into()],
                    requested_duration: None,
                    approval_id: None,
                    action: None,
                },
            )
            .await
            .map_err(|e| format!("sanity token request failed: {e}"))?;
        if token.token_type != "DPoP" {
            return Err(format!("unexpected token type `{}`", token.token_type));
        }
    }
    Ok(out)
}

fn sign_proof(key: &Keypair, htu: &str) -> BResult<String> {
    let jti = ward_auth::dpop::new_jti().map_err(s)?;
    ward_auth::dpop::create_proof(key, "POST", htu, unix_now(), &jti, None).map_err(s)
}

/// Signs `per_client` proofs for each of the first `clients` agents, on
/// every core.
fn presign(
    agents: &[Agent],
    clients: usize,
    per_client: usize,
    htu: &str,
) -> BResult<Vec<Vec<String>>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(clients.max(1));
    let mut out: Vec<Vec<String>> = vec![Vec::new(); clients];
    let result: BResult<()> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (t, chunk) in out.chunks_mut(clients.div_ceil(threads)).enumerate() {
            let base = t * clients.div_ceil(threads);
            handles.push(scope.spawn(move || -> BResult<()> {
                for (offset, proofs) in chunk.iter_mut().enumerate() {
                    let key = &agents[base + offset].key;
                    proofs.reserve_exact(per_client);
                    for _ in 0..per_client {
                        proofs.push(sign_proof(key, htu)?);
                    }
                    // Clients pop from the end; order does not matter.
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
    });
    result?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// The load.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Tokens,
    Healthz,
}

enum Proofs {
    Inline(Keypair),
    Presigned(Vec<String>),
    None,
}

struct Timing {
    start: Instant,
    measure_start: Instant,
    end: Instant,
}

#[derive(Default)]
struct ClientOut {
    ok: u64,
    warm_ok: u64,
    errors: u64,
    first_error: Option<String>,
    lat_us: Vec<u32>,
    exhausted: bool,
    /// Every 200 answer, warm-up included (for the audit check).
    all_ok: u64,
}

async fn client_loop(
    http: reqwest::Client,
    kind: Kind,
    url: Arc<str>,
    body: String,
    mut proofs: Proofs,
    timing: Arc<Timing>,
) -> ClientOut {
    let mut out = ClientOut {
        lat_us: Vec::with_capacity(64 * 1024),
        ..ClientOut::default()
    };
    let json_type = HeaderValue::from_static("application/json");
    tokio::time::sleep_until(timing.start.into()).await;
    loop {
        if Instant::now() >= timing.end {
            break;
        }
        let request = match kind {
            Kind::Healthz => http.get(&*url),
            Kind::Tokens => {
                let proof = match &mut proofs {
                    Proofs::Inline(key) => match sign_proof(key, &url) {
                        Ok(proof) => proof,
                        Err(e) => {
                            out.errors += 1;
                            out.first_error.get_or_insert(format!("signing: {e}"));
                            continue;
                        }
                    },
                    Proofs::Presigned(list) => match list.pop() {
                        Some(proof) => proof,
                        None => {
                            out.exhausted = true;
                            break;
                        }
                    },
                    Proofs::None => String::new(),
                };
                http.post(&*url)
                    .header(CONTENT_TYPE, json_type.clone())
                    .header("DPoP", proof)
                    .body(body.clone())
            }
        };
        let t0 = Instant::now();
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Ok(_) if status.as_u16() == 200 => Ok(()),
                    Ok(bytes) => Err(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(600)])
                    )),
                    Err(e) => Err(format!("reading the body: {e}")),
                }
            }
            Err(e) => Err(format!("transport: {e}")),
        };
        let micros = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        match outcome {
            Ok(()) => {
                out.all_ok += 1;
                if t0 >= timing.measure_start {
                    out.ok += 1;
                    out.lat_us.push(micros);
                } else {
                    out.warm_ok += 1;
                }
            }
            Err(message) => {
                out.errors += 1;
                let transport = message.starts_with("transport");
                out.first_error.get_or_insert(message);
                if transport {
                    // Back off a little so a dead server does not spin us.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    out
}

#[derive(Clone, Debug)]
struct RunResult {
    kind: Kind,
    clients: usize,
    profiled: bool,
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
    server_cpu_secs: f64,
    bench_cpu_secs: f64,
    server_threads: BTreeMap<String, f64>,
    server_ctx_switches: u64,
    connections: usize,
    exhausted_clients: usize,
    presign_secs: f64,
    proofs_signed: u64,
    all_ok: u64,
    /// fsync/fdatasync calls on ext4 by the server during the window.
    fsyncs: Option<u64>,
    /// Server rchar, wchar, syscr, syscw over the window.
    io: [u64; 4],
}

struct Bench<'a> {
    args: &'a Args,
    server: &'a Server,
    port: u16,
    agents: Vec<Agent>,
    tick: f64,
}

impl Bench<'_> {
    async fn run(&self, kind: Kind, clients: usize, profiled: bool) -> BResult<RunResult> {
        let args = self.args;
        let duration = match kind {
            Kind::Tokens if profiled => args.perf_secs + 1,
            Kind::Tokens => args.duration_secs,
            Kind::Healthz => args.healthz_secs,
        };
        let warmup = Duration::from_secs(args.warmup_secs);
        let token_url = format!("{}/v1/tokens", self.server.base);
        let url: Arc<str> = match kind {
            Kind::Tokens => Arc::from(token_url.as_str()),
            Kind::Healthz => Arc::from(format!("{}/healthz", self.server.base).as_str()),
        };
        let mut presigned: Option<Vec<Vec<String>>> = None;
        let mut presign_secs = 0.0;
        let mut proofs_signed = 0;
        if kind == Kind::Tokens && args.mode == Mode::Presigned {
            let total = args.presign_rate * (args.warmup_secs + duration);
            // One client cannot beat ~8,000 round trips/s on loopback.
            let per_client = (total as usize)
                .div_ceil(clients)
                .min(8_000 * (args.warmup_secs + duration) as usize)
                + 16;
            let started = Instant::now();
            let agents = &self.agents;
            let url = token_url.clone();
            presigned = Some(presign(agents, clients, per_client, &url)?);
            presign_secs = started.elapsed().as_secs_f64();
            proofs_signed = (per_client * clients) as u64;
            if presign_secs + (args.warmup_secs + duration) as f64 > 55.0 {
                eprintln!(
                    "warning: presigning took {presign_secs:.1} s; proofs may pass the server's 60 s max age"
                );
            }
        }
        let start = Instant::now() + Duration::from_millis(100);
        let timing = Arc::new(Timing {
            start,
            measure_start: start + warmup,
            end: start + warmup + Duration::from_secs(duration),
        });
        let mut tasks = Vec::with_capacity(clients);
        let mut presigned = presigned.map(Vec::into_iter);
        for i in 0..clients {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .build()
                .map_err(s)?;
            let agent = &self.agents[i];
            let proofs = match (kind, &mut presigned) {
                (Kind::Healthz, _) => Proofs::None,
                (Kind::Tokens, Some(lists)) => Proofs::Presigned(lists.next().unwrap_or_default()),
                (Kind::Tokens, None) => Proofs::Inline(agent.key.clone()),
            };
            tasks.push(tokio::spawn(client_loop(
                http,
                kind,
                url.clone(),
                agent.body.clone(),
                proofs,
                Arc::clone(&timing),
            )));
        }
        // Sampler: CPU at the timer's start and end, connections midway.
        let pid = self.server.pid;
        let port = self.port;
        let sample_timing = Arc::clone(&timing);
        let perf = if profiled {
            args.perf_out.clone()
        } else {
            None
        };
        let perf_secs = args.perf_secs;
        let window = duration;
        let sampler = tokio::spawn(async move {
            tokio::time::sleep_until(sample_timing.measure_start.into()).await;
            let before = snapshot(pid);
            // fsyncs of the data directory (ext4 tracepoint; needs perf).
            let fsync_child = (kind == Kind::Tokens && !profiled)
                .then(|| {
                    Command::new("perf")
                        .args(["stat", "-x", ",", "-e", "ext4:ext4_sync_file_enter", "-p"])
                        .arg(pid.to_string())
                        .args(["--", "sleep", &window.to_string()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .ok()
                })
                .flatten();
            let perf_child = perf.and_then(|out| {
                Command::new("perf")
                    .args([
                        "record",
                        "--call-graph",
                        "dwarf,16384",
                        "-F",
                        "499",
                        "-p",
                        &pid.to_string(),
                        "-o",
                    ])
                    .arg(out)
                    .args(["--", "sleep", &perf_secs.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| eprintln!("warning: cannot run perf: {e}"))
                    .ok()
            });
            let mid =
                sample_timing.measure_start + (sample_timing.end - sample_timing.measure_start) / 2;
            tokio::time::sleep_until(mid.into()).await;
            let connections = established_to(port);
            tokio::time::sleep_until(sample_timing.end.into()).await;
            let after = snapshot(pid);
            (before, after, connections, perf_child, fsync_child)
        });
        let mut outs = Vec::with_capacity(clients);
        for task in tasks {
            outs.push(task.await.map_err(s)?);
        }
        let (before, after, connections, perf_child, fsync_child) = sampler.await.map_err(s)?;
        if let Some(mut child) = perf_child {
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
        let fsyncs = match fsync_child {
            Some(child) => tokio::task::spawn_blocking(move || child.wait_with_output())
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|o| String::from_utf8(o.stderr).ok())
                .and_then(|text| {
                    text.lines()
                        .find(|l| l.contains("ext4_sync_file_enter"))
                        .and_then(|l| l.split(',').next())
                        .and_then(|n| n.trim().parse::<u64>().ok())
                }),
            None => None,
        };
        let mut lat: Vec<u32> = Vec::new();
        let mut result = RunResult {
            kind,
            clients,
            profiled,
            window_secs: (after.at - before.at).as_secs_f64(),
            ok: 0,
            errors: 0,
            first_error: None,
            rate: 0.0,
            p50_us: 0,
            p90_us: 0,
            p99_us: 0,
            p999_us: 0,
            max_us: 0,
            mean_us: 0.0,
            server_cpu_secs: after.server_total.saturating_sub(before.server_total) as f64
                / self.tick,
            bench_cpu_secs: after.bench_total.saturating_sub(before.bench_total) as f64 / self.tick,
            server_threads: BTreeMap::new(),
            server_ctx_switches: after.server_ctx.saturating_sub(before.server_ctx),
            connections,
            exhausted_clients: 0,
            presign_secs,
            proofs_signed,
            all_ok: 0,
            fsyncs,
            io: [0, 1, 2, 3].map(|i| after.io[i].saturating_sub(before.io[i])),
        };
        for out in outs {
            result.ok += out.ok;
            result.all_ok += out.all_ok;
            result.errors += out.errors;
            if result.first_error.is_none() {
                result.first_error = out.first_error;
            }
            result.exhausted_clients += usize::from(out.exhausted);
            lat.extend_from_slice(&out.lat_us);
            let _ = out.warm_ok;
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
        result.server_threads = thread_split(&before, &after, self.server.writer_tid, self.tick);
        Ok(result)
    }
}

/// Server CPU seconds per thread group over the window.
fn thread_split(
    before: &Snapshot,
    after: &Snapshot,
    writer_tid: Option<u32>,
    tick: f64,
) -> BTreeMap<String, f64> {
    let mut groups: BTreeMap<String, f64> = BTreeMap::new();
    let mut counted = 0u64;
    for (tid, (comm, ticks)) in &after.server {
        let earlier = before.server.get(tid).map(|(_, t)| *t).unwrap_or(0);
        let delta = ticks.saturating_sub(earlier);
        counted += delta;
        let label = if comm.starts_with("tokio-r") {
            match writer_tid {
                Some(w) if *tid < w => "tokio workers (async: HTTP, JSON, DPoP verify, signing)",
                Some(_) => "tokio blocking pool (store.read: agent lookup)",
                None => "tokio threads",
            }
        } else if comm.starts_with("ward-store-wri") {
            "ward-store-writer (SQLite insert, audit hash chain, fsync)"
        } else {
            "other threads"
        };
        *groups.entry(label.to_owned()).or_default() += delta as f64 / tick;
    }
    let total = after.server_total.saturating_sub(before.server_total);
    if total > counted {
        *groups.entry("exited threads".to_owned()).or_default() += (total - counted) as f64 / tick;
    }
    groups
}

// ---------------------------------------------------------------------------
// Durability check.

async fn count_issued(server: &Server) -> BResult<(u64, u64)> {
    let admin = Client::new(&server.base, Some(server.bootstrap.clone())).map_err(s)?;
    let mut cursor: Option<String> = None;
    let (mut success, mut other) = (0u64, 0u64);
    loop {
        let mut query = vec![("action", "token.issue"), ("limit", "1000")];
        if let Some(c) = &cursor {
            query.push(("cursor", c.as_str()));
        }
        let page = admin.audit(&query).await.map_err(s)?;
        for entry in &page.entries {
            if entry.result == "success" {
                success += 1;
            } else {
                other += 1;
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok((success, other))
}

// ---------------------------------------------------------------------------
// Reporting.

fn filesystem_of(path: &Path) -> String {
    let out = command_output("df", &["-T", &path.display().to_string()]);
    out.lines()
        .nth(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            format!(
                "{} ({})",
                cols.get(1).copied().unwrap_or("?"),
                cols.first().copied().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "unknown".into())
}

fn result_json(r: &RunResult) -> Value {
    json!({
        "kind": match r.kind { Kind::Tokens => "tokens", Kind::Healthz => "healthz" },
        "clients": r.clients,
        "profiled": r.profiled,
        "window_secs": r.window_secs,
        "ok": r.ok,
        "errors": r.errors,
        "first_error": r.first_error,
        "per_sec": r.rate,
        "latency_us": { "p50": r.p50_us, "p90": r.p90_us, "p99": r.p99_us, "p999": r.p999_us,
            "max": r.max_us, "mean": r.mean_us },
        "server_cpu_secs": r.server_cpu_secs,
        "bench_cpu_secs": r.bench_cpu_secs,
        "server_cpu_by_thread_secs": r.server_threads,
        "server_context_switches": r.server_ctx_switches,
        "client_connections_seen": r.connections,
        "exhausted_clients": r.exhausted_clients,
        "presign_secs": r.presign_secs,
        "proofs_presigned": r.proofs_signed,
        "server_fsyncs": r.fsyncs,
        "server_io": { "rchar": r.io[0], "wchar": r.io[1], "syscr": r.io[2], "syscw": r.io[3] },
    })
}

async fn run(args: Args) -> BResult<()> {
    let concurrency: Vec<usize> = args
        .concurrency
        .iter()
        .copied()
        .filter(|&c| c > 0)
        .collect();
    if concurrency.is_empty() {
        return Err("--concurrency needs at least one positive value".into());
    }
    let max_clients = concurrency
        .iter()
        .copied()
        .chain(args.perf_out.as_ref().map(|_| args.perf_concurrency))
        .max()
        .unwrap_or(1);
    let reproduce = args
        .reproduce
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let mut server = start_server(&args)?;
    let outcome = drive(&args, &server, &concurrency, max_clients).await;
    server.stop();
    let verify = command_output(
        &args.ward_bin.display().to_string(),
        &[
            "audit",
            "verify",
            "--json",
            "--data-dir",
            &server.data_dir.display().to_string(),
        ],
    );
    let fs = filesystem_of(&server.data_dir);
    if server.remove_data {
        let _ = std::fs::remove_dir_all(&server.data_dir);
        let _ = std::fs::remove_file(server.data_dir.with_extension("log"));
    }
    let (results, received, audited, audited_other, setup_note) = outcome?;
    report(
        &args,
        &reproduce,
        &results,
        received,
        audited,
        audited_other,
        &verify,
        &fs,
        &setup_note,
    )
}

type Driven = (Vec<RunResult>, u64, u64, u64, String);

async fn drive(
    args: &Args,
    server: &Server,
    concurrency: &[usize],
    max_clients: usize,
) -> BResult<Driven> {
    let port: u16 = server
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("cannot read the port of `{}`", server.base))?;
    eprintln!(
        "ward-bench: server pid {} at {} (data {}), mode {}",
        server.pid,
        server.base,
        server.data_dir.display(),
        args.mode.name()
    );
    let set_up = Instant::now();
    let agents = setup(server, max_clients, args.policy.as_deref()).await?;
    let setup_note = format!(
        "{} agents enrolled (profile `reader`, one Ed25519 device key each) in {:.2} s",
        agents.len(),
        set_up.elapsed().as_secs_f64()
    );
    eprintln!("ward-bench: {setup_note}");
    let bench = Bench {
        args,
        server,
        port,
        agents,
        tick: clock_ticks_per_sec(),
    };
    // The set-up's sanity token.
    let mut received: u64 = 1;
    let mut results = Vec::new();
    for &clients in concurrency {
        if args.healthz_secs > 0 {
            let r = bench.run(Kind::Healthz, clients, false).await?;
            eprintln!(
                "  healthz  c={clients:<3} {:>9.0} req/s  p50 {} ms  p99 {} ms  errors {}",
                r.rate,
                ms(r.p50_us),
                ms(r.p99_us),
                r.errors
            );
            results.push(r);
        }
        let r = bench.run(Kind::Tokens, clients, false).await?;
        received += r.all_ok;
        eprintln!(
            "  tokens   c={clients:<3} {:>9.0} tok/s  p50 {} ms  p99 {} ms  errors {}  server cpu {:.2} cores, bench cpu {:.2} cores",
            r.rate,
            ms(r.p50_us),
            ms(r.p99_us),
            r.errors,
            r.server_cpu_secs / r.window_secs.max(1e-9),
            r.bench_cpu_secs / r.window_secs.max(1e-9)
        );
        if let Some(e) = &r.first_error {
            eprintln!("    first error: {e}");
        }
        results.push(r);
    }
    if args.perf_out.is_some() {
        let r = bench.run(Kind::Tokens, args.perf_concurrency, true).await?;
        received += r.all_ok;
        eprintln!(
            "  profiled c={:<3} {:>9.0} tok/s (perf attached; not in the table)",
            args.perf_concurrency, r.rate
        );
        results.push(r);
    }
    let counting = Instant::now();
    let (audited, audited_other) = count_issued(server).await?;
    eprintln!(
        "ward-bench: {audited} token.issue success entries audited (counted in {:.1} s); {received} tokens received",
        counting.elapsed().as_secs_f64()
    );
    Ok((results, received, audited, audited_other, setup_note))
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    reproduce: &str,
    results: &[RunResult],
    received: u64,
    audited: u64,
    audited_other: u64,
    verify: &str,
    fs: &str,
    setup_note: &str,
) -> BResult<()> {
    let machine = machine_info();
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty =
        !command_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let commit = if dirty {
        format!("{commit} (working tree has uncommitted changes)")
    } else {
        commit
    };
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mode = args.mode.name();
    let durable_ok = audited >= received;
    let healthz: BTreeMap<usize, &RunResult> = results
        .iter()
        .filter(|r| r.kind == Kind::Healthz)
        .map(|r| (r.clients, r))
        .collect();

    let mut md = String::new();
    let _ = writeln!(md, "# Token issuance benchmark — mode `{mode}`\n");
    let _ = writeln!(
        md,
        "`POST /v1/tokens` against a real `ward serve` over loopback HTTP/1.1 keep-alive, one connection per client; \
         every request carries a fresh DPoP proof (unique `jti`) that the server verifies, and every 200 is answered only \
         after its `token.issue` audit entry is committed (SQLite WAL, `synchronous=FULL`, grouped commits). \
         Proofs: **{}**.\n",
        match args.mode {
            Mode::Inline =>
                "signed by each client right before each request (client signing shares the 2 cores with the server)",
            Mode::Presigned =>
                "all signed before the timer starts, so the measured rate reflects the server's cost",
        }
    );
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| date | {date} |");
    let _ = writeln!(md, "| git commit | {commit} |");
    let _ = writeln!(md, "| command | `{reproduce}` |");
    let _ = writeln!(
        md,
        "| machine | {} cores, {}, {}, kernel {} |",
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or("?"),
        machine["memory"].as_str().unwrap_or("?"),
        machine["kernel"].as_str().unwrap_or("?")
    );
    let _ = writeln!(md, "| data directory filesystem | {fs} |");
    let _ = writeln!(
        md,
        "| per run | {} s warm-up, {} s measured (healthz {} s); scope `{SCOPE}` |",
        args.warmup_secs, args.duration_secs, args.healthz_secs
    );
    let _ = writeln!(md, "| set-up | {setup_note} |\n");

    let _ = writeln!(md, "## Results\n");
    let _ = writeln!(
        md,
        "| clients | tokens/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | healthz req/s | healthz p50 / p99 ms | tokens ÷ healthz | server CPU (cores) | bench CPU (cores) | server CPU µs/token | bench CPU µs/token | healthz server / bench CPU µs/req | conns |"
    );
    let _ = writeln!(
        md,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in results
        .iter()
        .filter(|r| r.kind == Kind::Tokens && !r.profiled)
    {
        let h = healthz.get(&r.clients);
        let w = r.window_secs.max(1e-9);
        let per = |cpu: f64| {
            if r.ok == 0 {
                "-".to_owned()
            } else {
                format!("{:.0}", cpu * 1e6 / (r.rate * w))
            }
        };
        let _ = writeln!(
            md,
            "| {} | {:.0} | {} | {} | {} | {} | {} | {}{} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {} |",
            r.clients,
            r.rate,
            ms(r.p50_us),
            ms(r.p90_us),
            ms(r.p99_us),
            ms(r.p999_us),
            ms(r.max_us),
            r.errors,
            if r.exhausted_clients > 0 {
                format!(
                    " ({} clients ran out of presigned proofs)",
                    r.exhausted_clients
                )
            } else {
                String::new()
            },
            h.map(|h| format!("{:.0}", h.rate))
                .unwrap_or_else(|| "-".into()),
            h.map(|h| format!("{} / {}", ms(h.p50_us), ms(h.p99_us)))
                .unwrap_or_else(|| "-".into()),
            h.filter(|h| h.rate > 0.0)
                .map(|h| format!("{:.1} %", 100.0 * r.rate / h.rate))
                .unwrap_or_else(|| "-".into()),
            r.server_cpu_secs / w,
            r.bench_cpu_secs / w,
            per(r.server_cpu_secs),
            per(r.bench_cpu_secs),
            h.filter(|h| h.ok > 0)
                .map(|h| format!(
                    "{:.0} / {:.0}",
                    h.server_cpu_secs * 1e6 / h.ok as f64,
                    h.bench_cpu_secs * 1e6 / h.ok as f64
                ))
                .unwrap_or_else(|| "-".into()),
            r.connections,
        );
    }
    let _ = writeln!(
        md,
        "\n`conns` = established client connections to the server seen midway through the run. \
         CPU figures are over the measured window, from `/proc/<pid>/stat` (server) and `/proc/self/stat` (this benchmark process: \
         HTTP client{}).\n",
        match args.mode {
            Mode::Inline => " and proof signing",
            Mode::Presigned => " only; presigning happens before the window",
        }
    );
    if args.mode == Mode::Presigned {
        let _ = writeln!(md, "Presigning (not timed): ");
        for r in results.iter().filter(|r| r.kind == Kind::Tokens) {
            let _ = writeln!(
                md,
                "- {} clients{}: {} proofs in {:.2} s ({:.0} µs CPU-parallel each)",
                r.clients,
                if r.profiled { " (profiled run)" } else { "" },
                r.proofs_signed,
                r.presign_secs,
                r.presign_secs * 1e6 / (r.proofs_signed.max(1) as f64)
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "## Server CPU by thread (seconds over the measured window)\n"
    );
    let mut labels: Vec<String> = results
        .iter()
        .filter(|r| r.kind == Kind::Tokens)
        .flat_map(|r| r.server_threads.keys().cloned())
        .collect();
    labels.sort();
    labels.dedup();
    let _ = write!(md, "| clients |");
    for l in &labels {
        let _ = write!(md, " {l} |");
    }
    let _ = writeln!(md, " context switches / token |");
    let _ = write!(md, "|---:|");
    for _ in &labels {
        let _ = write!(md, "---:|");
    }
    let _ = writeln!(md, "---:|");
    for r in results.iter().filter(|r| r.kind == Kind::Tokens) {
        let _ = write!(
            md,
            "| {}{} |",
            r.clients,
            if r.profiled { " (perf)" } else { "" }
        );
        for l in &labels {
            let _ = write!(
                md,
                " {:.2} |",
                r.server_threads.get(l).copied().unwrap_or(0.0)
            );
        }
        let _ = writeln!(
            md,
            " {:.1} |",
            r.server_ctx_switches as f64 / (r.ok.max(1) as f64)
        );
    }
    let _ = writeln!(md, "\n## Server I/O per token (measured window)\n");
    let _ = writeln!(
        md,
        "| clients | fsyncs/s | tokens per fsync (commit group size) | bytes written / token | write syscalls / token | bytes read / token | read syscalls / token |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|");
    for r in results
        .iter()
        .filter(|r| r.kind == Kind::Tokens && !r.profiled)
    {
        let n = r.ok.max(1) as f64;
        let w = r.window_secs.max(1e-9);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.1} | {:.0} | {:.1} |",
            r.clients,
            r.fsyncs
                .map(|f| format!("{:.0}", f as f64 / w))
                .unwrap_or_else(|| "n/a".into()),
            r.fsyncs
                .filter(|&f| f > 0)
                .map(|f| format!("{:.1}", n / f as f64))
                .unwrap_or_else(|| "n/a".into()),
            r.io[1] as f64 / n,
            r.io[3] as f64 / n,
            r.io[0] as f64 / n,
            r.io[2] as f64 / n,
        );
    }
    let _ = writeln!(
        md,
        "\nfsyncs counted with `perf stat -e ext4:ext4_sync_file_enter -p <server>` (n/a without perf); bytes and syscalls from `/proc/<pid>/io` \
         (`wchar`, `syscw`, `rchar`, `syscr`; socket traffic included)."
    );
    let _ = writeln!(md, "\n## Durability\n");
    let _ = writeln!(
        md,
        "- tokens received (every 200, warm-up and set-up included): **{received}**"
    );
    let _ = writeln!(
        md,
        "- `token.issue` success entries in the audit log (`GET /v1/audit?action=token.issue`, paginated): **{audited}** \
         ({audited_other} non-success `token.issue` entries)"
    );
    let _ = writeln!(
        md,
        "- {}",
        if durable_ok {
            "OK: every token received has its audit entry"
        } else {
            "**FAIL: fewer audit entries than tokens received**"
        }
    );
    let _ = writeln!(
        md,
        "- `ward audit verify --json` after shutdown: `{verify}`"
    );
    let errors: Vec<&RunResult> = results.iter().filter(|r| r.first_error.is_some()).collect();
    if !errors.is_empty() {
        let _ = writeln!(md, "\n## Errors\n");
        for r in errors {
            let _ = writeln!(
                md,
                "- {:?} c={}: {} errors; first: `{}`",
                r.kind,
                r.clients,
                r.errors,
                r.first_error
                    .as_deref()
                    .unwrap_or_default()
                    .replace('`', "'")
            );
        }
    }

    println!("{md}");
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|e| format!("cannot create `{}`: {e}", args.out_dir.display()))?;
    let suffix = if args.policy.is_some() { "-policy" } else { "" };
    let md_path = args.out_dir.join(format!("tokens-{mode}{suffix}.md"));
    std::fs::write(&md_path, &md)
        .map_err(|e| format!("cannot write `{}`: {e}", md_path.display()))?;
    let doc = json!({
        "mode": mode,
        "date": date,
        "git_commit": commit,
        "command": reproduce,
        "machine": machine,
        "data_dir_filesystem": fs,
        "warmup_secs": args.warmup_secs,
        "duration_secs": args.duration_secs,
        "healthz_secs": args.healthz_secs,
        "scope": SCOPE,
        "setup": setup_note,
        "runs": results.iter().map(result_json).collect::<Vec<_>>(),
        "durability": {
            "tokens_received": received,
            "audited_token_issue_success": audited,
            "audited_token_issue_other": audited_other,
            "ok": durable_ok,
            "audit_verify": serde_json::from_str::<Value>(verify).unwrap_or(Value::String(verify.to_owned())),
        },
    });
    let json_path = args.out_dir.join(format!("tokens-{mode}{suffix}.json"));
    let text = serde_json::to_string_pretty(&doc).map_err(s)?;
    std::fs::write(&json_path, text + "\n")
        .map_err(|e| format!("cannot write `{}`: {e}", json_path.display()))?;
    eprintln!(
        "ward-bench: wrote {} and {}",
        md_path.display(),
        json_path.display()
    );
    if !durable_ok {
        return Err(format!(
            "durability check failed: {received} tokens received but only {audited} audited"
        ));
    }
    Ok(())
}
