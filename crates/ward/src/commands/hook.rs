//! `ward hook <agent>`: the process an agent runs for each hook event. It
//! reads the event on stdin, asks the daemon on its socket, prints the
//! agent's answer and exits 0, or exits 2 (block) with one line on stderr.
//!
//! INVARIANT: no path exits with another code. Claude Code runs the tool
//! when a hook exits 1, crashes or is killed by its timeout, so a panic
//! exits 2 (panic hook), and a watchdog thread exits 2 with a deny before
//! `--deadline-ms`, well inside the timeout `ward hook install` sets.

use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use ward_agent::hook::{self, Agent as HookAgent};
use ward_agent::install::{self, Plan};
use ward_client::LocalClient;

use crate::error::{CliError, CliResult};
use crate::output;

/// `ward hook ...`.
#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// Claude Code hooks (PreToolUse, PostToolUse, SessionStart, SessionEnd): the event on stdin.
    ClaudeCode(HookArgs),
    /// Codex CLI hooks (PreToolUse, PostToolUse, SessionStart, SessionEnd): deny is exit 2.
    Codex(HookArgs),
    /// Gemini CLI hooks (BeforeTool, AfterTool, SessionStart, SessionEnd): deny is exit 2.
    Gemini(HookArgs),
    /// Merge Ward's hooks and deny rules into an agent's settings (keeping the user's).
    Install(Box<InstallArgs>),
    /// Remove exactly what `ward hook install` added.
    Uninstall(UninstallArgs),
}

/// The agents whose settings Ward installs into.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Agent {
    /// Claude Code (`settings.json`, `managed-settings.json`).
    ClaudeCode,
    /// Codex CLI (`hooks.json`: `~/.codex`, `.codex`, `/etc/codex`).
    Codex,
    /// Gemini CLI (`settings.json`: `~/.gemini`, `.gemini`, `/etc/gemini-cli`).
    Gemini,
}

impl Agent {
    fn hook(self) -> HookAgent {
        match self {
            Agent::ClaudeCode => HookAgent::ClaudeCode,
            Agent::Codex => HookAgent::Codex,
            Agent::Gemini => HookAgent::Gemini,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "claude-code",
            Agent::Codex => "codex",
            Agent::Gemini => "gemini",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "Claude Code",
            Agent::Codex => "Codex CLI",
            Agent::Gemini => "Gemini CLI",
        }
    }
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
    /// The hook program (default: `ward-hook` beside `ward`, which starts faster, else `ward` itself).
    #[arg(long)]
    pub hook_binary: Option<PathBuf>,
    /// With --scope managed: MCP servers (`{"mcpServers": {...}}`, stdio) to wrap with `ward mcp proxy` in managed-mcp.json, the only servers allowed.
    #[arg(long, requires = "scope")]
    pub mcp_config: Option<PathBuf>,
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
    /// The state directory given at install, to forget the install there.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
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
pub async fn run(command: HookCommand) -> CliResult {
    match command {
        HookCommand::ClaudeCode(_) | HookCommand::Codex(_) | HookCommand::Gemini(_) => {
            Err(CliError::Failed("a hook runs on its own path".into()))
        }
        HookCommand::Install(args) => install(*args).await,
        HookCommand::Uninstall(args) => uninstall(args),
    }
}

fn settings_path(agent: Agent, scope: Scope, path: Option<PathBuf>) -> Result<PathBuf, CliError> {
    if let Some(path) = path {
        return Ok(path);
    }
    let home = || {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .ok_or_else(|| CliError::Failed("HOME is not set; give --path".into()))
    };
    Ok(match (agent, scope) {
        (Agent::ClaudeCode, Scope::Managed) if cfg!(target_os = "macos") => {
            PathBuf::from("/Library/Application Support/ClaudeCode/managed-settings.json")
        }
        (Agent::ClaudeCode, Scope::Managed) => {
            PathBuf::from("/etc/claude-code/managed-settings.json")
        }
        (Agent::ClaudeCode, Scope::User) => home()?.join(".claude/settings.json"),
        (Agent::ClaudeCode, Scope::Project) => PathBuf::from(".claude/settings.json"),
        (Agent::Codex, Scope::Managed) => PathBuf::from("/etc/codex/hooks.json"),
        (Agent::Codex, Scope::User) => codex_home()?.join("hooks.json"),
        (Agent::Codex, Scope::Project) => PathBuf::from(".codex/hooks.json"),
        (Agent::Gemini, Scope::Managed) => PathBuf::from("/etc/gemini-cli/settings.json"),
        (Agent::Gemini, Scope::User) => match std::env::var_os("GEMINI_CLI_HOME") {
            Some(dir) => PathBuf::from(dir).join(".gemini/settings.json"),
            None => home()?.join(".gemini/settings.json"),
        },
        (Agent::Gemini, Scope::Project) => PathBuf::from(".gemini/settings.json"),
    })
}

/// Codex's own directory: `$CODEX_HOME`, else `~/.codex`.
fn codex_home() -> Result<PathBuf, CliError> {
    match std::env::var_os("CODEX_HOME") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".codex"))
            .ok_or_else(|| CliError::Failed("HOME and CODEX_HOME are not set".into())),
    }
}

