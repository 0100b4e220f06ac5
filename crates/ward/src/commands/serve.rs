//! `ward serve`: load the matrix, open the data directory, listen until
//! Ctrl-C or SIGTERM (`serving.rs` says how it stops).

use clap::Args;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;
use ward_control::{Config, LoadedMatrix};
use ward_model::matrix::Matrix;

use super::matrix;
use crate::error::CliResult;

/// `ward serve`. Every setting can also come from `--config FILE`; a flag
/// given on the command line wins over the file.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// YAML configuration file (same names as the flags, OpenID settings
    /// under `oidc:`; relative paths are relative to the file).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory for the database and keys, created 0700 [default: ./ward-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Capability matrix (YAML). Without it every scope is denied.
    #[arg(long)]
    pub matrix: Option<PathBuf>,
    /// Alert rules and receivers (YAML, `ward alerts check`); without it
    /// the checklist's three rules, recorded but sent nowhere.
    #[arg(long)]
    pub alerts: Option<PathBuf>,
    /// URL clients use to reach this server (token issuer and DPoP `htu`
    /// base) [default: http://<listen address>].
    #[arg(long)]
    pub public_url: Option<String>,
    /// Longest token lifetime granted, seconds [default: 3600].
    #[arg(long)]
    pub max_token_secs: Option<u64>,
    /// Largest accepted request body, bytes [default: 65536].
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// How long an approval request can be decided and redeemed, seconds [default: 3600].
    #[arg(long)]
    pub approval_ttl_secs: Option<u64>,
    /// OpenID provider people sign in with (issuer URL, as in `iss`).
    #[arg(long, env = "WARD_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Audience the provider's tokens must carry.
    #[arg(long, env = "WARD_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// Token claim holding the person's groups [default: groups].
    #[arg(long)]
    pub oidc_groups_claim: Option<String>,
    /// Prefix of groups granting Ward roles: `<prefix>:<tenant>:<role>` [default: ward].
    #[arg(long)]
    pub oidc_group_prefix: Option<String>,
    /// An `acr` value that counts as multi-factor (besides `amr` holding `mfa`).
    #[arg(long)]
    pub oidc_mfa_acr: Option<String>,
    /// Public client id `ward login` uses at the provider [default: ward-cli].
    #[arg(long)]
    pub oidc_client_id: Option<String>,
    /// Shortest time between two fetches of the provider's keys when tokens
    /// name an unknown key id, seconds [default: 10].
    #[arg(long)]
    pub oidc_jwks_min_refresh_secs: Option<u64>,
    /// How long the provider's keys are cached before they are fetched
    /// again (a retired key stops verifying after this), seconds [default: 300].
    #[arg(long)]
    pub oidc_jwks_max_age_secs: Option<u64>,
    /// Accepted `typ` of access tokens (repeatable) [default: at+jwt]; add
    /// `JWT` for providers whose access tokens do not follow RFC 9068.
    #[arg(long)]
    pub oidc_accept_typ: Vec<String>,
}

/// The `--config` file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    matrix: Option<PathBuf>,
    alerts: Option<PathBuf>,
    public_url: Option<String>,
    max_token_secs: Option<u64>,
    max_body_bytes: Option<usize>,
    approval_ttl_secs: Option<u64>,
    oidc: Option<FileOidc>,
}

/// The `oidc:` section of the `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOidc {
    issuer: String,
    audience: String,
    groups_claim: Option<String>,
    group_prefix: Option<String>,
    mfa_acr: Option<String>,
    client_id: Option<String>,
    jwks_min_refresh_secs: Option<u64>,
    jwks_max_age_secs: Option<u64>,
    accept_typ: Option<Vec<String>>,
}

