//! `ward hook <agent>`: the process an agent runs for each hook event. It
//! reads the event on stdin, asks the daemon on its socket, prints the
//! agent's answer and exits 0, or exits 2 (block) with one line on stderr.
//!
//! INVARIANT: no path exits with another code. Claude Code runs the tool
//! when a hook exits 1, crashes or is killed by its timeout, so a panic
//! exits 2 (panic hook), and a watchdog thread exits 2 with a deny before
//! `--deadline-ms`, well inside the timeout `ward hook install` sets.

use clap::{Args, Subcommand};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use ward_agent::hook::{Answer, MAX_INPUT, claude_code};
use ward_client::LocalClient;

/// `ward hook ...`.
#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// Claude Code hooks (PreToolUse, PostToolUse, SessionStart, SessionEnd): the event on stdin.
    ClaudeCode(HookArgs),
}

/// Where the daemon is and how long the hook may take.
#[derive(Args, Debug)]
pub struct HookArgs {
    /// Directory written by `ward agent enroll` (the socket is STATE_DIR/agent.sock).
    #[arg(long, required_unless_present = "socket")]
    pub state_dir: Option<PathBuf>,
    /// The daemon's socket, when it is not in the state directory.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Deny on its own after this many milliseconds.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub deadline_ms: u64,
}

/// Runs a hook to its exit code, outside the CLI's usual error path (which
/// exits 1).
pub fn main(command: HookCommand) -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(
            std::io::stderr(),
            "ward: internal error in the hook ({info}); denied"
        );
        std::process::exit(2);
    }));
    let HookCommand::ClaudeCode(args) = command;
    let deadline = Duration::from_millis(args.deadline_ms);
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        let _ = writeln!(
            std::io::stderr(),
            "ward: the hook did not finish within {} ms; denied",
            deadline.as_millis()
        );
        std::process::exit(2);
    });
    let answer = answer(&args);
    if let Some(stdout) = &answer.stdout {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{stdout}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::from(2);
        }
    }
    if let Some(stderr) = &answer.stderr {
        let _ = writeln!(std::io::stderr(), "{stderr}");
    }
    ExitCode::from(answer.exit)
}

fn answer(args: &HookArgs) -> Answer {
    let mut input = Vec::new();
    let limit = MAX_INPUT as u64 + 1;
    if let Err(error) = std::io::stdin().lock().take(limit).read_to_end(&mut input) {
        return Answer::block(format!("cannot read the hook input ({error})"));
    }
    let socket = match (&args.socket, &args.state_dir) {
        (Some(socket), _) => socket.clone(),
        (None, Some(dir)) => dir.join("agent.sock"),
        (None, None) => return Answer::block("no --state-dir or --socket"),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return Answer::block(format!("cannot start the async runtime ({error})")),
    };
    let home = std::env::var("HOME").ok();
    runtime.block_on(async {
        let mut client = LocalClient::new(&socket);
        claude_code(&input, &mut client, home.as_deref()).await
    })
}
