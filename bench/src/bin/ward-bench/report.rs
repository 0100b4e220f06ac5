//! Reporting: one run as JSON, and the result files.

use crate::args::{Args, Mode, SCOPE};
use crate::load::{Kind, RunResult};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use ward_bench::{BResult, command_output, machine_info, ms, s};

pub(crate) fn filesystem_of(path: &Path) -> String {
    let out = command_output("df", &["-T", &path.display().to_string()]);
    out.lines()
        .nth(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            format!(
                "{} ({})",
                cols.get(1).copied().unwrap_or("?"),
                cols.first().copied().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn result_json(r: &RunResult) -> Value {
    json!({
        "kind": match r.kind { Kind::Tokens => "tokens", Kind::Healthz => "healthz" },
        "clients": r.clients,
        "profiled": r.profiled,
        "window_secs": r.window_secs,
        "ok": r.ok,
        "errors": r.errors,
        "first_error": r.first_error,
        "per_sec": r.rate,
        "latency_us": { "p50": r.p50_us, "p90": r.p90_us, "p99": r.p99_us, "p999": r.p999_us,
            "max": r.max_us, "mean": r.mean_us },
        "server_cpu_secs": r.server_cpu_secs,
        "bench_cpu_secs": r.bench_cpu_secs,
        "server_cpu_by_thread_secs": r.server_threads,
        "server_context_switches": r.server_ctx_switches,
        "client_connections_seen": r.connections,
        "exhausted_clients": r.exhausted_clients,
        "presign_secs": r.presign_secs,
        "proofs_presigned": r.proofs_signed,
        "server_fsyncs": r.fsyncs,
        "server_io": { "rchar": r.io[0], "wchar": r.io[1], "syscr": r.io[2], "syscw": r.io[3] },
    })
}
#[allow(clippy::too_many_arguments)]
pub(crate) fn report(
    args: &Args,
    reproduce: &str,
    results: &[RunResult],
    received: u64,
    audited: u64,
    audited_other: u64,
    verify: &str,
    fs: &str,
    setup_note: &str,
) -> BResult<()> {
    let machine = machine_info();
    let (commit, date) = ward_bench::provenance();
    let mode = args.mode.name();
    let durable_ok = audited >= received;
    let healthz: BTreeMap<usize, &RunResult> = results
        .iter()
        .filter(|r| r.kind == Kind::Healthz)
        .map(|r| (r.clients, r))
        .collect();

    let mut md = String::new();
    let _ = writeln!(md, "# Token issuance benchmark — mode `{mode}`\n");
    let _ = writeln!(
        md,
        "`POST /v1/tokens` against a real `ward serve` over loopback HTTP/1.1 keep-alive, one connection per client; \
         every request carries a fresh DPoP proof (unique `jti`) that the server verifies, and every 200 is answered only \
         after its `token.issue` audit entry is committed (SQLite WAL, `synchronous=FULL`, grouped commits). \
         Proofs: **{}**.\n",
        match args.mode {
            Mode::Inline =>
                "signed by each client right before each request (client signing shares the 2 cores with the server)",
            Mode::Presigned =>
                "all signed before the timer starts, so the measured rate reflects the server's cost",
        }
    );
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| date | {date} |");
    let _ = writeln!(md, "| git commit | {commit} |");
    let _ = writeln!(md, "| command | `{reproduce}` |");
    let _ = writeln!(
        md,
        "| machine | {} cores, {}, {}, kernel {} |",
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or("?"),
        machine["memory"].as_str().unwrap_or("?"),
        machine["kernel"].as_str().unwrap_or("?")
    );
    let _ = writeln!(md, "| data directory filesystem | {fs} |");
    let _ = writeln!(
        md,
        "| per run | {} s warm-up, {} s measured (healthz {} s); scope `{SCOPE}` |",
        args.warmup_secs, args.duration_secs, args.healthz_secs
    );
    let _ = writeln!(md, "| set-up | {setup_note} |\n");

    let _ = writeln!(md, "## Results\n");
    let _ = writeln!(
        md,
        "| clients | tokens/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | healthz req/s | healthz p50 / p99 ms | tokens ÷ healthz | server CPU (cores) | bench CPU (cores) | server CPU µs/token | bench CPU µs/token | healthz server / bench CPU µs/req | conns |"
    );
    let _ = writeln!(
        md,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in results
        .iter()
        .filter(|r| r.kind == Kind::Tokens && !r.profiled)
    {
        let h = healthz.get(&r.clients);
        let w = r.window_secs.max(1e-9);
        let per = |cpu: f64| {
            if r.ok == 0 {
                "-".to_owned()
            } else {
                format!("{:.0}", cpu * 1e6 / (r.rate * w))
            }
        };
        let _ = writeln!(
            md,
            "| {} | {:.0} | {} | {} | {} | {} | {} | {}{} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {} |",
            r.clients,
            r.rate,
            ms(r.p50_us),
            ms(r.p90_us),
            ms(r.p99_us),
            ms(r.p999_us),
            ms(r.max_us),
            r.errors,
            if r.exhausted_clients > 0 {
                format!(
                    " ({} clients ran out of presigned proofs)",
                    r.exhausted_clients
                )
            } else {
                String::new()
            },
            h.map(|h| format!("{:.0}", h.rate))
                .unwrap_or_else(|| "-".into()),
            h.map(|h| format!("{} / {}", ms(h.p50_us), ms(h.p99_us)))
                .unwrap_or_else(|| "-".into()),
            h.filter(|h| h.rate > 0.0)
                .map(|h| format!("{:.1} %", 100.0 * r.rate / h.rate))
                .unwrap_or_else(|| "-".into()),
            r.server_cpu_secs / w,
            r.bench_cpu_secs / w,
            per(r.server_cpu_secs),
            per(r.bench_cpu_secs),
            h.filter(|h| h.ok > 0)
                .map(|h| format!(
                    "{:.0} / {:.0}",
                    h.server_cpu_secs * 1e6 / h.ok as f64,
                    h.bench_cpu_secs * 1e6 / h.ok as f64
                ))
                .unwrap_or_else(|| "-".into()),
            r.connections,
        );
    }
    let _ = writeln!(
        md,
        "\n`conns` = established client connections to the server seen midway through the run. \
         CPU figures are over the measured window, from `/proc/<pid>/stat` (server) and `/proc/self/stat` (this benchmark process: \
         HTTP client{}).\n",
        match args.mode {
            Mode::Inline => " and proof signing",
            Mode::Presigned => " only; presigning happens before the window",
        }
    );
    if args.mode == Mode::Presigned {
        let _ = writeln!(md, "Presigning (not timed): ");
        for r in results.iter().filter(|r| r.kind == Kind::Tokens) {
            let _ = writeln!(
                md,
                "- {} clients{}: {} proofs in {:.2} s ({:.0} µs CPU-parallel each)",
                r.clients,
                if r.profiled { " (profiled run)" } else { "" },
                r.proofs_signed,
                r.presign_secs,
                r.presign_secs * 1e6 / (r.proofs_signed.max(1) as f64)
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "## Server CPU by thread (seconds over the measured window)\n"
    );
    let mut labels: Vec<String> = results
        .iter()
        .filter(|r| r.kind == Kind::Tokens)
        .flat_map(|r| r.server_threads.keys().cloned())
        .collect();
    labels.sort();
    labels.dedup();
    let _ = write!(md, "| clients |");
    for l in &labels {
        let _ = write!(md, " {l} |");
    }
    let _ = writeln!(md, " context switches / token |");
    let _ = write!(md, "|---:|");
    for _ in &labels {
        let _ = write!(md, "---:|");
    }
    let _ = writeln!(md, "---:|");
    for r in results.iter().filter(|r| r.kind == Kind::Tokens) {
        let _ = write!(
            md,
            "| {}{} |",
            r.clients,
            if r.profiled { " (perf)" } else { "" }
        );
        for l in &labels {
            let _ = write!(
                md,
                " {:.2} |",
                r.server_threads.get(l).copied().unwrap_or(0.0)
            );
        }
        let _ = writeln!(
            md,
            " {:.1} |",
            r.server_ctx_switches as f64 / (r.ok.max(1) as f64)
        );
    }
    let _ = writeln!(md, "\n## Server I/O per token (measured window)\n");
    let _ = writeln!(
        md,
        "| clients | fsyncs/s | tokens per fsync (commit group size) | bytes written / token | write syscalls / token | bytes read / token | read syscalls / token |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|");
    for r in results
        .iter()
        .filter(|r| r.kind == Kind::Tokens && !r.profiled)
    {
        let n = r.ok.max(1) as f64;
        let w = r.window_secs.max(1e-9);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.1} | {:.0} | {:.1} |",
            r.clients,
            r.fsyncs
                .map(|f| format!("{:.0}", f as f64 / w))
                .unwrap_or_else(|| "n/a".into()),
            r.fsyncs
                .filter(|&f| f > 0)
                .map(|f| format!("{:.1}", n / f as f64))
                .unwrap_or_else(|| "n/a".into()),
            r.io[1] as f64 / n,
            r.io[3] as f64 / n,
            r.io[0] as f64 / n,
            r.io[2] as f64 / n,
        );
    }
    let _ = writeln!(
        md,
        "\nfsyncs counted with `perf stat -e ext4:ext4_sync_file_enter -p <server>` (n/a without perf); bytes and syscalls from `/proc/<pid>/io` \
         (`wchar`, `syscw`, `rchar`, `syscr`; socket traffic included)."
    );
    let _ = writeln!(md, "\n## Durability\n");
    let _ = writeln!(
        md,
        "- tokens received (every 200, warm-up and set-up included): **{received}**"
    );
    let _ = writeln!(
        md,
        "- `token.issue` success entries in the audit log (`GET /v1/audit?action=token.issue`, paginated): **{audited}** \
         ({audited_other} non-success `token.issue` entries)"
    );
    let _ = writeln!(
        md,
        "- {}",
        if durable_ok {
            "OK: every token received has its audit entry"
        } else {
            "**FAIL: fewer audit entries than tokens received**"
        }
    );
    let _ = writeln!(
        md,
        "- `ward audit verify --json` after shutdown: `{verify}`"
    );
    let errors: Vec<&RunResult> = results.iter().filter(|r| r.first_error.is_some()).collect();
    if !errors.is_empty() {
        let _ = writeln!(md, "\n## Errors\n");
        for r in errors {
            let _ = writeln!(
                md,
                "- {:?} c={}: {} errors; first: `{}`",
                r.kind,
                r.clients,
                r.errors,
                r.first_error
                    .as_deref()
                    .unwrap_or_default()
                    .replace('`', "'")
            );
        }
    }

    println!("{md}");
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|e| format!("cannot create `{}`: {e}", args.out_dir.display()))?;
    let suffix = if args.policy.is_some() { "-policy" } else { "" };
    let md_path = args.out_dir.join(format!("tokens-{mode}{suffix}.md"));
    std::fs::write(&md_path, &md)
        .map_err(|e| format!("cannot write `{}`: {e}", md_path.display()))?;
    let doc = json!({
        "mode": mode,
        "date": date,
        "git_commit": commit,
        "command": reproduce,
        "machine": machine,
        "data_dir_filesystem": fs,
        "warmup_secs": args.warmup_secs,
        "duration_secs": args.duration_secs,
        "healthz_secs": args.healthz_secs,
        "scope": SCOPE,
        "setup": setup_note,
        "runs": results.iter().map(result_json).collect::<Vec<_>>(),
        "durability": {
            "tokens_received": received,
            "audited_token_issue_success": audited,
            "audited_token_issue_other": audited_other,
            "ok": durable_ok,
            "audit_verify": serde_json::from_str::<Value>(verify).unwrap_or(Value::String(verify.to_owned())),
        },
    });
    let json_path = args.out_dir.join(format!("tokens-{mode}{suffix}.json"));
    let text = serde_json::to_string_pretty(&doc).map_err(s)?;
    std::fs::write(&json_path, text + "\n")
        .map_err(|e| format!("cannot write `{}`: {e}", json_path.display()))?;
    eprintln!(
        "ward-bench: wrote {} and {}",
        md_path.display(),
        json_path.display()
    );
    if !durable_ok {
        return Err(format!(
            "durability check failed: {received} tokens received but only {audited} audited"
        ));
    }
    Ok(())
}
