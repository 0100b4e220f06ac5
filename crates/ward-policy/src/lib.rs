//! Policy as code for the broker: a bundle of Rego files, evaluated with the
//! `regorus` engine for every token request and enrolment after the
//! capability matrix has granted it.
//!
//! Policy can only take away. The matrix decides first; a policy can deny,
//! require a second person's approval, drop requested scopes, or shorten the
//! lifetime, never widen a grant. Any error in evaluation is returned as
//! [`PolicyError::Evaluation`] and the caller denies (fail closed).
//!
//! The crate is pure: callers read the files and pass them in.
//!
//! # Lifecycle
//!
//! 1. [`Bundle::from_files`] takes the `.rego` files of a policy directory,
//!    parses them (all parse errors at once, with file, line and column) and
//!    computes [`Bundle::hash`].
//! 2. [`Bundle::run_tests`] evaluates every rule named `test_*` in any
//!    package; [`TestReport::check`] turns failures into an error. A bundle
//!    that does not parse or fails its tests must not replace the active one.
//! 3. [`Bundle::compile`] checks that `package ward.broker` exists and
//!    prepares the engine once; [`Policy::evaluate`] then runs per request
//!    from any number of threads, within a time limit
//!    ([`DEFAULT_TIME_LIMIT`]).
//!
//! A host that must not run tenant Rego in its own process (the control
//! plane) runs [`sandbox::Sandbox`] in a child process under operating
//! system limits and exchanges [`sandbox::Request`]s and
//! [`sandbox::Response`]s with it; the crate stays free of that I/O.
//!
//! # Contract for policy authors
//!
//! The broker evaluates package `ward.broker` and reads four rules; every
//! other rule is ignored (use as many helpers as you like). Each is a set of
//! objects, written `name contains {...} if { ... }`:
//!
//! | rule | element | effect |
//! |---|---|---|
//! | `deny` | `{"rule": R, "message": M}` | any element denies |
//! | `require_approval` | `{"rule": R, "message": M}` | a second person must approve |
//! | `remove_scopes` | `{"rule": R, "scope": S, "message": M}` | drops the requested scope `S` |
//! | `max_duration` | `{"rule": R, "seconds": N}` (optional `"message"`) | lifetime at most `N` s; the smallest wins |
//!
//! `rule` and `message` are non-empty strings, `seconds` a positive whole
//! number. An element of another shape, an unknown key, or one of the four
//! rules defined as something other than a set (or array) of such objects is
//! an evaluation error, so the request is denied. A `remove_scopes` element
//! naming a scope that was not requested has no effect.
//!
//! # Input document
//!
//! ```json
//! {
//!   "action": "token.issue",
//!   "request": {"scopes": ["exec:run:/usr/bin/git"], "duration": 900},
//!   "agent": {"id": "agt_...", "profile": "developer", "state": "active", "owner": "alice@example.com"},
//!   "device": {"os": "macos", "os_version": "15.2", "agent_version": "1.4.0", "host_id": "host-77"},
//!   "tenant": {"id": "ten_...", "name": "acme"},
//!   "time": {"unix": 1764123639, "rfc3339": "2026-11-26T02:20:39Z", "hour": 2, "weekday": "thursday"},
//!   "matrix": {"profile_high_risk": true, "grants": [{"scope": "exec:run:/usr/bin/git", "feature": "run-git", "risk": "high"}]}
//! }
//! ```
//!
//! `action` is `token.issue` or `agent.enroll`. `time` is UTC; `hour` is
//! 0–23 and `weekday` lowercase English. `matrix.grants` lists, for each
//! granted scope, the matrix feature and its risk (`low` or `high`).
//!
//! # Built-ins
//!
//! `regorus` is built with the `arc`, `std` and `regex` features: the core
//! OPA built-ins (strings, numbers, aggregates, arrays, sets, objects,
//! `regex.*`) are available; `time.*`, `http.send`, `net.*`, `semver.*`,
//! `glob.*`, `uuid.*`, encodings and JSON Schema are not. Rego v1 syntax.

mod bundle;
mod error;
mod policy;
pub mod sandbox;

pub use bundle::{BROKER_PACKAGE, Bundle, DEFAULT_TIME_LIMIT, TestReport};
pub use error::{ParseError, PolicyError};
pub use policy::{Policy, PolicyDecision, Reason};
