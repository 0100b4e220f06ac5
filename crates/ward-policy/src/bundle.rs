//! A policy bundle: the `.rego` files of a policy directory, their hash, and
//! the two things done with them before they go live: compiling into a
//! [`Policy`] and running their `test_` rules.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};
use sha2::{Digest as _, Sha256};

use crate::error::{PolicyError, engine_error, parse_error};
use crate::policy::{DECISION_RULE, Policy, RULES};

/// The package the broker evaluates.
pub const BROKER_PACKAGE: &str = "ward.broker";
/// Package of the decision wrapper this crate adds; bundles may not use it.
pub(crate) const INTERNAL_PACKAGE: &str = "ward_policy_internal";
/// How long one evaluation may run before it is cut off (and denied).
///
/// The limit is wall-clock time and includes time the thread spends
/// preempted, so it is far above the normal cost of a decision (well under
/// 1 ms): on a loaded 2-core machine a 60 µs decision was seen to take 68 ms.
/// It guards against runaway policies, not slow ones.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(1);
/// How long one `test_` rule may run.
const TEST_TIME_LIMIT: Duration = Duration::from_secs(2);
/// Interpreter work units between two reads of the clock.
const TIMER_CHECK_INTERVAL: NonZeroU32 = match NonZeroU32::new(32) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};
/// Domain separation for the bundle hash.
const HASH_DOMAIN: &[u8] = b"ward-policy-bundle-v1\0";

/// The `.rego` files of a policy, sorted by path, each known to parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    // INVARIANT: sorted by path, paths unique, relative, ending in `.rego`;
    // every text parses.
    files: Vec<(String, String)>,
    hash: String,
}

/// The outcome of a bundle's `test_` rules, each named `package.rule`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestReport {
    /// Tests that evaluated to `true`, sorted.
    pub passed: Vec<String>,
    /// Tests that evaluated to anything else or failed, with the reason, sorted.
    pub failed: Vec<(String, String)>,
}

impl TestReport {
    /// Turns a report with failures into [`PolicyError::TestsFailed`].
    pub fn check(&self) -> Result<(), PolicyError> {
        if self.failed.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::TestsFailed {
                failed: self.failed.clone(),
            })
        }
    }
}

impl Bundle {
    /// Builds a bundle from `(relative path, text)` pairs.
    ///
    /// Every path must end in `.rego`, be relative, and be unique; at least
    /// one file is required. Every file is parsed, and all parse errors are
    /// reported together with their file, line and column.
    pub fn from_files(files: Vec<(String, String)>) -> Result<Self, PolicyError> {
        if files.is_empty() {
            return Err(PolicyError::Empty);
        }
        let mut seen = BTreeSet::new();
        for (path, _) in &files {
            check_path(path)?;
            if !seen.insert(path.as_str()) {
                return Err(invalid(path, "it appears twice in the bundle"));
            }
        }
        let mut files = files;
        files.sort_by(|a, b| a.0.cmp(&b.0));
        load(&files)?;
        let hash = hash_files(&files);
        Ok(Self { files, hash })
    }

    /// Lowercase hex SHA-256 of the files: a domain tag, the file count,
    /// then for each file in path order its length-prefixed (u64, big
    /// endian) path and text. Independent of the order files were given in.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The hash [`Bundle::hash`] gives for `files`, in any order, without
    /// parsing them: for a caller that must not run the Rego engine itself.
    pub fn hash_of(files: &[(String, String)]) -> String {
        let mut sorted = files.to_vec();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        hash_files(&sorted)
    }

    /// The files, sorted by path.
    pub fn files(&self) -> &[(String, String)] {
        &self.files
    }

    /// Compiles the bundle with [`DEFAULT_TIME_LIMIT`] per evaluation.
    pub fn compile(&self) -> Result<Policy, PolicyError> {
        self.compile_with_time_limit(DEFAULT_TIME_LIMIT)
    }

