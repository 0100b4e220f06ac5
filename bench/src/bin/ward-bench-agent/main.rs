//! `ward-bench-agent`: the desktop daemon (`ward agent run`) as its local
//! clients see it. Starts a real `ward serve`, enrols an agent with `ward
//! agent enroll`, starts `ward agent run`, then measures:
//!
//! - the daemon's resident memory after it has been idle (`/proc/PID/status`);
//! - `POST /v1/authorize` over the Unix socket from C concurrent clients
//!   (one keep-alive connection each): canonicalisation, decision, redaction
//!   and the decision's event made durable in the spool before the answer;
//! - the baseline in the same run: `GET /v1/status` from the same clients
//!   (a socket round trip with no decision and no write);
//! - whole `ward hook claude-code` processes with a PreToolUse event on
//!   stdin, one after the other, against `ward --version` (the same binary
//!   started and ended).
//!
//! A benchmark, not a test: it fails only on a broken set-up.

use clap::Parser;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use ward_api::AuthorizeRequest;
use ward_bench::{BResult, Latencies, provenance, s, summarize, terminate};
use ward_client::LocalClient;

/// The command line.
#[derive(Parser, Debug)]
struct Args {
    /// The `ward` binary.
    #[arg(long, default_value = "target/release/ward")]
    ward_bin: PathBuf,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds of each measured run.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Seconds the daemon idles before its memory is read.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Hook processes started per series (one after the other).
    #[arg(long, default_value_t = 300)]
    hook_calls: usize,
    /// Where to write the Markdown result.
    #[arg(long, default_value = "bench/results/agent.md")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    ward_client::install_tls_provider();
    ward_bench::run_on_runtime("ward-bench-agent", run(args))
}

/// The processes under test; stopped on drop.
struct Desk {
    _dir: tempfile::TempDir,
    server: Child,
    daemon: Option<Child>,
    socket: PathBuf,
    state: PathBuf,
    work: PathBuf,
}

impl Drop for Desk {
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon.as_mut() {
            terminate(daemon);
        }
        // In case a run failed while the server was paused.
        let _ = signal(&self.server, "CONT");
        terminate(&mut self.server);
    }
}

