//! Latency of one policy decision with the example policies loaded: p50, p90,
//! p99 and max per decision, single-threaded and with two threads sharing one
//! `Policy`; then the same decisions made in a sandbox process over pipes, as
//! the control plane makes them, alone and while another sandbox runs
//! runaway evaluations (an attacking tenant), each as a ratio to the
//! in-process baseline of the same run. Run with
//! `cargo bench -p ward-policy --bench decision`. Uses mimalloc, like the
//! `ward` binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails by panicking"
)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ward_policy::sandbox::{Request, Response};
use ward_policy::{Bundle, Policy};

// The `ward` binary runs on mimalloc; measure what it will see.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WARM_UP: usize = 2_000;
const TIMED: usize = 50_000;
/// Set in the environment of this benchmark started again as a sandbox.
const CHILD: &str = "WARD_BENCH_SANDBOX_CHILD";
/// An attacking tenant's bundle: every decision loops until the engine's
/// time limit ends it.
const RUNAWAY: &str = r#"
package ward.broker
import rego.v1
deny contains {"rule": "r", "message": "m"} if {
    r := numbers.range(1, 100000)
    count([x | some x in r; some y in r; x == y + 1000000]) > 0
}
"#;

fn example_files() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rego") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    files
}

/// Realistic, varied requests: every rule both ways, 1-4 scopes each.
fn inputs() -> Vec<Value> {
    let scope_sets = [
        vec!["fs:read:/home/alice/**"],
        vec!["exec:run:/usr/bin/git", "fs:read:/home/alice/src/**"],
        vec!["secrets:read:ci/*"],
        vec![
            "exec:run:/usr/bin/git",
            "secrets:read:ci/*",
            "net:connect:github.com:443",
            "fs:write:/tmp/**",
        ],
    ];
    let devices = [
        ("macos", "15.2", "1.4.0"),
        ("macos", "13.6.1", "1.4.1"),
        ("windows", "10.0.22631", "1.5.0"),
        ("windows", "10.0.19045", "1.4.0"),
        ("linux", "6.8.0", "1.3.2"),
    ];
    let times = [
        (10, "tuesday"),
        (2, "thursday"),
        (17, "friday"),
        (11, "sunday"),
    ];
    let mut out = Vec::new();
    for (i, scopes) in scope_sets.iter().enumerate() {
        for (os, os_version, agent_version) in devices {
            for (hour, weekday) in times {
                let risk = if i % 2 == 1 { "high" } else { "low" };
                let grants: Vec<Value> = scopes
                    .iter()
                    .map(|s| json!({"scope": s, "feature": format!("feature-{}", s.split(':').next().unwrap_or("x")), "risk": risk}))
                    .collect();
                out.push(json!({
                    "action": "token.issue",
                    "request": {"scopes": scopes, "duration": 900},
                    "agent": {"id": "agt_01JD8X2Q7M4K3V9T6R5P0N1B2C", "profile": "developer", "state": "active", "owner": "alice@example.com"},
                    "device": {"os": os, "os_version": os_version, "agent_version": agent_version, "host_id": "host-77"},
                    "tenant": {"id": "ten_01JD8X0000000000000000000", "name": "acme"},
                    "time": {"unix": 1764123639, "rfc3339": "2026-11-26T02:20:39Z", "hour": hour, "weekday": weekday},
                    "matrix": {"profile_high_risk": risk == "high", "grants": grants}
                }));
            }
        }
    }
    out
}

/// Times `count` decisions, cycling through `inputs` from `offset`.
fn run(policy: &Policy, inputs: &[Value], offset: usize, count: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let input = &inputs[(offset + i) % inputs.len()];
        let start = Instant::now();
        let decision = policy.evaluate(input);
        times.push(start.elapsed());
        std::hint::black_box(decision.unwrap());
    }
    times
}