/// `'text'` for a POSIX shell.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

async fn install(args: InstallArgs) -> CliResult {
    let agent = args.agent;
    let path = settings_path(agent, args.scope, args.path)?;
    let state_dir = std::fs::canonicalize(&args.state_dir).map_err(|e| {
        CliError::Failed(format!(
            "cannot open `{}`: {e}; run `ward agent enroll` first",
            args.state_dir.display()
        ))
    })?;
    let ward = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| CliError::Failed(format!("cannot tell where `ward` is: {e}")))?;
    let hook_binary = hook_binary(&ward, args.hook_binary.as_deref())?;
    if matches!(args.scope, Scope::Managed) {
        runs_for_everyone_unchanged(&hook_binary)?;
    }
    let mut read_only = vec![
        ward.display().to_string(),
        path.display().to_string(),
        install::record_path(&path).display().to_string(),
    ];
    if hook_binary != ward {
        read_only.push(hook_binary.display().to_string());
    }
    read_only.extend(args.protect.iter().map(|p| p.display().to_string()));
    let managed = matches!(args.scope, Scope::Managed);
    let ward_text = ward.display().to_string();
    let state_text = state_dir.display().to_string();
    let wrapped = match &args.mcp_config {
        None => serde_json::Map::new(),
        Some(_) if !matches!(agent, Agent::ClaudeCode) => {
            return Err(CliError::Failed(
                "--mcp-config is for claude-code (give Codex and Gemini the proxy's command line or URL as their MCP server)".into(),
            ));
        }
        Some(_) if !managed => {
            return Err(CliError::Failed(
                "--mcp-config needs --scope managed (Claude Code reads managed-mcp.json only beside managed settings)".into(),
            ));
        }
        Some(file) => {
            let text = std::fs::read(file)
                .map_err(|e| CliError::Failed(format!("cannot read `{}`: {e}", file.display())))?;
            let config: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| CliError::Failed(format!("`{}` is not JSON: {e}", file.display())))?;
            install::wrap_mcp(&config, &ward_text, &state_text)
                .map_err(|e| CliError::Failed(format!("`{}` {e}", file.display())))?
        }
    };
    let servers: Vec<String> = wrapped.keys().cloned().collect();
    let (derived, derived_note) = match agent {
        Agent::ClaudeCode => match profile_scopes(&state_dir).await {
            Ok(scopes) => (install::baseline(&scopes, &servers), String::new()),
            Err(why) => (
                Vec::new(),
                format!("; no rules derived from the profile: {why}"),
            ),
        },
        Agent::Codex | Agent::Gemini => (Vec::new(), String::new()),
    };
    let (trust_file, create) = match (agent, managed) {
        (Agent::Codex, false) => (Some(codex_home()?.join("config.toml")), Vec::new()),
        (Agent::Codex, true) => (
            None,
            vec![(
                path.with_file_name("requirements.toml"),
                install::CODEX_REQUIREMENTS.to_owned(),
            )],
        ),
        _ => (None, Vec::new()),
    };
    let mcp_path = path.with_file_name("managed-mcp.json");
    let plan = Plan {
        agent: agent.hook(),
        command: if hook_binary == ward {
            format!(
                "{} hook {} --state-dir {}",
                quoted(&ward_text),
                agent.name(),
                quoted(&state_text)
            )
        } else {
            format!(
                "{} {} --state-dir {}",
                quoted(&hook_binary.display().to_string()),
                agent.name(),
                quoted(&state_text)
            )
        },
        private: vec![state_text.clone()],
        read_only,
        derived,
        managed,
        mcp_commands: wrapped.values().map(install::command_line).collect(),
        trust_file,
        create,
    };
    let (merged, record) = install::install_file(&path, &plan, args.dry_run)?;
    let mcp = if wrapped.is_empty() {
        None
    } else {
        Some(install::install_mcp_file(&mcp_path, &wrapped, args.dry_run)?.0)
    };
    if args.dry_run {
        output::line(serde_json::to_string_pretty(&merged).unwrap_or_default());
        if let Some(mcp) = mcp {
            output::line(serde_json::to_string_pretty(&mcp).unwrap_or_default());
        }
        return Ok(());
    }
    // The daemon removes these entries when the agent is uninstalled.
    let absolute = std::fs::canonicalize(&path).unwrap_or(path.clone());
    install::remember(&state_dir, &absolute)?;
    if mcp.is_some() {
        let absolute = std::fs::canonicalize(&mcp_path).unwrap_or(mcp_path.clone());
        install::remember(&state_dir, &absolute)?;
    }
    let details = match agent {
        Agent::ClaudeCode => format!(
            "{} deny rules{}{}{derived_note}",
            record.deny.len(),
            if plan.managed {
                ", hooks and bypass mode locked"
            } else {
                ""
            },
            if servers.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} MCP servers wrapped in {}, no others allowed",
                    servers.len(),
                    mcp_path.display()
                )
            }
        ),
        Agent::Codex => match (&plan.trust_file, record.files.first()) {
            (Some(config), _) => format!("trusted in {}", config.display()),
            (None, Some((requirements, _))) => format!(
                "managed; {} written: only managed hooks run",
                requirements.display()
            ),
            (None, None) => format!(
                "managed; {} exists: make sure it says `allow_managed_hooks_only = true` and `hooks = true` under `[features]`",
                path.with_file_name("requirements.toml").display()
            ),
        },
        Agent::Gemini => {
            if plan.managed {
                "hooks enabled".to_owned()
            } else {
                "user or project settings".to_owned()
            }
        }
    };
    output::line(format!(
        "installed Ward's hooks for {} in {} ({} hook events, {details})",
        agent.title(),
        path.display(),
        record.hooks.len(),
    ));
    if let Agent::Gemini = agent {
        output::line(
            "note: Gemini CLI runs no hooks in a folder its user has not trusted, and a user or project can disable a hook by name (`hooksConfig.disabled`); run it under `ward agent exec` for a bound that holds",
        );
    }
    Ok(())
}

