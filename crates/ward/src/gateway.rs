//! `ward gateway`: runs the enforcing reverse proxy from a YAML file, or
//! checks such a file (`ward gateway check FILE`).

use std::io::Write as _;

use crate::cli::{GatewayArgs, GatewayCommand};

/// Runs or checks, as the arguments say.
pub async fn run(args: GatewayArgs) -> Result<(), String> {
    match (args.command, args.config) {
        (Some(GatewayCommand::Check { file }), _) => {
            let loaded = ward_gateway::load(&file).map_err(|e| e.to_string())?;
            let schemas = loaded.routes.iter().filter(|r| r.has_contract()).count();
            println!(
                "{}: ok ({} routes, {schemas} contracts, {} upstreams)",
                file.display(),
                loaded.routes.len(),
                loaded.upstreams.len()
            );
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
                crate::serving::signal(),
            )
            .await
        }
        (None, None) => Err(
            "give a configuration file: `ward gateway --config FILE` (see examples/gateway.yaml)"
                .into(),
        ),
    }
}
