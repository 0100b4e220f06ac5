//! `ward-bench-gateway`: `ward gateway` against nginx as a plain reverse
//! proxy, in front of the same upstream, under the same load, in one run.
//!
//! One invocation starts, each as its own child process:
//! - the upstream: this binary with `--serve-upstream`, a minimal HTTP/1.1
//!   keep-alive server on raw tokio sockets that answers every request with
//!   the same small JSON body;
//! - `ward serve` (the control plane the gateway follows), with a tenant and
//!   one enrolled agent and one DPoP-bound token per client;
//! - nginx (`proxy_pass` to an `upstream {}` block with `keepalive`,
//!   HTTP/1.1 to the upstream, access log on);
//! - `ward gateway` with every check on one POST route: JWT, DPoP proof
//!   (`ath`, `htu`, replay), revocations, kill switches, a feature flag,
//!   scope, agent/user/IP rate limits and a daily quota (all too high to
//!   throttle), and a JSON Schema body; access log on (stdout to a file).
//!
//! The same client then drives the upstream directly, nginx, and the
//! gateway: C keep-alive HTTP/1.1 connections (one per client task, raw
//! tokio sockets, so the client costs as little CPU as possible), each
//! looping on the same POST with the same body; for the gateway each request
//! also carries `Authorization: DPoP <token>` and a fresh proof (unique
//! `jti`, `ath` of the token), all signed before the timer starts. Reports
//! requests/s, latency percentiles, errors (with the first non-2xx body) and
//! the CPU of every process over the measured window (`/proc/<pid>/stat`).
//!
//! A benchmark, not a test: it fails only on a broken set-up.
//!
//! Modules: [`args`] (the command line and the request sent), [`http`]
//! (HTTP/1.1 framing on raw sockets), [`upstream`] (the upstream process),
//! [`procs`] (starting and stopping ward, nginx and the upstream),
//! [`setup`] (agents, tokens and proofs), [`load`] (the clients and the
//! measured window), [`report`] (results, profile, files).

mod args;
mod http;
mod load;
mod procs;
mod report;
mod setup;
mod upstream;

use args::{Args, PATH};
use clap::Parser;
use load::{RunResult, RunSpec, Watched, run_target, sanity, with_children};
use procs::{Proc, start_control_plane, start_gateway, start_nginx, start_upstream};
use report::{Meta, perf_summary, write_results};
use setup::setup_agents;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;
use upstream::serve_upstream_main;
use ward_bench::{BResult, clock_ticks_per_sec, ms, s};

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(addr) = args.serve_upstream.clone() {
        return serve_upstream_main(&addr);
    }
    ward_client::install_tls_provider();
    ward_bench::run_on_runtime("ward-bench-gateway", run(args))
}

