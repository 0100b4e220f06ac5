//! Reporting: one run as JSON, the profile summary, and the result files.

use crate::args::{Args, BODY, PATH, UPSTREAM_BODY};
use crate::load::RunResult;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use ward_bench::{BResult, machine_info, ms, s};

pub(crate) fn result_json(r: &RunResult) -> Value {
    let per_req = |cpu: f64| {
        if r.ok > 0 {
            cpu * 1e6 / r.ok as f64
        } else {
            0.0
        }
    };
    json!({
        "target": r.target,
        "paced_rate": r.paced_rate,
        "window_secs": r.window_secs,
        "ok": r.ok,
        "errors": r.errors,
        "first_error": r.first_error,
        "per_sec": r.rate,
        "latency_us": {"p50": r.p50_us, "p90": r.p90_us, "p99": r.p99_us, "p999": r.p999_us,
            "max": r.max_us, "mean": r.mean_us},
        "cpu_secs": {"proxy": r.proxy_cpu_secs, "upstream": r.upstream_cpu_secs,
            "control_plane": r.control_cpu_secs, "client": r.client_cpu_secs},
        "cpu_us_per_request": {"proxy": per_req(r.proxy_cpu_secs),
            "upstream": per_req(r.upstream_cpu_secs), "client": per_req(r.client_cpu_secs)},
        "reconnects": r.reconnects,
        "exhausted_clients": r.exhausted_clients,
        "presign_secs": r.presign_secs,
        "proofs_presigned": r.proofs_presigned,
        "access_log_bytes": r.log_bytes,
    })
}

