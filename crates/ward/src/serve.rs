//! `ward serve`: load the matrix, open the data directory, listen.

use std::io::Write;
use std::path::Path;
use tokio::net::TcpListener;
use ward_control::{Config, LoadedMatrix};
use ward_model::matrix::Matrix;

use crate::cli::ServeArgs;

/// Reads and validates a matrix file; errors name `file:line:column`.
pub fn load_matrix(path: &Path) -> Result<LoadedMatrix, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read matrix `{}`: {e}", path.display()))?;
    let matrix = Matrix::from_yaml(&text).map_err(|errors| {
        errors
            .0
            .iter()
            .map(|e| format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let digest = matrix.digest();
    Ok(LoadedMatrix {
        matrix,
        source: Some(path.to_owned()),
        digest,
    })
}

/// Runs the control plane until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    init_logging();
    let matrix = match &args.matrix {
        Some(path) => load_matrix(path)?,
        None => {
            tracing::warn!("no --matrix given: every scope will be denied");
            let matrix = Matrix::empty();
            let digest = matrix.digest();
            LoadedMatrix {
                matrix,
                source: None,
                digest,
            }
        }
    };
    let listener = TcpListener::bind(args.listen).await.map_err(|e| {
        format!(
            "cannot listen on `{}`: {e}; choose another --listen address",
            args.listen
        )
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let mut config = Config::new(args.data_dir.clone(), public_url.clone());
    config.max_token_secs = args.max_token_secs;
    config.max_body_bytes = args.max_body_bytes;
    config.approval_ttl_secs = args.approval_ttl_secs;
    if let (Some(issuer), Some(audience)) = (&args.oidc_issuer, &args.oidc_audience) {
        config.oidc = Some(ward_control::oidc::OidcConfig {
            issuer: issuer.clone(),
            audience: audience.clone(),
            groups_claim: args.oidc_groups_claim.clone(),
            group_prefix: args.oidc_group_prefix.clone(),
            mfa_acr: args.oidc_mfa_acr.clone(),
            cli_client_id: args.oidc_client_id.clone(),
            leeway_secs: 30,
            jwks_min_refresh: std::time::Duration::from_secs(args.oidc_jwks_min_refresh_secs),
            jwks_max_age: std::time::Duration::from_secs(args.oidc_jwks_max_age_secs),
        });
    }
    if config.max_token_secs == 0 {
        return Err("--max-token-secs must be at least 1".into());
    }
    let initialised = ward_control::init(config, matrix)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    if let Some(token) = &initialised.new_bootstrap_token {
        let file = args.data_dir.join("bootstrap-admin-token");
        let _ = writeln!(
            out,
            "bootstrap admin token (shown once; also in {}): {token}",
            file.display()
        );
    }
    let _ = writeln!(
        out,
        "ward listening on http://{local} (public URL {public_url})"
    );
    let _ = out.flush();
    drop(out);
    tracing::info!(%local, %public_url, data_dir = %args.data_dir.display(), "serving");
    let store = initialised.state.store().clone();
    let app = ward_control::router(initialised.state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server failed: {e}"))?;
    store.close();
    tracing::info!("stopped");
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
}
