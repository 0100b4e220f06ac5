//! The command tree: every top-level command, its help (from the doc
//! comments, so the help always matches the commands), and the module
//! that runs it. A new command is a new module here and one variant.

mod admin;
mod agent;
mod alerts;
mod audit;
mod baselines;
mod events;
mod gateway;
pub mod hook;
mod login;
mod matrix;
mod mcp;
mod policy;
mod serve;

use clap::{Parser, Subcommand};

use crate::error::CliResult;
use crate::output;

/// Ward: a control plane for putting desktop AI agents into production safely.
#[derive(Parser, Debug)]
#[command(name = "ward", version)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the control plane.
    Serve(serve::ServeArgs),
    /// Administer a running server.
    Admin(admin::AdminArgs),
    /// The desktop side: enrol a device, get tokens.
    Agent {
        /// What to do.
        #[command(subcommand)]
        command: agent::AgentCommand,
    },
    /// Read and verify the audit log.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Alerts: list, show, failed notifications, silences; check and
    /// export alert rule files.
    Alerts {
        /// What to do.
        #[command(subcommand)]
        command: alerts::AlertsCommand,
    },
    /// Behaviour baselines: an agent's counts against its usual ones.
    Baselines {
        /// What to do.
        #[command(subcommand)]
        command: baselines::BaselinesCommand,
    },
    /// Read the events devices shipped (the agents' own logs).
    Events {
        /// What to do.
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// Sign in with the server's OpenID provider (device flow); later
    /// commands use the token when no --token / WARD_TOKEN is given.
    Login(login::LoginArgs),
    /// Policy-as-code: Rego bundles evaluated by the broker.
    Policy {
        /// What to do.
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Run the enforcing reverse proxy in front of a service, following
    /// the control plane's push stream; `check` validates a config file.
    Gateway(gateway::GatewayArgs),
    /// Agents' hooks: answer the hook event on stdin from the local daemon,
    /// failing closed (exit 2) on any error.
    Hook {
        /// Which agent's protocol.
        #[command(subcommand)]
        command: hook::HookCommand,
    },
    /// MCP servers behind Ward: `proxy` filters their tools and checks every call.
    Mcp {
        /// What to do.
        #[command(subcommand)]
        command: mcp::McpCommand,
    },
    /// Print the HTTP API's OpenAPI document.
    Openapi,
    /// Work with capability matrix files.
    Matrix {
        /// What to do.
        #[command(subcommand)]
        command: matrix::MatrixCommand,
    },
}

/// Runs one command.
pub async fn run(command: Command) -> CliResult {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Admin(args) => admin::run(args).await,
        Command::Agent { command } => agent::run(command).await,
        Command::Audit { command } => audit::run(command).await,
        Command::Events { command } => events::run(command).await,
        Command::Alerts { command } => alerts::run(command).await,
        Command::Baselines { command } => baselines::run(command).await,
        Command::Login(args) => login::run(args).await,
        Command::Policy { command } => policy::run(command).await,
        Command::Gateway(args) => gateway::run(args).await,
        Command::Openapi => {
            output::line(ward_control::openapi_json());
            Ok(())
        }
        Command::Matrix { command } => matrix::run(command),
        Command::Hook { command } => hook::run(command).await,
        Command::Mcp { command } => mcp::run(command).await,
    }
}
