//! The one error type of this crate, with lowercase messages that name the
//! offending file, rule or value and say how to fix it.

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
