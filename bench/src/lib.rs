//! What Ward's benchmark binaries share: running on a tokio runtime,
//! `/proc` readings, small helpers for timing and percentiles, describing
//! the machine a result was measured on, and enrolling agents.

use serde_json::{Value, json};
use std::future::Future;
use std::path::Path;
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

/// What a benchmark step returns: its value, or why the set-up broke.
pub type BResult<T> = Result<T, String>;

/// Runs `main` on a multi-threaded tokio runtime; an error is printed
/// after `name: ` and exits with 1.
pub fn run_on_runtime(name: &str, main: impl Future<Output = BResult<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{name}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// One reading of a `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat`
/// file (no unsafe: the workspace forbids it, so no getrusage).
pub struct Stat {
    /// The process's or thread's name.
    pub comm: String,
    /// The parent process.
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
}

/// Reads a `stat` file; `None` if it is gone or unreadable.
pub fn read_stat(path: &Path) -> Option<Stat> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 2..)?.split_whitespace().collect();
    // Field 3 (state) is index 0; ppid is field 4, utime 14, stime 15.
    let ppid: u32 = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Stat {
        comm,
        ppid,
        ticks: utime + stime,
    })
}

/// `per_item` values for each item (proofs, signed before the timer
/// starts), made by `sign` on every core.
pub fn presign<T: Sync>(
    items: &[T],
    per_item: usize,
    sign: impl Fn(&T) -> BResult<String> + Sync,
) -> BResult<Vec<Vec<String>>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(items.len().max(1));
    let chunk = items.len().div_ceil(threads).max(1);
    let mut out: Vec<Vec<String>> = vec![Vec::new(); items.len()];
    let sign = &sign;
    std::thread::scope(|scope| -> BResult<()> {
        let mut handles = Vec::new();
        for (lists, owners) in out.chunks_mut(chunk).zip(items.chunks(chunk)) {
            handles.push(scope.spawn(move || -> BResult<()> {
                for (list, item) in lists.iter_mut().zip(owners) {
                    list.reserve_exact(per_item);
                    for _ in 0..per_item {
                        list.push(sign(item)?);
                    }
                }
                Ok(())
            }));
        }
        for handle in handles {
            handle
                .join()
                .map_err(|_| "a presigning thread panicked".to_owned())??;
        }
        Ok(())
    })?;
    Ok(out)
}

/// Any displayable error as the benchmarks' error string.
pub fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The `q` quantile (0..=1) of sorted microsecond latencies.
pub fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Microseconds as milliseconds with two decimals.
pub fn ms(us: u32) -> String {
    format!("{:.2}", f64::from(us) / 1000.0)
}

/// A command's trimmed standard output, empty when it fails.
pub fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Kernel clock ticks per second (for `/proc/*/stat` CPU times).
pub fn clock_ticks_per_sec() -> f64 {
    command_output("getconf", &["CLK_TCK"])
        .parse::<f64>()
        .unwrap_or(100.0)
}

/// Cores, CPU model, kernel and memory of this machine.
pub fn machine_info() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .map(|l| l.trim_start_matches("MemTotal:").trim().to_owned())
        .unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "memory": mem,
    })
}

/// Creates tenant `tenant` with an admin API token (using the bootstrap
/// token), pushes the `.rego` files of `policy` as its policy if given, and
/// enrols `count` active agents of profile `reader` (release 1.4.0 on
/// Linux, so the example policies grant). Returns each agent's id and key.
pub async fn enrol_agents(
    base: &str,
    bootstrap: &str,
    tenant: &str,
    count: usize,
    policy: Option<&std::path::Path>,
) -> Result<Vec<(String, ward_auth::Keypair)>, String> {
    use ward_api::{CreateApiToken, CreateEnrollToken, DeviceInfo, DeviceKey, EnrollAgent};
    use ward_client::Client;
    let admin = Client::new(base, Some(bootstrap.to_owned())).map_err(s)?;
    let created = admin.create_tenant(tenant).await.map_err(s)?;
    let api = admin
        .create_api_token(&CreateApiToken {
            tenant: created.id.clone(),
            role: "admin".into(),
            description: Some(format!("benchmark `{tenant}`")),
        })
        .await
        .map_err(s)?;
    let tenant_admin = Client::new(base, Some(api.token)).map_err(s)?;
    if let Some(dir) = policy {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(s)? {
            let path = entry.map_err(s)?.path();
            if path.extension().is_some_and(|e| e == "rego") {
                let text = std::fs::read_to_string(&path).map_err(s)?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.push(ward_api::PolicyFile { path: name, text });
            }
        }
        let pushed = tenant_admin
            .push_policy(&ward_api::PushPolicy { files })
            .await
            .map_err(|e| format!("policy push failed: {e}"))?;
        eprintln!("benchmark: policy bundle {} active", pushed.hash);
    }
    let anonymous = Client::new(base, None).map_err(s)?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let enroll = tenant_admin
            .create_enroll_token(&CreateEnrollToken {
                owner: format!("bench{i}@example.com"),
                profile: "reader".into(),
                ttl_seconds: None,
            })
            .await
            .map_err(s)?;
        let key = ward_auth::Keypair::generate().map_err(s)?;
        let jwk = key.public_jwk();
        let agent = anonymous
            .enroll(&EnrollAgent {
                enroll_token: enroll.token,
                device_key: DeviceKey {
                    kty: jwk.kty,
                    crv: jwk.crv,
                    x: jwk.x,
                },
                device: DeviceInfo {
                    os: "linux 6.1".into(),
                    agent_version: "1.4.0".into(),
                    host_id: format!("{tenant}-host-{i}"),
                },
            })
            .await
            .map_err(s)?;
        if agent.state != "active" {
            return Err(format!(
                "agent {} enrolled as `{}`, not active",
                agent.id, agent.state
            ));
        }
        out.push((agent.id, key));
    }
    Ok(out)
}

/// Percentiles, maximum and mean of microsecond latencies.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latencies {
    /// Median.
    pub p50: u32,
    /// 90th percentile.
    pub p90: u32,
    /// 99th percentile.
    pub p99: u32,
    /// 99.9th percentile.
    pub p999: u32,
    /// Maximum.
    pub max: u32,
    /// Mean.
    pub mean: f64,
}

/// Sorts `lat` and summarises it.
pub fn summarize(lat: &mut [u32]) -> Latencies {
    lat.sort_unstable();
    Latencies {
        p50: percentile(lat, 0.50),
        p90: percentile(lat, 0.90),
        p99: percentile(lat, 0.99),
        p999: percentile(lat, 0.999),
        max: lat.last().copied().unwrap_or(0),
        mean: if lat.is_empty() {
            0.0
        } else {
            lat.iter().map(|&v| f64::from(v)).sum::<f64>() / lat.len() as f64
        },
    }
}

/// Stops `child`: SIGTERM (a graceful shutdown), then SIGKILL if it has not
/// exited after 10 s. Returns whether it stopped on SIGTERM.
pub fn terminate(child: &mut Child) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// The commit the results come from, marked when the working tree has
/// uncommitted changes, and the time now (RFC 3339): the header of every
/// result file.
pub fn provenance() -> (String, String) {
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty =
        !command_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let commit = if dirty {
        format!("{commit} (with uncommitted changes)")
    } else {
        commit
    };
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    (commit, date)
}
