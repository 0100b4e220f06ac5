//! `ward events list`: the events devices shipped to the tenant, filtered,
//! oldest received first, as a table or JSON.

use clap::Subcommand;
use ward_api::StoredEvent;

use crate::connection::Conn;
use crate::error::CliResult;
use crate::output;

/// The largest page the server gives.
const PAGE: usize = 1000;

/// `ward events ...`.
#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// List shipped events, oldest received first.
    List {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// Events of this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Events of this correlation id.
        #[arg(long)]
        correlation_id: Option<String>,
        /// Events of this feature.
        #[arg(long)]
        feature: Option<String>,
        /// Events with this result (e.g. `allow`, `deny`, `error`).
        #[arg(long)]
        result: Option<String>,
        /// Events of this class.
        #[arg(long, value_parser = ["audit", "telemetry"])]
        class: Option<String>,
        /// Events that happened at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Events that happened before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Most events to print.
        #[arg(long, default_value_t = 100, conflicts_with = "all")]
        limit: usize,
        /// Print every matching event, however many.
        #[arg(long)]
        all: bool,
    },
}

/// Runs `ward events ...`.
pub async fn run(command: EventsCommand) -> CliResult {
    let EventsCommand::List {
        conn,
        agent,
        correlation_id,
        feature,
        result,
        class,
        since,
        until,
        limit,
        all,
    } = command;
    let api = conn.client()?;
    let wanted = if all { usize::MAX } else { limit };
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut cursor: Option<String> = None;
    while events.len() < wanted {
        let page_size = (wanted - events.len()).min(PAGE).to_string();
        let mut query: Vec<(&str, &str)> = vec![("limit", &page_size)];
        for (key, value) in [
            ("agent", &agent),
            ("correlation_id", &correlation_id),
            ("feature", &feature),
            ("result", &result),
            ("class", &class),
            ("since", &since),
            ("until", &until),
            ("cursor", &cursor),
        ] {
            if let Some(value) = value {
                query.push((key, value));
            }
        }
        let page = api.events(&query).await?;
        events.extend(page.events);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let out = conn.output();
    if !out.is_json() {
        if events.is_empty() {
            output::line("no events match");
            return Ok(());
        }
        output::line("TS\tAGENT\tFEATURE\tACTION\tTARGET\tRESULT");
    }
    out.list(&events, |stored| {
        let e = &stored.event;
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            e.ts,
            e.agent_id,
            e.feature.as_deref().unwrap_or("-"),
            printable(&e.action),
            printable(&e.target),
            e.result
        )
    })
}

/// `text` with control characters escaped (`\n`, `\t`, `\u{1b}`), so a
/// target cannot break the table or send escape sequences to the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_in_the_table() {
        assert_eq!(printable("ls -l\n\u{1b}[2J\tx"), "ls -l\\n\\u{1b}[2J\\tx");
        assert_eq!(printable("/home/zoë"), "/home/zoë");
    }
}
