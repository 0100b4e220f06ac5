//! `ward audit ...`: list the audit log from a server, or verify the hash
//! chain of a data directory locally.

use clap::Subcommand;
use std::path::PathBuf;

use crate::connection::Conn;
use crate::error::CliResult;
use crate::output::{self, Output};

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

/// Runs `ward audit ...`.
pub async fn run(command: AuditCommand) -> CliResult {
    match command {
        AuditCommand::Verify { data_dir, json } => {
            let report = ward_store::verify_audit(&data_dir).map_err(|e| e.to_string())?;
            let out = Output::new(json);
            match &report.first_break {
                None => out.show(
                    &serde_json::json!({"intact": true, "entries": report.verified, "head": report.head}),
                    |_| {
                        format!(
                            "audit chain intact: {} entries, head {}",
                            report.verified, report.head
                        )
                    },
                ),
                Some(broken) => {
                    if out.is_json() {
                        output::json(&serde_json::json!({
                            "intact": false, "first_bad_seq": broken.seq(), "problem": broken.to_string(),
                            "verified": report.verified,
                        }))?;
                    }
                    Err(format!(
                        "audit chain broken at entry {}: {broken}",
                        broken.seq()
                    )
                    .into())
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
            let api = conn.client()?;
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
                let page = api.audit(&query).await?;
                entries.extend(page.entries);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            entries.truncate(limit);
            conn.output().list(&entries, |e| {
                format!(
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
                )
            })
        }
    }
}
