//! `ward events list|search|tail`: the events devices shipped to the
//! tenant, filtered, oldest received first, as a table or JSON; `tail`
//! follows new ones live. The server redacts what it returns and records
//! every read in the audit log.

use clap::{Args, Subcommand};
use ward_api::StoredEvent;
use ward_api::sse::{MAX_FEED_EVENT_BYTES, SseReader};

use crate::connection::Conn;
use crate::error::CliResult;
use crate::output;

/// The largest page the server gives.
const PAGE: usize = 1000;

/// Filters every events command takes.
#[derive(Args, Debug, Default)]
pub struct Filters {
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
    /// Events naming this user.
    #[arg(long)]
    user: Option<String>,
    /// Events of this action, e.g. `files:write`.
    #[arg(long)]
    action: Option<String>,
}

impl Filters {
    fn pairs<'a>(&'a self, query: &'a Option<String>) -> Vec<(&'static str, &'a str)> {
        [
            ("agent", &self.agent),
            ("correlation_id", &self.correlation_id),
            ("feature", &self.feature),
            ("result", &self.result),
            ("class", &self.class),
            ("user", &self.user),
            ("action", &self.action),
            ("q", query),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
        .collect()
    }
}

/// `ward events ...`.
#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// List shipped events, oldest received first.
    List {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// Filters.
        #[command(flatten)]
        filters: Filters,
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
    /// Find events whose target or reason contains TEXT (with any filter).
    Search {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// The text (1 to 256 bytes), matched as written.
        text: String,
        /// Filters.
        #[command(flatten)]
        filters: Filters,
        /// Events that happened at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Events that happened before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Most events to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Follow new events as devices ship them, until interrupted.
    Tail {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// Filters.
        #[command(flatten)]
        filters: Filters,
        /// Events whose target or reason contains this text.
        #[arg(long)]
        query: Option<String>,
    },
}

/// Runs `ward events ...`.
pub async fn run(command: EventsCommand) -> CliResult {
    match command {
        EventsCommand::List {
            conn,
            filters,
            since,
            until,
            limit,
            all,
        } => {
            let wanted = if all { usize::MAX } else { limit };
            list(&conn, &filters, None, since, until, wanted).await
        }
        EventsCommand::Search {
            conn,
            text,
            filters,
            since,
            until,
            limit,
        } => list(&conn, &filters, Some(text), since, until, limit).await,
        EventsCommand::Tail {
            conn,
            filters,
            query,
        } => tail(&conn, &filters, query).await,
    }
}

async fn list(
    conn: &Conn,
    filters: &Filters,
    text: Option<String>,
    since: Option<String>,
    until: Option<String>,
    wanted: usize,
) -> CliResult {
    let api = conn.client()?;
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut cursor: Option<String> = None;
    while events.len() < wanted {
        let page_size = (wanted - events.len()).min(PAGE).to_string();
        let mut query = filters.pairs(&text);
        query.push(("limit", &page_size));
        for (key, value) in [("since", &since), ("until", &until), ("cursor", &cursor)] {
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
        output::line(HEADER);
    }
    out.list(&events, line)
}

const HEADER: &str = "TS\tAGENT\tFEATURE\tACTION\tTARGET\tRESULT";

fn line(stored: &StoredEvent) -> String {
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
}

/// Prints each new event as it arrives (a line, or one JSON object per
/// line with `--json`), reconnecting after the last one seen if the
/// stream breaks.
async fn tail(conn: &Conn, filters: &Filters, text: Option<String>) -> CliResult {
    let api = conn.client()?;
    let out = conn.output();
    let query = filters.pairs(&text);
    if !out.is_json() {
        output::line(HEADER);
    }
    let mut last: Option<String> = None;
    loop {
        let mut response = api.events_stream(&query, last.as_deref()).await?;
        let mut reader = SseReader::new(MAX_FEED_EVENT_BYTES);
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(error) => {
                    eprintln!("ward: the event stream broke ({error}); reconnecting");
                    break;
                }
            };
            let events = reader
                .push(&chunk)
                .map_err(|e| format!("the server's event stream sent {e}"))?;
            for event in events {
                let (Some(data), "event") = (event.data.as_deref(), event.kind()) else {
                    continue;
                };
                let stored: StoredEvent = serde_json::from_str(data)
                    .map_err(|e| format!("the server sent an event that is not one: {e}"))?;
                if out.is_json() {
                    output::line(serde_json::to_string(&stored).unwrap_or_default());
                } else {
                    output::line(line(&stored));
                }
                last = event.id().map(str::to_owned);
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
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
