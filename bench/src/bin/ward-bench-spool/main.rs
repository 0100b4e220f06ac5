//! `ward-bench-spool`: appends to the desktop runtime's event spool
//! (`ward_agent::Spool`) on a real file system, with group commit, against
//! two baselines measured in the same run: the same records with one
//! fsync each (the spool fed by one producer, one record in flight, so
//! every group holds one record) and buffered writes of the same bytes
//! with no fsync at all (the upper bound of the disk path).
//!
//! Each spool run opens a fresh spool directory under `--dir`, has
//! `--producers` tokio tasks append ~`--event-bytes` JSON events (each
//! producer with `in_flight` appends outstanding, each append carrying
//! `batch` events), then reopens the directory and drains it through
//! `pending`/`shipped`, checking that every acknowledged event is there
//! exactly once. Reports events/s, latency of one append, events per
//! group commit (`Spool::commits`), and CPU per event.
//!
//! A benchmark, not a test: it fails only on a broken set-up or an event
//! missing after the reopen.

use clap::Parser;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use ward_agent::{Class, Spool, SpoolConfig};
use ward_bench::{BResult, Latencies, clock_ticks_per_sec, machine_info, ms, s, summarize};

#[derive(Parser, Debug)]
#[command(about = "Spool append throughput: group commit vs one fsync per record vs no fsync")]
struct Args {
    /// Events appended in each group-commit run and in the buffered baseline.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Events in the one-fsync-per-record baseline (it is slow).
    #[arg(long, default_value_t = 5_000)]
    sync_events: usize,
    /// Concurrent producers.
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Size of one event's JSON.
    #[arg(long, default_value_t = 300)]
    event_bytes: usize,
    /// Directory the spools are created in (a real file system; default
    /// the system temp directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where the Markdown results go.
    #[arg(long, default_value = "bench/results/spool.md")]
    out: PathBuf,
}

/// One way of writing the events.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    producers: usize,
    in_flight: usize,
    batch: usize,
    events: usize,
}

/// What one run measured.
struct Outcome {
    name: String,
    events: usize,
    seconds: f64,
    latency: Latencies,
    /// Group commits (`fdatasync` calls), for the spool runs.
    commits: Option<u64>,
    cpu_us_per_event: f64,
    drain_per_sec: Option<f64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    ward_bench::run_on_runtime("ward-bench-spool", run(args))
}

async fn run(args: Args) -> BResult<()> {
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let root = base.join(format!("ward-bench-spool-{}", std::process::id()));
    std::fs::create_dir_all(&root).map_err(s)?;
    let fs = ward_bench::command_output("df", &["-T", &root.to_string_lossy()]);
    let fs = fs.lines().nth(1).unwrap_or("unknown").to_owned();
    let p = args.producers;
    let shapes = [
        Shape {
            name: "one fsync per record (1 producer, 1 event per append)",
            producers: 1,
            in_flight: 1,
            batch: 1,
            events: args.sync_events,
        },
        Shape {
            name: "group commit: 1 event per append, 1 in flight per producer",
            producers: p,
            in_flight: 1,
            batch: 1,
            events: args.events,
        },
        Shape {
            name: "group commit: 1 event per append, 32 in flight per producer",
            producers: p,
            in_flight: 32,
            batch: 1,
            events: args.events,
        },
        Shape {
            name: "group commit: 16 events per append, 1 in flight per producer",
            producers: p,
            in_flight: 1,
            batch: 16,
            events: args.events,
        },
    ];
    let mut outcomes = Vec::new();
    for (i, shape) in shapes.iter().enumerate() {
        let dir = root.join(format!("run-{i}"));
        let outcome = spool_run(&dir, *shape, args.event_bytes).await?;
        eprintln!("{}: {:.0} events/s", outcome.name, outcome.rate());
        outcomes.push(outcome);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let buffered = buffered_run(&root.join("buffered"), p, args.events, args.event_bytes)?;
    eprintln!("{}: {:.0} events/s", buffered.name, buffered.rate());
    outcomes.push(buffered);
    let _ = std::fs::remove_dir_all(&root);

    let report = render(&args, &fs, &outcomes);
    print!("{report}");
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).map_err(s)?;
    }
    std::fs::write(&args.out, report).map_err(s)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// A JSON event of about `size` bytes in the checklist's log schema.
