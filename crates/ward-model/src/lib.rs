//! Ward's domain model: scopes and their matching, the capability matrix,
//! the agent lifecycle, the audit hash chain, the enforcement state and the
//! change feed that carries it. Pure: no I/O, no async, no clock.

pub mod audit;
pub mod enforcement;
pub mod feed;
pub mod lifecycle;
pub mod matrix;
pub mod roles;
pub mod scope;
pub mod timestamp;
pub mod yaml;
