//! The load: client connections looping on the request, and the CPU of
//! every process over the measured window.

use crate::args::{Args, BODY, PATH};
use crate::http::{read_message, write_all};
use crate::setup::{Agent, sign};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use ward_bench::{BResult, read_stat, s};

pub(crate) struct Timing {
    pub(crate) start: Instant,
    pub(crate) measure_start: Instant,
    pub(crate) end: Instant,
}

#[derive(Default)]
pub(crate) struct ClientOut {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) lat_us: Vec<u32>,
    pub(crate) exhausted: bool,
    pub(crate) reconnects: u64,
    pub(crate) requests_total: u64,
}

/// What a client sends: the fixed head (request line, Host, Content-Type,
/// Content-Length), optional credentials, the body.
pub(crate) struct Shape {
    pub(crate) addr: SocketAddr,
    pub(crate) head: Vec<u8>,
    pub(crate) body: &'static [u8],
}

pub(crate) fn shape(addr: SocketAddr) -> Shape {
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ward-bench-gateway\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        BODY.len()
    );
    Shape {
        addr,
        head: head.into_bytes(),
        body: BODY.as_bytes(),
    }
}

/// One request and its answer on an open connection: status and, for a
/// non-2xx answer, the start of the body.
pub(crate) async fn exchange(
    stream: &TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
    scratch: &mut [u8],
) -> Result<(u16, Option<String>, bool), String> {
    write_all(stream, request)
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let (head, body) = match read_message(stream, buf, scratch, true).await {
        Ok(Some(message)) => message,
        Ok(None) => return Err("transport: connection closed".into()),
        Err(e) => return Err(format!("transport: {e}")),
    };
    let detail = (!(200..300).contains(&head.status)).then(|| {
        let text = String::from_utf8_lossy(&buf[body.clone()]);
        text.chars().take(600).collect::<String>()
    });
    buf.drain(..body.end);
    Ok((head.status, detail, head.close))
}

pub(crate) async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

