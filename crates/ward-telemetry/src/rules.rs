//! The alert rule file: which conditions raise alerts and where alerts go.
//! YAML, read strictly with line and column in every error
//! (`ward_model::yaml`), kept in the repository next to the matrix.
//!
//! ```yaml
//! version: 1
//! rules:                       # optional: absent means the three defaults
//!   - name: privileged-failures
//!     severity: high           # high | medium | low
//!     summary: More than 5 failed privileged operations from one agent in 5 minutes
//!     signal: privileged_failure
//!     by: agent                # agent | user | tenant
//!     window: 5m               # 1s to 7d: s, m, h, d
//!     above: 5                 # fires when the count in the window exceeds it
//!   - name: external-call-surge
//!     severity: medium
//!     summary: 3x the baseline rate of external API calls from one user within 15 minutes
//!     signal: external_call
//!     by: user
//!     window: 15m
//!     above_baseline: 3        # fires above 3x the subject's baseline ...
//!     baseline_floor: 5        # ... taken as at least 5 per window
//!   - name: heartbeat-missed
//!     severity: low
//!     summary: Agent heartbeat missed for 3 consecutive intervals
//!     heartbeat_missed: 3      # consecutive heartbeat intervals
//! receivers:                   # every alert goes to each (or `notify`)
//!   - name: alertmanager
//!     type: alertmanager       # Prometheus Alertmanager, API v2
//!     url: http://127.0.0.1:9093
//!   - name: security
//!     type: webhook            # JSON, signed with HMAC-SHA256
//!     url: https://hooks.example.com/ward
//!     secret_env: WARD_WEBHOOK_SECRET
//!   - name: chat
//!     type: slack              # Slack-compatible incoming webhook
//!     url_env: WARD_SLACK_URL
//!   - name: pager
//!     type: pagerduty          # PagerDuty Events API v2
//!     url: https://events.pagerduty.com/v2/enqueue
//!     secret_env: WARD_PAGERDUTY_ROUTING_KEY
//!     attempts: 8              # then the dead-letter list (default 8)
//!     backoff: 1s              # first retry; doubles, at most 5m (default 1s)
//! ```
//!
//! A `file_access` rule may count only some paths, e.g. a sensitive-path
//! detector: `signal: file_access`, `by: agent`, `window: 15m`,
//! `above: 0`, `paths: ["/home/*/.ssh/**", "/home/*/.aws/**"]` (file scope
//! patterns, matched against the canonical path the runtime recorded).
//!
//! Secrets (a webhook's HMAC key, a PagerDuty routing key, a Slack URL)
//! are named by environment variable or file, never written in the file;
//! the server reads them at start.

use serde::Deserialize;
use ward_model::scope::Scope;
use ward_model::yaml::{Tree, YamlError};

use crate::signal::Signal;

/// The file format version this reader knows.
pub const VERSION: u64 = 1;

/// Attempts per notification unless a receiver says otherwise: with the
/// backoff doubling from 1 s, the last is about 4 minutes after the first.
pub const DEFAULT_ATTEMPTS: u32 = 8;

/// The longest window a rule may have.
pub const MAX_WINDOW_SECS: u32 = 7 * 24 * 3600;

/// Alert rules and receivers.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSet {
    /// The rules, in file order; names are unique.
    pub rules: Vec<Rule>,
    /// Where alerts go, in file order; names are unique.
    pub receivers: Vec<Receiver>,
}

/// One rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Unique name, the alert's `alertname`.
    pub name: String,
    /// How urgent.
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// When it fires.
    pub condition: Condition,
    /// Receivers by name; empty: all.
    pub notify: Vec<String>,
    /// For a `file_access` rule: only accesses to these paths count (file
    /// scope patterns: `*` within a segment, `**` across); empty: all.
    pub paths: Vec<Scope>,
}

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Act now.
    High,
    /// Look today.
    Medium,
    /// Look when convenient.
    Low,
}

impl Severity {
    /// `high`, `medium` or `low`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    /// The severity named `name`.
    pub fn parse(name: &str) -> Option<Severity> {
        [Severity::High, Severity::Medium, Severity::Low]
            .into_iter()
            .find(|severity| severity.as_str() == name)
    }
}

