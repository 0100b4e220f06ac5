//! `ward admin ...`: tenants, API and enrolment tokens, agents and their
//! lifecycle, access tokens, kill switches, flags and signing keys, each
//! one API call.

use clap::{Args, Subcommand};
use ward_api::{CreateApiToken, CreateEnrollToken, RevokeTokens};
use ward_client::Client;

use crate::connection::Conn;
use crate::error::CliResult;
use crate::output::Output;

/// `ward admin`: connection flags and what to administer.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Connection flags.
    #[command(flatten)]
    pub conn: Conn,
    /// What to administer.
    #[command(subcommand)]
    pub command: AdminCommand,
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
    /// Staleness bounds of the tenant's desktop runtimes: heartbeat interval
    /// and when devices tighten on their own without contact.
    AgentPolicy {
        /// What to do.
        #[command(subcommand)]
        command: AgentPolicyCommand,
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
    /// The engaged kill switches and how far each reached: agents that
    /// acknowledged it (time to apply) and, for the rest, when each is in
    /// safe mode on its own.
    Status,
}

/// `ward admin agent-policy ...`.
#[derive(Subcommand, Debug)]
pub enum AgentPolicyCommand {
    /// Show the bounds in force.
    Show,
    /// Set the bounds (tenant admin). Rules: 1 <= interval < high-risk
    /// <= read-only <= offline <= the server's default token lifetime.
    Set {
        /// Seconds between heartbeats.
        #[arg(long)]
        heartbeat_interval: u64,
        /// High-risk features stop after this many seconds without contact.
        #[arg(long)]
        high_risk_after: u64,
        /// Everything becomes read-only after this many seconds.
        #[arg(long)]
        read_only_after: u64,
        /// Everything is denied after this many seconds.
        #[arg(long)]
        offline_after: u64,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
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

/// Runs `ward admin ...`.
pub async fn run(args: AdminArgs) -> CliResult {
    let api = args.conn.client()?;
    let out = args.conn.output();
    match args.command {
        AdminCommand::Tenants { command } => match command {
            TenantCommand::Create { name } => out
                .show(&api.create_tenant(&name).await?, |t: &ward_api::Tenant| {
                    format!("created tenant {} ({})", t.name, t.id)
                }),
            TenantCommand::List => {
                out.show(&api.list_tenants().await?, |l: &ward_api::TenantList| {
                    l.tenants
                        .iter()
                        .map(|t| format!("{}\t{}\t{}", t.id, t.name, t.created_at))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
            }
        },
        AdminCommand::ApiTokens {
            command:
                ApiTokenCommand::Create {
                    tenant,
                    role,
                    description,
                },
        } => {
            let body = CreateApiToken {
                tenant,
                role,
                description,
            };
            out.show(
                &api.create_api_token(&body).await?,
                |t: &ward_api::ApiTokenCreated| t.token.clone(),
            )
        }
        AdminCommand::EnrollToken {
            command:
                EnrollTokenCommand::Create {
                    owner,
                    profile,
                    ttl,
                },
        } => {
            let body = CreateEnrollToken {
                owner,
                profile,
                ttl_seconds: Some(parse_duration(&ttl)?),
            };
            out.show(
                &api.create_enroll_token(&body).await?,
                |t: &ward_api::EnrollTokenCreated| t.token.clone(),
            )
        }
        AdminCommand::Agents { command } => agents(&api, out, command).await,
        AdminCommand::Tokens { command } => match command {
            TokensCommand::Revoke {
                jti,
                agent,
                scope_prefix,
                reason,
            } => {
                let body = RevokeTokens {
                    jti,
                    agent_id: agent,
                    scope_prefix,
                    reason,
                };
                out.show(
                    &api.revoke_tokens(&body).await?,
                    |r: &ward_api::Revocation| {
                        format!(
                            "revoked tokens by {} `{}` issued up to {} ({})",
                            r.kind, r.value, r.revoked_at, r.id
                        )
                    },
                )
            }
            TokensCommand::Introspect { access_token } => out.show(
                &api.introspect(&access_token).await?,
                |r: &ward_api::IntrospectResponse| {
                    if r.active {
                        format!(
                            "active: {} scopes [{}] expires {}",
                            r.sub.clone().unwrap_or_default(),
                            r.scope.clone().unwrap_or_default(),
                            r.exp.unwrap_or_default()
                        )
                    } else {
                        "inactive".to_owned()
                    }
                },
            ),
        },
        AdminCommand::Killswitch { command } => {
            let (scope, target, mode, reason) = match command {
                KillswitchCommand::Status => {
                    return out.show(&api.killswitch_status().await?, reach_text);
                }
                KillswitchCommand::Set {
                    scope,
                    target,
                    mode,
                    reason,
                } => (scope, target, mode, reason),
                KillswitchCommand::Clear {
                    scope,
                    target,
                    reason,
                } => (scope, target, "normal".to_owned(), reason),
            };
            let body = ward_api::SetKillSwitch {
                scope,
                target,
                mode,
                reason,
            };
            out.show(
                &api.set_killswitch(&body).await?,
                |k: &ward_api::KillSwitch| {
                    format!("kill switch {} {} is now {}", k.scope, k.target, k.mode)
                },
            )
        }
        AdminCommand::AgentPolicy { command } => {
            let bounds = match command {
                AgentPolicyCommand::Show => api.agent_policy().await?,
                AgentPolicyCommand::Set {
                    heartbeat_interval,
                    high_risk_after,
                    read_only_after,
                    offline_after,
                    reason,
                } => {
                    let body = ward_api::SetAgentPolicy {
                        heartbeat_interval_secs: heartbeat_interval,
                        high_risk_after_secs: high_risk_after,
                        read_only_after_secs: read_only_after,
                        offline_after_secs: offline_after,
                        reason,
                    };
                    api.set_agent_policy(&body).await?
                }
            };
            out.show(&bounds, |b: &ward_api::StalenessBounds| {
                format!(
                    "heartbeat every {} s; high-risk features stop after {} s, read-only after {} s, offline after {} s without contact",
                    b.heartbeat_interval_secs,
                    b.high_risk_after_secs,
                    b.read_only_after_secs,
                    b.offline_after_secs
                )
            })
        }
        AdminCommand::Flags { command } => match command {
            FlagsCommand::List => out.show(&api.flags().await?, |l: &ward_api::FlagList| {
                l.flags
                    .iter()
                    .map(|f| {
                        format!(
                            "{}\t{}\t{}\t{}",
                            f.key,
                            f.tenant.clone().unwrap_or_else(|| "everyone".into()),
                            if f.enabled { "on" } else { "off" },
                            f.reason
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
            FlagsCommand::Set {
                key,
                value,
                scope,
                reason,
            } => {
                let body = ward_api::SetFlag {
                    enabled: value == "on",
                    scope,
                    reason,
                };
                out.show(&api.set_flag(&key, &body).await?, |f: &ward_api::Flag| {
                    format!(
                        "flag {} is {} for {}",
                        f.key,
                        if f.enabled { "on" } else { "off" },
                        f.tenant.clone().unwrap_or_else(|| "everyone".into())
                    )
                })
            }
        },
        AdminCommand::Keys {
            command: KeysCommand::Rotate,
        } => out.show(&api.rotate_key().await?, |k: &ward_api::KeyRotated| {
            format!(
                "signing with {}; {} stays published until {}",
                k.kid, k.previous_kid, k.previous_published_until
            )
        }),
    }
}

fn agent_line(a: &ward_api::Agent) -> String {
    let heartbeat = a
        .heartbeat_age_secs
        .map_or_else(|| "never".to_owned(), |age| format!("{age}s ago"));
    format!(
        "{}\t{}\t{}\t{}\t{}\theartbeat {heartbeat}{}",
        a.id,
        a.state,
        a.owner,
        a.profile,
        a.device.host_id,
        if a.stale { "\tSTALE" } else { "" }
    )
}

/// A kill switch status as a readable table, one block per switch.
fn reach_text(status: &ward_api::KillSwitchStatus) -> String {
    if status.switches.is_empty() {
        return "no kill switch is engaged".to_owned();
    }
    let mut lines = Vec::new();
    for reach in &status.switches {
        let k = &reach.switch;
        lines.push(format!(
            "{} {} {}: {} (set {} by {}: {})",
            k.scope, k.target, k.mode, reach.directive, k.set_at, k.set_by, k.reason
        ));
        lines.push(format!(
            "  {} acknowledged, {} pending",
            reach.acknowledged.len(),
            reach.pending.len()
        ));
        lines.push(format!(
            "  {:<32} {:<12} {:<26} {}",
            "AGENT", "STATUS", "APPLIED / LAST CONTACT", "TIME TO APPLY / SAFE BY"
        ));
        for ack in &reach.acknowledged {
            lines.push(format!(
                "  {:<32} {:<12} {:<26} {} ms",
                ack.agent_id, "applied", ack.applied_at, ack.time_to_apply_ms
            ));
        }
        for pending in &reach.pending {
            lines.push(format!(
                "  {:<32} {:<12} {:<26} {}",
                pending.agent_id,
                "pending",
                pending.last_contact.as_deref().unwrap_or("never"),
                pending
                    .safe_by
                    .as_deref()
                    .unwrap_or("no contact, so no token")
            ));
        }
    }
    lines.join("\n")
}

async fn agents(api: &Client, out: Output, command: AgentsCommand) -> CliResult {
    let (id, action, reason) = match command {
        AgentsCommand::List { state } => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = api.list_agents(state.as_deref(), cursor.as_deref()).await?;
                all.extend(page.agents);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            return out.list(&all, agent_line);
        }
        AgentsCommand::Show { id } => {
            return out.show(&api.agent(&id).await?, agent_line);
        }
        AgentsCommand::Activate(a) => (a.id, "activate", a.reason),
        AgentsCommand::Quarantine(a) => (a.id, "quarantine", a.reason),
        AgentsCommand::Revoke(a) => (a.id, "revoke", a.reason),
        AgentsCommand::Uninstall(a) => (a.id, "uninstall", a.reason),
    };
    out.show(&api.agent_action(&id, action, &reason).await?, |agent| {
        format!("agent {} is now {}", agent.id, agent.state)
    })
}

/// Parses `15m`, `2h`, `1d`, `30s` or plain seconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((index, c)) if c.is_ascii_alphabetic() => (&text[..index], c),
        _ => (text, 's'),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; use e.g. `900`, `15m`, `2h`"))?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return Err(format!("`{text}` has an unknown unit; use s, m, h or d")),
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too long"))
}