async fn run(args: Args) -> BResult<()> {
    for t in &args.targets {
        if !matches!(t.as_str(), "upstream" | "nginx" | "gateway") {
            return Err(format!(
                "unknown target `{t}`: use upstream, nginx, gateway"
            ));
        }
    }
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    let reproduce = args
        .reproduce
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let tmp = std::env::temp_dir().join(format!("ward-bench-gateway-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(s)?;
    }
    std::fs::create_dir_all(&tmp).map_err(s)?;
    let mut procs: Vec<Proc> = Vec::new();
    let outcome = drive(&args, &tmp, &mut procs, reproduce).await;
    for proc in procs.iter_mut().rev() {
        proc.stop();
    }
    if args.keep_tmp || outcome.is_err() {
        eprintln!(
            "ward-bench-gateway: logs and configs kept in {}",
            tmp.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    outcome
}

async fn drive(args: &Args, tmp: &Path, procs: &mut Vec<Proc>, reproduce: String) -> BResult<()> {
    let tick = clock_ticks_per_sec();
    let (upstream_pid, upstream_addr) = start_upstream(tmp, procs)?;
    let (control_pid, cp) = start_control_plane(args, tmp, procs)?;
    eprintln!(
        "ward-bench-gateway: control plane at {}, upstream at {upstream_addr}",
        cp.base
    );
    let agents = setup_agents(&cp, args.clients).await?;
    let (nginx_pid, nginx_addr, nginx_conf) = start_nginx(args, tmp, upstream_addr, procs)?;
    let nginx_pids = with_children(nginx_pid);
    let (gateway_pid, gateway_addr, public_url, gateway_conf) =
        start_gateway(args, tmp, &cp, upstream_addr, procs)?;
    let htu = format!("{public_url}{PATH}");
    eprintln!(
        "ward-bench-gateway: nginx at {nginx_addr} (pids {nginx_pids:?}), gateway at {gateway_addr}"
    );

    sanity(upstream_addr, None).await?;
    sanity(nginx_addr, None).await?;
    let first = agents.first().ok_or("no agents")?;
    sanity(gateway_addr, Some((first, &htu))).await?;

    let mut results: Vec<RunResult> = Vec::new();
    let mut phases = vec![None];
    if args.paced_rate > 0 {
        phases.push(Some(args.paced_rate));
    }
    for paced in phases {
        for target in &args.targets {
            let (addr, proxy, log) = match target.as_str() {
                "upstream" => (upstream_addr, Vec::new(), None),
                "nginx" => (
                    nginx_addr,
                    nginx_pids.clone(),
                    Some(tmp.join("nginx-access.log")),
                ),
                _ => (
                    gateway_addr,
                    vec![gateway_pid],
                    Some(tmp.join("gateway-access.log")),
                ),
            };
            let auth = (target == "gateway").then(|| {
                let rate = match paced {
                    Some(rate) => rate + rate / 20 + 1,
                    None => args.presign_rate.unwrap_or_else(|| {
                        let nginx = results
                            .iter()
                            .find(|r| r.target == "nginx" && r.paced_rate.is_none())
                            .map_or(20_000.0, |r| r.rate);
                        (nginx * 1.3).clamp(5_000.0, 30_000.0) as u64
                    }),
                };
                (agents.as_slice(), htu.clone(), rate)
            });
            let duration = if paced.is_some() {
                args.paced_secs
            } else {
                args.duration_secs
            };
            let label = match paced {
                Some(rate) => format!("{target} @ {rate}/s"),
                None => target.clone(),
            };
            eprintln!(
                "ward-bench-gateway: {label}: {} s warm-up + {duration} s",
                args.warmup_secs
            );
            let (result, _) = run_target(
                args,
                RunSpec {
                    target,
                    addr,
                    auth,
                    watched: Watched {
                        proxy,
                        upstream: upstream_pid,
                        control: control_pid,
                        log,
                    },
                    duration,
                    perf_out: None,
                    paced_rate: paced,
                },
                tick,
            )
            .await?;
            eprintln!(
                "ward-bench-gateway: {label}: {:.0} req/s, p50 {} ms, p99 {} ms, {} errors",
                result.rate,
                ms(result.p50_us),
                ms(result.p99_us),
                result.errors
            );
            results.push(result);
            // Let the previous target's sockets and threads settle.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    let mut perf = None;
    if let Some(out) = &args.perf_out {
        let rate = results
            .iter()
            .find(|r| r.target == "gateway")
            .map_or(10_000.0, |r| r.rate * 1.3)
            .max(2_000.0) as u64;
        eprintln!(
            "ward-bench-gateway: profiled gateway run ({} s of perf)",
            args.perf_secs
        );
        let (run, child) = run_target(
            args,
            RunSpec {
                target: "gateway (under perf)",
                addr: gateway_addr,
                auth: Some((agents.as_slice(), htu.clone(), rate)),
                watched: Watched {
                    proxy: vec![gateway_pid],
                    upstream: upstream_pid,
                    control: control_pid,
                    log: None,
                },
                duration: args.perf_secs + 1,
                perf_out: Some((out.clone(), args.perf_secs)),
                paced_rate: None,
            },
            tick,
        )
        .await?;
        if let Some(mut child) = child {
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
        perf = Some(match perf_summary(out) {
            Some(summary) => (summary, Some(run)),
            None => (
                "`perf` gave no samples (not installed, or not permitted here).\n".to_owned(),
                Some(run),
            ),
        });
    }

    let access_log_lines = std::fs::read_to_string(tmp.join("gateway-access.log"))
        .ok()
        .map(|t| t.lines().filter(|l| l.starts_with('{')).count() as u64);
    let nginx_version = Command::new(&args.nginx_bin)
        .arg("-v")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .trim_start_matches("nginx version: ")
                .to_owned()
        })
        .unwrap_or_default();
    let meta = Meta {
        reproduce,
        nginx_version,
        nginx_conf,
        gateway_conf,
        clients: args.clients,
        perf,
        access_log_lines,
    };
    write_results(args, &results, &meta)
}