/// Whose events a rule counts together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum By {
    /// One agent instance.
    Agent,
    /// One user (an agent's owner), across their agents.
    User,
    /// A whole tenant.
    Tenant,
}

impl By {
    /// `agent`, `user` or `tenant`.
    pub fn as_str(self) -> &'static str {
        match self {
            By::Agent => "agent",
            By::User => "user",
            By::Tenant => "tenant",
        }
    }

    /// The alert label and metric label naming the subject.
    pub fn label(self) -> &'static str {
        match self {
            By::Agent => "agent_id",
            By::User => "user_id",
            By::Tenant => "tenant",
        }
    }
}

/// When a rule fires.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// More than `above` events of `signal` from one subject in `window_secs`.
    Count {
        /// What is counted.
        signal: Signal,
        /// Per whom.
        by: By,
        /// The sliding window.
        window_secs: u32,
        /// The count that may still be reached without firing.
        above: u64,
    },
    /// More than `factor` times the subject's baseline count for a window
    /// of this length (at least `floor`).
    Baseline {
        /// What is counted.
        signal: Signal,
        /// Per whom.
        by: By,
        /// The sliding window.
        window_secs: u32,
        /// How many times the baseline.
        factor: f64,
        /// The least baseline assumed, so a subject with no history does
        /// not fire on its first event.
        floor: f64,
    },
    /// No heartbeat for `intervals` consecutive heartbeat intervals.
    HeartbeatMissed {
        /// How many.
        intervals: u32,
    },
}

/// Where alerts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    /// Unique name.
    pub name: String,
    /// What speaks there.
    pub kind: ReceiverKind,
    /// Its URL.
    pub url: Source,
    /// The HMAC key (webhook) or routing key (PagerDuty).
    pub secret: Option<Source>,
    /// Attempts per notification before it goes to the dead-letter list.
    pub attempts: u32,
    /// The wait before the first retry; it doubles each time, up to 5 minutes.
    pub backoff_secs: u32,
}

/// The kind of receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiverKind {
    /// Prometheus Alertmanager (`POST /api/v2/alerts`).
    Alertmanager,
    /// Any HTTP endpoint taking Ward's JSON, signed with HMAC-SHA256.
    Webhook,
    /// A Slack-compatible incoming webhook.
    Slack,
    /// PagerDuty Events API v2.
    PagerDuty,
}

impl ReceiverKind {
    /// The name in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Alertmanager => "alertmanager",
            ReceiverKind::Webhook => "webhook",
            ReceiverKind::Slack => "slack",
            ReceiverKind::PagerDuty => "pagerduty",
        }
    }
}

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Written in the file.
    Literal(String),
    /// An environment variable of the server.
    Env(String),
    /// A file the server reads (trailing newline removed).
    File(String),
}

impl RuleSet {
    /// The checklist's three rules and no receivers.
    pub fn defaults() -> RuleSet {
        RuleSet {
            rules: default_rules(),
            receivers: Vec::new(),
        }
    }

    /// Reads a rule file; every error names its line, column and key.
    pub fn from_yaml(text: &str) -> Result<RuleSet, Vec<YamlError>> {
        let tree = ward_model::yaml::load(text).map_err(|error| vec![error])?;
        let raw: RawFile = tree.deserialize().map_err(|error| vec![error])?;
        let mut errors = Vec::new();
        let set = validate(raw, &tree, &mut errors);
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// The rule named `name`.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.name == name)
    }

    /// The receivers `rule` notifies.
    pub fn receivers_of<'a>(&'a self, rule: &'a Rule) -> impl Iterator<Item = &'a Receiver> {
        self.receivers
            .iter()
            .filter(|receiver| rule.notify.is_empty() || rule.notify.contains(&receiver.name))
    }
}

