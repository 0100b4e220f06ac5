//! The command line, as data: every command, flag and its help text.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

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
    Serve(ServeArgs),
    /// Administer a running server.
    Admin {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// What to administer.
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The desktop side: enrol a device, get tokens.
    Agent {
        /// What to do.
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Read and verify the audit log.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Sign in with the server's OpenID provider (device flow); later
    /// commands use the token when no --token / WARD_TOKEN is given.
    Login {
        /// Server URL.
        #[arg(long, env = "WARD_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Resource indicator to ask the provider for (RFC 8707), if it needs one.
        #[arg(long)]
        resource: Option<String>,
        /// Scopes to ask for.
        #[arg(long, default_value = "openid email groups offline_access")]
        scope: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Policy-as-code: Rego bundles evaluated by the broker.
    Policy {
        /// What to do.
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Run the enforcing reverse proxy in front of a service, following
    /// the control plane's push stream; `check` validates a config file.
    Gateway(GatewayArgs),
    /// Print the HTTP API's OpenAPI document.
    Openapi,
    /// Work with capability matrix files.
    Matrix {
        /// What to do.
        #[command(subcommand)]
        command: MatrixCommand,
    },
}

/// `ward serve`. Every setting can also come from `--config FILE`; a flag
/// given on the command line wins over the file.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// YAML configuration file (same names as the flags, OpenID settings
    /// under `oidc:`; relative paths are relative to the file).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory for the database and keys, created 0700 [default: ./ward-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Capability matrix (YAML). Without it every scope is denied.
    #[arg(long)]
    pub matrix: Option<PathBuf>,
    /// URL clients use to reach this server (token issuer and DPoP `htu`
    /// base) [default: http://<listen address>].
    #[arg(long)]
    pub public_url: Option<String>,
    /// Longest token lifetime granted, seconds [default: 3600].
    #[arg(long)]
    pub max_token_secs: Option<u64>,
    /// Largest accepted request body, bytes [default: 65536].
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// How long an approval request can be decided and redeemed, seconds [default: 3600].
    #[arg(long)]
    pub approval_ttl_secs: Option<u64>,
    /// OpenID provider people sign in with (issuer URL, as in `iss`).
    #[arg(long, env = "WARD_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Audience the provider's tokens must carry.
    #[arg(long, env = "WARD_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// Token claim holding the person's groups [default: groups].
    #[arg(long)]
    pub oidc_groups_claim: Option<String>,
    /// Prefix of groups granting Ward roles: `<prefix>:<tenant>:<role>` [default: ward].
    #[arg(long)]
    pub oidc_group_prefix: Option<String>,
    /// An `acr` value that counts as multi-factor (besides `amr` holding `mfa`).
    #[arg(long)]
    pub oidc_mfa_acr: Option<String>,
    /// Public client id `ward login` uses at the provider [default: ward-cli].
    #[arg(long)]
    pub oidc_client_id: Option<String>,
    /// Shortest time between two fetches of the provider's keys when tokens
    /// name an unknown key id, seconds [default: 10].
    #[arg(long)]
    pub oidc_jwks_min_refresh_secs: Option<u64>,
    /// How long the provider's keys are cached before they are fetched
    /// again (a retired key stops verifying after this), seconds [default: 300].
    #[arg(long)]
    pub oidc_jwks_max_age_secs: Option<u64>,
    /// Accepted `typ` of access tokens (repeatable) [default: at+jwt]; add
    /// `JWT` for providers whose access tokens do not follow RFC 9068.
    #[arg(long)]
    pub oidc_accept_typ: Vec<String>,
}

/// Where the server is and who we are.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Server URL.
    #[arg(
        long,
        env = "WARD_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Admin API token.
    #[arg(long, env = "WARD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `ward admin ...`.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Tenants (bootstrap token).
    Tenants {
        /// What to do.
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Per-tenant admin API tokens (bootstrap token).
    ApiTokens {
        /// What to do.
        #[command(subcommand)]
        command: ApiTokenCommand,
    },
    /// Single-use enrolment tokens.
    EnrollToken {
        /// What to do.
        #[command(subcommand)]
        command: EnrollTokenCommand,
    },
    /// Agent instances and their lifecycle.
    Agents {
        /// What to do.
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// Access tokens.
    Tokens {
        /// What to do.
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Kill switches: stop agents, a release, a tenant or everything in seconds.
    Killswitch {
        /// What to do.
        #[command(subcommand)]
        command: KillswitchCommand,
    },
    /// Feature flags: turn agent access to a gateway route on or off.
    Flags {
        /// What to do.
        #[command(subcommand)]
        command: FlagsCommand,
    },
    /// Token signing keys (bootstrap token).
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// `ward admin tenants ...`.
#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant name.
        name: String,
    },
    /// List tenants.
    List,
}

/// `ward admin api-tokens ...`.
#[derive(Subcommand, Debug)]
pub enum ApiTokenCommand {
    /// Create an API token for a tenant; prints the secret once.
    Create {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        /// Role.
        #[arg(long, default_value = "admin")]
        role: String,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
}

/// `ward admin enroll-token ...`.
#[derive(Subcommand, Debug)]
pub enum EnrollTokenCommand {
    /// Create a single-use enrolment token; prints the secret once.
    Create {
        /// Owner's email.
        #[arg(long)]
        owner: String,
        /// Capability profile.
        #[arg(long)]
        profile: String,
        /// Lifetime, e.g. `15m`, `2h`, `900` (seconds).
        #[arg(long, default_value = "15m")]
        ttl: String,
    },
}

/// `ward admin agents ...`.
#[derive(Subcommand, Debug)]
pub enum AgentsCommand {
    /// List agents (all pages).
    List {
        /// Only agents in this state.
        #[arg(long)]
        state: Option<String>,
    },
    /// Show one agent.
    Show {
        /// Agent id.
        id: String,
    },
    /// Activate a pending or quarantined agent.
    Activate(ActionArgs),
    /// Quarantine an agent (revokes its tokens).
    Quarantine(ActionArgs),
    /// Revoke an agent for good (revokes its tokens).
    Revoke(ActionArgs),
    /// Ask the device to uninstall the agent (revokes its tokens).
    Uninstall(ActionArgs),
}

/// An agent id and the reason for acting.
#[derive(Args, Debug)]
pub struct ActionArgs {
    /// Agent id.
    pub id: String,
    /// Why (recorded in the audit log).
    #[arg(long)]
    pub reason: String,
}

/// `ward admin tokens ...`.
#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Revoke tokens: exactly one of --jti, --agent, --scope-prefix.
    Revoke {
        /// One token id.
        #[arg(long, group = "what")]
        jti: Option<String>,
        /// Every token of this agent issued so far.
        #[arg(long, group = "what")]
        agent: Option<String>,
        /// Every token issued so far with a scope starting with this.
        #[arg(long, group = "what")]
        scope_prefix: Option<String>,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Introspect a token.
    Introspect {
        /// The access token to inspect.
        #[arg(value_name = "TOKEN")]
        access_token: String,
    },
}

/// `ward admin keys ...`.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Start signing with a new key; the old one stays published until its tokens expire.
    Rotate,
}

/// `ward agent ...`.
#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Enrol this device: makes the device key (0600) and stores the agent id.
    Enroll {
        /// Server URL.
        #[arg(long, env = "WARD_SERVER")]
        server: String,
        /// The enrolment token from an admin.
        #[arg(long, env = "WARD_ENROLL_TOKEN", hide_env_values = true)]
        enroll_token: String,
        /// Directory for the device key and agent state.
        #[arg(long)]
        state_dir: PathBuf,
        /// Reported OS (defaults to this machine's).
        #[arg(long)]
        os: Option<String>,
        /// Reported agent version (defaults to this binary's).
        #[arg(long)]
        agent_version: Option<String>,
        /// Reported host id (defaults to /etc/machine-id or the hostname).
        #[arg(long)]
        host_id: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Get a token for scopes, signing a DPoP proof with the device key.
    Token {
        /// Directory written by `ward agent enroll`.
        #[arg(long)]
        state_dir: PathBuf,
        /// Scope wanted (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long)]
        duration: Option<u64>,
        /// Redeem this approved approval request.
        #[arg(long)]
        approval_id: Option<String>,
        /// Bind the token to one action (JSON, e.g. `{"tool":"Bash","arguments":{...}}`).
        #[arg(long)]
        action: Option<String>,
        /// Print JSON instead of the bare token.
        #[arg(long)]
        json: bool,
    },
}

/// `ward audit ...`.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// List audit entries from a server.
    List {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// Entries at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Entries before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Entries about this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Entries by this actor.
        #[arg(long)]
        actor: Option<String>,
        /// Entries with this action.
        #[arg(long)]
        action: Option<String>,
        /// Entries with this correlation id.
        #[arg(long)]
        correlation_id: Option<String>,
        /// Most entries to print.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Verify the hash chain in a data directory; exits non-zero at the first break.
    Verify {
        /// The server's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `ward gateway --config FILE` or `ward gateway check FILE`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GatewayArgs {
    /// What to do instead of running.
    #[command(subcommand)]
    pub command: Option<GatewayCommand>,
    /// YAML configuration file (see `examples/gateway.yaml`); schema paths
    /// are relative to it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `ward gateway ...`.
#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// Validate a gateway configuration file: its shape (errors name line
    /// and column), the scope templates and the JSON Schemas.
    Check {
        /// The YAML file.
        file: PathBuf,
    },
}

/// `ward matrix ...`.
#[derive(Subcommand, Debug)]
pub enum MatrixCommand {
    /// Validate a capability matrix file; errors name line and column.
    Check {
        /// The YAML file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `ward policy ...`.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Run a bundle's `test_` rules locally (no server).
    Test {
        /// Directory of `.rego` files.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Push a bundle to the server; it becomes active only if it compiles
    /// and its tests pass.
    Push {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// Directory of `.rego` files.
        dir: PathBuf,
    },
    /// Show the tenant's active bundle.
    Show {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
    },
}

/// `ward admin killswitch ...`.
#[derive(Subcommand, Debug)]
pub enum KillswitchCommand {
    /// Engage a kill switch.
    Set {
        /// `global` (bootstrap token), `tenant`, `agent` or `agent_version`.
        #[arg(long)]
        scope: String,
        /// Agent id or agent version, for those scopes.
        #[arg(long)]
        target: Option<String>,
        /// `read-only` or `offline`.
        #[arg(long)]
        mode: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Release a kill switch.
    Clear {
        /// The switch's scope.
        #[arg(long)]
        scope: String,
        /// The switch's target.
        #[arg(long)]
        target: Option<String>,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// List the engaged kill switches.
    Status,
}

/// `ward admin flags ...`.
#[derive(Subcommand, Debug)]
pub enum FlagsCommand {
    /// Turn a flag on or off.
    Set {
        /// Flag key.
        key: String,
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        value: String,
        /// `tenant` or `global` (bootstrap token).
        #[arg(long, default_value = "tenant")]
        scope: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// List flag values.
    List,
}
