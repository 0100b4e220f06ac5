//! `ward-bench-alerts`: what the alert engine costs the control plane.
//!
//! Drives `ward_telemetry::engine::Engine` with the checklist's three
//! default rules over a deterministic stream of events from N agents
//! (70 % file reads allowed, 20 % web fetches, 10 % denied writes; each
//! agent's events spread over ten minutes of event time), and measures in
//! the same run:
//! - per event: classification plus `Engine::observe`, against the floor
//!   any per-agent counting pays (classification plus one `HashMap`
//!   increment per event);
//! - per tick: `Engine::tick` with every agent's windows live (and, once,
//!   the heartbeat rules over N contacts);
//! - memory: the engine's own estimate (`Engine::footprint`) and the
//!   process's resident memory before and after, per 1,000 agents.
//!
//! Best of `--repeat` passes; writes `bench/results/alerts.md`.

use std::collections::HashMap;
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use ward_bench::{machine_info, provenance};
use ward_telemetry::engine::{Contact, Engine, Event, NoBaselines};
use ward_telemetry::rules::RuleSet;
use ward_telemetry::signal::signals;

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "ward-bench-alerts",
    about = "Cost of the alert engine per event, per tick and per 1,000 agents"
)]
struct Args {
    /// Active agents (each its own user).
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Events per agent.
    #[arg(long, default_value_t = 200)]
    events: usize,
    /// Repetitions of each measurement (the best is reported).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Where to write the Markdown results.
    #[arg(long, default_value = "bench/results/alerts.md")]
    out: String,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ward-bench-alerts: {message}");
            ExitCode::FAILURE
        }
    }
}

/// One event of the stream.
struct Raw {
    agent: String,
    user: String,
    action: &'static str,
    result: &'static str,
    ts_ms: i64,
    correlation: String,
}

const T0: i64 = 1_800_000_000_000;

/// The stream, interleaved across agents in event-time order.
fn stream(agents: usize, per_agent: usize) -> Vec<Raw> {
    let mut state: u64 = 0x7761_7264_a1e7_0001;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 16
    };
    let span_ms = 600_000;
    let mut out = Vec::with_capacity(agents * per_agent);
    for i in 0..per_agent {
        for a in 0..agents {
            let (action, result) = match next() % 10 {
                0 => ("files:write", "deny"),
                1 | 2 => ("http:get", "allow"),
                _ => ("files:read", "allow"),
            };
            out.push(Raw {
                agent: format!("agt_{a:08}"),
                user: format!("user{a}@example.com"),
                action,
                result,
                ts_ms: T0 + (i as i64 * span_ms) / per_agent as i64,
                correlation: format!("corr_{a}_{i}"),
            });
        }
    }
    out
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn feed(engine: &mut Engine, events: &[Raw]) -> usize {
    let mut fired = 0;
    for raw in events {
        let event = Event {
            tenant: "ten_bench",
            agent_id: &raw.agent,
            user_id: &raw.user,
            signals: signals(raw.action, raw.result, false),
            action: raw.action,
            target: "/home/alice/projects/notes.md",
            ts_ms: raw.ts_ms,
            correlation_id: &raw.correlation,
        };
        fired += engine.observe(&event, raw.ts_ms, &NoBaselines).len();
    }
    fired
}

fn floor(events: &[Raw]) -> u64 {
    let mut counts: HashMap<(&str, &str), u64> = HashMap::new();
    for raw in events {
        let s = signals(raw.action, raw.result, false);
        if !s.is_empty() {
            *counts.entry(("ten_bench", raw.agent.as_str())).or_default() += 1;
        }
    }
    counts.values().sum()
}