fn default_rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "privileged-failures".into(),
            severity: Severity::High,
            summary: "More than 5 failed privileged operations from one agent in 5 minutes".into(),
            condition: Condition::Count {
                signal: Signal::PrivilegedFailure,
                by: By::Agent,
                window_secs: 300,
                above: 5,
            },
            notify: Vec::new(),
            paths: Vec::new(),
        },
        Rule {
            name: "external-call-surge".into(),
            severity: Severity::Medium,
            summary: "3x the baseline rate of external API calls from one user within 15 minutes"
                .into(),
            condition: Condition::Baseline {
                signal: Signal::ExternalCall,
                by: By::User,
                window_secs: 900,
                factor: 3.0,
                floor: 5.0,
            },
            notify: Vec::new(),
            paths: Vec::new(),
        },
        Rule {
            name: "heartbeat-missed".into(),
            severity: Severity::Low,
            summary: "Agent heartbeat missed for 3 consecutive intervals".into(),
            condition: Condition::HeartbeatMissed { intervals: 3 },
            notify: Vec::new(),
            paths: Vec::new(),
        },
    ]
}

/// Parses `30s`, `5m`, `1h`, `7d` into seconds (1 s to 7 days).
pub fn parse_duration(text: &str) -> Result<u32, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration; write a whole number and a unit: `30s`, `5m`, `1h`, `1d`"
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let secs = number.saturating_mul(unit);
    if secs == 0 || secs > u64::from(MAX_WINDOW_SECS) {
        return Err(format!("`{text}` is outside 1s to 7d"));
    }
    u32::try_from(secs).map_err(|_| bad())
}

/// Formats seconds as the shortest exact duration (`300` is `5m`).
pub fn format_duration(secs: u32) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

// ---------------------------------------------------------------------------
// Shape: what serde checks.

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `version` and optionally `rules`, `receivers`"
)]
struct RawFile {
    version: serde_json::Value,
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
    #[serde(default)]
    receivers: Vec<RawReceiver>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    severity: String,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    signal: Option<String>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    above: Option<u64>,
    #[serde(default)]
    above_baseline: Option<f64>,
    #[serde(default)]
    baseline_floor: Option<f64>,
    #[serde(default)]
    heartbeat_missed: Option<u32>,
    #[serde(default)]
    notify: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    url_env: Option<String>,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<String>,
    #[serde(default)]
    attempts: Option<u32>,
    #[serde(default)]
    backoff: Option<String>,
}

// ---------------------------------------------------------------------------
// Semantics: what `validate` checks, collecting every error.

fn validate(raw: RawFile, tree: &Tree, errors: &mut Vec<YamlError>) -> RuleSet {
    if raw.version.as_u64() != Some(VERSION) {
        errors.push(tree.error_at(
            "version",
            format!(
                "unsupported version `{}`; use `version: {VERSION}`",
                raw.version
            ),
        ));
    }
    let receivers: Vec<Receiver> = raw
        .receivers
        .into_iter()
        .enumerate()
        .filter_map(|(index, receiver)| {
            read_receiver(receiver, &format!("receivers[{index}]"), tree, errors)
        })
        .collect();
    check_unique(
        receivers.iter().map(|r| r.name.as_str()),
        "receivers",
        "receiver",
        tree,
        errors,
    );
    let rules = match raw.rules {
        None => default_rules(),
        Some(rules) => rules
            .into_iter()
            .enumerate()
            .filter_map(|(index, rule)| {
                read_rule(rule, &format!("rules[{index}]"), &receivers, tree, errors)
            })
            .collect(),
    };
    check_unique(
        rules.iter().map(|r| r.name.as_str()),
        "rules",
        "rule",
        tree,
        errors,
    );
    RuleSet { rules, receivers }
}

fn check_unique<'a>(
    names: impl Iterator<Item = &'a str>,
    list: &str,
    what: &str,
    tree: &Tree,
    errors: &mut Vec<YamlError>,
) {
    let mut seen = std::collections::HashSet::new();
    for (index, name) in names.enumerate() {
        if !seen.insert(name) {
            errors.push(tree.error_at(
                &format!("{list}[{index}].name"),
                format!("a second {what} is named `{name}`; names must be unique"),
            ));
        }
    }
}

