//! `ward-hook AGENT --state-dir DIR | --socket PATH [--deadline-ms N]`:
//! the same hook as `ward hook AGENT`, in a small binary that starts in a
//! fraction of the time (an agent starts one per tool call). Every
//! failure, a bad command line included, blocks: exit 2 with the reason.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use ward_agent::hook;

const USAGE: &str = "usage: ward-hook claude-code|codex|gemini (--state-dir DIR | --socket PATH) [--deadline-ms 10..60000]";

fn main() -> ExitCode {
    match parse(std::env::args_os().skip(1)) {
        Ok((agent, socket, deadline)) => ExitCode::from(hook::run(agent, &socket, deadline)),
        Err(why) => {
            eprintln!("ward: {why}; denied\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The agent, the daemon's socket and the deadline, from the arguments.
fn parse(
    mut args: impl Iterator<Item = std::ffi::OsString>,
) -> Result<(hook::Agent, PathBuf, Duration), String> {
    let agent = args
        .next()
        .and_then(|a| a.to_str().and_then(hook::agent_named))
        .ok_or("the first argument is not claude-code, codex or gemini")?;
    let (mut socket, mut state_dir, mut deadline_ms) = (None, None, 5000u64);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{} needs a value", flag.to_string_lossy()))?;
        match flag.to_str() {
            Some("--state-dir") => state_dir = Some(PathBuf::from(value).join("agent.sock")),
            Some("--socket") => socket = Some(PathBuf::from(value)),
            Some("--deadline-ms") => {
                deadline_ms = value
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .filter(|ms| (10..=60_000).contains(ms))
                    .ok_or("--deadline-ms is not a number of milliseconds from 10 to 60000")?;
            }
            _ => return Err(format!("unknown argument `{}`", flag.to_string_lossy())),
        }
    }
    // As `ward hook`: --socket wins over --state-dir.
    let socket = socket.or(state_dir).ok_or("no --state-dir or --socket")?;
    Ok((agent, socket, Duration::from_millis(deadline_ms)))
}
