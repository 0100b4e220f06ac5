//! The command line's one error type, its exit codes (1 for a failure, 2
//! for a command line that does not parse, as the README promises), and
//! the one place an error is printed.

use std::process::ExitCode;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line does not parse; clap's message, with the usage.
    #[error("{0}")]
    Usage(clap::Error),
    /// The server refused the call or could not be reached.
    #[error(transparent)]
    Api(#[from] ward_client::ClientError),
    /// The desktop runtime could not do what was asked.
    #[error(transparent)]
    Agent(#[from] ward_agent::AgentError),
    /// Anything else, already in words for the user.
    #[error("{0}")]
    Failed(String),
    /// A program run for the user ended with this code (it said why).
    #[error("the program exited with {0}")]
    Exit(u8),
}

impl From<String> for CliError {
    fn from(message: String) -> CliError {
        CliError::Failed(message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> CliError {
        CliError::Failed(message.to_owned())
    }
}

impl CliError {
    /// The process's exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Exit(code) => ExitCode::from(*code),
            _ => ExitCode::FAILURE,
        }
    }

    /// Prints the error on stderr: one line `error: ...`, or clap's usage
    /// message (which starts with `error:` itself); returns the exit code.
    pub fn report(&self) -> ExitCode {
        match self {
            CliError::Usage(error) => eprint!("{}", error.render()),
            CliError::Exit(_) => {}
            other => eprintln!("error: {other}"),
        }
        self.exit_code()
    }
}

/// Shorthand for the commands' results.
pub type CliResult<T = ()> = Result<T, CliError>;
