//! Pages of the audit log, read from the domain's chained records.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use ward_model::audit::ChainedRecord;

/// One audit log entry.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Position in the hash chain.
    pub seq: i64,
    /// Time, RFC 3339.
    pub ts: String,
    /// Tenant id, absent for instance-wide actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Who acted.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// `success`, `denied` or `error`.
    pub result: String,
    /// Why.
    pub reason: String,
    /// Correlation id of the request.
    pub correlation_id: String,
    /// Further facts.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

/// A page of audit entries.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Entries in ascending sequence order.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl From<ChainedRecord> for AuditEntry {
    fn from(chained: ChainedRecord) -> AuditEntry {
        let r = chained.record;
        AuditEntry {
            seq: r.seq,
            ts: r.ts,
            tenant: r.tenant,
            actor: r.actor,
            action: r.action,
            target: r.target,
            result: r.result.as_str().to_owned(),
            reason: r.reason,
            correlation_id: r.correlation_id,
            details: serde_json::from_str(&r.details)
                .unwrap_or(serde_json::Value::String(r.details)),
            prev_hash: chained.prev_hash,
            hash: chained.hash,
        }
    }
}
