//! `ward-bench-redact`: throughput of `ward_redact::Redactor::redact`.
//!
//! Generates two corpora of realistic event and log lines (deterministic,
//! seeded): `realistic`, where about 1 % of the lines carry a secret or
//! personal data, and `clean`, the same lines without them. Each line is
//! redacted on its own, as the runtime redacts each event field. In the same
//! run and on the same lines it measures two baselines: copying each line
//! (`to_owned`, the floor) and the naive approach, every rule's regex run
//! over each line (a `RegexSet` to see which rules match, then each
//! matching regex to locate them; and each regex alone). Reports MB/s (10^6
//! bytes of input per second, best of the repetitions) and ratios, and
//! writes `bench/results/redact.md`.
//!
//! This is a benchmark, not a test: it fails only when the redactor leaves
//! a planted secret in place, which would make its speed meaningless.

use clap::Parser;
use regex::{Regex, RegexSet};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;
use ward_bench::{BResult, machine_info, provenance};
use ward_redact::Redactor;

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "ward-bench-redact",
    about = "Throughput of ward-redact against copying and naive regexes"
)]
struct Args {
    /// Megabytes of text per corpus.
    #[arg(long, default_value_t = 8)]
    megabytes: usize,
    /// Repetitions of each measurement (the best is reported).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Measure only `Redactor::redact` (for profiling); writes no results.
    #[arg(long)]
    only_redact: bool,
    /// Where to write the Markdown results.
    #[arg(long, default_value = "bench/results/redact.md")]
    out: String,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ward-bench-redact: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 16
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn string(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len())]))
            .collect()
    }
}

/// The corpora's seed: the same lines on every run.
const SEED: u64 = 0x7761_7264_5eed_0001;

const CROCKFORD: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// One ordinary line: an event as JSON, a log line, a command or a path.
fn clean_line(rng: &mut Rng, seq: usize) -> String {
    let corr = rng.string(CROCKFORD, 26);
    let agent = rng.string(CROCKFORD, 26);
    let action = rng.pick(&[
        "files:read",
        "files:write",
        "shell:exec",
        "http:get",
        "mcp:call",
    ]);
    let target = match rng.below(4) {
        0 => format!(
            "/home/alice/projects/ward/crates/ward-{}/src/{}.rs",
            rng.pick(&["agent", "model", "store"]),
            rng.pick(&["lib", "spool", "shipper", "main"])
        ),
        1 => format!(
            "cargo {} -p ward-{} --release",
            rng.pick(&["build", "test", "clippy"]),
            rng.pick(&["agent", "redact"])
        ),
        2 => format!(
            "https://api.github.com/repos/ward/ward/commits/{}",
            rng.string(HEX, 40)
        ),
        _ => format!(
            "git commit -m \"{} the {} of {}\"",
            rng.pick(&["fix", "add", "remove"]),
            rng.pick(&["bound", "test", "doc"]),
            rng.pick(&["spool", "shipper", "daemon"])
        ),
    };
    match rng.below(3) {
        0 => format!(
            r#"{{"seq":{seq},"ts":"2026-12-02T17:11:{:02}.{:03}Z","correlation_id":"corr_{corr}","agent_id":"agt_{agent}","feature":"repo-read","action":"{action}","target":"{target}","result":"{}","reason":"granted by feature `repo-read`","duration_ms":{},"sampling":1.0}}"#,
            seq % 60,
            seq % 1000,
            rng.pick(&["allow", "deny", "ok"]),
            rng.below(900)
        ),
        1 => format!(
            "2026-12-02T17:11:{:02}.{:03}Z INFO ward_agent::spool: shipped {} events seq={seq} correlation_id=corr_{corr} prev_hash={} took {} ms",
            seq % 60,
            seq % 1000,
            rng.below(1000),
            rng.string(HEX, 64),
            rng.below(90)
        ),
        _ => format!(
            "{action} {target} -> {} in {} ms (agent agt_{agent})",
            rng.pick(&["allow", "deny"]),
            rng.below(200)
        ),
    }
}

