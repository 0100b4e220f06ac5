//! The snapshot a follower of the change feed starts from, and the reader
//! of the stream's framing (server-sent events) that followers share.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::keys::Jwks;
use crate::switches::{Flag, KillSwitch};
use crate::tokens::Revocation;

/// `GET /v1/watch/snapshot`: the state a gateway loads before following
/// `GET /v1/watch` from `seq`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WatchSnapshot {
    /// Follow the stream after this event (send it as `Last-Event-ID`).
    pub seq: i64,
    /// Revocation rules still able to revoke an unexpired token.
    pub revocations: Vec<Revocation>,
    /// Engaged kill switches.
    pub killswitches: Vec<KillSwitch>,
    /// Feature flag values.
    pub flags: Vec<Flag>,
    /// The signing keys.
    pub jwks: Jwks,
    /// The scopes of the capability matrix's high-risk features: a gateway
    /// whose state is stale refuses requests needing one of them.
    #[serde(default)]
    pub high_risk_scopes: Vec<String>,
    /// The one tenant this stream covers (a tenant token's), or none for
    /// the whole instance (the bootstrap token). A gateway following one
    /// tenant must refuse every other tenant's tokens: their revocations
    /// are not in its stream.
    #[serde(default)]
    pub tenant: Option<String>,
}
