//! Runs a parsed command line: each command is one API call (or a local
//! check) and prints either a short text line or the JSON answer.

use serde::Serialize;
use ward_api::{CreateApiToken, CreateEnrollToken, RevokeTokens};
use ward_client::Client;

use crate::agent;
use crate::cli::*;

/// Prints a value as pretty JSON.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

fn client(conn: &Conn) -> Result<Client, String> {
    let token = conn
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| crate::login::stored_token(&conn.server))
        .ok_or("no admin token: pass --token, set WARD_TOKEN, or run `ward login`")?;
    Client::new(&conn.server, Some(token)).map_err(|e| e.to_string())
}

/// Parses `15m`, `2h`, `1d`, `30s` or plain seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
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

/// Runs one command.
pub async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => crate::serve::run(args).await,
        Command::Admin { conn, command } => admin(&conn, command).await,
        Command::Agent { command } => match command {
            AgentCommand::Enroll {
                server,
                enroll_token,
                state_dir,
                os,
                agent_version,
                host_id,
                json,
            } => {
                agent::enroll(agent::EnrollArgs {
                    server,
                    enroll_token,
                    state_dir,
                    os,
                    agent_version,
                    host_id,
                    json,
                })
                .await
            }
            AgentCommand::Token {
                state_dir,
                scopes,
                duration,
                approval_id,
                action,
                json,
            } => agent::token(&state_dir, scopes, duration, approval_id, action, json).await,
        },
        Command::Audit { command } => audit(command).await,
        Command::Login {
            server,
            resource,
            scope,
            json,
        } => {
            crate::login::login(crate::login::LoginArgs {
                server,
                resource,
                scope,
                json,
            })
            .await
        }
        Command::Policy { command } => policy(command).await,
        Command::Gateway(args) => crate::gateway::run(args).await,
        Command::Openapi => {
            println!("{}", ward_control::openapi_json());
            Ok(())
        }
        Command::Matrix {
            command: MatrixCommand::Check { file, json },
        } => {
            let loaded = crate::serve::load_matrix(&file)?;
            let features = loaded.matrix.features().count();
            let profiles = loaded.matrix.profiles().count();
            if json {
                print_json(&serde_json::json!({
                    "valid": true, "features": features, "profiles": profiles, "digest": loaded.digest,
                }))
            } else {
                println!(
                    "{}: ok ({features} features, {profiles} profiles)",
                    file.display()
                );
                Ok(())
            }
        }
    }
}

