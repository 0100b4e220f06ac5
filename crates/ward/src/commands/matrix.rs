//! `ward matrix check`: validate a capability matrix file locally, and the
//! loader `ward serve` reads its `--matrix` with.

use clap::Subcommand;
use std::path::{Path, PathBuf};
use ward_control::LoadedMatrix;
use ward_model::matrix::Matrix;

use crate::error::CliResult;
use crate::output::Output;

/// `ward matrix ...`.
#[derive(Subcommand, Debug)]
pub enum MatrixCommand {
    /// Validate a capability matrix file; errors name line and column.
    Check {
        /// The YAML file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `ward matrix ...`.
pub fn run(command: MatrixCommand) -> CliResult {
    match command {
        MatrixCommand::Check { file, json } => {
            let loaded = load_matrix(&file)?;
            let features = loaded.matrix.features().count();
            let profiles = loaded.matrix.profiles().count();
            Output::new(json).show(
                &serde_json::json!({
                    "valid": true, "features": features, "profiles": profiles, "digest": loaded.digest,
                }),
                |_| format!("{}: ok ({features} features, {profiles} profiles)", file.display()),
            )
        }
    }
}

/// Errors of a YAML file as `FILE:LINE:COLUMN: message`, one per line.
pub fn located(path: &Path, errors: &[ward_model::yaml::YamlError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and validates a matrix file; errors name `file:line:column`.
pub fn load_matrix(path: &Path) -> CliResult<LoadedMatrix> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read matrix `{}`: {e}", path.display()))?;
    let matrix = Matrix::from_yaml(&text).map_err(|errors| located(path, &errors.0))?;
    let digest = matrix.digest();
    Ok(LoadedMatrix {
        matrix,
        source: Some(path.to_owned()),
        digest,
    })
}
