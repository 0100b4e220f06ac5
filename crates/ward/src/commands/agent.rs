//! `ward agent ...`: the desktop side, run by `ward-agent` (the device key,
//! the state directory, enrolment, tokens); this module reads the flags
//! and prints the result.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use ward_agent::{DeviceFacts, TokenWanted};

use crate::error::CliResult;
use crate::output::Output;

/// `ward agent ...`.
#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Enrol this device: makes the device key (0600) and stores the agent id.
    Enroll(EnrollArgs),
    /// Get a token for scopes, signing a DPoP proof with the device key.
    Token(TokenArgs),
}

/// `ward agent enroll`.
#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// Server URL.
    #[arg(long, env = "WARD_SERVER")]
    pub server: String,
    /// The enrolment token from an admin.
    #[arg(long, env = "WARD_ENROLL_TOKEN", hide_env_values = true)]
    pub enroll_token: String,
    /// Directory for the device key and agent state.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Reported OS (defaults to this machine's).
    #[arg(long)]
    pub os: Option<String>,
    /// Reported agent version (defaults to this binary's).
    #[arg(long)]
    pub agent_version: Option<String>,
    /// Reported host id (defaults to /etc/machine-id or the hostname).
    #[arg(long)]
    pub host_id: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ward agent token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Directory written by `ward agent enroll`.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Scope wanted (repeatable).
    #[arg(long = "scope", required = true)]
    pub scopes: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Redeem this approved approval request.
    #[arg(long)]
    pub approval_id: Option<String>,
    /// Bind the token to one action (JSON, e.g. `{"tool":"Bash","arguments":{...}}`).
    #[arg(long)]
    pub action: Option<String>,
    /// Print JSON instead of the bare token.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ward agent ...`.
pub async fn run(command: AgentCommand) -> CliResult {
    match command {
        AgentCommand::Enroll(args) => enroll(args).await,
        AgentCommand::Token(args) => token(args).await,
    }
}

async fn enroll(args: EnrollArgs) -> CliResult {
    let facts = DeviceFacts {
        os: args.os.unwrap_or_else(DeviceFacts::local_os),
        agent_version: args
            .agent_version
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
        host_id: args.host_id.unwrap_or_else(DeviceFacts::local_host_id),
    };
    let agent = ward_agent::enrol(&args.server, args.enroll_token, &args.state_dir, facts).await?;
    Output::new(args.json).show(&agent, |agent| {
        format!(
            "enrolled agent {} ({}), state {}",
            agent.id, agent.profile, agent.state
        )
    })
}

async fn token(args: TokenArgs) -> CliResult {
    let action = args
        .action
        .map(|text| {
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| format!("--action is not JSON: {e}"))
        })
        .transpose()?;
    let wanted = TokenWanted {
        scopes: args.scopes,
        duration: args.duration,
        approval_id: args.approval_id,
        action,
    };
    let granted = ward_agent::acquire_token(&args.state_dir, wanted).await?;
    Output::new(args.json).show(&granted, |granted| granted.token.clone())
}
