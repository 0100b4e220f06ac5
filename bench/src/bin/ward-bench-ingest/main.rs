//! `ward-bench-ingest`: the control plane's event ingest with server-side
//! redaction, against the same ingest without it, in one run.
//!
//! Runs the server's own path after the DPoP proof
//! (`ward_control::store_batch`: field checks, redaction of `action`,
//! `target` and `reason`, classification, one write transaction with the
//! events and their history counts on SQLite with `synchronous=FULL`, then
//! the metrics and the alert engine) on a real data directory, with
//! `--clients` submitters of 1,000-event batches. The baseline passes
//! `ward_redact::Redactor::disabled()` (finds nothing) on identical
//! batches; the two alternate, best of `--repeat` each. About 1 % of the
//! events carry a secret or personal data; after the run, none may be
//! stored in the redacted tenant. Writes `bench/results/ingest.md`.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use ward_api::AgentEvent;
use ward_bench::{machine_info, provenance};
use ward_control::{Config, LoadedMatrix};
use ward_model::lifecycle::AgentState;
use ward_model::matrix::Matrix;
use ward_redact::Redactor;
use ward_store::{AgentEventFilter, AgentRow};

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "ward-bench-ingest",
    about = "Event ingest with server-side redaction against without"
)]
struct Args {
    /// Batches per client per pass.
    #[arg(long, default_value_t = 25)]
    batches: usize,
    /// Concurrent submitters (one agent each).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Passes of each variant (the best is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Where to write the Markdown results.
    #[arg(long, default_value = "bench/results/ingest.md")]
    out: String,
}

const BATCH: usize = 1000;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ward-bench-ingest: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Args::parse())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ward-bench-ingest: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A planted secret or personal datum, every 100th event.
const PLANTED: [&str; 4] = [
    "ghp_4Zq9cV2mT7xL1pR8sK3nB6wH0yJ5dF9gA2eU",
    "AKIAIOSFODNN7EXAMPLE",
    "alice.smith@example.com",
    "4111 1111 1111 1111",
];

fn agent(tenant: &str, index: usize) -> AgentRow {
    AgentRow {
        id: format!("agt_{tenant}_{index}"),
        tenant_id: tenant.to_owned(),
        owner: format!("user{index}@example.com"),
        profile: "reader".into(),
        state: AgentState::Active,
        os: "linux".into(),
        agent_version: "1.0.0".into(),
        host_id: format!("host-{index}"),
        device_jwk: "{}".into(),
        device_jkt: format!("jkt-{index}"),
        enroll_token_id: "enr_bench".into(),
        created_at: "2026-12-08T00:00:00.000Z".into(),
        updated_at: "2026-12-08T00:00:00.000Z".into(),
    }
}

fn batch(agent: &AgentRow, first_seq: u64) -> Vec<AgentEvent> {
    (0..BATCH as u64)
        .map(|i| {
            let seq = first_seq + i;
            let (action, target) = match seq % 5 {
                0 => (
                    "http:get",
                    format!("https://api.example.com/v1/items/{seq}?page=2"),
                ),
                1 => (
                    "exec:run",
                    format!("/usr/bin/git status --porcelain -- src/{seq}"),
                ),
                _ => (
                    "files:read",
                    format!(
                        "/home/alice/projects/ward/crates/ward-{}/src/lib.rs",
                        seq % 7
                    ),
                ),
            };
            let target = if seq % 100 == 7 {
                format!("{target} {}", PLANTED[(seq / 100) as usize % PLANTED.len()])
            } else {
                target
            };
            AgentEvent {
                seq,
                ts: "2026-12-08T10:00:00.000Z".into(),
                correlation_id: format!("corr_{seq}"),
                agent_id: agent.id.clone(),
                user_id: agent.owner.clone(),
                device_id: agent.device_jkt.clone(),
                class: "audit".into(),
                feature: None,
                action: action.into(),
                target,
                result: if seq.is_multiple_of(10) {
                    "deny"
                } else {
                    "allow"
                }
                .into(),
                reason: Some("granted by feature `read-projects`".into()),
                duration_ms: Some(seq % 900),
                sampling: 1.0,
            }
        })
        .collect()
}