async fn run(args: Args) -> BResult<()> {
    let desk = start(&args.ward_bin).await?;
    let pid = desk.daemon.as_ref().map(Child::id).ok_or("no daemon")?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_rss_kib = rss_kib(pid)?;
    let file = desk.work.join("readme.txt").display().to_string();
    let duration = Duration::from_secs(args.duration_secs);
    let status = drive(&desk.socket, args.clients, duration, Call::Status).await?;
    let authorize = drive(
        &desk.socket,
        args.clients,
        duration,
        Call::Authorize(file.clone()),
    )
    .await?;
    // Whole hook processes, one after the other, as Claude Code starts them.
    let work = desk.work.display().to_string();
    let read = hook_input("Read", json!({"file_path": file}), &work);
    let bash = hook_input(
        "Bash",
        json!({"command": format!("cat {file} | wc -l")}),
        &work,
    );
    let version = processes(&args.ward_bin, &["--version"], None, args.hook_calls)?;
    let state = desk.state.display().to_string();
    let hook_args = ["hook", "claude-code", "--state-dir", state.as_str()];
    let hook_read = processes(
        &args.ward_bin,
        &hook_args,
        Some((&read, "allow")),
        args.hook_calls,
    )?;
    let hook_bash = processes(
        &args.ward_bin,
        &hook_args,
        Some((&bash, "deny")),
        args.hook_calls,
    )?;
    // The small hook binary beside `ward`, as `ward hook install` prefers.
    let small = args.ward_bin.with_file_name("ward-hook");
    let small_args = ["claude-code", "--state-dir", state.as_str()];
    let small_read = processes(&small, &small_args, Some((&read, "allow")), args.hook_calls)?;
    let small_bash = processes(&small, &small_args, Some((&bash, "deny")), args.hook_calls)?;
    // The same runs with the control plane paused (SIGSTOP): on a desktop
    // the server is elsewhere, here it would take the same two cores to
    // store every event the daemon ships.
    signal(&desk.server, "STOP")?;
    let alone_status = drive(&desk.socket, args.clients, duration, Call::Status).await;
    let alone_authorize = match &alone_status {
        Ok(_) => drive(&desk.socket, args.clients, duration, Call::Authorize(file)).await,
        Err(e) => Err(e.clone()),
    };
    let alone_hooks = alone_authorize
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|_| {
            let read_run = processes(
                &args.ward_bin,
                &hook_args,
                Some((&read, "allow")),
                args.hook_calls,
            )?;
            let bash_run = processes(
                &args.ward_bin,
                &hook_args,
                Some((&bash, "deny")),
                args.hook_calls,
            )?;
            let small_read =
                processes(&small, &small_args, Some((&read, "allow")), args.hook_calls)?;
            let small_bash =
                processes(&small, &small_args, Some((&bash, "deny")), args.hook_calls)?;
            Ok((read_run, bash_run, small_read, small_bash))
        });
    signal(&desk.server, "CONT")?;
    let (alone_status, alone_authorize) = (alone_status?, alone_authorize?);
    let (alone_read, alone_bash, alone_small_read, alone_small_bash) = alone_hooks?;
    let busy_rss_kib = rss_kib(pid)?;
    let (commit, date) = provenance();
    let ratio = |a: u32, b: u32| f64::from(a) / f64::from(b.max(1));
    let report = format!(
        "# Desktop daemon: local API over the Unix socket\n\n\
         Commit {commit}, {date}. Reproduce: `cargo build --release -p ward -p ward-agent -p ward-bench && \
         target/release/ward-bench-agent --clients {clients} --duration-secs {secs}`.\n\n\
         {clients} concurrent clients, one keep-alive connection each, {secs} s per run. \
         `authorize` canonicalises a real file path, decides from the in-memory tokens, \
         redacts and makes the decision's event durable in the spool (group commit) before answering; \
         the baseline `GET /v1/status` is a round trip with no decision and no write. \
         First with `ward serve` on the same cores storing every event the daemon ships, \
         then with it paused (SIGSTOP), as on a desktop whose control plane is elsewhere.\n\n\
         | call | control plane | requests/s | p50 µs | p99 µs | p99.9 µs | max µs |\n|---|---|---|---|---|---|---|\n\
         {status_row}\n{authorize_row}\n{alone_status_row}\n{alone_authorize_row}\n\n\
         authorize / status: p50 ×{p50:.2}, p99 ×{p99:.2} (control plane on the same cores); \
         p50 ×{alone_p50:.2}, p99 ×{alone_p99:.2} (paused).\n\n\
         ## Hook processes\n\n\
         `ward hook claude-code` and the small `ward-hook claude-code` started {calls} times each, one after the other, \
         with a PreToolUse event on stdin, timed from spawn to exit, against `ward --version` (the same binary started and ended) in the same run.\n\n\
         | process | control plane | p50 µs | p99 µs | max µs | p99 ÷ `ward --version` |\n|---|---|---|---|---|---|\n\
         {version_row}\n{read_row}\n{bash_row}\n{small_read_row}\n{small_bash_row}\n\
         {alone_read_row}\n{alone_bash_row}\n{alone_small_read_row}\n{alone_small_bash_row}\n\n\
         Daemon resident memory: {idle:.1} MiB idle (after {idle_secs} s), {busy:.1} MiB after the runs.\n",
        clients = args.clients,
        secs = args.duration_secs,
        status_row = row("GET /v1/status (baseline)", "running", &status),
        authorize_row = row("POST /v1/authorize", "running", &authorize),
        alone_status_row = row("GET /v1/status (baseline)", "paused", &alone_status),
        alone_authorize_row = row("POST /v1/authorize", "paused", &alone_authorize),
        p50 = ratio(authorize.latencies.p50, status.latencies.p50),
        p99 = ratio(authorize.latencies.p99, status.latencies.p99),
        alone_p50 = ratio(alone_authorize.latencies.p50, alone_status.latencies.p50),
        alone_p99 = ratio(alone_authorize.latencies.p99, alone_status.latencies.p99),
        idle = idle_rss_kib as f64 / 1024.0,
        busy = busy_rss_kib as f64 / 1024.0,
        idle_secs = args.idle_secs,
        calls = args.hook_calls,
        version_row = process_row("`ward --version` (baseline)", "running", &version, &version),
        read_row = process_row(
            "hook: Read of a granted file (allow)",
            "running",
            &hook_read,
            &version
        ),
        bash_row = process_row(
            "hook: Bash `cat … \\| wc -l` (deny)",
            "running",
            &hook_bash,
            &version
        ),
        small_read_row = process_row(
            "`ward-hook`: Read of a granted file (allow)",
            "running",
            &small_read,
            &version
        ),
        small_bash_row = process_row(
            "`ward-hook`: Bash `cat … \\| wc -l` (deny)",
            "running",
            &small_bash,
            &version
        ),
        alone_small_read_row = process_row(
            "`ward-hook`: Read of a granted file (allow)",
            "paused",
            &alone_small_read,
            &version
        ),
        alone_small_bash_row = process_row(
            "`ward-hook`: Bash `cat … \\| wc -l` (deny)",
            "paused",
            &alone_small_bash,
            &version
        ),
        alone_read_row = process_row(
            "hook: Read of a granted file (allow)",
            "paused",
            &alone_read,
            &version
        ),
        alone_bash_row = process_row(
            "hook: Bash `cat … \\| wc -l` (deny)",
            "paused",
            &alone_bash,
            &version
        ),
    );
    print!("{report}");
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).map_err(s)?;
    }
    std::fs::write(&args.out, report).map_err(s)?;
    drop(desk);
    Ok(())
}