/// Self and inclusive time of the profile's hottest frames.
pub(crate) fn perf_summary(data: &Path) -> Option<String> {
    let report = |extra: &[&str]| -> Vec<String> {
        let mut cmd = Command::new("perf");
        cmd.arg("report").arg("-i").arg(data);
        cmd.args(["--stdio", "--sort", "sym", "-g", "none"]);
        cmd.args(extra);
        cmd.output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.trim_start()
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            })
            .map(|l| l.chars().take(150).collect())
            .collect()
    };
    let own = report(&["--no-children"]);
    if own.is_empty() {
        return None;
    }
    let inclusive = report(&["--children", "--percent-limit", "0.7"]);
    // The gateway's own steps and the costs under them; the async and
    // runtime scaffolding above them (100 % down to the pipeline) is left out.
    const FRAMES: &[&str] = &[
        "pipeline::Gateway::serve::",
        "Gateway::handle",
        "verify_jwt",
        "Verifier::verify_proof",
        "dpop::verify_proof",
        "jws::verify",
        "verify_strict",
        "decompress",
        "Jwk::verifying_key",
        "decode_unverified",
        "Verifier::authorize",
        "pipeline::body::read",
        "jsonschema",
        "pipeline::forward::forward",
        "client::Client<C,B>::send_request",
        "std::io::stdio::_print",
        "Metrics::record",
        "Limiter::check",
        "first_use",
        "random_hex",
        "__GI___writev",
        "__sys_recvfrom",
        "ksys_write",
        "[k] schedule",
        "Value as core::fmt::Display",
        "_mi_page_malloc",
        "mi_free",
    ];
    let mut out = String::new();
    out.push_str(
        "Inclusive time of the gateway's steps (share of its samples, children included):\n\n```\n",
    );
    let mut seen = std::collections::HashSet::new();
    for line in inclusive
        .iter()
        .filter(|l| FRAMES.iter().any(|f| l.contains(f)))
        .filter(|l| seen.insert(l.split("] ").nth(1).unwrap_or_default().to_owned()))
    {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("```\n\nSelf time, top 30:\n\n```\n");
    for line in own.iter().take(30) {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("```\n");
    Some(out)
}

pub(crate) struct Meta {
    pub(crate) reproduce: String,
    pub(crate) nginx_version: String,
    pub(crate) nginx_conf: String,
    pub(crate) gateway_conf: String,
    pub(crate) clients: usize,
    pub(crate) perf: Option<(String, Option<RunResult>)>,
    pub(crate) access_log_lines: Option<u64>,
}

pub(crate) fn write_results(args: &Args, results: &[RunResult], meta: &Meta) -> BResult<()> {
    let (commit, date) = ward_bench::provenance();
    let machine = machine_info();
    let compare = |paced: bool| {
        let get = |name: &str| {
            results
                .iter()
                .find(|r| r.target == name && r.paced_rate.is_some() == paced)
        };
        match (get("nginx"), get("gateway")) {
            (Some(n), Some(g)) if n.rate > 0.0 => Some(json!({
                "throughput_ratio": g.rate / n.rate,
                "throughput_goal": 0.70,
                "throughput_goal_met": g.rate / n.rate >= 0.70,
                "p99_added_us": i64::from(g.p99_us) - i64::from(n.p99_us),
                "p99_goal_us": 1000,
                "p99_goal_met": i64::from(g.p99_us) - i64::from(n.p99_us) < 1000,
                "p50_added_us": i64::from(g.p50_us) - i64::from(n.p50_us),
                "gateway_cpu_us_per_request": if g.ok > 0 { g.proxy_cpu_secs * 1e6 / g.ok as f64 } else { 0.0 },
                "nginx_cpu_us_per_request": if n.ok > 0 { n.proxy_cpu_secs * 1e6 / n.ok as f64 } else { 0.0 },
            })),
            _ => None,
        }
    };
    let comparison = compare(false);
    let paced_comparison = compare(true);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Gateway vs nginx: {} keep-alive connections, same upstream\n",
        meta.clients
    );
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| date | {date} |");
    let _ = writeln!(md, "| git commit | {commit} |");
    let _ = writeln!(md, "| command | `{}` |", meta.reproduce);
    let _ = writeln!(
        md,
        "| machine | {} cores, {}, {}, kernel {} |",
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or(""),
        machine["memory"].as_str().unwrap_or(""),
        machine["kernel"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        md,
        "| nginx | {}, `worker_processes {}`, access log on |",
        meta.nginx_version, args.nginx_workers
    );
    let _ = writeln!(
        md,
        "| gateway | `ward gateway`, tokio multi-thread runtime (one worker per core), access log on (stdout to a file) |"
    );
    let _ = writeln!(
        md,
        "| upstream | `ward-bench-gateway --serve-upstream`: raw tokio HTTP/1.1 keep-alive server, its own process, fixed {}-byte JSON answer |",
        UPSTREAM_BODY.len()
    );
    let _ = writeln!(
        md,
        "| load | {} connections (one per client task, raw HTTP/1.1 on tokio, this process), {} s warm-up + {} s measured per target, `POST {PATH}` with a {}-byte JSON body |",
        meta.clients,
        args.warmup_secs,
        args.duration_secs,
        BODY.len()
    );
    let _ = writeln!(
        md,
        "| gateway requests | also `Authorization: DPoP <token>` and a presigned `DPoP` proof (unique `jti`, `ath`, `htu`) per request |"
    );
    let _ = writeln!(md);
    let table = |md: &mut String, paced: bool| {
        let _ = writeln!(
            md,
            "| target | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | proxy CPU s | µs proxy CPU/req | upstream CPU s | client CPU s |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in results.iter().filter(|r| r.paced_rate.is_some() == paced) {
            let per = if r.ok > 0 {
                r.proxy_cpu_secs * 1e6 / r.ok as f64
            } else {
                0.0
            };
            let (proxy, per) = if r.target == "upstream" {
                ("–".to_owned(), "–".to_owned())
            } else {
                (format!("{:.2}", r.proxy_cpu_secs), format!("{per:.1}"))
            };
            let _ = writeln!(
                md,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {proxy} | {per} | {:.2} | {:.2} |",
                r.target,
                r.rate,
                ms(r.p50_us),
                ms(r.p90_us),
                ms(r.p99_us),
                ms(r.p999_us),
                ms(r.max_us),
                r.errors,
                r.upstream_cpu_secs,
                r.client_cpu_secs
            );
        }
        let _ = writeln!(md);
    };
    let _ = writeln!(
        md,
        "## Saturated: {} connections as fast as each is answered\n",
        meta.clients
    );
    table(&mut md, false);
    if let Some(c) = &comparison {
        let ratio = c["throughput_ratio"].as_f64().unwrap_or(0.0);
        let added = c["p99_added_us"].as_i64().unwrap_or(0);
        let _ = writeln!(
            md,
            "- **gateway ÷ nginx throughput: {:.1} %** (goal ≥ 70 %: {})",
            ratio * 100.0,
            if ratio >= 0.70 { "met" } else { "not met" }
        );
        let _ = writeln!(
            md,
            "- **p99 added by the gateway over nginx: {:+.2} ms** (goal < 1 ms: {}); p50 {:+.2} ms",
            added as f64 / 1000.0,
            if added < 1000 { "met" } else { "not met" },
            c["p50_added_us"].as_i64().unwrap_or(0) as f64 / 1000.0
        );
        let _ = writeln!(
            md,
            "- CPU per request: gateway {:.1} µs, nginx (master + workers) {:.1} µs",
            c["gateway_cpu_us_per_request"].as_f64().unwrap_or(0.0),
            c["nginx_cpu_us_per_request"].as_f64().unwrap_or(0.0)
        );
    }
    if args.paced_rate > 0 && results.iter().any(|r| r.paced_rate.is_some()) {
        let _ = writeln!(
            md,
            "\n## Paced: {} req/s in all, evenly spaced over the {} connections\n\nNothing saturates here, so this is the latency a proxy adds to one request rather than queueing behind the others; latency counts from each request's actual send.\n",
            args.paced_rate, meta.clients
        );
        table(&mut md, true);
        if let Some(c) = &paced_comparison {
            let _ = writeln!(
                md,
                "- at {} req/s the gateway adds {:+.2} ms at p50 and {:+.2} ms at p99 over nginx; CPU per request: gateway {:.1} µs, nginx {:.1} µs\n",
                args.paced_rate,
                c["p50_added_us"].as_i64().unwrap_or(0) as f64 / 1000.0,
                c["p99_added_us"].as_i64().unwrap_or(0) as f64 / 1000.0,
                c["gateway_cpu_us_per_request"].as_f64().unwrap_or(0.0),
                c["nginx_cpu_us_per_request"].as_f64().unwrap_or(0.0)
            );
        }
        let _ = writeln!(md, "## Notes\n");
    }
    for r in results {
        let mut notes = Vec::new();
        if r.reconnects > 0 {
            notes.push(format!("{} reconnects", r.reconnects));
        }
        if r.exhausted_clients > 0 {
            notes.push(format!(
                "{} clients ran out of presigned proofs (raise --presign-rate)",
                r.exhausted_clients
            ));
        }
        if r.proofs_presigned > 0 {
            notes.push(format!(
                "{} proofs presigned in {:.1} s before the timer",
                r.proofs_presigned, r.presign_secs
            ));
        }
        if r.log_bytes > 0 && r.ok > 0 {
            notes.push(format!(
                "access log {:.0} bytes/request",
                r.log_bytes as f64 / r.ok as f64
            ));
        }
        if r.control_cpu_secs > 0.0 {
            notes.push(format!(
                "`ward serve` {:.2} CPU s in the window",
                r.control_cpu_secs
            ));
        }
        if let Some(e) = &r.first_error {
            notes.push(format!(
                "first error: `{}`",
                e.replace('`', "'").replace('\n', " ")
            ));
        }
        if !notes.is_empty() {
            let label = match r.paced_rate {
                Some(rate) => format!("{} @ {rate}/s", r.target),
                None => r.target.clone(),
            };
            let _ = writeln!(md, "- {label}: {}", notes.join("; "));
        }
    }
    if let Some(lines) = meta.access_log_lines {
        let _ = writeln!(
            md,
            "- gateway access log: {lines} request lines over the whole run (warm-up, sanity and profiled runs included)"
        );
    }
    let _ = writeln!(
        md,
        "\nCPU columns are `/proc/<pid>/stat` utime + stime over the measured window: proxy = nginx master + workers or the gateway process; upstream = the upstream process; client = this benchmark process. All share the machine's {} cores.",
        machine["nproc"]
    );
    if let Some((summary, run)) = &meta.perf {
        let _ = writeln!(md, "\n## Where the gateway's time goes\n");
        if let Some(run) = run {
            let _ = writeln!(
                md,
                "`perf record --call-graph dwarf -F 499 -p <ward gateway>` for {} s of an extra, unreported gateway run ({:.0} req/s under perf). Shares of the gateway's on-CPU samples.\n",
                args.perf_secs, run.rate
            );
        }
        let _ = writeln!(md, "{summary}");
    }
    let _ = writeln!(
        md,
        "\n<details><summary>nginx.conf (temp paths)</summary>\n\n```nginx\n{}```\n</details>\n",
        meta.nginx_conf
    );
    let gateway_conf_shown = meta
        .gateway_conf
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("token:") {
                "  token: <bootstrap token>"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let _ = writeln!(
        md,
        "<details><summary>gateway.yaml (temp paths)</summary>\n\n```yaml\n{gateway_conf_shown}\n```\n</details>"
    );

    let json = json!({
        "benchmark": "gateway-vs-nginx",
        "date": date,
        "git_commit": commit,
        "command": meta.reproduce,
        "machine": machine,
        "nginx": {"version": meta.nginx_version, "worker_processes": args.nginx_workers},
        "clients": meta.clients,
        "warmup_secs": args.warmup_secs,
        "duration_secs": args.duration_secs,
        "path": PATH,
        "body_bytes": BODY.len(),
        "results": results.iter().map(result_json).collect::<Vec<_>>(),
        "comparison": comparison,
        "paced_rate": (args.paced_rate > 0).then_some(args.paced_rate),
        "paced_comparison": paced_comparison,
        "gateway_access_log_lines": meta.access_log_lines,
        "perf": meta.perf.as_ref().map(|(summary, run)| json!({"summary": summary, "run": run.as_ref().map(result_json)})),
    });
    std::fs::create_dir_all(&args.out_dir).map_err(s)?;
    let md_path = args.out_dir.join("gateway.md");
    let json_path = args.out_dir.join("gateway.json");
    std::fs::write(&md_path, &md).map_err(s)?;
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&json).map_err(s)? + "\n",
    )
    .map_err(s)?;
    println!("{md}");
    eprintln!(
        "ward-bench-gateway: wrote {} and {}",
        md_path.display(),
        json_path.display()
    );
    Ok(())
}