/// A secret or personal datum of a random kind, and the text that must
/// not survive.
fn secret(rng: &mut Rng) -> (String, String) {
    let value = match rng.below(10) {
        0 => format!("ghp_{}", rng.string(ALNUM, 36)),
        1 => format!(
            "AKIA{}",
            rng.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
        ),
        2 => format!(
            "eyJhbGciOiJFZERTQSJ9.{}.{}",
            rng.string(B64URL, 80),
            rng.string(B64URL, 86)
        ),
        3 => format!(
            "alice.{}@example.com",
            rng.string(b"abcdefghijklmnopqrstuvwxyz", 6)
        ),
        4 => format!(
            "+44 20 {} {}",
            7000 + rng.below(2999),
            1000 + rng.below(8999)
        ),
        5 => "4111 1111 1111 1111".to_owned(),
        6 => "DE89 3704 0044 0532 0130 00".to_owned(),
        7 => format!("sk-proj-{}", rng.string(B64URL, 64)),
        8 => rng.string(B64URL, 43),
        _ => format!("ward_at_{}", rng.string(B64URL, 43)),
    };
    let text = match rng.below(3) {
        0 => format!("export API_TOKEN={value}"),
        1 => format!("curl -H 'X-Debug: {value}' https://internal.example/v1/ping"),
        _ => format!("user pasted {value} into the prompt"),
    };
    (text, value)
}

struct Corpus {
    lines: Vec<String>,
    bytes: usize,
    planted: Vec<String>,
}

fn corpora(megabytes: usize) -> (Corpus, Corpus) {
    let mut rng = Rng(SEED);
    let mut realistic = Corpus {
        lines: Vec::new(),
        bytes: 0,
        planted: Vec::new(),
    };
    let mut clean = Corpus {
        lines: Vec::new(),
        bytes: 0,
        planted: Vec::new(),
    };
    let mut seq = 0;
    while realistic.bytes < megabytes * 1_000_000 {
        seq += 1;
        let line = clean_line(&mut rng, seq);
        clean.bytes += line.len();
        clean.lines.push(line.clone());
        let line = if rng.below(100) == 0 {
            let (text, value) = secret(&mut rng);
            realistic.planted.push(value);
            format!("{line} {text}")
        } else {
            line
        };
        realistic.bytes += line.len();
        realistic.lines.push(line);
    }
    (realistic, clean)
}

/// The naive detector: every rule as one regex over the whole line.
const NAIVE: &[&str] = &[
    r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|$)",
    r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*",
    r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[0-9A-Za-z]{36}\b",
    r"\bgithub_pat_[0-9A-Za-z_]{22,}",
    r"\bglpat-[0-9A-Za-z_-]{20,}",
    r"\bxox[baprs]-[0-9A-Za-z-]{10,}",
    r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{10,}",
    r"\bsk-ant-[0-9A-Za-z_-]{20,}",
    r"\bsk-[0-9A-Za-z_-]{20,}",
    r"\bAIza[0-9A-Za-z_-]{35}",
    r"\bnpm_[0-9A-Za-z]{36}",
    r"\bpypi-[0-9A-Za-z_-]{50,}",
    r"\bSG\.[0-9A-Za-z_-]{16,32}\.[0-9A-Za-z_-]{16,64}",
    r"\bhf_[0-9A-Za-z]{30,}",
    r"\bSK[0-9a-fA-F]{32}\b",
    r"\bdo[opr]_v1_[0-9a-f]{64}",
    r"\bward_[a-z]{2}_[0-9A-Za-z_-]{20,}",
    r"(?i)\bbearer[ \t:=]+[A-Za-z0-9._~+/=-]{8,}",
    r#"(?i)[A-Za-z0-9_.-]*(?:token|secret|passw(?:or)?d|pwd|api[_.-]?key|private[_.-]?key|credential|auth|cookie|session)[A-Za-z0-9_.-]*["']?\s*(?:=|:)\s*["']?[^\s"',;&]+"#,
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:[^\s/?#@]+@",
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]\d{3}[ .-]\d{4}\b",
    r"\b[2-6]\d{3}(?:[ -]?\d{3,6}){2,4}\b",
    r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
    r"[A-Za-z0-9+/_-]{24,}={0,2}",
];

/// MB/s of `work` over `corpus`, best of `repeat`.
fn measure(corpus: &Corpus, repeat: usize, mut work: impl FnMut(&str) -> usize) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..repeat.max(1) {
        let started = Instant::now();
        let mut sink = 0usize;
        for line in &corpus.lines {
            sink = sink.wrapping_add(work(line));
        }
        black_box(sink);
        let secs = started.elapsed().as_secs_f64();
        best = best.max(corpus.bytes as f64 / 1e6 / secs);
    }
    best
}

struct Row {
    name: &'static str,
    realistic: f64,
    clean: f64,
}

