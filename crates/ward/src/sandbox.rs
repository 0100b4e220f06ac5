//! `ward __policy-sandbox`: the child process `ward serve` evaluates tenant
//! policies in (see `ward_control::policy::sandbox`). Started only by the
//! server, never listed in the help, and run before anything else.

use std::process::ExitCode;

use ward_control::policy::sandbox::{COMMAND, child_main};

/// Runs the sandbox and returns its exit code when this process was
/// started as one; `None` otherwise.
pub fn run_if_requested() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != COMMAND {
        return None;
    }
    Some(child_main(args))
}
