//! `ward hook <agent>`: the process an agent runs for each hook event. It
//! reads the event on stdin, asks the daemon on its socket, prints the
//! agent's answer and exits 0, or exits 2 (block) with one line on stderr.
//!
//! INVARIANT: no path exits with another code. Claude Code runs the tool
//! when a hook exits 1, crashes or is killed by its timeout, so a panic
//! exits 2 (panic hook), and a watchdog thread exits 2 with a deny before
//! `--deadline-ms`, well inside the timeout `ward hook install` sets.

use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use ward_agent::hook::{Answer, MAX_INPUT, claude_code};
use ward_agent::install::{Plan, Record, install_claude_code, uninstall_claude_code};
use ward_client::LocalClient;

use crate::error::{CliError, CliResult};
use crate::output;

/// `ward hook ...`.
#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// Claude Code hooks (PreToolUse, PostToolUse, SessionStart, SessionEnd): the event on stdin.
    ClaudeCode(HookArgs),
    /// Merge Ward's hooks and deny rules into an agent's settings (keeping the user's).
    Install(InstallArgs),
    /// Remove exactly what `ward hook install` added.
    Uninstall(UninstallArgs),
}

/// The agents whose settings Ward installs into.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Agent {
    /// Claude Code (`settings.json`, `managed-settings.json`).
    ClaudeCode,
}

/// Which settings file.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Scope {
    /// The organisation's managed settings (root; users cannot override them).
    Managed,
    /// `~/.claude/settings.json`.
    User,
    /// `.claude/settings.json` in the current directory.
    Project,
}

/// `ward hook install`.
#[derive(Args, Debug)]
pub struct InstallArgs {
    /// The agent.
    #[arg(value_enum)]
    pub agent: Agent,
    /// Directory written by `ward agent enroll`: the hooks ask its daemon,
    /// and the agent may neither read nor edit it.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Which settings file.
    #[arg(long, value_enum, default_value = "user")]
    pub scope: Scope,
    /// This settings file instead of the scope's.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Another path the agent may not edit (Ward's configuration; repeatable).
    #[arg(long)]
    pub protect: Vec<PathBuf>,
    /// Print the settings that would be written, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `ward hook uninstall`.
#[derive(Args, Debug)]
pub struct UninstallArgs {
    /// The agent.
    #[arg(value_enum)]
    pub agent: Agent,
    /// Which settings file.
    #[arg(long, value_enum, default_value = "user")]
    pub scope: Scope,
    /// This settings file instead of the scope's.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Print the settings that would be written, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `install` and `uninstall` (the hook itself runs through [`main`]).
pub fn run(command: HookCommand) -> CliResult {
    match command {
        HookCommand::ClaudeCode(_) => Err(CliError::Failed(
            "`ward hook claude-code` runs on its own path".into(),
        )),
        HookCommand::Install(args) => install(args),
        HookCommand::Uninstall(args) => uninstall(args),
    }
}

fn settings_path(scope: Scope, path: Option<PathBuf>) -> Result<PathBuf, CliError> {
    if let Some(path) = path {
        return Ok(path);
    }
    Ok(match scope {
        Scope::Managed if cfg!(target_os = "macos") => {
            PathBuf::from("/Library/Application Support/ClaudeCode/managed-settings.json")
        }
        Scope::Managed => PathBuf::from("/etc/claude-code/managed-settings.json"),
        Scope::User => {
            let home = std::env::var_os("HOME")
                .ok_or_else(|| CliError::Failed("HOME is not set; give --path".into()))?;
            PathBuf::from(home).join(".claude/settings.json")
        }
        Scope::Project => PathBuf::from(".claude/settings.json"),
    })
}

/// Where the record of an install into `settings` is kept.
fn record_path(settings: &Path) -> PathBuf {
    let mut name = settings.file_name().unwrap_or_default().to_owned();
    name.push(".ward-install.json");
    settings.with_file_name(name)
}

fn read_json(path: &Path) -> Result<Option<Value>, CliError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::Failed(format!(
                "`{}` is not JSON ({e}); fix or move it first",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::Failed(format!(
            "cannot read `{}`: {e}",
            path.display()
        ))),
    }
}

/// Replaces `path` with `value` so that a crash leaves the old file or
/// the new one (temp file, fsync, rename), keeping its mode.
fn write_json(path: &Path, value: &Value) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    let fail =
        |e: std::io::Error| CliError::Failed(format!("cannot write `{}`: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let mut temp = path.as_os_str().to_owned();
    temp.push(".ward-tmp");
    let temp = PathBuf::from(temp);
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(e.to_string()))?;
    std::fs::write(&temp, format!("{text}\n")).map_err(fail)?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
    std::fs::File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(fail)?;
    std::fs::rename(&temp, path).map_err(fail)
}

/// `'text'` for a POSIX shell.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn install(args: InstallArgs) -> CliResult {
    let Agent::ClaudeCode = args.agent;
    let path = settings_path(args.scope, args.path)?;
    let state_dir = std::fs::canonicalize(&args.state_dir).map_err(|e| {
        CliError::Failed(format!(
            "cannot open `{}`: {e}; run `ward agent enroll` first",
            args.state_dir.display()
        ))
    })?;
    let ward = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| CliError::Failed(format!("cannot tell where `ward` is: {e}")))?;
    let mut read_only = vec![
        ward.display().to_string(),
        path.display().to_string(),
        record_path(&path).display().to_string(),
    ];
    read_only.extend(args.protect.iter().map(|p| p.display().to_string()));
    let plan = Plan {
        command: format!(
            "{} hook claude-code --state-dir {}",
            quoted(&ward.display().to_string()),
            quoted(&state_dir.display().to_string())
        ),
        private: vec![state_dir.display().to_string()],
        read_only,
        managed: matches!(args.scope, Scope::Managed),
    };
    let mut settings = read_json(&path)?.unwrap_or(Value::Null);
    let record_file = record_path(&path);
    if let Some(old) = read_json(&record_file)? {
        let old: Record = serde_json::from_value(old).map_err(|e| {
            CliError::Failed(format!(
                "`{}` is not a Ward install record ({e})",
                record_file.display()
            ))
        })?;
        settings = uninstall_claude_code(&settings, &old).map_err(|e| bad_settings(&path, &e))?;
    }
    let (merged, record) =
        install_claude_code(&settings, &plan).map_err(|e| bad_settings(&path, &e))?;
    if args.dry_run {
        output::line(serde_json::to_string_pretty(&merged).unwrap_or_default());
        return Ok(());
    }
    let record_json = serde_json::to_value(&record).map_err(|e| CliError::Failed(e.to_string()))?;
    // The record first: a crash between the two leaves a record of an
    // install that is not there, which uninstall handles (nothing to find).
    write_json(&record_file, &record_json)?;
    write_json(&path, &merged)?;
    output::line(format!(
        "installed Ward's hooks for Claude Code in {} ({} hook events, {} deny rules{})",
        path.display(),
        record.hooks.len(),
        record.deny.len(),
        if plan.managed {
            ", hooks and bypass mode locked"
        } else {
            ""
        }
    ));
    Ok(())
}

