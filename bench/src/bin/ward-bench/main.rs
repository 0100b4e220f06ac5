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
//!
//! Modules: [`args`] (the command line), [`server`] (the `ward serve`
//! child process), [`procstat`] (CPU, context switches and I/O from
//! `/proc`), [`setup`] (agents and proofs), [`load`] (the clients and one
//! measured run), [`check`] (every token has its audit entry), [`report`]
//! (results and files).

mod args;
mod check;
mod load;
mod procstat;
mod report;
mod server;
mod setup;

use args::Args;
use check::count_issued;
use clap::Parser;
use load::{Bench, Kind, RunResult};
use report::{filesystem_of, report};
use server::{Server, start_server};
use setup::setup;
use std::process::ExitCode;
use std::time::Instant;
use ward_bench::{BResult, clock_ticks_per_sec, command_output, ms};

fn main() -> ExitCode {
    let args = Args::parse();
    ward_client::install_tls_provider();
    ward_bench::run_on_runtime("ward-bench", run(args))
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
