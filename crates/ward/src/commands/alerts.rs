//! `ward alerts ...`: the alerts the server raised, the notifications it
//! could not deliver (and retrying them), silences, and the rule file:
//! `check` validates one, `export --format prometheus` turns one into
//! Prometheus alerting rules over Ward's metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use ward_api::{AlertView, CreateSilence};
use ward_telemetry::rules::{RuleSet, parse_duration};

use crate::connection::Conn;
use crate::error::CliResult;
use crate::output;

/// `ward alerts ...`.
#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// List alerts, newest first (firing ones unless --all).
    List {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// Resolved alerts too.
        #[arg(long)]
        all: bool,
        /// Most alerts to print.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show one alert: what deviated, by how much, against what, and the
    /// correlation ids to look up with `ward events list`.
    Show {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// The alert's id.
        id: String,
    },
    /// The dead-letter list: notifications every attempt failed for.
    Failed {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
    },
    /// Queue a failed notification again.
    Retry {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// The notification's id (from `ward alerts failed`).
        id: String,
    },
    /// Silence alerts matching every `--match LABEL=VALUE` for a while.
    Silence {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// `alertname=…`, `severity=…`, `agent_id=…` or `user_id=…` (repeatable).
        #[arg(long = "match", value_name = "LABEL=VALUE", required = true)]
        matchers: Vec<String>,
        /// How long, e.g. `30m`, `2h`, `1d` (at most 7d here).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        comment: String,
    },
    /// List the silences in force.
    Silences {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
    },
    /// End a silence now.
    Unsilence {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// The silence's id.
        id: String,
    },
    /// Validate an alert rule file; errors name line and column.
    Check {
        /// The rule file (YAML).
        file: PathBuf,
    },
    /// Write the rules as Prometheus alerting rules (`promtool check rules` accepts them).
    Export {
        /// The rule file; the checklist's three default rules without it.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_parser = ["prometheus"])]
        format: String,
    },
}

/// Reads an alert rule file; errors are `FILE:LINE:COLUMN: message`, one per line.
pub fn load_rules(path: &Path) -> CliResult<RuleSet> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read alert rules `{}`: {e}", path.display()))?;
    Ok(RuleSet::from_yaml(&text).map_err(|errors| super::matrix::located(path, &errors))?)
}

/// Runs `ward alerts ...`.
pub async fn run(command: AlertsCommand) -> CliResult {
    match command {
        AlertsCommand::List { conn, all, limit } => {
            let api = conn.client()?;
            let limit = limit.to_string();
            let mut query = vec![("limit", limit.as_str())];
            if all {
                query.push(("state", "all"));
            }
            let page = api.alerts(&query).await?;
            let out = conn.output();
            if !out.is_json() {
                if page.alerts.is_empty() {
                    output::line(if all { "no alerts" } else { "no alerts firing" });
                    return Ok(());
                }
                output::line("ID\tSTATUS\tSEVERITY\tRULE\tSUBJECT\tSTARTED\tEXPLANATION");
            }
            out.list(&page.alerts, row)
        }
        AlertsCommand::Show { conn, id } => {
            let alert = conn.client()?.alert(&id).await?;
            conn.output().show(&alert, |a| {
                let mut text = format!(
                    "alert {} ({}, {}): {}\n{}\nsubject: {}={}\nvalue: {} (threshold {})\nstarted: {}",
                    a.id, a.status, a.severity, a.rule, a.explanation, a.subject_label, a.subject,
                    a.value, a.threshold, a.started_at
                );
                if let Some(resolved) = &a.resolved_at {
                    text.push_str(&format!("\nresolved: {resolved}"));
                }
                if let Some(silence) = &a.silenced_by {
                    text.push_str(&format!("\nsilenced by: {silence}"));
                }
                if !a.evidence.is_empty() {
                    text.push_str(&format!("\nevidence (correlation ids): {}", a.evidence.join(" ")));
                }
                text
            })
        }
        AlertsCommand::Failed { conn } => {
            let list = conn.client()?.failed_notifications().await?;
            let out = conn.output();
            if !out.is_json() {
                if list.notifications.is_empty() {
                    output::line("no failed notifications");
                    return Ok(());
                }
                output::line("ID\tRECEIVER\tTRANSITION\tATTEMPTS\tFAILED\tALERT\tLAST ERROR");
            }
            out.list(&list.notifications, |n| {
                format!(
                    "{}\t{}\t{}\t{}\t{}\t{} {}\t{}",
                    n.id,
                    n.receiver,
                    n.transition,
                    n.attempts,
                    n.failed_at,
                    n.alert.id,
                    n.alert.rule,
                    n.last_error
                )
            })
        }
        AlertsCommand::Retry { conn, id } => {
            conn.client()?.retry_notification(&id).await?;
            output::line(format!("notification {id} queued again"));
            Ok(())
        }
        AlertsCommand::Silence {
            conn,
            matchers,
            duration,
            comment,
        } => {
            let mut map = BTreeMap::new();
            for matcher in &matchers {
                let (label, value) = matcher.split_once('=').ok_or_else(|| {
                    format!("--match `{matcher}` is not LABEL=VALUE, e.g. agent_id=agt_123")
                })?;
                map.insert(label.to_owned(), value.to_owned());
            }
            let secs = parse_duration(&duration).map_err(|e| format!("--for: {e}"))?;
            let body = CreateSilence {
                matchers: map,
                duration_secs: u64::from(secs),
                comment,
            };
            let silence = conn.client()?.create_silence(&body).await?;
            conn.output().show(&silence, |s| {
                format!("silence {} until {}", s.id, s.ends_at)
            })
        }
        AlertsCommand::Silences { conn } => {
            let list = conn.client()?.silences().await?;
            let out = conn.output();
            if !out.is_json() {
                if list.silences.is_empty() {
                    output::line("no silences in force");
                    return Ok(());
                }
                output::line("ID\tUNTIL\tMATCHERS\tBY\tCOMMENT");
            }
            out.list(&list.silences, |s| {
                let matchers: Vec<String> =
                    s.matchers.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "{}\t{}\t{}\t{}\t{}",
                    s.id,
                    s.ends_at,
                    matchers.join(","),
                    s.created_by,
                    s.comment
                )
            })
        }
        AlertsCommand::Unsilence { conn, id } => {
            conn.client()?.expire_silence(&id).await?;
            output::line(format!("silence {id} ended"));
            Ok(())
        }
        AlertsCommand::Check { file } => {
            let rules = load_rules(&file)?;
            output::line(format!(
                "{}: {} rules, {} receivers",
                file.display(),
                rules.rules.len(),
                rules.receivers.len()
            ));
            Ok(())
        }
        AlertsCommand::Export { rules, format: _ } => {
            let rules = match rules {
                Some(path) => load_rules(&path)?,
                None => RuleSet::defaults(),
            };
            print!("{}", ward_telemetry::export::prometheus_rules(&rules));
            Ok(())
        }
    }
}

fn row(alert: &AlertView) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}={}\t{}\t{}",
        alert.id,
        alert.status,
        alert.severity,
        alert.rule,
        alert.subject_label,
        alert.subject,
        alert.started_at,
        alert.explanation
    )
}
