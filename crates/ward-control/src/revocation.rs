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
