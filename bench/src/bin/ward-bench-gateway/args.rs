//! The command line, and the request every client sends.

use clap::Parser;
use std::path::PathBuf;

/// The scope every token asks for; `reader` in `examples/matrix.yaml` has it.
pub(crate) const SCOPE: &str = "files:read:/home/alice/projects/x";
/// The request path; the route's scope template turns it into [`SCOPE`].
pub(crate) const PATH: &str = "/projects/alice/x/search";
/// The request body; valid against `examples/contracts/search.json`.
pub(crate) const BODY: &str = r#"{"query":"fn main","limit":20,"filters":{"extension":"rs"}}"#;
/// What the upstream answers to every request.
pub(crate) const UPSTREAM_BODY: &str = r#"{"results":[{"path":"src/main.rs","line":1}],"total":1}"#;

/// Gateway (full checks) versus nginx (plain reverse proxy), same upstream,
/// same load.
#[derive(Parser, Debug)]
#[command(name = "ward-bench-gateway")]
#[command(args_override_self = true)]
pub(crate) struct Args {
    /// The `ward` binary (build it with `--release`).
    #[arg(long, default_value = "target/release/ward")]
    pub(crate) ward_bin: PathBuf,
    /// Capability matrix given to `ward serve`.
    #[arg(long, default_value = "examples/matrix.yaml")]
    pub(crate) matrix: PathBuf,
    /// JSON Schema of the gateway route's body.
    #[arg(long, default_value = "examples/contracts/search.json")]
    pub(crate) schema: PathBuf,
    /// The nginx binary.
    #[arg(long, default_value = "nginx")]
    pub(crate) nginx_bin: String,
    /// nginx `worker_processes` (the gateway's tokio runtime has one worker
    /// per core, 2 here).
    #[arg(long, default_value_t = 2)]
    pub(crate) nginx_workers: usize,
    /// Concurrent keep-alive connections, one per client task.
    #[arg(long, default_value_t = 64)]
    pub(crate) clients: usize,
    /// Measured seconds per target.
    #[arg(long, default_value_t = 10)]
    pub(crate) duration_secs: u64,
    /// Unmeasured seconds before each target's timer starts.
    #[arg(long, default_value_t = 2)]
    pub(crate) warmup_secs: u64,
    /// Proofs presigned for the gateway run = this rate x (warm-up +
    /// duration). Default: 1.3 x nginx's measured rate (at least 5,000/s).
    #[arg(long)]
    pub(crate) presign_rate: Option<u64>,
    /// Then each target again at this fixed total rate (requests/s over all
    /// connections, evenly spaced), where nothing saturates: the latency a
    /// proxy adds when it is not queueing. 0 skips the paced runs.
    #[arg(long, default_value_t = 2000)]
    pub(crate) paced_rate: u64,
    /// Measured seconds of each paced run.
    #[arg(long, default_value_t = 5)]
    pub(crate) paced_secs: u64,
    /// Which targets, in order.
    #[arg(long, value_delimiter = ',', default_value = "upstream,nginx,gateway")]
    pub(crate) targets: Vec<String>,
    /// The gateway's `proof_max_age_secs` (its default, 60). Presigned
    /// proofs age during a run; a run that could outlive them is warned of.
    #[arg(long, default_value_t = 60)]
    pub(crate) proof_max_age_secs: u64,
    /// After the measured runs, one extra (unreported) gateway run with
    /// `perf record --call-graph dwarf` attached to the gateway; the profile
    /// is written here and summarised in the results.
    #[arg(long)]
    pub(crate) perf_out: Option<PathBuf>,
    /// Seconds of profile.
    #[arg(long, default_value_t = 5)]
    pub(crate) perf_secs: u64,
    /// Where `gateway.md` and `gateway.json` go.
    #[arg(long, default_value = "bench/results")]
    pub(crate) out_dir: PathBuf,
    /// The command recorded as the one that reproduces the results.
    #[arg(long)]
    pub(crate) reproduce: Option<String>,
    /// Keep the temporary directory (configs, logs, data) afterwards.
    #[arg(long)]
    pub(crate) keep_tmp: bool,
    /// Internal: run only the upstream server on this address.
    #[arg(long, hide = true)]
    pub(crate) serve_upstream: Option<String>,
}