fn event(producer: usize, n: usize, size: usize) -> Vec<u8> {
    let head = format!(
        "{{\"ts\":\"2026-12-02T21:00:00.000Z\",\"correlation_id\":\"c-{producer}-{n}\",\
         \"agent_id\":\"agt_0193a1b2c3d4\",\"user_id\":\"alice@example.com\",\
         \"device_id\":\"dev_77\",\"feature\":\"files\",\"action\":\"read\",\
         \"result\":\"allow\",\"duration_ms\":3,\"sampling\":1.0,\"target\":\""
    );
    let pad = size.saturating_sub(head.len() + 2);
    let mut out = head.into_bytes();
    out.extend(std::iter::repeat_n(b'a', pad));
    out.extend_from_slice(b"\"}");
    out
}

/// CPU time of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    ward_bench::read_stat(Path::new("/proc/self/stat"))
        .map_or(0.0, |st| st.ticks as f64 / clock_ticks_per_sec())
}

async fn spool_run(dir: &Path, shape: Shape, size: usize) -> BResult<Outcome> {
    let spool = Spool::open(dir, SpoolConfig::default()).map_err(s)?;
    let streams = shape.producers * shape.in_flight;
    let appends = shape.events.div_ceil(shape.batch);
    let per_stream = appends.div_ceil(streams);
    let (cpu0, started) = (cpu_seconds(), Instant::now());
    let mut tasks = Vec::new();
    for stream in 0..streams {
        let spool = spool.clone();
        let producer = stream % shape.producers;
        let first = stream * per_stream;
        let last = ((stream + 1) * per_stream).min(appends);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(last.saturating_sub(first));
            let mut acked = 0usize;
            for append in first..last {
                let records = (0..shape.batch)
                    .map(|k| {
                        (
                            Class::Audit,
                            event(producer, append * shape.batch + k, size),
                        )
                    })
                    .collect();
                let t = Instant::now();
                let done = spool.append(records).await.map_err(s)?;
                latencies.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                acked += done.seqs.iter().flatten().count();
            }
            Ok::<_, String>((latencies, acked))
        }));
    }
    let mut latencies = Vec::new();
    let mut acked = 0;
    for task in tasks {
        let (lat, n) = task.await.map_err(s)??;
        latencies.extend(lat);
        acked += n;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (commits, cpu) = (spool.commits(), cpu_seconds() - cpu0);
    drop(spool);

    // Every acknowledged event is there after a reopen, once, in order.
    let spool = Spool::open(dir, SpoolConfig::default()).map_err(s)?;
    let drained = Instant::now();
    let mut seen = 0usize;
    loop {
        let batch = spool.pending(10_000, 4 << 20).map_err(s)?;
        let Some(last) = batch.last() else { break };
        if last.seq != (seen + batch.len()) as u64 {
            return Err(format!(
                "after the reopen, record {} is out of place",
                last.seq
            ));
        }
        seen += batch.len();
        spool.shipped(last.seq).map_err(s)?;
    }
    let drain_seconds = drained.elapsed().as_secs_f64();
    if seen != acked {
        return Err(format!("{acked} events acknowledged, {seen} read back"));
    }
    Ok(Outcome {
        name: shape.name.into(),
        events: acked,
        seconds,
        latency: summarize(&mut latencies),
        commits: Some(commits),
        cpu_us_per_event: cpu * 1e6 / acked as f64,
        drain_per_sec: Some(seen as f64 / drain_seconds),
    })
}