fn uninstall(args: UninstallArgs) -> CliResult {
    let Agent::ClaudeCode = args.agent;
    let path = settings_path(args.scope, args.path)?;
    let record_file = record_path(&path);
    let Some(record) = read_json(&record_file)? else {
        return Err(CliError::Failed(format!(
            "no Ward install is recorded for `{}` (`{}` is missing)",
            path.display(),
            record_file.display()
        )));
    };
    let record: Record = serde_json::from_value(record).map_err(|e| {
        CliError::Failed(format!(
            "`{}` is not a Ward install record ({e})",
            record_file.display()
        ))
    })?;
    let settings = read_json(&path)?.unwrap_or(Value::Object(Default::default()));
    let cleaned = uninstall_claude_code(&settings, &record).map_err(|e| bad_settings(&path, &e))?;
    if args.dry_run {
        output::line(serde_json::to_string_pretty(&cleaned).unwrap_or_default());
        return Ok(());
    }
    write_json(&path, &cleaned)?;
    std::fs::remove_file(&record_file)
        .map_err(|e| CliError::Failed(format!("cannot remove `{}`: {e}", record_file.display())))?;
    output::line(format!(
        "removed Ward's hooks and deny rules from {}",
        path.display()
    ));
    Ok(())
}

fn bad_settings(path: &Path, why: &str) -> CliError {
    CliError::Failed(format!("`{}`: {why}; fix it first", path.display()))
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
pub fn main(args: HookArgs) -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(
            std::io::stderr(),
            "ward: internal error in the hook ({info}); denied"
        );
        std::process::exit(2);
    }));
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
