//! `ward gateway`: runs the enforcing reverse proxy from a YAML file, or
//! checks such a file (`ward gateway check FILE`).

use clap::{Args, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;

use crate::error::CliResult;
use crate::{output, serving};

/// `ward gateway --config FILE` or `ward gateway check FILE`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GatewayArgs {
    /// What to do instead of running.
    #[command(subcommand)]
    pub command: Option<GatewayCommand>,
    /// YAML configuration file (see `examples/gateway.yaml`); schema paths
    /// are relative to it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `ward gateway ...`.
#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// Validate a gateway configuration file: its shape (errors name line
    /// and column), the scope templates and the JSON Schemas.
    Check {
        /// The YAML file.
        file: PathBuf,
    },
}

/// Runs or checks, as the arguments say.
pub async fn run(args: GatewayArgs) -> CliResult {
    match (args.command, args.config) {
        (Some(GatewayCommand::Check { file }), _) => {
            let loaded = ward_gateway::load(&file).map_err(|e| e.to_string())?;
            let schemas = loaded.routes.iter().filter(|r| r.has_contract()).count();
            output::line(format!(
                "{}: ok ({} routes, {schemas} contracts, {} upstreams)",
                file.display(),
                loaded.routes.len(),
                loaded.upstreams.len()
            ));
            Ok(())
        }
        (None, Some(file)) => {
            let loaded = ward_gateway::load(&file).map_err(|e| e.to_string())?;
            ward_client::install_tls_provider();
            ward_gateway::run(
                loaded,
                |listening, public_url| {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(
                        out,
                        "ward gateway listening on {listening} (public URL {public_url})"
                    );
                    let _ = out.flush();
                },
                serving::signal(),
            )
            .await?;
            Ok(())
        }
        (None, None) => Err(
            "give a configuration file: `ward gateway --config FILE` (see examples/gateway.yaml)"
                .into(),
        ),
    }
}
