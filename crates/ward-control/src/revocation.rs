//! The control plane's source of the shared enforcement state
//! (`ward_model::enforcement`): revocation rules from stored rows.
//!
//! INVARIANT: a revocation is added to memory only after it is durable, and
//! the set is loaded from the database at start, so it never forgets one.

use ward_model::enforcement::RevocationRule;
use ward_store::RevocationRow;

pub use ward_model::enforcement::{ReplayCache, Revocations, TokenFacts};

/// The rule a stored revocation makes.
pub fn rule_of(row: &RevocationRow) -> RevocationRule {
    RevocationRule {
        id: row.id.clone(),
        tenant: row.tenant_id.clone(),
        kind: row.kind.clone(),
        value: row.value.clone(),
        revoked_at_ms: row.revoked_at_ms,
    }
}

/// A rule revoking every token of `agent` issued up to `revoked_at_ms`,
/// which the caller takes inside the write transaction that stores it.
pub fn agent_rule(
    id: String,
    tenant: &str,
    agent: &str,
    revoked_at_ms: i64,
    reason: String,
    created_by: String,
) -> RevocationRow {
    RevocationRow {
        id,
        tenant_id: tenant.to_owned(),
        kind: "agent".into(),
        value: agent.to_owned(),
        revoked_at_ms,
        reason,
        created_by,
    }
}
