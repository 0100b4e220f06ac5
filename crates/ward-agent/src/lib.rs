//! Ward's desktop runtime: what runs on the device an agent works on. Today
//! it enrols the device and gets DPoP-bound tokens; it knows nothing about
//! the command line (the `ward agent` commands call it) or the server's
//! insides (it speaks the HTTP API through `ward-client`).
//!
//! - [`state`]: the state directory (private to its user) and the agent
//!   record `ward agent enroll` leaves in it.
//! - [`device_key`]: the device's Ed25519 key, a 0600 file that never
//!   leaves the state directory.
//! - [`enrolment`]: enrol this device with an enrolment token.
//! - [`token`]: ask the broker for a token, proving possession of the
//!   device key (DPoP).
//! - [`resource`]: resources in canonical form, Ward's own paths.
//! - [`decide`]: the local `authorize` decision.
//! - [`shell`]: what a shell command line would run, read and write.
//! - [`toolcall`]: an agent's tool call as the `authorize` questions it
//!   needs answered.
//! - [`hook`]: agents' hook calls (Claude Code) answered by the daemon.
//! - [`install`]: Ward's entries merged into an agent's settings, and
//!   removed exactly.
//! - [`sandbox`]: an agent process confined by Landlock to its scopes.
//! - [`mcp`]: what an MCP server's tools and calls may pass (`ward mcp
//!   proxy`).
//! - [`spool`]: the durable event spool (segments with checksummed
//!   records, group commit, a size bound, crash recovery).
//! - [`error`]: the one error type.
//!
//! INVARIANT: only the public half of the device key is ever sent.

pub mod daemon;
pub mod decide;
pub mod device_key;
pub mod enrolment;
pub mod error;
pub mod hook;
pub mod install;
pub mod mcp;
pub mod resource;
pub mod sandbox;
pub mod shell;
pub mod spool;
pub mod state;
pub mod supervise;
pub mod token;
pub mod toolcall;

pub use enrolment::{DeviceFacts, enrol};
pub use error::AgentError;
pub use spool::{Appended, Class, Record, Spool, SpoolConfig};
pub use state::{AgentRecord, StateDir};
pub use token::{TokenWanted, acquire_token};