/// The program the hooks run: `--hook-binary`, else `ward-hook` beside
/// `ward` when it is there, else `ward` itself (`ward hook …`). It must
/// be an executable file: a hook command that cannot start fails open in
/// the agents that run it.
fn hook_binary(
    ward: &std::path::Path,
    given: Option<&std::path::Path>,
) -> Result<PathBuf, CliError> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &std::path::Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    match given {
        Some(path) => {
            let path = std::fs::canonicalize(path).map_err(|e| {
                CliError::Failed(format!("--hook-binary `{}`: {e}", path.display()))
            })?;
            if !executable(&path) {
                return Err(CliError::Failed(format!(
                    "--hook-binary `{}` is not an executable file",
                    path.display()
                )));
            }
            Ok(path)
        }
        None => {
            let beside = ward.with_file_name("ward-hook");
            Ok(if executable(&beside) {
                beside
            } else {
                ward.to_owned()
            })
        }
    }
}

/// For managed settings, which every user's agent reads: the hook program
/// must be one every user can run (or their hooks fail to start, which
/// runs the tool) and no user can replace: owned by root and writable by
/// no one else, as is every directory above it (a sticky one aside), each
/// of which every user can enter.
fn runs_for_everyone_unchanged(binary: &std::path::Path) -> Result<(), CliError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut at = Some(binary);
    while let Some(path) = at {
        let meta = std::fs::metadata(path)
            .map_err(|e| CliError::Failed(format!("`{}`: {e}", path.display())))?;
        let mode = meta.permissions().mode();
        let sticky = meta.is_dir() && mode & 0o1000 != 0;
        let problem = if meta.uid() != 0 {
            Some("is not owned by root")
        } else if mode & 0o022 != 0 && !sticky {
            Some("is writable by others than root")
        } else if mode & 0o001 == 0 {
            Some("cannot be entered or run by every user")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(CliError::Failed(format!(
                "the hook program `{}` is not fit for managed settings: `{}` {problem}",
                binary.display(),
                path.display()
            )));
        }
        at = path.parent();
    }
    Ok(())
}

