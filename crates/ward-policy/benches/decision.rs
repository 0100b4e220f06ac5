//! Latency of one policy decision with the example policies loaded: p50, p90,
//! p99 and max per decision, single-threaded and with two threads sharing one
//! `Policy`. Run with
//! `cargo bench -p ward-policy --bench decision`. Uses mimalloc, like the
//! `ward` binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails by panicking"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ward_policy::{Bundle, Policy};

// The `ward` binary runs on mimalloc; measure what it will see.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WARM_UP: usize = 2_000;
const TIMED: usize = 50_000;

fn example_policy() -> Policy {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rego") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    Bundle::from_files(files).unwrap().compile().unwrap()
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

fn report(label: &str, mut times: Vec<Duration>, wall: Duration) {
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
}

fn main() {
    let policy = Arc::new(example_policy());
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
    report("1 thread", times, start.elapsed());

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
}
