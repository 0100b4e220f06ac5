//! The load: client loops on `POST /v1/tokens` or `GET /healthz`, and one
//! measured run with its CPU split.

use crate::args::{Args, Mode};
use crate::procstat::{Snapshot, established_to, snapshot};
use crate::server::Server;
use crate::setup::{Agent, sign_proof};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward_auth::Keypair;
use ward_bench::{BResult, s};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Tokens,
    Healthz,
}

pub(crate) enum Proofs {
    Inline(Keypair),
    Presigned(Vec<String>),
    None,
}

pub(crate) struct Timing {
    pub(crate) start: Instant,
    pub(crate) measure_start: Instant,
    pub(crate) end: Instant,
}

#[derive(Default)]
pub(crate) struct ClientOut {
    pub(crate) ok: u64,
    pub(crate) warm_ok: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) lat_us: Vec<u32>,
    pub(crate) exhausted: bool,
    /// Every 200 answer, warm-up included (for the audit check).
    pub(crate) all_ok: u64,
}

pub(crate) async fn client_loop(
    http: reqwest::Client,
    kind: Kind,
    url: Arc<str>,
    body: String,
    mut proofs: Proofs,
    timing: Arc<Timing>,
) -> ClientOut {
    let mut out = ClientOut {
        lat_us: Vec::with_capacity(64 * 1024),
        ..ClientOut::default()
    };
    let json_type = HeaderValue::from_static("application/json");
    tokio::time::sleep_until(timing.start.into()).await;
    loop {
        if Instant::now() >= timing.end {
            break;
        }
        let request = match kind {
            Kind::Healthz => http.get(&*url),
            Kind::Tokens => {
                let proof = match &mut proofs {
                    Proofs::Inline(key) => match sign_proof(key, &url) {
                        Ok(proof) => proof,
                        Err(e) => {
                            out.errors += 1;
                            out.first_error.get_or_insert(format!("signing: {e}"));
                            continue;
                        }
                    },
                    Proofs::Presigned(list) => match list.pop() {
                        Some(proof) => proof,
                        None => {
                            out.exhausted = true;
                            break;
                        }
                    },
                    Proofs::None => String::new(),
                };
                http.post(&*url)
                    .header(CONTENT_TYPE, json_type.clone())
                    .header("DPoP", proof)
                    .body(body.clone())
            }
        };
        let t0 = Instant::now();
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Ok(_) if status.as_u16() == 200 => Ok(()),
                    Ok(bytes) => Err(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(600)])
                    )),
                    Err(e) => Err(format!("reading the body: {e}")),
                }
            }
            Err(e) => Err(format!("transport: {e}")),
        };
        let micros = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        match outcome {
            Ok(()) => {
                out.all_ok += 1;
                if t0 >= timing.measure_start {
                    out.ok += 1;
                    out.lat_us.push(micros);
                } else {
                    out.warm_ok += 1;
                }
            }
            Err(message) => {
                out.errors += 1;
                let transport = message.starts_with("transport");
                out.first_error.get_or_insert(message);
                if transport {
                    // Back off a little so a dead server does not spin us.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    out
}

#[derive(Clone, Debug)]
pub(crate) struct RunResult {
    pub(crate) kind: Kind,
    pub(crate) clients: usize,
    pub(crate) profiled: bool,
    pub(crate) window_secs: f64,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) rate: f64,
    pub(crate) p50_us: u32,
    pub(crate) p90_us: u32,
    pub(crate) p99_us: u32,
    pub(crate) p999_us: u32,
    pub(crate) max_us: u32,
    pub(crate) mean_us: f64,
    pub(crate) server_cpu_secs: f64,
    pub(crate) bench_cpu_secs: f64,
    pub(crate) server_threads: BTreeMap<String, f64>,
    pub(crate) server_ctx_switches: u64,
    pub(crate) connections: usize,
    pub(crate) exhausted_clients: usize,
    pub(crate) presign_secs: f64,
    pub(crate) proofs_signed: u64,
    pub(crate) all_ok: u64,
    /// fsync/fdatasync calls on ext4 by the server during the window.
    pub(crate) fsyncs: Option<u64>,
    /// Server rchar, wchar, syscr, syscw over the window.
    pub(crate) io: [u64; 4],
}

pub(crate) struct Bench<'a> {
    pub(crate) args: &'a Args,
    pub(crate) server: &'a Server,
    pub(crate) port: u16,
    pub(crate) agents: Vec<Agent>,
    pub(crate) tick: f64,
}