fn read_rule(
    raw: RawRule,
    path: &str,
    receivers: &[Receiver],
    tree: &Tree,
    errors: &mut Vec<YamlError>,
) -> Option<Rule> {
    let before = errors.len();
    let at = |key: &str| format!("{path}.{key}");
    if !ward_model::matrix::is_valid_name(&raw.name) {
        errors.push(tree.error_at(
            &at("name"),
            format!(
                "`{}` is not a rule name; use 1 to 64 lowercase letters, digits, `.`, `_` or `-`",
                raw.name
            ),
        ));
    }
    let severity = Severity::parse(&raw.severity).unwrap_or_else(|| {
        errors.push(tree.error_at(
            &at("severity"),
            format!(
                "unknown severity `{}`; use `high`, `medium` or `low`",
                raw.severity
            ),
        ));
        Severity::Low
    });
    for (index, name) in raw.notify.iter().enumerate() {
        if !receivers.iter().any(|receiver| &receiver.name == name) {
            errors.push(tree.error_at(
                &format!("{path}.notify[{index}]"),
                format!("no receiver is named `{name}`; define it under `receivers`"),
            ));
        }
    }
    let condition = read_condition(&raw, path, tree, errors);
    let paths = read_paths(&raw, path, tree, errors);
    let summary = raw.summary.unwrap_or_else(|| raw.name.clone());
    if summary.trim().is_empty() || summary.len() > 512 || summary.contains(['\n', '\r']) {
        errors.push(tree.error_at(
            &at("summary"),
            "write one line of 1 to 512 bytes".to_owned(),
        ));
    }
    if errors.len() > before {
        return None;
    }
    Some(Rule {
        name: raw.name,
        severity,
        summary,
        condition: condition?,
        notify: raw.notify,
        paths,
    })
}

fn read_condition(
    raw: &RawRule,
    path: &str,
    tree: &Tree,
    errors: &mut Vec<YamlError>,
) -> Option<Condition> {
    let at = |key: &str| format!("{path}.{key}");
    if let Some(intervals) = raw.heartbeat_missed {
        for (key, present) in [
            ("signal", raw.signal.is_some()),
            ("by", raw.by.is_some()),
            ("window", raw.window.is_some()),
            ("above", raw.above.is_some()),
            ("above_baseline", raw.above_baseline.is_some()),
            ("baseline_floor", raw.baseline_floor.is_some()),
        ] {
            if present {
                errors.push(tree.error_at(
                    &at(key),
                    format!("`{key}` does not apply to a `heartbeat_missed` rule; remove it"),
                ));
            }
        }
        if !(1..=1000).contains(&intervals) {
            errors.push(tree.error_at(
                &at("heartbeat_missed"),
                "use 1 to 1000 intervals".to_owned(),
            ));
            return None;
        }
        return Some(Condition::HeartbeatMissed { intervals });
    }
    let Some(signal_name) = &raw.signal else {
        errors.push(tree.error_at(
            path,
            "a rule needs `signal` (with `by`, `window` and `above` or `above_baseline`) or `heartbeat_missed`".to_owned(),
        ));
        return None;
    };
    let signal = Signal::parse(signal_name).or_else(|| {
        let known: Vec<_> = Signal::ALL
            .iter()
            .map(|s| format!("`{}`", s.name()))
            .collect();
        errors.push(tree.error_at(
            &at("signal"),
            format!(
                "unknown signal `{signal_name}`; use one of {}",
                known.join(", ")
            ),
        ));
        None
    });
    let by = match raw.by.as_deref() {
        Some("agent") => Some(By::Agent),
        Some("user") => Some(By::User),
        Some("tenant") => Some(By::Tenant),
        Some(other) => {
            errors.push(tree.error_at(
                &at("by"),
                format!("unknown subject `{other}`; use `agent`, `user` or `tenant`"),
            ));
            None
        }
        None => {
            errors.push(tree.error_at(path, "missing key `by`; add it".to_owned()));
            None
        }
    };
    let window_secs = match raw.window.as_deref() {
        Some(text) => parse_duration(text)
            .map_err(|message| errors.push(tree.error_at(&at("window"), message)))
            .ok(),
        None => {
            errors.push(tree.error_at(path, "missing key `window`; add it".to_owned()));
            None
        }
    };
    let condition = match (raw.above, raw.above_baseline) {
        (Some(_), Some(_)) => {
            errors.push(tree.error_at(
                &at("above_baseline"),
                "use either `above` or `above_baseline`, not both".to_owned(),
            ));
            return None;
        }
        (None, None) => {
            errors.push(tree.error_at(
                path,
                "missing key `above` (a count) or `above_baseline` (a factor); add one".to_owned(),
            ));
            return None;
        }
        (Some(above), None) => {
            if raw.baseline_floor.is_some() {
                errors.push(tree.error_at(
                    &at("baseline_floor"),
                    "`baseline_floor` applies only with `above_baseline`; remove it".to_owned(),
                ));
            }
            Condition::Count {
                signal: signal?,
                by: by?,
                window_secs: window_secs?,
                above,
            }
        }
        (None, Some(factor)) => {
            if !(factor.is_finite() && factor > 1.0 && factor <= 1000.0) {
                errors.push(tree.error_at(
                    &at("above_baseline"),
                    format!("`{factor}` is not a factor above 1 (at most 1000)"),
                ));
            }
            let floor = raw.baseline_floor.unwrap_or(5.0);
            if !(floor.is_finite() && floor >= 1.0) {
                errors.push(tree.error_at(
                    &at("baseline_floor"),
                    format!("`{floor}` is not a count of at least 1"),
                ));
            }
            Condition::Baseline {
                signal: signal?,
                by: by?,
                window_secs: window_secs?,
                factor,
                floor,
            }
        }
    };
    Some(condition)
}