fn run(args: Args) -> BResult<()> {
    let (realistic, clean) = corpora(args.megabytes);
    let redactor = Redactor::new();
    // The redactor must actually catch what was planted.
    let output: String = realistic
        .lines
        .iter()
        .map(|l| redactor.redact(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    if let Some(leaked) = realistic
        .planted
        .iter()
        .find(|p| output.contains(p.as_str()))
    {
        return Err(format!("the redactor left `{leaked}` in place"));
    }
    let lines_with_findings = realistic
        .lines
        .iter()
        .filter(|l| !redactor.findings(l).is_empty())
        .count();
    let clean_with_findings = clean
        .lines
        .iter()
        .filter(|l| !redactor.findings(l).is_empty())
        .count();

    if args.only_redact {
        let (r, c) = (
            measure(&realistic, args.repeat, |l| redactor.redact(l).len()),
            measure(&clean, args.repeat, |l| redactor.redact(l).len()),
        );
        println!("redact: realistic {r:.1} MB/s, clean {c:.1} MB/s");
        return Ok(());
    }
    let set = RegexSet::new(NAIVE).map_err(|e| e.to_string())?;
    let regexes: Vec<Regex> = NAIVE
        .iter()
        .map(|p| Regex::new(p))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;

    let both = |work: &mut dyn FnMut(&str) -> usize| -> (f64, f64) {
        (
            measure(&realistic, args.repeat, &mut *work),
            measure(&clean, args.repeat, &mut *work),
        )
    };
    let mut rows = Vec::new();
    let (r, c) = both(&mut |l| black_box(l.to_owned()).len());
    rows.push(Row {
        name: "copy (`to_owned`)",
        realistic: r,
        clean: c,
    });
    let (r, c) = both(&mut |l| match redactor.redact(l) {
        std::borrow::Cow::Borrowed(b) => b.len(),
        std::borrow::Cow::Owned(o) => o.len(),
    });
    rows.push(Row {
        name: "`Redactor::redact`",
        realistic: r,
        clean: c,
    });
    let (r, c) = both(&mut |l| {
        set.matches(l)
            .iter()
            .map(|i| regexes[i].find_iter(l).count())
            .sum()
    });
    rows.push(Row {
        name: "naive: `RegexSet` of all rules, then each matching regex",
        realistic: r,
        clean: c,
    });
    let (r, c) = both(&mut |l| regexes.iter().map(|re| re.find_iter(l).count()).sum());
    rows.push(Row {
        name: "naive: each rule's regex over the line",
        realistic: r,
        clean: c,
    });

    let redact = &rows[1];
    let (commit, date) = provenance();
    let machine = machine_info();
    let mut md = String::new();
    md.push_str("# Redaction throughput: `ward_redact::Redactor::redact`\n\n");
    md.push_str("| | |\n|---|---|\n");
    md.push_str(&format!("| date | {date} |\n| git commit | {commit} |\n"));
    md.push_str(&format!(
        "| command | `cargo run --release -p ward-bench --bin ward-bench-redact -- --megabytes {} --repeat {}` |\n",
        args.megabytes, args.repeat
    ));
    md.push_str(&format!(
        "| machine | {} cores, {}, {}, kernel {} |\n",
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or(""),
        machine["memory"].as_str().unwrap_or(""),
        machine["kernel"].as_str().unwrap_or("")
    ));
    md.push_str(&format!(
        "| corpora | `realistic`: {} lines, {:.1} MB, {} planted secrets/PII ({} lines with findings); `clean`: the same {} lines without them, {:.1} MB ({} lines with findings) |\n",
        realistic.lines.len(), realistic.bytes as f64 / 1e6, realistic.planted.len(), lines_with_findings,
        clean.lines.len(), clean.bytes as f64 / 1e6, clean_with_findings
    ));
    md.push_str(&format!("| method | each line redacted on its own, single thread, best of {} passes; MB = 10^6 bytes of input |\n\n", args.repeat));
    md.push_str("| approach | realistic MB/s | clean MB/s | redact ÷ this (realistic) | redact ÷ this (clean) |\n|---|---:|---:|---:|---:|\n");
    for row in &rows {
        md.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.2} | {:.2} |\n",
            row.name,
            row.realistic,
            row.clean,
            redact.realistic / row.realistic,
            redact.clean / row.clean
        ));
    }
    md.push_str(&format!(
        "\n- **redact on the realistic corpus: {:.1} MB/s** (goal ≥ 50 MB/s: {}), {:.1} % of copying's speed, {:.1}× the naive `RegexSet` approach.\n",
        redact.realistic,
        if redact.realistic >= 50.0 { "met" } else { "not met" },
        100.0 * redact.realistic / rows[0].realistic,
        redact.realistic / rows[2].realistic
    ));
    md.push_str("- Every planted secret was checked to be gone from the redacted realistic corpus before timing.\n");
    print!("{md}");
    std::fs::write(&args.out, &md).map_err(|e| format!("cannot write `{}`: {e}", args.out))?;
    Ok(())
}