impl Bench<'_> {
    pub(crate) async fn run(
        &self,
        kind: Kind,
        clients: usize,
        profiled: bool,
    ) -> BResult<RunResult> {
        let args = self.args;
        let duration = match kind {
            Kind::Tokens if profiled => args.perf_secs + 1,
            Kind::Tokens => args.duration_secs,
            Kind::Healthz => args.healthz_secs,
        };
        let warmup = Duration::from_secs(args.warmup_secs);
        let token_url = format!("{}/v1/tokens", self.server.base);
        let url: Arc<str> = match kind {
            Kind::Tokens => Arc::from(token_url.as_str()),
            Kind::Healthz => Arc::from(format!("{}/healthz", self.server.base).as_str()),
        };
        let mut presigned: Option<Vec<Vec<String>>> = None;
        let mut presign_secs = 0.0;
        let mut proofs_signed = 0;
        if kind == Kind::Tokens && args.mode == Mode::Presigned {
            let total = args.presign_rate * (args.warmup_secs + duration);
            // One client cannot beat ~8,000 round trips/s on loopback.
            let per_client = (total as usize)
                .div_ceil(clients)
                .min(8_000 * (args.warmup_secs + duration) as usize)
                + 16;
            let started = Instant::now();
            let agents = &self.agents;
            let url = token_url.clone();
            let first = &agents[..clients.min(agents.len())];
            presigned = Some(ward_bench::presign(first, per_client, |agent| {
                sign_proof(&agent.key, &url)
            })?);
            presign_secs = started.elapsed().as_secs_f64();
            proofs_signed = (per_client * clients) as u64;
            if presign_secs + (args.warmup_secs + duration) as f64 > 55.0 {
                eprintln!(
                    "warning: presigning took {presign_secs:.1} s; proofs may pass the server's 60 s max age"
                );
            }
        }
        let start = Instant::now() + Duration::from_millis(100);
        let timing = Arc::new(Timing {
            start,
            measure_start: start + warmup,
            end: start + warmup + Duration::from_secs(duration),
        });
        let mut tasks = Vec::with_capacity(clients);
        let mut presigned = presigned.map(Vec::into_iter);
        for i in 0..clients {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .build()
                .map_err(s)?;
            let agent = &self.agents[i];
            let proofs = match (kind, &mut presigned) {
                (Kind::Healthz, _) => Proofs::None,
                (Kind::Tokens, Some(lists)) => Proofs::Presigned(lists.next().unwrap_or_default()),
                (Kind::Tokens, None) => Proofs::Inline(agent.key.clone()),
            };
            tasks.push(tokio::spawn(client_loop(
                http,
                kind,
                url.clone(),
                agent.body.clone(),
                proofs,
                Arc::clone(&timing),
            )));
        }
        // Sampler: CPU at the timer's start and end, connections midway.
        let pid = self.server.pid;
        let port = self.port;
        let sample_timing = Arc::clone(&timing);
        let perf = if profiled {
            args.perf_out.clone()
        } else {
            None
        };
        let perf_secs = args.perf_secs;
        let window = duration;
        let sampler = tokio::spawn(async move {
            tokio::time::sleep_until(sample_timing.measure_start.into()).await;
            let before = snapshot(pid);
            // fsyncs of the data directory (ext4 tracepoint; needs perf).
            let fsync_child = (kind == Kind::Tokens && !profiled)
                .then(|| {
                    Command::new("perf")
                        .args(["stat", "-x", ",", "-e", "ext4:ext4_sync_file_enter", "-p"])
                        .arg(pid.to_string())
                        .args(["--", "sleep", &window.to_string()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .ok()
                })
                .flatten();
            let perf_child = perf.and_then(|out| {
                Command::new("perf")
                    .args([
                        "record",
                        "--call-graph",
                        "dwarf,16384",
                        "-F",
                        "499",
                        "-p",
                        &pid.to_string(),
                        "-o",
                    ])
                    .arg(out)
                    .args(["--", "sleep", &perf_secs.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| eprintln!("warning: cannot run perf: {e}"))
                    .ok()
            });
            let mid =
                sample_timing.measure_start + (sample_timing.end - sample_timing.measure_start) / 2;
            tokio::time::sleep_until(mid.into()).await;
            let connections = established_to(port);
            tokio::time::sleep_until(sample_timing.end.into()).await;
            let after = snapshot(pid);
            (before, after, connections, perf_child, fsync_child)
        });
        let mut outs = Vec::with_capacity(clients);
        for task in tasks {
            outs.push(task.await.map_err(s)?);
        }
        let (before, after, connections, perf_child, fsync_child) = sampler.await.map_err(s)?;
        if let Some(mut child) = perf_child {
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
        let fsyncs = match fsync_child {
            Some(child) => tokio::task::spawn_blocking(move || child.wait_with_output())
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|o| String::from_utf8(o.stderr).ok())
                .and_then(|text| {
                    text.lines()
                        .find(|l| l.contains("ext4_sync_file_enter"))
                        .and_then(|l| l.split(',').next())
                        .and_then(|n| n.trim().parse::<u64>().ok())
                }),
            None => None,
        };
        let mut lat: Vec<u32> = Vec::new();
        let mut result = RunResult {
            kind,
            clients,
            profiled,
            window_secs: (after.at - before.at).as_secs_f64(),
            ok: 0,
            errors: 0,
            first_error: None,
            rate: 0.0,
            p50_us: 0,
            p90_us: 0,
            p99_us: 0,
            p999_us: 0,
            max_us: 0,
            mean_us: 0.0,
            server_cpu_secs: after.server_total.saturating_sub(before.server_total) as f64
                / self.tick,
            bench_cpu_secs: after.bench_total.saturating_sub(before.bench_total) as f64 / self.tick,
            server_threads: BTreeMap::new(),
            server_ctx_switches: after.server_ctx.saturating_sub(before.server_ctx),
            connections,
            exhausted_clients: 0,
            presign_secs,
            proofs_signed,
            all_ok: 0,
            fsyncs,
            io: [0, 1, 2, 3].map(|i| after.io[i].saturating_sub(before.io[i])),
        };
        for out in outs {
            result.ok += out.ok;
            result.all_ok += out.all_ok;
            result.errors += out.errors;
            if result.first_error.is_none() {
                result.first_error = out.first_error;
            }
            result.exhausted_clients += usize::from(out.exhausted);
            lat.extend_from_slice(&out.lat_us);
            let _ = out.warm_ok;
        }
        let summary = ward_bench::summarize(&mut lat);
        let window = (timing.end - timing.measure_start).as_secs_f64();
        result.rate = result.ok as f64 / window;
        result.p50_us = summary.p50;
        result.p90_us = summary.p90;
        result.p99_us = summary.p99;
        result.p999_us = summary.p999;
        result.max_us = summary.max;
        result.mean_us = summary.mean;
        result.server_threads = thread_split(&before, &after, self.server.writer_tid, self.tick);
        Ok(result)
    }
}

/// Server CPU seconds per thread group over the window.
pub(crate) fn thread_split(
    before: &Snapshot,
    after: &Snapshot,
    writer_tid: Option<u32>,
    tick: f64,
) -> BTreeMap<String, f64> {
    let mut groups: BTreeMap<String, f64> = BTreeMap::new();
    let mut counted = 0u64;
    for (tid, (comm, ticks)) in &after.server {
        let earlier = before.server.get(tid).map(|(_, t)| *t).unwrap_or(0);
        let delta = ticks.saturating_sub(earlier);
        counted += delta;
        let label = if comm.starts_with("tokio-r") {
            match writer_tid {
                Some(w) if *tid < w => "tokio workers (async: HTTP, JSON, DPoP verify, signing)",
                Some(_) => "tokio blocking pool (store.read: agent lookup)",
                None => "tokio threads",
            }
        } else if comm.starts_with("ward-store-wri") {
            "ward-store-writer (SQLite insert, audit hash chain, fsync)"
        } else {
            "other threads"
        };
        *groups.entry(label.to_owned()).or_default() += delta as f64 / tick;
    }
    let total = after.server_total.saturating_sub(before.server_total);
    if total > counted {
        *groups.entry("exited threads".to_owned()).or_default() += (total - counted) as f64 / tick;
    }
    groups
}
