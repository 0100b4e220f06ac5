//! The one error type of this crate, with lowercase messages that name the
//! offending file, rule or value and say how to fix it.

use regorus::LimitError;
use std::fmt;

/// Where and why a policy file fails to parse or to compile.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParseError {
    /// The file's path inside the bundle.
    pub file: String,
    /// 1-based line, or 0 when the Rego engine gave no position.
    pub line: u32,
    /// 1-based column, or 0 when the Rego engine gave no position.
    pub column: u32,
    /// What is wrong, as the Rego engine put it.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "`{}`: {}", self.file, self.message)
        } else {
            write!(
                f,
                "`{}:{}:{}`: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Everything that can go wrong with a bundle or a decision.
///
/// A caller that gets [`PolicyError::Evaluation`] from
/// [`Policy::evaluate`](crate::Policy::evaluate) must deny the request (fail
/// closed) and audit the message.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PolicyError {
    /// The bundle holds no file.
    #[error("policy bundle is empty: add at least one `.rego` file")]
    Empty,
    /// A file cannot be part of a bundle (not `.rego`, absolute path,
    /// duplicate).
    #[error("policy file `{path}` is not accepted: {reason}")]
    InvalidFile {
        /// The file's path as given.
        path: String,
        /// Why it is refused and what to do instead.
        reason: String,
    },
    /// One or more files do not parse or compile; all errors found are listed.
    #[error("policy bundle does not compile: {}", join(.errors))]
    Parse {
        /// Every error found, in file order.
        errors: Vec<ParseError>,
    },
    /// No file declares the package the broker evaluates.
    #[error(
        "no file declares `package ward.broker`: the broker evaluates `data.ward.broker`, add a file with that package"
    )]
    MissingPackage,
    /// A file declares a package reserved for this crate.
    #[error("policy file `{path}` declares the reserved package `{package}`: rename it")]
    ReservedPackage {
        /// The file's path inside the bundle.
        path: String,
        /// The package it declares.
        package: String,
    },
    /// Evaluation failed: a runtime error in Rego, the time limit, or a
    /// malformed `deny`/`require_approval`/`remove_scopes`/`max_duration`.
    #[error("policy evaluation failed: {0}")]
    Evaluation(String),
    /// The bundle's `test_` rules did not all pass.
    #[error("{} policy test(s) failed: {}", .failed.len(), join_failed(.failed))]
    TestsFailed {
        /// `(package.rule, reason)` of each failed test.
        failed: Vec<(String, String)>,
    },
}

fn join(errors: &[ParseError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn join_failed(failed: &[(String, String)]) -> String {
    failed
        .iter()
        .map(|(name, reason)| format!("`{name}` ({reason})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Extracts file, line, column and message from a regorus error of the form
/// `--> file:line:col` … `error: message`; falls back to the whole text.
pub(crate) fn parse_error(file: &str, text: &str) -> ParseError {
    let mut out = ParseError {
        file: file.to_owned(),
        line: 0,
        column: 0,
        message: String::new(),
    };
    for line in text.lines() {
        if let Some(position) = line.trim_start().strip_prefix("--> ") {
            let mut parts = position.rsplitn(3, ':');
            if let (Some(col), Some(row), Some(path)) = (parts.next(), parts.next(), parts.next())
                && let (Ok(col), Ok(row)) = (col.trim().parse(), row.trim().parse())
            {
                path.clone_into(&mut out.file);
                out.line = row;
                out.column = col;
            }
        } else if let Some(message) = line.strip_prefix("error: ") {
            message.trim().clone_into(&mut out.message);
        }
    }
    if out.message.is_empty() {
        out.message = text.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    out
}

/// One-line form of a regorus error for decision and test logs; a limit
/// the engine enforced is named with its value.
pub(crate) fn engine_error(limit: Option<&LimitError>, text: &str) -> String {
    match limit {
        Some(LimitError::TimeLimitExceeded { limit, .. }) => {
            return format!(
                "the evaluation exceeded its time limit of {} ms",
                limit.as_millis()
            );
        }
        Some(LimitError::RegexSizeLimitExceeded { limit }) => {
            return format!("a regular expression exceeded the size limit of {limit} bytes");
        }
        _ => {}
    }
    let e = parse_error("", text);
    if e.line == 0 {
        e.message
    } else {
        format!("{}:{}:{}: {}", e.file, e.line, e.column, e.message)
    }
}
