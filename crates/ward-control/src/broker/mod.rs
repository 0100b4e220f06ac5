//! The token broker's decisions, one entry per decision, apart from HTTP:
//! handlers in `routes/` translate a request into a call here and the
//! outcome back into a response.
//!
//! - [`token`]: issuing a token, stage by stage.
//! - [`introspect`]: whether a token is active (RFC 7662).
//! - [`device`]: authenticating an agent by its device key (the first stage).
//! - [`consent`]: recording the owner's consent, and checking it at token time.
//! - [`approval`]: the approval gate of a token, and approvers' decisions.
//! - [`enrolment`]: enrolment tokens and enrolling a device.
//! - [`lifecycle`]: moving an agent between states.
//! - [`revoke`]: revoking tokens by id, agent or scope prefix.
//! - [`heartbeat`]: heartbeats and directive acknowledgements of devices.
//! - [`staleness`]: the per-tenant staleness policy; which agents are stale.
//! - [`reach`]: how far each kill switch reached; the agent gauges.
//! - [`events`]: accepting a device's batch of shipped events.

pub mod approval;
pub mod consent;
pub mod device;
pub mod enrolment;
pub mod events;
pub mod heartbeat;
pub mod introspect;
pub mod lifecycle;
pub mod reach;
pub mod revoke;
pub mod staleness;
pub mod token;