fn run(args: Args) -> Result<(), String> {
    let rules = RuleSet::defaults().rules;
    let events = stream(args.agents, args.events);
    let n = events.len() as f64;
    let end_ms = events.last().map_or(T0, |e| e.ts_ms);

    // Memory first, in a process that has allocated nothing else yet.
    let before = rss_kib();
    let mut engine = Engine::new(rules.clone());
    feed(&mut engine, &events);
    let after = rss_kib();
    let (windows, bytes) = engine.footprint();
    let mut best_observe = f64::MAX;
    let mut best_floor = f64::MAX;
    let mut fired = 0;
    for _ in 0..args.repeat {
        let started = Instant::now();
        black_box(floor(black_box(&events)));
        best_floor = best_floor.min(started.elapsed().as_nanos() as f64 / n);
        let mut engine = Engine::new(rules.clone());
        let started = Instant::now();
        fired = feed(&mut engine, black_box(&events));
        best_observe = best_observe.min(started.elapsed().as_nanos() as f64 / n);
    }

    let contacts: Vec<Contact> = (0..args.agents)
        .map(|a| Contact {
            tenant: "ten_bench".into(),
            agent_id: format!("agt_{a:08}"),
            last_ms: end_ms,
            interval_secs: 30,
        })
        .collect();
    let mut best_tick = f64::MAX;
    let mut best_heartbeat = f64::MAX;
    for _ in 0..args.repeat {
        let mut copy = Engine::new(rules.clone());
        feed(&mut copy, &events);
        let started = Instant::now();
        black_box(copy.tick(end_ms, None));
        best_tick = best_tick.min(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        black_box(copy.tick(end_ms + 1000, Some(&contacts)));
        best_heartbeat = best_heartbeat.min(started.elapsed().as_secs_f64() * 1000.0);
    }
    let per_thousand_kib = bytes as f64 / 1024.0 * 1000.0 / args.agents as f64;
    let rss_per_thousand = (after.saturating_sub(before)) as f64 * 1000.0 / args.agents as f64;

    let (commit, date) = provenance();
    let machine = machine_info();
    let mut md =
        String::from("# Alert engine cost: `ward_telemetry::engine::Engine`\n\n| | |\n|---|---|\n");
    md.push_str(&format!("| date | {date} |\n| git commit | {commit} |\n"));
    md.push_str(&format!(
        "| command | `cargo run --release -p ward-bench --bin ward-bench-alerts -- --agents {} --events {} --repeat {}` |\n",
        args.agents, args.events, args.repeat
    ));
    md.push_str(&format!(
        "| machine | {} cores, {}, {}, kernel {} |\n",
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or(""),
        machine["memory"].as_str().unwrap_or(""),
        machine["kernel"].as_str().unwrap_or("")
    ));
    md.push_str(&format!(
        "| workload | the three default rules; {} agents (one user each) x {} events = {} events over 10 minutes of event time: 70 % file reads, 20 % web fetches, 10 % denied writes; {} alerts fired |\n| method | single thread, best of {} passes |\n\n",
        args.agents, args.events, events.len(), fired, args.repeat
    ));
    md.push_str("| measure | value | ratio |\n|---|---:|---:|\n");
    md.push_str(&format!(
        "| floor: classify + one `HashMap` increment per event | {best_floor:.0} ns/event | 1.00 |\n"
    ));
    md.push_str(&format!(
        "| classify + `Engine::observe` (3 rules) | {best_observe:.0} ns/event | {:.2} |\n",
        best_observe / best_floor
    ));
    md.push_str(&format!(
        "| `Engine::tick`, every window live ({windows} windows) | {best_tick:.2} ms/tick | |\n"
    ));
    md.push_str(&format!(
        "| `Engine::tick` with heartbeat rules over {} contacts | {best_heartbeat:.2} ms/tick | |\n",
        args.agents
    ));
    md.push_str(&format!(
        "| memory held, engine's estimate | {per_thousand_kib:.0} KiB per 1,000 agents | |\n"
    ));
    md.push_str(&format!(
        "| resident memory grown while feeding | {rss_per_thousand:.0} KiB per 1,000 agents | |\n"
    ));
    md.push_str(&format!(
        "\n- **{:.0} events/s** through the engine on one core ({best_observe:.0} ns each, {:.1}x the floor).\n",
        1e9 / best_observe,
        best_observe / best_floor
    ));
    print!("{md}");
    std::fs::write(&args.out, &md).map_err(|e| format!("cannot write `{}`: {e}", args.out))?;
    Ok(())
}