/// Merges the command line over the `--config` file over the defaults.
fn resolve(mut args: ServeArgs) -> CliResult<ServeArgs> {
    let Some(path) = args.config.clone() else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read config `{}`: {e}", path.display()))?;
    let file: FileConfig = ward_model::yaml::parse_yaml(&text)
        .map_err(|e| format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let relative = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    args.data_dir = args.data_dir.or(file.data_dir.map(relative));
    args.matrix = args.matrix.or(file.matrix.map(relative));
    args.alerts = args.alerts.or(file.alerts.map(relative));
    if args.listen.is_none()
        && let Some(listen) = file.listen
    {
        args.listen = Some(listen.parse().map_err(|_| {
            format!(
                "{}: `listen` is not an address such as `127.0.0.1:8080`: `{listen}`",
                path.display()
            )
        })?);
    }
    args.public_url = args.public_url.or(file.public_url);
    args.max_token_secs = args.max_token_secs.or(file.max_token_secs);
    args.max_body_bytes = args.max_body_bytes.or(file.max_body_bytes);
    args.approval_ttl_secs = args.approval_ttl_secs.or(file.approval_ttl_secs);
    if let Some(oidc) = file.oidc {
        args.oidc_issuer = args.oidc_issuer.or(Some(oidc.issuer));
        args.oidc_audience = args.oidc_audience.or(Some(oidc.audience));
        args.oidc_groups_claim = args.oidc_groups_claim.or(oidc.groups_claim);
        args.oidc_group_prefix = args.oidc_group_prefix.or(oidc.group_prefix);
        args.oidc_mfa_acr = args.oidc_mfa_acr.or(oidc.mfa_acr);
        args.oidc_client_id = args.oidc_client_id.or(oidc.client_id);
        args.oidc_jwks_min_refresh_secs = args
            .oidc_jwks_min_refresh_secs
            .or(oidc.jwks_min_refresh_secs);
        args.oidc_jwks_max_age_secs = args.oidc_jwks_max_age_secs.or(oidc.jwks_max_age_secs);
        if args.oidc_accept_typ.is_empty() {
            args.oidc_accept_typ = oidc.accept_typ.unwrap_or_default();
        }
    }
    Ok(args)
}

/// Runs the control plane until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> CliResult {
    crate::serving::init_logging();
    let args = resolve(args)?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./ward-data"));
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let matrix = match &args.matrix {
        Some(path) => matrix::load_matrix(path)?,
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
    ward_store::ensure_unlocked(&data_dir).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        format!("cannot listen on `{listen}`: {e}; choose another --listen address")
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let mut config = Config::new(data_dir.clone(), public_url.clone());
    config.max_token_secs = args.max_token_secs.unwrap_or(3600);
    config.max_body_bytes = args.max_body_bytes.unwrap_or(64 * 1024);
    config.approval_ttl_secs = args.approval_ttl_secs.unwrap_or(3600);
    if let Some(path) = &args.alerts {
        config.alerts = super::alerts::load_rules(path)?;
    }
    match (&args.oidc_issuer, &args.oidc_audience) {
        (Some(issuer), Some(audience)) => {
            config.oidc = Some(ward_control::oidc::OidcConfig {
                issuer: issuer.clone(),
                audience: audience.clone(),
                groups_claim: args
                    .oidc_groups_claim
                    .clone()
                    .unwrap_or_else(|| "groups".into()),
                group_prefix: args
                    .oidc_group_prefix
                    .clone()
                    .unwrap_or_else(|| "ward".into()),
                mfa_acr: args.oidc_mfa_acr.clone(),
                cli_client_id: args
                    .oidc_client_id
                    .clone()
                    .unwrap_or_else(|| "ward-cli".into()),
                leeway_secs: 30,
                jwks_min_refresh: Duration::from_secs(
                    args.oidc_jwks_min_refresh_secs.unwrap_or(10),
                ),
                jwks_max_age: Duration::from_secs(args.oidc_jwks_max_age_secs.unwrap_or(300)),
                accepted_typ: if args.oidc_accept_typ.is_empty() {
                    vec!["at+jwt".into(), "application/at+jwt".into()]
                } else {
                    args.oidc_accept_typ.clone()
                },
            });
        }
        (None, None) => {}
        _ => {
            return Err(
                "--oidc-issuer and --oidc-audience go together; give both or neither".into(),
            );
        }
    }
    if let Some(oidc) = &config.oidc
        && oidc.audience == oidc.cli_client_id
    {
        return Err(format!(
            "--oidc-audience `{}` is the command line's client id: ID tokens would pass as access tokens; use the API's own audience",
            oidc.audience
        )
        .into());
    }
    if config.max_token_secs == 0 {
        return Err("--max-token-secs must be at least 1".into());
    }
    let initialised = ward_control::init(config, matrix)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    if let Some(token) = &initialised.new_bootstrap_token {
        let file = data_dir.join("bootstrap-admin-token");
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
    tracing::info!(%local, %public_url, data_dir = %data_dir.display(), "serving");
    let state = initialised.state;
    let app = ward_control::router(state.clone());
    let stop = async {
        crate::serving::signal().await;
        tracing::info!("stopping");
        state.stop_streams();
    };
    ward_serve::serve(
        listener,
        None,
        ward_serve::Limits::DEFAULT,
        |_| TowerToHyperService::new(app.clone()),
        stop,
    )
    .await;
    state.store().close();
    tracing::info!("stopped");
    Ok(())
}