async fn admin(conn: &Conn, command: AdminCommand) -> Result<(), String> {
    let api = client(conn)?;
    let json = conn.json;
    macro_rules! out {
        ($value:expr, $text:expr) => {{
            let value = $value.map_err(|e| e.to_string())?;
            if json {
                print_json(&value)
            } else {
                let text: String = $text(&value);
                println!("{text}");
                Ok(())
            }
        }};
    }
    match command {
        AdminCommand::Tenants { command } => match command {
            TenantCommand::Create { name } => out!(
                api.create_tenant(&name).await,
                |t: &ward_api::Tenant| format!("created tenant {} ({})", t.name, t.id)
            ),
            TenantCommand::List => out!(api.list_tenants().await, |l: &ward_api::TenantList| l
                .tenants
                .iter()
                .map(|t| format!("{}\t{}\t{}", t.id, t.name, t.created_at))
                .collect::<Vec<_>>()
                .join("\n")),
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
            out!(
                api.create_api_token(&body).await,
                |t: &ward_api::ApiTokenCreated| t.token.clone()
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
            out!(
                api.create_enroll_token(&body).await,
                |t: &ward_api::EnrollTokenCreated| t.token.clone()
            )
        }
        AdminCommand::Agents { command } => agents(&api, json, command).await,
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
                out!(
                    api.revoke_tokens(&body).await,
                    |r: &ward_api::Revocation| format!(
                        "revoked tokens by {} `{}` issued up to {} ({})",
                        r.kind, r.value, r.revoked_at, r.id
                    )
                )
            }
            TokensCommand::Introspect { access_token } => {
                out!(
                    api.introspect(&access_token).await,
                    |r: &ward_api::IntrospectResponse| if r.active {
                        format!(
                            "active: {} scopes [{}] expires {}",
                            r.sub.clone().unwrap_or_default(),
                            r.scope.clone().unwrap_or_default(),
                            r.exp.unwrap_or_default()
                        )
                    } else {
                        "inactive".to_owned()
                    }
                )
            }
        },
        AdminCommand::Killswitch { command } => {
            let (scope, target, mode, reason) = match command {
                KillswitchCommand::Status => {
                    return out!(api.killswitches().await, |l: &ward_api::KillSwitchList| l
                        .switches
                        .iter()
                        .map(|k| format!(
                            "{}\t{}\t{}\t{}\t{}",
                            k.scope, k.target, k.mode, k.set_by, k.reason
                        ))
                        .collect::<Vec<_>>()
                        .join("\n"));
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
            out!(
                api.set_killswitch(&body).await,
                |k: &ward_api::KillSwitch| format!(
                    "kill switch {} {} is now {}",
                    k.scope, k.target, k.mode
                )
            )
        }
        AdminCommand::Flags { command } => match command {
            FlagsCommand::List => out!(api.flags().await, |l: &ward_api::FlagList| l
                .flags
                .iter()
                .map(|f| format!(
                    "{}\t{}\t{}\t{}",
                    f.key,
                    f.tenant.clone().unwrap_or_else(|| "everyone".into()),
                    if f.enabled { "on" } else { "off" },
                    f.reason
                ))
                .collect::<Vec<_>>()
                .join("\n")),
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
                out!(
                    api.set_flag(&key, &body).await,
                    |f: &ward_api::Flag| format!(
                        "flag {} is {} for {}",
                        f.key,
                        if f.enabled { "on" } else { "off" },
                        f.tenant.clone().unwrap_or_else(|| "everyone".into())
                    )
                )
            }
        },
        AdminCommand::Keys {
            command: KeysCommand::Rotate,
        } => out!(api.rotate_key().await, |k: &ward_api::KeyRotated| format!(
            "signing with {}; {} stays published until {}",
            k.kid, k.previous_kid, k.previous_published_until
        )),
    }
}

fn agent_line(a: &ward_api::Agent) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        a.id, a.state, a.owner, a.profile, a.device.host_id
    )
}

async fn agents(api: &Client, json: bool, command: AgentsCommand) -> Result<(), String> {
    let (id, action, reason) = match command {
        AgentsCommand::List { state } => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = api
                    .list_agents(state.as_deref(), cursor.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                all.extend(page.agents);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            if json {
                return print_json(&all);
            }
            for agent in &all {
                println!("{}", agent_line(agent));
            }
            return Ok(());
        }
        AgentsCommand::Show { id } => {
            let agent = api.agent(&id).await.map_err(|e| e.to_string())?;
            return if json {
                print_json(&agent)
            } else {
                println!("{}", agent_line(&agent));
                Ok(())
            };
        }
        AgentsCommand::Activate(a) => (a.id, "activate", a.reason),
        AgentsCommand::Quarantine(a) => (a.id, "quarantine", a.reason),
        AgentsCommand::Revoke(a) => (a.id, "revoke", a.reason),
        AgentsCommand::Uninstall(a) => (a.id, "uninstall", a.reason),
    };
    let agent = api
        .agent_action(&id, action, &reason)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        print_json(&agent)
    } else {
        println!("agent {} is now {}", agent.id, agent.state);
        Ok(())
    }
}

