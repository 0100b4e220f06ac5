//! The command line.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// The scope every benchmark token asks for (granted to `reader` by
/// `examples/matrix.yaml`).
pub(crate) const SCOPE: &str = "files:read:/home/alice/projects/x";

/// Token-issuance benchmark for `ward serve`.
#[derive(Parser, Debug)]
#[command(name = "ward-bench")]
#[command(args_override_self = true)]
pub(crate) struct Args {
    /// The `ward` binary to benchmark (build it with `--release`).
    #[arg(long)]
    pub(crate) ward_bin: PathBuf,
    /// Capability matrix given to `ward serve`.
    #[arg(long, default_value = "examples/matrix.yaml")]
    pub(crate) matrix: PathBuf,
    /// How clients get DPoP proofs: signed right before each request, or
    /// all signed before the timer starts.
    #[arg(long, value_enum, default_value = "inline")]
    pub(crate) mode: Mode,
    /// Concurrent clients; one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    pub(crate) concurrency: Vec<usize>,
    /// Measured seconds per token run.
    #[arg(long, default_value_t = 10)]
    pub(crate) duration_secs: u64,
    /// Unmeasured seconds before each run's timer starts.
    #[arg(long, default_value_t = 2)]
    pub(crate) warmup_secs: u64,
    /// Measured seconds per `/healthz` baseline run (0 skips the baseline).
    #[arg(long, default_value_t = 5)]
    pub(crate) healthz_secs: u64,
    /// Presigned mode: proofs signed per run = this rate x (warm-up +
    /// duration), split over the clients. A client that runs out stops
    /// early and the run is flagged.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) presign_rate: u64,
    /// Where the Markdown and JSON results go.
    #[arg(long, default_value = "bench/results")]
    pub(crate) out_dir: PathBuf,
    /// Data directory for the server (default: a fresh one under the
    /// system temp dir, removed afterwards). Must be on a real disk for the
    /// durability figures to mean anything.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Keep the data directory afterwards.
    #[arg(long)]
    pub(crate) keep_data: bool,
    /// After the measured runs, one extra (unreported) token run at
    /// `--perf-concurrency` with `perf record -g` attached to the server;
    /// the profile is written here.
    #[arg(long)]
    pub(crate) perf_out: Option<PathBuf>,
    /// Clients of the profiled run.
    #[arg(long, default_value_t = 32)]
    pub(crate) perf_concurrency: usize,
    /// Seconds of profile.
    #[arg(long, default_value_t = 5)]
    pub(crate) perf_secs: u64,
    /// The command to record as the one that reproduces the results
    /// (default: this process's own command line).
    #[arg(long)]
    pub(crate) reproduce: Option<String>,
    /// Push this directory's Rego bundle as the tenant's policy before the
    /// runs, so every token decision also evaluates it; results go to
    /// `tokens-<mode>-policy.{md,json}`.
    #[arg(long)]
    pub(crate) policy: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Inline,
    Presigned,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Inline => "inline",
            Mode::Presigned => "presigned",
        }
    }
}