/// A Claude Code PreToolUse event.
fn hook_input(tool: &str, input: serde_json::Value, cwd: &str) -> String {
    json!({
        "session_id": "bench",
        "hook_event_name": "PreToolUse",
        "cwd": cwd,
        "tool_name": tool,
        "tool_input": input,
        "tool_use_id": "toolu_bench",
    })
    .to_string()
}

/// Starts `ward args` `calls` times one after the other, with `stdin`
/// when given (and the decision it must print); each one's wall time.
fn processes(
    ward: &Path,
    args: &[&str],
    stdin: Option<(&str, &str)>,
    calls: usize,
) -> BResult<Latencies> {
    use std::io::Write;
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let at = Instant::now();
        let mut child = Command::new(ward)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(s)?;
        if let (Some((text, _)), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).map_err(s)?;
        }
        let output = child.wait_with_output().map_err(s)?;
        times.push(at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        let printed = String::from_utf8_lossy(&output.stdout);
        if !output.status.success()
            || stdin.is_some_and(|(_, decision)| {
                !printed.contains(&format!("\"permissionDecision\":\"{decision}\""))
            })
        {
            return Err(format!(
                "ward {}: exit {:?}, {printed} {}",
                args.join(" "),
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    Ok(summarize(&mut times))
}

fn process_row(name: &str, server: &str, run: &Latencies, baseline: &Latencies) -> String {
    format!(
        "| {name} | {server} | {} | {} | {} | ×{:.2} |",
        run.p50,
        run.p99,
        run.max,
        f64::from(run.p99) / f64::from(baseline.p99.max(1))
    )
}

/// Sends `SIG<name>` to `child`.
fn signal(child: &Child, name: &str) -> BResult<()> {
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .map_err(s)?;
    if sent.success() {
        Ok(())
    } else {
        Err(format!("kill -{name} {} failed", child.id()))
    }
}

fn row(name: &str, server: &str, run: &Run) -> String {
    let l = &run.latencies;
    format!(
        "| {name} | {server} | {:.0} | {} | {} | {} | {} |",
        run.per_sec, l.p50, l.p99, l.p999, l.max
    )
}

/// What each client calls.
#[derive(Clone)]
enum Call {
    Status,
    Authorize(String),
}

/// One measured run.
struct Run {
    per_sec: f64,
    latencies: Latencies,
}

async fn drive(socket: &Path, clients: usize, duration: Duration, call: Call) -> BResult<Run> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let socket = socket.to_owned();
        let call = call.clone();
        tasks.spawn(async move {
            let mut client = LocalClient::new(&socket);
            let mut latencies = Vec::new();
            while started.elapsed() < duration {
                let at = Instant::now();
                match &call {
                    Call::Status => {
                        client.status().await.map_err(s)?;
                    }
                    Call::Authorize(file) => {
                        let answer = client
                            .authorize(&AuthorizeRequest {
                                feature: None,
                                action: "files:read".into(),
                                resource: file.clone(),
                                cwd: None,
                                correlation_id: None,
                            })
                            .await
                            .map_err(s)?;
                        if answer.decision != "allow" {
                            return Err(format!(
                                "the benchmark read was denied: {}",
                                answer.reason
                            ));
                        }
                    }
                }
                latencies.push(at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
            Ok::<_, String>(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.map_err(s)??);
    }
    let per_sec = all.len() as f64 / started.elapsed().as_secs_f64();
    Ok(Run {
        per_sec,
        latencies: summarize(&mut all),
    })
}

fn rss_kib(pid: u32) -> BResult<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(s)?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/PID/status".to_owned())
}

/// Starts `ward serve` on a one-feature matrix over a temporary work tree,
/// enrols an agent and starts its daemon; returns once it holds a token.
async fn start(ward: &Path) -> BResult<Desk> {
    let dir = tempfile::tempdir().map_err(s)?;
    let root = std::fs::canonicalize(dir.path()).map_err(s)?;
    let work = root.join("work");
    std::fs::create_dir_all(&work).map_err(s)?;
    std::fs::write(work.join("readme.txt"), "hello").map_err(s)?;
    let matrix = root.join("matrix.yaml");
    std::fs::write(
        &matrix,
        format!(
            "version: 1\nfeatures:\n  read-work:\n    description: Read the work tree\n    risk: low\n    scopes: [\"files:read:{}/**\"]\nprofiles:\n  bench:\n    description: Benchmark\n    features: [read-work]\n",
            work.display()
        ),
    )
    .map_err(s)?;
    let data = root.join("data");
    let mut server = Command::new(ward)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--matrix")
        .arg(&matrix)
        .env("WARD_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", ward.display()))?;
    let url = listening_url(&mut server)?;
    let http = reqwest::Client::new();
    let bootstrap = std::fs::read_to_string(data.join("bootstrap-admin-token")).map_err(s)?;
    let post = |path: &str, token: &str, body: serde_json::Value| {
        http.post(format!("{url}{path}"))
            .bearer_auth(token.trim().to_owned())
            .json(&body)
            .send()
    };
    post("/v1/tenants", &bootstrap, json!({"name": "bench"}))
        .await
        .map_err(s)?;
    let admin: serde_json::Value = post(
        "/v1/api-tokens",
        &bootstrap,
        json!({"tenant": "bench", "role": "admin"}),
    )
    .await
    .map_err(s)?
    .json()
    .await
    .map_err(s)?;
    let admin = admin["token"].as_str().ok_or("no admin token")?.to_owned();
    let enroll: serde_json::Value = post(
        "/v1/enroll-tokens",
        &admin,
        json!({"owner": "bench@example.com", "profile": "bench"}),
    )
    .await
    .map_err(s)?
    .json()
    .await
    .map_err(s)?;
    let state = root.join("state");
    let enrolled = Command::new(ward)
        .args(["agent", "enroll", "--server", &url, "--enroll-token"])
        .arg(enroll["token"].as_str().ok_or("no enrolment token")?)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .map_err(s)?;
    if !enrolled.status.success() {
        return Err(format!(
            "ward agent enroll: {}",
            String::from_utf8_lossy(&enrolled.stderr)
        ));
    }
    let daemon = Command::new(ward)
        .args(["agent", "run", "--state-dir"])
        .arg(&state)
        .env("WARD_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(s)?;
    let socket = state.join("agent.sock");
    let state = state.clone();
    let desk = Desk {
        _dir: dir,
        server,
        daemon: Some(daemon),
        socket,
        state,
        work,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(status) = LocalClient::new(&desk.socket).status().await
            && status.tokens.iter().all(|t| t.expires_at.is_some())
            && !status.tokens.is_empty()
        {
            return Ok(desk);
        }
        if Instant::now() > deadline {
            return Err("the daemon did not get its token within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn listening_url(server: &mut Child) -> BResult<String> {
    use std::io::{BufRead, BufReader};
    let stdout = server.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.map_err(s)?;
        if let Some(rest) = line.strip_prefix("ward listening on ") {
            let url = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            std::thread::spawn(move || for _ in lines {});
            return Ok(url);
        }
    }
    Err("ward serve exited before listening".into())
}
