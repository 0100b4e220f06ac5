//! `ward`: the one binary. `serve` runs the control plane; `admin`, `agent`,
//! `audit` and `matrix` are its command line, talking HTTP to a server
//! (`--server` / `WARD_SERVER`, `--token` / `WARD_TOKEN`).

mod agent;
mod cli;
mod commands;
mod gateway;
mod login;
mod sandbox;
mod serve;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the token path allocates many small
/// strings, and glibc's malloc was about a tenth of the server's CPU in the
/// token benchmark (`bench/results/perf-presigned.txt`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    if let Some(code) = sandbox::run_if_requested() {
        return code;
    }
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