/// Every scope of the agent's profile (all its features, consented or
/// not), as its daemon last heard them.
async fn profile_scopes(state_dir: &std::path::Path) -> Result<Vec<String>, String> {
    let socket = state_dir.join("agent.sock");
    let status = tokio::time::timeout(Duration::from_secs(5), LocalClient::new(&socket).status())
        .await
        .map_err(|_| "the daemon did not answer within 5 s".to_owned())?
        .map_err(|_| format!("no daemon answers at `{}`", socket.display()))?;
    if status.features.is_empty() {
        return Err("the daemon has not heard the profile yet".into());
    }
    Ok(status
        .features
        .into_iter()
        .flat_map(|feature| feature.scopes)
        .collect())
}

fn uninstall(args: UninstallArgs) -> CliResult {
    let path = settings_path(args.agent, args.scope, args.path)?;
    let absolute = std::fs::canonicalize(&path).unwrap_or(path.clone());
    let cleaned = install::uninstall_file(&path, args.dry_run)?;
    // The wrapped MCP servers, when this install wrote them.
    let mcp_path = path.with_file_name("managed-mcp.json");
    let mcp = if install::record_path(&mcp_path).exists() {
        let absolute = std::fs::canonicalize(&mcp_path).unwrap_or(mcp_path.clone());
        Some((absolute, install::uninstall_file(&mcp_path, args.dry_run)?))
    } else {
        None
    };
    if args.dry_run {
        output::line(serde_json::to_string_pretty(&cleaned).unwrap_or_default());
        if let Some((_, mcp)) = &mcp {
            output::line(serde_json::to_string_pretty(mcp).unwrap_or_default());
        }
        return Ok(());
    }
    if let Some(state_dir) = &args.state_dir {
        install::forget(state_dir, &absolute)?;
        if let Some((mcp_absolute, _)) = &mcp {
            install::forget(state_dir, mcp_absolute)?;
        }
    }
    output::line(format!(
        "removed Ward's hooks for {} from {}{}",
        args.agent.title(),
        path.display(),
        if mcp.is_some() {
            format!(" and its MCP servers from {}", mcp_path.display())
        } else {
            String::new()
        }
    ));
    Ok(())
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

/// `ward hook <agent>` parsed on its own, without the rest of the command
/// tree: a hook is started for every tool call, and building every
/// command's parser is part of a start.
#[derive(clap::Parser, Debug)]
#[command(name = "ward hook", about = "An agent's hook: the event on stdin.")]
struct Alone {
    #[command(flatten)]
    args: HookArgs,
}

/// The hook, and its protocol, of a parsed command; the command back for
/// `install` and `uninstall`.
pub fn hook_of(command: HookCommand) -> Result<(HookArgs, HookAgent), HookCommand> {
    match command {
        HookCommand::ClaudeCode(args) => Ok((args, HookAgent::ClaudeCode)),
        HookCommand::Codex(args) => Ok((args, HookAgent::Codex)),
        HookCommand::Gemini(args) => Ok((args, HookAgent::Gemini)),
        other => Err(other),
    }
}

/// When the command line is `ward hook claude-code|codex|gemini …`, runs
/// it to its exit code; `None` for every other command line.
pub fn run_if_hook() -> Option<ExitCode> {
    use clap::Parser;
    let mut args = std::env::args_os().skip(1);
    if args.next().is_none_or(|a| a != "hook") {
        return None;
    }
    let agent = hook::agent_named(args.next()?.to_str()?)?;
    let rest = std::env::args_os().skip(3);
    let name = std::ffi::OsString::from("ward hook");
    Some(
        match Alone::try_parse_from(std::iter::once(name).chain(rest)) {
            Ok(alone) => main(alone.args, agent),
            Err(help) if !help.use_stderr() => {
                let _ = help.print();
                ExitCode::SUCCESS
            }
            // A usage error blocks like every other failure of a hook.
            Err(usage) => {
                let _ = writeln!(std::io::stderr(), "ward: {}; denied", usage.kind());
                let _ = usage.print();
                ExitCode::from(2)
            }
        },
    )
}

/// Runs one hook process (`ward_agent::hook::run`).
pub fn main(args: HookArgs, agent: HookAgent) -> ExitCode {
    let socket = match (&args.socket, &args.state_dir) {
        (Some(socket), _) => socket.clone(),
        (None, Some(dir)) => dir.join("agent.sock"),
        (None, None) => {
            let _ = writeln!(
                std::io::stderr(),
                "ward: no --state-dir or --socket; denied"
            );
            return ExitCode::from(2);
        }
    };
    ExitCode::from(hook::run(
        agent,
        &socket,
        Duration::from_millis(args.deadline_ms),
    ))
}