async fn audit(command: AuditCommand) -> Result<(), String> {
    match command {
        AuditCommand::Verify { data_dir, json } => {
            let report = ward_store::verify_audit(&data_dir).map_err(|e| e.to_string())?;
            match &report.first_break {
                None => {
                    if json {
                        print_json(
                            &serde_json::json!({"intact": true, "entries": report.verified, "head": report.head}),
                        )?;
                    } else {
                        println!(
                            "audit chain intact: {} entries, head {}",
                            report.verified, report.head
                        );
                    }
                    Ok(())
                }
                Some(broken) => {
                    if json {
                        print_json(&serde_json::json!({
                            "intact": false, "first_bad_seq": broken.seq(), "problem": broken.to_string(),
                            "verified": report.verified,
                        }))?;
                    }
                    Err(format!(
                        "audit chain broken at entry {}: {broken}",
                        broken.seq()
                    ))
                }
            }
        }
        AuditCommand::List {
            conn,
            since,
            until,
            agent,
            actor,
            action,
            correlation_id,
            limit,
        } => {
            let api = client(&conn)?;
            let mut entries = Vec::new();
            let mut cursor: Option<String> = None;
            while entries.len() < limit {
                let mut query: Vec<(&str, &str)> = Vec::new();
                for (key, value) in [
                    ("since", &since),
                    ("until", &until),
                    ("agent", &agent),
                    ("actor", &actor),
                    ("action", &action),
                    ("correlation_id", &correlation_id),
                    ("cursor", &cursor),
                ] {
                    if let Some(value) = value {
                        query.push((key, value));
                    }
                }
                let page = api.audit(&query).await.map_err(|e| e.to_string())?;
                entries.extend(page.entries);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            entries.truncate(limit);
            if conn.json {
                return print_json(&entries);
            }
            for e in &entries {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    e.seq,
                    e.ts,
                    e.actor,
                    e.action,
                    e.target,
                    e.result,
                    e.correlation_id,
                    e.reason,
                    // The decision log: why it was allowed (matrix entries,
                    // policy rules and bundle, approval, consent).
                    e.details
                );
            }
            Ok(())
        }
    }
}

/// Reads the `.rego` files under `dir` (recursively), paths relative to it.
fn read_bundle(dir: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    fn walk(
        root: &std::path::Path,
        dir: &std::path::Path,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else if path.extension().is_some_and(|e| e == "rego") {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
                let relative = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.push((relative, text));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    if files.is_empty() {
        return Err(format!("no `.rego` files in `{}`", dir.display()));
    }
    files.sort();
    Ok(files)
}

async fn policy(command: PolicyCommand) -> Result<(), String> {
    match command {
        PolicyCommand::Test { dir, json } => {
            let bundle =
                ward_policy::Bundle::from_files(read_bundle(&dir)?).map_err(|e| e.to_string())?;
            let report = bundle.run_tests().map_err(|e| e.to_string())?;
            bundle.compile().map_err(|e| e.to_string())?;
            if json {
                print_json(&serde_json::json!({
                    "hash": bundle.hash(), "passed": report.passed,
                    "failed": report.failed.iter().map(|(n, r)| serde_json::json!({"test": n, "reason": r})).collect::<Vec<_>>(),
                }))?;
            } else {
                for name in &report.passed {
                    println!("PASS {name}");
                }
                for (name, reason) in &report.failed {
                    println!("FAIL {name}: {reason}");
                }
                println!(
                    "{} passed, {} failed; bundle {}",
                    report.passed.len(),
                    report.failed.len(),
                    bundle.hash()
                );
            }
            if report.failed.is_empty() {
                Ok(())
            } else {
                Err(format!("{} policy test(s) failed", report.failed.len()))
            }
        }
        PolicyCommand::Push { conn, dir } => {
            let api = client(&conn)?;
            let files = read_bundle(&dir)?
                .into_iter()
                .map(|(path, text)| ward_api::PolicyFile { path, text })
                .collect();
            let pushed = api
                .push_policy(&ward_api::PushPolicy { files })
                .await
                .map_err(|e| e.to_string())?;
            if conn.json {
                print_json(&pushed)
            } else {
                println!(
                    "policy bundle {} active ({} files, {} tests passed)",
                    pushed.hash,
                    pushed.files.len(),
                    pushed.tests_passed.len()
                );
                Ok(())
            }
        }
        PolicyCommand::Show { conn } => {
            let api = client(&conn)?;
            let active = api.policy().await.map_err(|e| e.to_string())?;
            if conn.json {
                print_json(&active)
            } else {
                println!(
                    "{}\t{}\t{}\t{}",
                    active.hash,
                    active.pushed_at,
                    active.pushed_by,
                    active.files.join(",")
                );
                Ok(())
            }
        }
    }
}
