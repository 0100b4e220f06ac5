//! `ward policy ...`: run a Rego bundle's tests locally, push it to the
//! server, show the active one.

use clap::Subcommand;
use std::path::{Path, PathBuf};

use crate::connection::Conn;
use crate::error::CliResult;
use crate::output;

/// `ward policy ...`.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Run a bundle's `test_` rules locally (no server).
    Test {
        /// Directory of `.rego` files.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Push a bundle to the server; it becomes active only if it compiles
    /// and its tests pass.
    Push {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
        /// Directory of `.rego` files.
        dir: PathBuf,
    },
    /// Show the tenant's active bundle.
    Show {
        /// Connection flags.
        #[command(flatten)]
        conn: Conn,
    },
}

/// Reads the `.rego` files under `dir` (recursively), paths relative to it.
fn read_bundle(dir: &Path) -> CliResult<Vec<(String, String)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> Result<(), String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else if path.extension().is_some_and(|e| e == "rego") {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
                let relative = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.push((relative, text));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    if files.is_empty() {
        return Err(format!("no `.rego` files in `{}`", dir.display()).into());
    }
    files.sort();
    Ok(files)
}

/// Runs `ward policy ...`.
pub async fn run(command: PolicyCommand) -> CliResult {
    match command {
        PolicyCommand::Test { dir, json } => {
            let bundle =
                ward_policy::Bundle::from_files(read_bundle(&dir)?).map_err(|e| e.to_string())?;
            let report = bundle.run_tests().map_err(|e| e.to_string())?;
            bundle.compile().map_err(|e| e.to_string())?;
            if json {
                output::json(&serde_json::json!({
                    "hash": bundle.hash(), "passed": report.passed,
                    "failed": report.failed.iter().map(|(n, r)| serde_json::json!({"test": n, "reason": r})).collect::<Vec<_>>(),
                }))?;
            } else {
                for name in &report.passed {
                    output::line(format!("PASS {name}"));
                }
                for (name, reason) in &report.failed {
                    output::line(format!("FAIL {name}: {reason}"));
                }
                output::line(format!(
                    "{} passed, {} failed; bundle {}",
                    report.passed.len(),
                    report.failed.len(),
                    bundle.hash()
                ));
            }
            if report.failed.is_empty() {
                Ok(())
            } else {
                Err(format!("{} policy test(s) failed", report.failed.len()).into())
            }
        }
        PolicyCommand::Push { conn, dir } => {
            let api = conn.client()?;
            let files = read_bundle(&dir)?
                .into_iter()
                .map(|(path, text)| ward_api::PolicyFile { path, text })
                .collect();
            let pushed = api.push_policy(&ward_api::PushPolicy { files }).await?;
            conn.output().show(&pushed, |pushed| {
                format!(
                    "policy bundle {} active ({} files, {} tests passed)",
                    pushed.hash,
                    pushed.files.len(),
                    pushed.tests_passed.len()
                )
            })
        }
        PolicyCommand::Show { conn } => {
            let api = conn.client()?;
            conn.output().show(&api.policy().await?, |active| {
                format!(
                    "{}\t{}\t{}\t{}",
                    active.hash,
                    active.pushed_at,
                    active.pushed_by,
                    active.files.join(",")
                )
            })
        }
    }
}