/// The `paths` of a rule: file scope patterns, only on `file_access` rules.
fn read_paths(raw: &RawRule, path: &str, tree: &Tree, errors: &mut Vec<YamlError>) -> Vec<Scope> {
    if raw.paths.is_empty() {
        return Vec::new();
    }
    if raw.signal.as_deref() != Some(Signal::FileAccess.name()) {
        errors.push(tree.error_at(
            &format!("{path}.paths"),
            "`paths` applies only to `signal: file_access` rules".to_owned(),
        ));
        return Vec::new();
    }
    raw.paths
        .iter()
        .enumerate()
        .filter_map(|(index, pattern)| {
            let parsed = if pattern.starts_with('/') {
                format!("files:*:{pattern}").parse::<Scope>().ok()
            } else {
                None
            };
            if parsed.is_none() {
                errors.push(tree.error_at(
                    &format!("{path}.paths[{index}]"),
                    format!(
                        "`{pattern}` is not an absolute path pattern such as `/home/*/.ssh/**`"
                    ),
                ));
            }
            parsed
        })
        .collect()
}

fn read_receiver(
    raw: RawReceiver,
    path: &str,
    tree: &Tree,
    errors: &mut Vec<YamlError>,
) -> Option<Receiver> {
    let before = errors.len();
    let at = |key: &str| format!("{path}.{key}");
    if !ward_model::matrix::is_valid_name(&raw.name) {
        errors.push(tree.error_at(
            &at("name"),
            format!(
                "`{}` is not a receiver name; use 1 to 64 lowercase letters, digits, `.`, `_` or `-`",
                raw.name
            ),
        ));
    }
    let kind = match raw.kind.as_str() {
        "alertmanager" => ReceiverKind::Alertmanager,
        "webhook" => ReceiverKind::Webhook,
        "slack" => ReceiverKind::Slack,
        "pagerduty" => ReceiverKind::PagerDuty,
        other => {
            errors.push(tree.error_at(
                &at("type"),
                format!(
                    "unknown receiver type `{other}`; use `alertmanager`, `webhook`, `slack` or `pagerduty`"
                ),
            ));
            return None;
        }
    };
    let url = match (raw.url, raw.url_env) {
        (Some(url), None) => {
            if !is_http_url(&url) {
                errors.push(tree.error_at(
                    &at("url"),
                    format!("`{url}` is not an http:// or https:// URL"),
                ));
            }
            Source::Literal(url)
        }
        (None, Some(name)) => Source::Env(name),
        _ => {
            errors.push(tree.error_at(path, "give exactly one of `url` and `url_env`".to_owned()));
            return None;
        }
    };
    let secret = match (raw.secret_env, raw.secret_file) {
        (Some(name), None) => Some(Source::Env(name)),
        (None, Some(file)) => Some(Source::File(file)),
        (None, None) => None,
        (Some(_), Some(_)) => {
            errors.push(tree.error_at(
                &at("secret_file"),
                "give either `secret_env` or `secret_file`, not both".to_owned(),
            ));
            return None;
        }
    };
    match (kind, &secret) {
        (ReceiverKind::Webhook, None) => errors.push(tree.error_at(
            path,
            "a webhook is signed: add `secret_env` or `secret_file` naming its HMAC key".to_owned(),
        )),
        (ReceiverKind::PagerDuty, None) => errors.push(tree.error_at(
            path,
            "PagerDuty needs its routing key: add `secret_env` or `secret_file`".to_owned(),
        )),
        (ReceiverKind::Alertmanager | ReceiverKind::Slack, Some(_)) => errors.push(tree.error_at(
            path,
            format!(
                "a `{}` receiver takes no secret; remove `secret_env`/`secret_file`",
                kind.as_str()
            ),
        )),
        _ => {}
    }
    let attempts = raw.attempts.unwrap_or(DEFAULT_ATTEMPTS);
    if !(1..=100).contains(&attempts) {
        errors.push(tree.error_at(&at("attempts"), "use 1 to 100 attempts".to_owned()));
    }
    let backoff_secs = match raw.backoff.as_deref() {
        None => 1,
        Some(text) => match parse_duration(text) {
            Ok(secs) if secs <= 300 => secs,
            Ok(_) => {
                errors.push(tree.error_at(&at("backoff"), "use at most 5m".to_owned()));
                1
            }
            Err(message) => {
                errors.push(tree.error_at(&at("backoff"), message));
                1
            }
        },
    };
    if errors.len() > before {
        return None;
    }
    Some(Receiver {
        name: raw.name,
        kind,
        url,
        secret,
        attempts,
        backoff_secs,
    })
}

