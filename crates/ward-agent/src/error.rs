//! The desktop runtime's one error type; messages name the file and say
//! how to fix it.

use std::path::{Path, PathBuf};

/// Why the runtime could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file or directory could not be read, created or written.
    #[error("cannot {action} `{}`: {source}{}", path.display(), hint.unwrap_or_default())]
    Io {
        /// `read`, `create` or `write`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
        /// How to fix it, starting with `; `.
        hint: Option<&'static str>,
    },
    /// A private file or directory can be read or written by others.
    #[error("`{}` is {what} by others (mode {mode:o}); run `chmod {fix}` on it", path.display())]
    NotPrivate {
        /// The file or directory.
        path: PathBuf,
        /// `readable` or `writable`.
        what: &'static str,
        /// Its permission bits.
        mode: u32,
        /// The mode to set, e.g. `600`.
        fix: &'static str,
    },
    /// A file does not hold what it should.
    #[error("`{}` {problem}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. `is not a device key`.
        problem: String,
    },
    /// The state directory already holds an enrolled agent.
    #[error("`{}` already holds an enrolled agent; use another state directory", path.display())]
    AlreadyEnrolled {
        /// The state directory.
        path: PathBuf,
    },
    /// The caller's input is not usable.
    #[error("{0}")]
    Invalid(String),
    /// The event spool has no room for audit events and none was freed in
    /// time; nothing of the append was written.
    #[error(
        "the event spool is full ({used} of {max} bytes hold events not yet shipped) and no \
         space was freed within {waited_ms} ms, so the events were not recorded; check that the \
         agent reaches the control plane so the spool drains, or give the spool more space"
    )]
    SpoolFull {
        /// Bytes of segments on disk.
        used: u64,
        /// The spool's bound.
        max: u64,
        /// How long the append waited.
        waited_ms: u128,
    },
    /// The event spool takes no more events (wiped, closed, or an earlier
    /// write failed).
    #[error("the event spool is not taking events: {reason}; restart `ward agent run`")]
    SpoolUnavailable {
        /// Why.
        reason: String,
    },
    /// The server refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ward_client::ClientError),
}

impl AgentError {
    /// An I/O failure on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> AgentError {
        let path = path.to_owned();
        move |source| AgentError::Io {
            action,
            path,
            source,
            hint: None,
        }
    }
}