/// A sandbox process: this benchmark started again with [`CHILD`] set.
struct Sandbox {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Sandbox {
    fn spawn() -> Sandbox {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Sandbox {
            _child: child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, request: &Request) -> Response {
        let mut line = serde_json::to_vec(request).unwrap();
        line.push(b'\n');
        self.stdin.write_all(&line).unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap()
    }

    /// Sends the bundle's files once so later requests find it cached.
    fn load(&mut self, files: &[(String, String)]) -> String {
        let hash = Bundle::hash_of(files);
        self.ask(&Request::Evaluate {
            hash: hash.clone(),
            input: json!({}),
            files: Some(files.to_vec()),
        });
        hash
    }
}

/// Like [`run`], each decision asked of `sandbox`.
fn run_sandboxed(
    sandbox: &mut Sandbox,
    hash: &str,
    inputs: &[Value],
    offset: usize,
    count: usize,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let request = Request::Evaluate {
            hash: hash.to_owned(),
            input: inputs[(offset + i) % inputs.len()].clone(),
            files: None,
        };
        let start = Instant::now();
        let answer = sandbox.ask(&request);
        times.push(start.elapsed());
        assert!(matches!(answer, Response::Decided { .. }), "{answer:?}");
    }
    times
}

/// Prints a line of percentiles; returns p50 and p99 in µs.
fn report(label: &str, mut times: Vec<Duration>, wall: Duration) -> (f64, f64) {
    times.sort();
    let at = |q: f64| {
        let index = ((times.len() as f64 * q) as usize).min(times.len() - 1);
        times[index].as_secs_f64() * 1e6
    };
    println!(
        "{label:<28} n={:<6} p50={:>7.1}µs p90={:>7.1}µs p99={:>7.1}µs max={:>8.1}µs  {:>8.0} decisions/s",
        times.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        times[times.len() - 1].as_secs_f64() * 1e6,
        times.len() as f64 / wall.as_secs_f64()
    );
    (at(0.50), at(0.99))
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        ward_policy::sandbox::serve(std::io::stdin().lock(), std::io::stdout().lock());
        return;
    }
    let files = example_files();
    let policy = Arc::new(
        Bundle::from_files(files.clone())
            .unwrap()
            .compile()
            .unwrap(),
    );
    let inputs = Arc::new(inputs());
    let denied = inputs
        .iter()
        .filter(|i| policy.evaluate(i).unwrap().is_denied())
        .count();
    println!(
        "example bundle {}, {} distinct inputs ({} denied)",
        &policy.hash()[..16],
        inputs.len(),
        denied
    );

    run(&policy, &inputs, 0, WARM_UP);
    let start = Instant::now();
    let times = run(&policy, &inputs, 0, TIMED);
    let in_process = report("1 thread", times, start.elapsed());

    let threads = 2;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let policy = policy.clone();
            let inputs = inputs.clone();
            std::thread::spawn(move || {
                run(&policy, &inputs, t * 7, WARM_UP);
                run(&policy, &inputs, t * 7, TIMED / threads)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(TIMED);
    for handle in handles {
        all.extend(handle.join().unwrap());
    }
    report("2 threads, one Policy", all, start.elapsed());

    let mut victim = Sandbox::spawn();
    let hash = victim.load(&files);
    run_sandboxed(&mut victim, &hash, &inputs, 0, WARM_UP);
    let start = Instant::now();
    let times = run_sandboxed(&mut victim, &hash, &inputs, 0, TIMED);
    let sandboxed = report("sandbox process", times, start.elapsed());

    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sandbox = Sandbox::spawn();
            let runaway = [("broker.rego".to_owned(), RUNAWAY.to_owned())];
            let hash = sandbox.load(&runaway);
            let mut evaluations = 0;
            while !stop.load(Ordering::Relaxed) {
                let answer = sandbox.ask(&Request::Evaluate {
                    hash: hash.clone(),
                    input: json!({}),
                    files: None,
                });
                assert!(matches!(answer, Response::Refused { .. }), "{answer:?}");
                evaluations += 1;
            }
            evaluations
        })
    };
    let start = Instant::now();
    let times = run_sandboxed(&mut victim, &hash, &inputs, 0, TIMED);
    let attacked = report("sandbox, other one attacked", times, start.elapsed());
    stop.store(true, Ordering::Relaxed);
    let runaway = attacker.join().unwrap();
    println!("the attacking sandbox ran {runaway} runaway evaluations (each cut off at 1 s)");
    println!(
        "ratios p50 / p99: sandbox ÷ in-process {:.2} / {:.2}; attacked ÷ sandbox {:.2} / {:.2}",
        sandboxed.0 / in_process.0,
        sandboxed.1 / in_process.1,
        attacked.0 / sandboxed.0,
        attacked.1 / sandboxed.1
    );
}
