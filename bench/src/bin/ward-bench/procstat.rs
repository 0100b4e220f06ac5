//! `/proc` readings (no unsafe: the workspace forbids it, so no
//! getrusage): CPU per process and thread, context switches, connections,
//! I/O.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use ward_bench::read_stat;

/// utime + stime in clock ticks and the thread name, from a `stat` file.
pub(crate) fn stat_ticks(path: &Path) -> Option<(String, u64)> {
    read_stat(path).map(|stat| (stat.comm, stat.ticks))
}

pub(crate) fn process_ticks(pid: &str) -> u64 {
    stat_ticks(Path::new(&format!("/proc/{pid}/stat")))
        .map(|(_, t)| t)
        .unwrap_or(0)
}

/// Per-thread (name, ticks) of a process.
pub(crate) fn thread_ticks(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(reading) = stat_ticks(&entry.path().join("stat")) {
            out.insert(tid, reading);
        }
    }
    out
}

/// Voluntary + involuntary context switches summed over a process's threads.
pub(crate) fn context_switches(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut total = 0;
    for entry in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += rest.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

/// Established TCP connections whose remote end is `port` (our clients).
pub(crate) fn established_to(port: u16) -> usize {
    let Ok(text) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    let wanted = format!("{port:04X}");
    text.lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.get(2).and_then(|r| r.rsplit(':').next()) == Some(wanted.as_str())
                && cols.get(3) == Some(&"01")
        })
        .count()
}

/// `/proc/<pid>/io`: rchar, wchar, syscr, syscw.
pub(crate) fn process_io(pid: u32) -> [u64; 4] {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let mut out = [0u64; 4];
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let index = match key {
            "rchar" => 0,
            "wchar" => 1,
            "syscr" => 2,
            "syscw" => 3,
            _ => continue,
        };
        out[index] = value.trim().parse().unwrap_or(0);
    }
    out
}

#[derive(Clone)]
pub(crate) struct Snapshot {
    pub(crate) at: Instant,
    pub(crate) io: [u64; 4],
    pub(crate) server: BTreeMap<u32, (String, u64)>,
    pub(crate) server_total: u64,
    pub(crate) server_ctx: u64,
    pub(crate) bench_total: u64,
}

pub(crate) fn snapshot(pid: u32) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        io: process_io(pid),
        server: thread_ticks(pid),
        server_total: process_ticks(&pid.to_string()),
        server_ctx: context_switches(pid),
        bench_total: process_ticks("self"),
    }
}