/// One pass: every client stores `batches` batches; events per second.
async fn pass(
    state: &ward_control::AppState,
    agents: &[AgentRow],
    batches: usize,
    first_seq: u64,
    redactor: &Redactor,
) -> Result<f64, String> {
    let prepared: Vec<Vec<Vec<AgentEvent>>> = agents
        .iter()
        .map(|agent| {
            (0..batches)
                .map(|b| batch(agent, first_seq + (b * BATCH) as u64))
                .collect()
        })
        .collect();
    let started = Instant::now();
    let work = agents
        .iter()
        .zip(prepared)
        .map(|(agent, batches)| async move {
            for events in batches {
                ward_control::store_batch(state, agent, events, redactor)
                    .await
                    .map_err(|e| e.message)?;
            }
            Ok::<(), String>(())
        });
    for result in futures_util::future::join_all(work).await {
        result?;
    }
    let events = (agents.len() * batches * BATCH) as f64;
    Ok(events / started.elapsed().as_secs_f64())
}

async fn run(args: Args) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let matrix = Matrix::empty();
    let digest = matrix.digest();
    let config = Config::new(dir.path().join("data"), "http://127.0.0.1:9".into());
    let state = ward_control::init(
        config,
        LoadedMatrix {
            matrix,
            source: None,
            digest,
        },
    )
    .await
    .map_err(|e| e.to_string())?
    .state;
    let redacted: Vec<AgentRow> = (0..args.clients)
        .map(|i| agent("ten_redacted", i))
        .collect();
    let plain: Vec<AgentRow> = (0..args.clients).map(|i| agent("ten_plain", i)).collect();
    let (with, without) = (Redactor::new(), Redactor::disabled());
    let mut best_with: f64 = 0.0;
    let mut best_without: f64 = 0.0;
    for round in 0..args.repeat {
        let first_seq = 1 + (round * args.batches * BATCH) as u64;
        // Alternate which goes first, so a growing database favours neither.
        if round % 2 == 0 {
            best_with =
                best_with.max(pass(&state, &redacted, args.batches, first_seq, &with).await?);
            best_without =
                best_without.max(pass(&state, &plain, args.batches, first_seq, &without).await?);
        } else {
            best_without =
                best_without.max(pass(&state, &plain, args.batches, first_seq, &without).await?);
            best_with =
                best_with.max(pass(&state, &redacted, args.batches, first_seq, &with).await?);
        }
    }
    // No planted value may be stored in the redacted tenant.
    for planted in PLANTED {
        let filter = AgentEventFilter {
            tenant: "ten_redacted".into(),
            text: Some(planted.into()),
            limit: 1,
            ..AgentEventFilter::default()
        };
        let found = state
            .store()
            .read(move |conn| ward_store::query_agent_events(conn, &filter))
            .await
            .map_err(|e| e.to_string())?;
        if !found.is_empty() {
            return Err(format!("`{planted}` survived server-side redaction"));
        }
    }
    let (commit, date) = provenance();
    let machine = machine_info();
    let per_pass = args.clients * args.batches * BATCH;
    let md = format!(
        "# Event ingest with server-side redaction: `ward_control::store_batch`\n\n| | |\n|---|---|\n| date | {date} |\n| git commit | {commit} |\n| command | `cargo run --release -p ward-bench --bin ward-bench-ingest -- --batches {} --clients {} --repeat {}` |\n| machine | {} cores, {}, {}, kernel {} |\n| workload | {} clients (agents) x {} batches of {BATCH} events = {per_pass} events per pass; 1 % carry a secret or personal data; SQLite `synchronous=FULL`, one transaction per batch (events + history counts), then metrics and the alert engine |\n| method | best of {} passes of each variant, alternating; after the run no planted value is stored in the redacted tenant |\n\n| variant | events/s | ratio |\n|---|---:|---:|\n| without redaction (`Redactor::disabled()`) | {best_without:.0} | 1.00 |\n| with redaction (the server's) | {best_with:.0} | {:.2} |\n\n- **{best_with:.0} events/s with redaction** (goal >= 100,000 on 2 cores: {}), {:.0} % of ingest without it.\n",
        args.batches,
        args.clients,
        args.repeat,
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or(""),
        machine["memory"].as_str().unwrap_or(""),
        machine["kernel"].as_str().unwrap_or(""),
        args.clients,
        args.batches,
        args.repeat,
        best_with / best_without,
        if best_with >= 100_000.0 {
            "met"
        } else {
            "not met"
        },
        100.0 * best_with / best_without,
    );
    print!("{md}");
    std::fs::write(&args.out, &md).map_err(|e| format!("cannot write `{}`: {e}", args.out))?;
    Ok(())
}
