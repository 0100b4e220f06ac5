//! Ward's wire types: the only place that defines the JSON the HTTP API
//! accepts and returns, one module per area. Requests reject unknown fields.

mod admin;
mod agents;
mod alerts;
mod approvals;
mod audit;
mod consents;
mod desktop;
mod error;
mod keys;
mod local;
mod meta;
mod policy;
pub mod sse;
mod switches;
mod tokens;
mod watch;

pub use admin::*;
pub use agents::*;
pub use alerts::*;
pub use approvals::*;
pub use audit::*;
pub use consents::*;
pub use desktop::*;
pub use error::*;
pub use keys::*;
pub use local::*;
pub use meta::*;
pub use policy::*;
pub use switches::*;
pub use tokens::*;
pub use watch::*;
