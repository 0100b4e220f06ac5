//! What commands print on stdout: the JSON answer with `--json`, a short
//! human text without it. Every command prints through here.

use serde::Serialize;

use crate::error::{CliError, CliResult};

/// How a command prints its result.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    json: bool,
}

impl Output {
    /// JSON when `json` is set (the `--json` flag), text otherwise.
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// Whether the caller asked for JSON.
    pub fn is_json(self) -> bool {
        self.json
    }

    /// Prints `value` as JSON, or the line `text` makes of it.
    pub fn show<T: Serialize>(self, value: &T, text: impl FnOnce(&T) -> String) -> CliResult {
        if self.json {
            json(value)
        } else {
            println!("{}", text(value));
            Ok(())
        }
    }

    /// Prints `items` as one JSON array, or one line per item.
    pub fn list<T: Serialize>(self, items: &[T], line: impl Fn(&T) -> String) -> CliResult {
        if self.json {
            return json(&items);
        }
        for item in items {
            println!("{}", line(item));
        }
        Ok(())
    }
}

/// Prints `value` as pretty JSON, whatever the flag says.
pub fn json<T: Serialize>(value: &T) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Prints a line of text, whatever the flag says.
pub fn line(text: impl std::fmt::Display) {
    println!("{text}");
}
