//! Ward's domain model: scopes and their matching, the capability matrix,
//! the agent lifecycle and the audit hash chain. Pure: no I/O, no async.

pub mod audit;
pub mod enforcement;
pub mod lifecycle;
pub mod matrix;
pub mod roles;
pub mod scope;
pub mod timestamp;
pub mod yaml;