/// The same bytes (record header + event) written by `producers` threads
/// into one file through a shared 64 KiB buffer, never synced.
fn buffered_run(dir: &Path, producers: usize, events: usize, size: usize) -> BResult<Outcome> {
    std::fs::create_dir_all(dir).map_err(s)?;
    let file = std::fs::File::create(dir.join("segment")).map_err(s)?;
    let out = Arc::new(Mutex::new(std::io::BufWriter::with_capacity(
        64 << 10,
        file,
    )));
    let per = events.div_ceil(producers);
    let (cpu0, started) = (cpu_seconds(), Instant::now());
    let threads: Vec<_> = (0..producers)
        .map(|producer| {
            let out = Arc::clone(&out);
            std::thread::spawn(move || -> Result<Vec<u32>, String> {
                let mut latencies = Vec::with_capacity(per);
                for n in 0..per {
                    let payload = event(producer, n, size);
                    let t = Instant::now();
                    let mut out = out.lock().map_err(s)?;
                    out.write_all(&[0u8; 24]).map_err(s)?;
                    out.write_all(&payload).map_err(s)?;
                    drop(out);
                    latencies.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for thread in threads {
        latencies.extend(thread.join().map_err(|_| "a writer thread panicked")??);
    }
    out.lock().map_err(s)?.flush().map_err(s)?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    Ok(Outcome {
        name: "buffered writes, no fsync (upper bound)".into(),
        events: per * producers,
        seconds,
        latency: summarize(&mut latencies),
        commits: None,
        cpu_us_per_event: cpu * 1e6 / (per * producers) as f64,
        drain_per_sec: None,
    })
}

fn render(args: &Args, fs: &str, outcomes: &[Outcome]) -> String {
    let (commit, date) = ward_bench::provenance();
    let machine = machine_info();
    let per_fsync = outcomes.first().map_or(1.0, Outcome::rate);
    let buffered = outcomes.last().map_or(1.0, Outcome::rate);
    let mut md = format!(
        "# Spool append benchmark\n\n\
         commit {commit}, {date}; {} cores ({}), kernel {}; file system: `{fs}`\n\n\
         `ward-bench-spool --events {} --sync-events {} --producers {} --event-bytes {}`: \
         audit-class events of {} bytes (JSON) appended to `ward_agent::Spool` with the default \
         configuration (256 MiB bound, 8 MiB segments); each append returns after its \
         `fdatasync`. Every run then reopens its spool and drains it through \
         `pending`/`shipped`, checking that each acknowledged event is there once, in order.\n\n\
         | run | events | events/s | ÷ one fsync per record | ÷ buffered | events per fsync | \
         append p50 ms | p99 ms | CPU µs/event | drain events/s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or("unknown"),
        machine["kernel"].as_str().unwrap_or("unknown"),
        args.events,
        args.sync_events,
        args.producers,
        args.event_bytes,
        args.event_bytes,
    );
    for o in outcomes {
        let drain = o
            .drain_per_sec
            .map_or_else(|| "–".to_owned(), |d| format!("{d:.0}"));
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.1}× | {:.1} % | {} | {} | {} | {:.1} | {} |\n",
            o.name,
            o.events,
            o.rate(),
            o.rate() / per_fsync,
            100.0 * o.rate() / buffered,
            o.commits.map_or_else(
                || "–".to_owned(),
                |c| format!("{:.1}", o.events as f64 / c.max(1) as f64)
            ),
            ms(o.latency.p50),
            ms(o.latency.p99),
            o.cpu_us_per_event,
            drain,
        ));
    }
    md.push_str(
        "\n*events per fsync*: events ÷ the spool's group commits (`Spool::commits`, one \
         `write` and one `fdatasync` each; a segment rolling over adds one), the mean \
         group size. CPU is the whole process's (producers, runtime, writer thread).\n",
    );
    md
}