    /// Compiles the bundle; each evaluation is cut off after `limit`.
    ///
    /// Fails if no file declares `package ward.broker`, if a file uses the
    /// reserved package `ward_policy_internal`, or if the static analysis of
    /// the Rego finds an error (reported with file, line and column).
    pub fn compile_with_time_limit(&self, limit: Duration) -> Result<Policy, PolicyError> {
        let (mut engine, packages) = load(&self.files)?;
        let broker = format!("data.{BROKER_PACKAGE}");
        let internal = format!("data.{INTERNAL_PACKAGE}");
        for (path, package) in &packages {
            if package == &internal || package.starts_with(&format!("{internal}.")) {
                return Err(PolicyError::ReservedPackage {
                    path: path.clone(),
                    package: package.trim_start_matches("data.").to_owned(),
                });
            }
        }
        let broker_files: Vec<&str> = packages
            .iter()
            .filter(|(_, package)| package == &broker)
            .map(|(path, _)| path.as_str())
            .collect();
        if broker_files.is_empty() {
            return Err(PolicyError::MissingPackage);
        }
        let mut declared = Vec::new();
        for rule in RULES {
            let mut found = false;
            for path in &broker_files {
                found |= engine
                    .has_declared_rule_rooted_at(path, rule)
                    .map_err(|e| PolicyError::Parse {
                        errors: vec![parse_error(path, &e.to_string())],
                    })?;
            }
            declared.push((rule, found));
        }
        engine
            .add_policy(
                format!("{INTERNAL_PACKAGE}.rego"),
                wrapper_module(&declared),
            )
            .map_err(|e| PolicyError::Parse {
                errors: vec![parse_error("<internal>", &e.to_string())],
            })?;
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit,
            check_interval: TIMER_CHECK_INTERVAL,
        });
        // Runs the static analysis once, so every evaluation starts from a
        // prepared engine and never recompiles.
        engine
            .compile_with_entrypoint(&DECISION_RULE.into())
            .map_err(|e| PolicyError::Parse {
                errors: vec![parse_error("<bundle>", &e.to_string())],
            })?;
        Ok(Policy::new(engine, self.hash.clone()))
    }

    /// Runs every rule whose name starts with `test_`, in any package.
    ///
    /// A test passes when it evaluates to `true`; `false`, undefined or an
    /// error fail it, with the reason. Tests run without `input` unless they
    /// set one with `with input as {...}`. A bundle without tests gives an
    /// empty report. Fails only if the bundle does not compile.
    pub fn run_tests(&self) -> Result<TestReport, PolicyError> {
        let (mut engine, packages) = load(&self.files)?;
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: TEST_TIME_LIMIT,
            check_interval: TIMER_CHECK_INTERVAL,
        });
        let mut tests = BTreeSet::new();
        for ((path, text), (_, package)) in self.files.iter().zip(&packages) {
            for name in test_candidates(text) {
                if engine
                    .has_declared_rule_rooted_at(path, name)
                    .unwrap_or(false)
                {
                    tests.insert((package.clone(), name.to_owned()));
                }
            }
        }
        let mut report = TestReport::default();
        for (package, name) in tests {
            let display = format!("{}.{name}", package.trim_start_matches("data."));
            let mut test_engine = engine.clone();
            match test_engine.eval_rule(format!("{package}.{name}")) {
                Ok(Value::Bool(true)) => report.passed.push(display),
                Ok(Value::Bool(false)) => {
                    report.failed.push((display, "evaluated to false".into()))
                }
                Ok(Value::Undefined) => report.failed.push((
                    display,
                    "undefined: a condition in its body is false".into(),
                )),
                Ok(other) => report.failed.push((
                    display,
                    format!(
                        "evaluated to `{}`, expected `true`",
                        other.to_json_str().unwrap_or_default().trim()
                    ),
                )),
                Err(e) => report
                    .failed
                    .push((display, engine_error(e.downcast_ref(), &e.to_string()))),
            }
        }
        Ok(report)
    }
}

fn invalid(path: &str, reason: &str) -> PolicyError {
    PolicyError::InvalidFile {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

fn check_path(path: &str) -> Result<(), PolicyError> {
    if !path.ends_with(".rego") {
        return Err(invalid(
            path,
            "a bundle holds only `.rego` files; leave other files out",
        ));
    }
    if path.starts_with('/') || path.starts_with('\\') || path.contains(':') {
        return Err(invalid(path, "use a path relative to the policy directory"));
    }
    if path
        .split(['/', '\\'])
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(invalid(
            path,
            "use a plain relative path without empty, `.` or `..` segments",
        ));
    }
    Ok(())
}

/// Parses every file into one engine; returns each file's package
/// (`data.a.b`) in file order, or every parse error found.
fn load(files: &[(String, String)]) -> Result<(Engine, Vec<(String, String)>), PolicyError> {
    let mut engine = Engine::new();
    let mut packages = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for (path, text) in files {
        match engine.add_policy(path.clone(), text.clone()) {
            Ok(package) => packages.push((path.clone(), package)),
            Err(e) => errors.push(parse_error(path, &e.to_string())),
        }
    }
    if errors.is_empty() {
        Ok((engine, packages))
    } else {
        Err(PolicyError::Parse { errors })
    }
}

fn hash_files(files: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(HASH_DOMAIN);
    hasher.update((files.len() as u64).to_be_bytes());
    for (path, text) in files {
        for part in [path.as_bytes(), text.as_bytes()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The module that gathers the four outputs of `data.ward.broker` into one
/// object, so one evaluation computes shared helper rules once. A rule the
/// bundle does not declare is the empty array.
fn wrapper_module(declared: &[(&str, bool)]) -> String {
    let mut module = format!("package {INTERNAL_PACKAGE}\n\n");
    for (rule, found) in declared {
        if *found {
            module.push_str(&format!(
                "default {rule} := []\n{rule} := data.{BROKER_PACKAGE}.{rule}\n\n"
            ));
        } else {
            module.push_str(&format!("{rule} := []\n\n"));
        }
    }
    let fields: Vec<String> = declared
        .iter()
        .map(|(rule, _)| format!("\"{rule}\": {rule}"))
        .collect();
    module.push_str(&format!("decision := {{{}}}\n", fields.join(", ")));
    module
}

/// Identifiers in `text` that start with `test_`: candidates to confirm with
/// the parser (a match may sit in a comment or a string).
fn test_candidates(text: &str) -> BTreeSet<&str> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = BTreeSet::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (start, is_ident(c)) {
            (None, true) => {
                let after_dot = text[..i].ends_with('.');
                start = Some((i, after_dot));
            }
            (Some((s, after_dot)), false) => {
                let word = &text[s..i];
                if !after_dot && word.starts_with("test_") {
                    out.insert(word);
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}
