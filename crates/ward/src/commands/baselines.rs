//! `ward baselines show AGENT`: an agent's behaviour (and its owner's)
//! against its baselines, signal by signal, to judge an alert.

use clap::Subcommand;

use crate::connection::Conn;
use crate::error::CliResult;
use crate::output;

/// `ward baselines ...`.
#[derive(Subcommand, Debug)]
pub enum BaselinesCommand {
    /// An agent's and its owner's counts now against their baselines.
    Show {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// The agent's id.
        agent: String,
    },
}

/// Runs `ward baselines ...`.
pub async fn run(command: BaselinesCommand) -> CliResult {
    let BaselinesCommand::Show { conn, agent } = command;
    let shown = conn.client()?.agent_baseline(&agent).await?;
    let out = conn.output();
    if out.is_json() {
        return output::json(&shown);
    }
    output::line(format!(
        "agent {} (owner {}) at {}",
        shown.agent_id, shown.owner, shown.at
    ));
    if shown.signals.is_empty() {
        output::line("no history yet");
        return Ok(());
    }
    output::line("SUBJECT\tSIGNAL\tTHIS 15M\tLAST 24H\tUSUAL PER 15M\tMAD\tBASIS");
    for s in &shown.signals {
        let number = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v}"));
        output::line(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            s.subject,
            s.signal,
            s.this_slot,
            s.last_24h,
            number(s.per_15m),
            number(s.mad),
            s.basis.as_deref().unwrap_or("less than 6 hours of history")
        ));
    }
    Ok(())
}