pub(crate) async fn client_loop(
    shape: Arc<Shape>,
    auth: Option<String>,
    mut proofs: Option<Vec<String>>,
    timing: Arc<Timing>,
    pace: Option<(Duration, Duration)>,
) -> ClientOut {
    let mut out = ClientOut {
        lat_us: Vec::with_capacity(128 * 1024),
        ..ClientOut::default()
    };
    let mut request = Vec::with_capacity(4096);
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut scratch = vec![0u8; 16 * 1024];
    tokio::time::sleep_until(timing.start.into()).await;
    let mut stream: Option<TcpStream> = None;
    // Paced: send at start + offset + k * interval. Latency counts from the
    // actual send (tokio's timer wakes up to ~1 ms late, which would
    // otherwise be charged to the target); at these rates a connection is
    // idle long before its next turn, so nothing queues in the client.
    let mut next = pace.map(|(_, offset)| timing.start + offset);
    while Instant::now() < timing.end {
        if let Some(at) = next {
            tokio::time::sleep_until(at.into()).await;
            if at >= timing.end {
                break;
            }
        }
        request.clear();
        request.extend_from_slice(&shape.head);
        if let Some(auth) = &auth {
            request.extend_from_slice(auth.as_bytes());
        }
        if let Some(list) = &mut proofs {
            let Some(proof) = list.pop() else {
                out.exhausted = true;
                break;
            };
            request.extend_from_slice(b"DPoP: ");
            request.extend_from_slice(proof.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(shape.body);
        let t0 = Instant::now();
        if let (Some(at), Some((interval, _))) = (next.as_mut(), pace) {
            *at += interval;
        }
        if stream.is_none() {
            match connect(shape.addr).await {
                Ok(s) => {
                    stream = Some(s);
                    if out.requests_total > 0 {
                        out.reconnects += 1;
                    }
                }
                Err(e) => {
                    out.errors += 1;
                    out.first_error.get_or_insert(format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(conn) = &stream else { continue };
        buf.clear();
        let outcome = exchange(conn, &request, &mut buf, &mut scratch).await;
        let micros = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        out.requests_total += 1;
        let measured = t0 >= timing.measure_start;
        match outcome {
            Ok((status, None, close)) => {
                if measured {
                    out.ok += 1;
                    out.lat_us.push(micros);
                }
                if close {
                    stream = None;
                }
                let _ = status;
            }
            Ok((status, Some(body), close)) => {
                out.errors += 1;
                out.first_error
                    .get_or_insert(format!("HTTP {status}: {body}"));
                if close {
                    stream = None;
                }
            }
            Err(message) => {
                out.errors += 1;
                out.first_error.get_or_insert(message);
                stream = None;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    out
}

/// utime + stime in clock ticks, and the parent pid, of a process.
/// utime + stime in clock ticks and the parent of a process.
pub(crate) fn proc_stat(pid: u32) -> Option<(u64, u32)> {
    read_stat(Path::new(&format!("/proc/{pid}/stat"))).map(|stat| (stat.ticks, stat.ppid))
}

pub(crate) fn self_ticks() -> u64 {
    let pid = std::process::id();
    proc_stat(pid).map(|(t, _)| t).unwrap_or(0)
}

/// A process and its direct children (nginx's master and workers).
pub(crate) fn with_children(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if proc_stat(child).is_some_and(|(_, ppid)| ppid == pid) {
                out.push(child);
            }
        }
    }
    out
}

pub(crate) fn ticks_of(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|&p| proc_stat(p))
        .map(|(t, _)| t)
        .sum()
}

/// The processes whose CPU a run reports.
pub(crate) struct Watched {
    pub(crate) proxy: Vec<u32>,
    pub(crate) upstream: u32,
    pub(crate) control: u32,
    /// A file whose growth over the window is reported (the access log).
    pub(crate) log: Option<PathBuf>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct RunResult {
    pub(crate) target: String,
    /// The fixed offered rate of a paced run.
    pub(crate) paced_rate: Option<u64>,
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
    pub(crate) proxy_cpu_secs: f64,
    pub(crate) upstream_cpu_secs: f64,
    pub(crate) control_cpu_secs: f64,
    pub(crate) client_cpu_secs: f64,
    pub(crate) reconnects: u64,
    pub(crate) exhausted_clients: usize,
    pub(crate) presign_secs: f64,
    pub(crate) proofs_presigned: u64,
    pub(crate) log_bytes: u64,
}

pub(crate) struct RunSpec<'a> {
    pub(crate) target: &'a str,
    pub(crate) addr: SocketAddr,
    /// Gateway only: the agents and the `htu` to sign for.
    pub(crate) auth: Option<(&'a [Agent], String, u64)>,
    pub(crate) watched: Watched,
    pub(crate) duration: u64,
    pub(crate) perf_out: Option<(PathBuf, u64)>,
    pub(crate) paced_rate: Option<u64>,
}

pub(crate) async fn run_target(
    args: &Args,
    spec: RunSpec<'_>,
    tick: f64,
) -> BResult<(RunResult, Option<Child>)> {
    let mut result = RunResult {
        target: spec.target.to_owned(),
        paced_rate: spec.paced_rate,
        ..RunResult::default()
    };
    let clients = args.clients;
    let total_secs = args.warmup_secs + spec.duration;
    let mut lists: Vec<Option<Vec<String>>> = (0..clients).map(|_| None).collect();
    let mut auths: Vec<Option<String>> = (0..clients).map(|_| None).collect();
    if let Some((agents, htu, rate)) = &spec.auth {
        let per_client = ((rate * total_secs) as usize).div_ceil(clients) + 64;
        eprintln!(
            "ward-bench-gateway: presigning {} proofs ({per_client} per client) for {htu}",
            per_client * clients
        );
        let started = Instant::now();
        let signed = ward_bench::presign(agents, per_client, |agent| sign(agent, htu))?;
        result.presign_secs = started.elapsed().as_secs_f64();
        result.proofs_presigned = (per_client * clients) as u64;
        eprintln!(
            "ward-bench-gateway: presigned in {:.1} s",
            result.presign_secs
        );
        if result.presign_secs + total_secs as f64 + 2.0 > args.proof_max_age_secs as f64 {
            eprintln!(
                "warning: presigning plus the run exceed the gateway's proof max age ({} s); raise --proof-max-age-secs",
                args.proof_max_age_secs
            );
        }
        for (i, list) in signed.into_iter().enumerate() {
            lists[i] = Some(list);
            auths[i] = Some(format!("Authorization: DPoP {}\r\n", agents[i].token));
        }
    }
    let shape = Arc::new(shape(spec.addr));
    let start = Instant::now() + Duration::from_millis(200);
    let timing = Arc::new(Timing {
        start,
        measure_start: start + Duration::from_secs(args.warmup_secs),
        end: start + Duration::from_secs(total_secs),
    });
    let mut tasks = Vec::with_capacity(clients);
    for (i, (auth, proofs)) in auths.into_iter().zip(lists).enumerate() {
        let pace = spec.paced_rate.filter(|&r| r > 0).map(|rate| {
            let interval = Duration::from_secs_f64(clients as f64 / rate as f64);
            (interval, interval.mul_f64(i as f64 / clients as f64))
        });
        tasks.push(tokio::spawn(client_loop(
            Arc::clone(&shape),
            auth,
            proofs,
            Arc::clone(&timing),
            pace,
        )));
    }
    let watched = spec.watched;
    let perf_out = spec.perf_out;
    let sample_timing = Arc::clone(&timing);
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(sample_timing.measure_start.into()).await;
        let log_len = |p: &Option<PathBuf>| {
            p.as_ref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or(0, |m| m.len())
        };
        let before = (
            Instant::now(),
            ticks_of(&watched.proxy),
            ticks_of(&[watched.upstream]),
            ticks_of(&[watched.control]),
            self_ticks(),
            log_len(&watched.log),
        );
        let perf = perf_out.and_then(|(out, secs)| {
            let pid = watched.proxy.first().copied().unwrap_or(0);
            Command::new("perf")
                .args(["record", "--call-graph", "dwarf,16384", "-F", "499", "-p"])
                .arg(pid.to_string())
                .arg("-o")
                .arg(out)
                .args(["--", "sleep", &secs.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| eprintln!("warning: cannot run perf: {e}"))
                .ok()
        });
        tokio::time::sleep_until(sample_timing.end.into()).await;
        let after = (
            Instant::now(),
            ticks_of(&watched.proxy),
            ticks_of(&[watched.upstream]),
            ticks_of(&[watched.control]),
            self_ticks(),
            log_len(&watched.log),
        );
        (before, after, perf)
    });
    let mut outs = Vec::with_capacity(clients);
    for task in tasks {
        outs.push(task.await.map_err(s)?);
    }
    let (before, after, perf) = sampler.await.map_err(s)?;
    result.window_secs = (after.0 - before.0).as_secs_f64();
    result.proxy_cpu_secs = after.1.saturating_sub(before.1) as f64 / tick;
    result.upstream_cpu_secs = after.2.saturating_sub(before.2) as f64 / tick;
    result.control_cpu_secs = after.3.saturating_sub(before.3) as f64 / tick;
    result.client_cpu_secs = after.4.saturating_sub(before.4) as f64 / tick;
    result.log_bytes = after.5.saturating_sub(before.5);
    let mut lat: Vec<u32> = Vec::new();
    for out in outs {
        result.ok += out.ok;
        result.errors += out.errors;
        result.reconnects += out.reconnects;
        if result.first_error.is_none() {
            result.first_error = out.first_error;
        }
        result.exhausted_clients += usize::from(out.exhausted);
        lat.extend_from_slice(&out.lat_us);
        let _ = out.requests_total;
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
    Ok((result, perf))
}

/// One request through a target before its run, so a broken set-up fails
/// with the answer instead of a table of errors.
pub(crate) async fn sanity(addr: SocketAddr, auth: Option<(&Agent, &str)>) -> BResult<()> {
    let shape = shape(addr);
    let mut request = shape.head.clone();
    if let Some((agent, htu)) = auth {
        let proof = sign(agent, htu)?;
        request.extend_from_slice(
            format!("Authorization: DPoP {}\r\nDPoP: {proof}\r\n", agent.token).as_bytes(),
        );
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(shape.body);
    let stream = connect(addr).await.map_err(s)?;
    let mut buf = Vec::new();
    let mut scratch = vec![0u8; 16 * 1024];
    match exchange(&stream, &request, &mut buf, &mut scratch).await? {
        (_, None, _) => Ok(()),
        (status, Some(body), _) => Err(format!("sanity request to {addr}: HTTP {status}: {body}")),
    }
}
