//! What one agent event signals. The metrics (`agent_*_total`), the alert
//! rules and the baselines all count through [`signals`], so a Prometheus
//! rule over Ward's metrics and Ward's own engine count the same things.
//!
//! Ward's definitions, for events whose `action` is `resource:verb` (what
//! the desktop runtime records for every decision and tool outcome) and
//! whose `result` is an outcome (`allow`, `deny`, `ok`, `error`):
//! - action: every such event;
//! - failure: `result` is `deny` or `error`;
//! - privileged: the verb changes something (anything but `read`, `list`,
//!   `get`, the read-style verbs of `ward_model::scope::Scope::is_read`), or
//!   the event's feature is high risk in the matrix;
//! - external call: resource `http` (what a tool sends off the device);
//! - file access: resource `files`;
//! - export: data sent out: verb `export`, `upload`, `share` or `send` on
//!   any resource, or `post`, `put`, `patch` on `http`.
//!
//! Other events (`tool.judge`, `session.start`, `directive`, ...) signal
//! nothing.

use serde::{Deserialize, Serialize};

/// A countable signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Any action with an outcome.
    Action,
    /// A privileged action denied or failed.
    PrivilegedFailure,
    /// A call to an external API.
    ExternalCall,
    /// A file access.
    FileAccess,
    /// Data sent off the device.
    Export,
    /// An action denied.
    Denial,
}

impl Signal {
    /// Every signal, in a fixed order.
    pub const ALL: [Signal; 6] = [
        Signal::Action,
        Signal::PrivilegedFailure,
        Signal::ExternalCall,
        Signal::FileAccess,
        Signal::Export,
        Signal::Denial,
    ];

    /// The name in rule files, e.g. `privileged_failure`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Action => "action",
            Signal::PrivilegedFailure => "privileged_failure",
            Signal::ExternalCall => "external_call",
            Signal::FileAccess => "file_access",
            Signal::Export => "export",
            Signal::Denial => "denial",
        }
    }

    /// The Prometheus counter that counts it, e.g.
    /// `agent_privileged_failures_total`.
    pub fn metric(self) -> &'static str {
        match self {
            Signal::Action => "agent_actions_total",
            Signal::PrivilegedFailure => "agent_privileged_failures_total",
            Signal::ExternalCall => "agent_external_calls_total",
            Signal::FileAccess => "agent_file_accesses_total",
            Signal::Export => "agent_exports_total",
            Signal::Denial => "agent_denials_total",
        }
    }

    /// What one occurrence is called in an alert's explanation.
    pub fn noun(self) -> &'static str {
        match self {
            Signal::Action => "actions",
            Signal::PrivilegedFailure => "failed privileged operations",
            Signal::ExternalCall => "external API calls",
            Signal::FileAccess => "file accesses",
            Signal::Export => "exports",
            Signal::Denial => "denied actions",
        }
    }

    /// The signal named `name` in a rule file.
    pub fn parse(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|signal| signal.name() == name)
    }
}

/// The signals of one event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals(u8);

impl Signals {
    /// Reports whether `signal` is among them.
    pub fn contains(self, signal: Signal) -> bool {
        self.0 & bit(signal) != 0
    }

    /// Reports whether there is none.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The signals present, in [`Signal::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Signal> {
        Signal::ALL
            .into_iter()
            .filter(move |signal| self.contains(*signal))
    }

    fn with(self, signal: Signal, on: bool) -> Signals {
        if on {
            Signals(self.0 | bit(signal))
        } else {
            self
        }
    }
}

fn bit(signal: Signal) -> u8 {
    1 << (signal as u8)
}

/// The resource class of an action, a bounded label for metrics:
/// `files`, `exec`, `http`, `mcp`, `tool`, or `other`.
pub fn resource_class(action: &str) -> &'static str {
    match action.split_once(':').map(|(resource, _)| resource) {
        Some("files") => "files",
        Some("exec") => "exec",
        Some("http") => "http",
        Some("mcp") => "mcp",
        Some("tool") => "tool",
        _ => "other",
    }
}

