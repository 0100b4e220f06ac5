//! `ward`: the one binary. `serve` runs the control plane and `gateway` the
//! enforcing proxy; the other commands (`commands/`) are the command line,
//! talking HTTP to a server (`--server` / `WARD_SERVER`, `--token` /
//! `WARD_TOKEN`) or checking files locally.

mod commands;
mod connection;
mod credentials;
mod error;
mod output;
mod sandbox;
mod serving;

use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

use crate::error::CliError;

/// mimalloc instead of glibc malloc: the token path allocates many small
/// strings, and glibc's malloc was about a tenth of the server's CPU in the
/// token benchmark (`bench/results/perf-presigned.txt`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // INVARIANT: the policy sandbox is started before clap and tokio, so
    // its limits apply from its first instruction.
    if let Some(code) = sandbox::run_if_requested() {
        return code;
    }
    // A hook starts for every tool call an agent makes: parsed alone.
    if let Some(code) = commands::hook::run_if_hook() {
        return code;
    }
    let cli = match commands::Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` arrive as "errors" meant for stdout.
        Err(help) if !help.use_stderr() => {
            let _ = help.print();
            return ExitCode::SUCCESS;
        }
        Err(usage) => return CliError::Usage(usage).report(),
    };
    // Hooks run outside the usual error path: they exit 0 or 2, never 1.
    let cli = match cli.command {
        commands::Command::Hook { command } => match commands::hook::hook_of(command) {
            Ok((args, agent)) => return commands::hook::main(args, agent),
            Err(command) => commands::Cli {
                command: commands::Command::Hook { command },
            },
        },
        command => commands::Cli { command },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return CliError::Failed(format!("cannot start the async runtime: {e}")).report();
        }
    };
    let result = runtime.block_on(commands::run(cli.command));
    // Connections cut off at a shutdown deadline must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.report(),
    }
}