/// Whether `text` looks like an absolute http(s) URL (the server parses
/// it fully when it starts).
pub fn is_http_url(text: &str) -> bool {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        !rest.is_empty()
            && !rest.starts_with('/')
            && !text.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_rules_keeps_the_three_defaults() {
        let set = RuleSet::from_yaml("version: 1\nreceivers:\n  - name: am\n    type: alertmanager\n    url: http://127.0.0.1:9093\n").unwrap();
        assert_eq!(set.rules, RuleSet::defaults().rules);
        assert_eq!(set.receivers.len(), 1);
        let names: Vec<_> = set.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "privileged-failures",
                "external-call-surge",
                "heartbeat-missed"
            ]
        );
    }

    #[test]
    fn the_documented_example_reads() {
        let doc = include_str!("rules.rs")
            .lines()
            .skip_while(|line| !line.starts_with("//! ```yaml"))
            .skip(1)
            .take_while(|line| !line.starts_with("//! ```"))
            .map(|line| line.strip_prefix("//! ").unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let set = RuleSet::from_yaml(&doc).unwrap();
        assert_eq!(set.rules, RuleSet::defaults().rules);
        assert_eq!(set.receivers.len(), 4);
        assert_eq!(
            set.receivers[1].secret,
            Some(Source::Env("WARD_WEBHOOK_SECRET".into()))
        );
        assert_eq!(set.receivers[2].url, Source::Env("WARD_SLACK_URL".into()));
    }

    #[test]
    fn every_error_names_its_line_and_column() {
        let text = "version: 1\nrules:\n  - name: Bad Name\n    severity: urgent\n    signal: privileged_failures\n    by: agent\n    window: 5 minutes\n    above: 5\n    notify: [nobody]\n";
        let errors = RuleSet::from_yaml(text).unwrap_err();
        let rendered: Vec<_> = errors.iter().map(ToString::to_string).collect();
        assert!(
            rendered
                .iter()
                .any(|e| e.starts_with("line 3, column 11:") && e.contains("rule name")),
            "{rendered:?}"
        );
        assert!(
            rendered
                .iter()
                .any(|e| e.starts_with("line 4, column 15:") && e.contains("`urgent`")),
            "{rendered:?}"
        );
        assert!(
            rendered
                .iter()
                .any(|e| e.starts_with("line 5, column 13:") && e.contains("unknown signal")),
            "{rendered:?}"
        );
        assert!(
            rendered
                .iter()
                .any(|e| e.starts_with("line 7, column 13:") && e.contains("not a duration")),
            "{rendered:?}"
        );
        assert!(
            rendered
                .iter()
                .any(|e| e.starts_with("line 9, column 14:") && e.contains("no receiver")),
            "{rendered:?}"
        );
    }

    #[test]
    fn conflicting_and_missing_keys_are_refused() {
        for (text, needle) in [
            ("version: 2\n", "unsupported version"),
            (
                "version: 1\nrules:\n  - name: a\n    severity: low\n    signal: action\n    by: agent\n    window: 1m\n    above: 1\n    above_baseline: 2\n",
                "not both",
            ),
            (
                "version: 1\nrules:\n  - name: a\n    severity: low\n    signal: action\n    by: agent\n    window: 1m\n",
                "missing key `above`",
            ),
            (
                "version: 1\nrules:\n  - name: a\n    severity: low\n    heartbeat_missed: 3\n    window: 1m\n",
                "does not apply",
            ),
            (
                "version: 1\nrules:\n  - name: a\n    severity: low\n    signal: action\n    by: agent\n    window: 8d\n    above: 1\n",
                "outside 1s to 7d",
            ),
            (
                "version: 1\nrules:\n  - name: a\n    severity: low\n    signal: action\n    by: agent\n    window: 1m\n    above_baseline: 1\n",
                "factor above 1",
            ),
            (
                "version: 1\nrules:\n  - name: a\n    severity: low\n    heartbeat_missed: 1\n  - name: a\n    severity: low\n    heartbeat_missed: 2\n",
                "unique",
            ),
            (
                "version: 1\nreceivers:\n  - name: w\n    type: webhook\n    url: https://x.example\n",
                "HMAC",
            ),
            (
                "version: 1\nreceivers:\n  - name: w\n    type: slack\n    url: ftp://x.example\n",
                "not an http",
            ),
            (
                "version: 1\nreceivers:\n  - name: w\n    type: email\n    url: https://x.example\n",
                "unknown receiver type",
            ),
            ("version: 1\nextra: 1\n", "unknown key `extra`"),
        ] {
            let errors = RuleSet::from_yaml(text).unwrap_err();
            assert!(
                errors.iter().any(|e| e.message.contains(needle)),
                "{text:?}: {errors:?}"
            );
        }
    }

    #[test]
    fn path_rules_take_file_patterns_on_file_access_only() {
        let ok = "version: 1\nrules:\n  - name: ssh\n    severity: high\n    signal: file_access\n    by: agent\n    window: 15m\n    above: 0\n    paths: [\"/home/*/.ssh/**\", \"/etc/shadow\"]\n";
        let set = RuleSet::from_yaml(ok).unwrap();
        assert_eq!(set.rules[0].paths.len(), 2);
        assert!(set.rules[0].paths[0].matches("files", "read", "/home/alice/.ssh/id_ed25519"));
        for (text, needle) in [
            (
                "version: 1\nrules:\n  - name: a\n    severity: low\n    signal: external_call\n    by: agent\n    window: 1m\n    above: 0\n    paths: [\"/x\"]\n",
                "only to `signal: file_access`",
            ),
            (
                "version: 1\nrules:\n  - name: a\n    severity: low\n    signal: file_access\n    by: agent\n    window: 1m\n    above: 0\n    paths: [\"~/.ssh\"]\n",
                "absolute path pattern",
            ),
        ] {
            let errors = RuleSet::from_yaml(text).unwrap_err();
            assert!(
                errors.iter().any(|e| e.message.contains(needle)),
                "{errors:?}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("1s"), Ok(1));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        for bad in ["0s", "5", "m", "5 m", "-1s", "1w", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(300), "5m");
        assert_eq!(format_duration(90), "90s");
        assert_eq!(format_duration(7200), "2h");
    }
}