/// The outcome of an event, a bounded label for metrics: `allow`, `deny`,
/// `ok`, `error`, or `None` when the event is not an action's outcome.
pub fn outcome(result: &str) -> Option<&'static str> {
    match result {
        "allow" => Some("allow"),
        "deny" => Some("deny"),
        "ok" => Some("ok"),
        "error" => Some("error"),
        _ => None,
    }
}

/// What an event with `action` and `result` signals; `high_risk` says
/// whether its feature is high risk in the matrix.
pub fn signals(action: &str, result: &str, high_risk: bool) -> Signals {
    let Some((resource, verb)) = action.split_once(':') else {
        return Signals::default();
    };
    let Some(outcome) = outcome(result) else {
        return Signals::default();
    };
    if resource.is_empty() || verb.is_empty() {
        return Signals::default();
    }
    let failed = matches!(outcome, "deny" | "error");
    let privileged = high_risk || !matches!(verb, "read" | "list" | "get");
    let export = matches!(verb, "export" | "upload" | "share" | "send")
        || (resource == "http" && matches!(verb, "post" | "put" | "patch"));
    Signals::default()
        .with(Signal::Action, true)
        .with(Signal::PrivilegedFailure, privileged && failed)
        .with(Signal::ExternalCall, resource == "http")
        .with(Signal::FileAccess, resource == "files")
        .with(Signal::Export, export)
        .with(Signal::Denial, outcome == "deny")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(action: &str, result: &str, high_risk: bool) -> Vec<&'static str> {
        signals(action, result, high_risk)
            .iter()
            .map(Signal::name)
            .collect()
    }

    #[test]
    fn a_denied_write_is_a_privileged_failure_and_a_denied_read_is_not() {
        assert_eq!(
            names("files:write", "deny", false),
            ["action", "privileged_failure", "file_access", "denial"]
        );
        assert_eq!(
            names("files:read", "deny", false),
            ["action", "file_access", "denial"]
        );
        assert_eq!(
            names("files:read", "allow", false),
            ["action", "file_access"]
        );
    }

    #[test]
    fn a_high_risk_feature_makes_a_failed_read_privileged() {
        assert_eq!(
            names("files:read", "error", true),
            ["action", "privileged_failure", "file_access"]
        );
        assert_eq!(names("files:read", "ok", true), ["action", "file_access"]);
    }

    #[test]
    fn http_calls_are_external_and_sending_verbs_are_exports() {
        assert_eq!(
            names("http:get", "allow", false),
            ["action", "external_call"]
        );
        assert_eq!(
            names("http:post", "allow", false),
            ["action", "external_call", "export"]
        );
        assert_eq!(names("mcp:upload", "ok", false), ["action", "export"]);
    }

    #[test]
    fn events_that_are_not_outcomes_of_actions_signal_nothing() {
        for (action, result) in [
            ("tool.judge", "deny"),
            ("session.start", "ok"),
            ("directive", "applied"),
            ("files:write", "applied"),
            (":write", "deny"),
            ("files:", "deny"),
        ] {
            assert!(
                signals(action, result, true).is_empty(),
                "{action} {result}"
            );
        }
    }

    #[test]
    fn names_and_metrics_round_trip_and_are_distinct() {
        let mut metrics: Vec<_> = Signal::ALL.iter().map(|s| s.metric()).collect();
        metrics.dedup();
        assert_eq!(metrics.len(), Signal::ALL.len());
        for signal in Signal::ALL {
            assert_eq!(Signal::parse(signal.name()), Some(signal));
        }
        assert_eq!(Signal::parse("privileged_failures"), None);
        assert_eq!(resource_class("files:read"), "files");
        assert_eq!(resource_class("secrets:read"), "other");
    }
}
