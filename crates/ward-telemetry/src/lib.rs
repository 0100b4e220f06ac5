//! Ward's telemetry rules, pure: no I/O, no clock (callers pass `now`).
//!
//! - [`signal`]: what one agent event signals (an action, a privileged
//!   failure, an external call, a file access, an export, a denial), the
//!   one classification metrics, alert rules and baselines all use.
//! - [`rules`]: the alert rule file (YAML, kept with the matrix) with the
//!   checklist's three defaults, and where alerts are delivered.
//! - [`window`]: sliding windows counting by the second.
//! - [`engine`]: rules evaluated on the event stream and on a tick: fire,
//!   deduplicate, resolve, and say why.
//! - [`baseline`]: per-subject rates with hour-of-week seasonality and
//!   robust statistics (median, MAD).
//! - [`export`]: the rules as Prometheus alerting rules over Ward's
//!   metrics.

pub mod baseline;
pub mod engine;
pub mod export;
pub mod rules;
pub mod signal;
pub mod window;
