//! The change feed gateways follow: revocations, kill switches, flags, key
//! rotations and agent state changes, each appended in the transaction that
//! made the change, numbered in commit order.

use rusqlite::{Connection, params};

use crate::StoreError;

/// One change. `tenant_id` is empty for instance-wide changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    /// Position in the feed; strictly increasing in commit order.
    pub seq: i64,
    /// Tenant, or empty for instance-wide changes.
    pub tenant_id: String,
    /// `revocation`, `killswitch`, `flag`, `key_rotation` or `agent_state`.
    pub kind: String,
    /// The change, JSON.
    pub payload: String,
    /// RFC 3339.
    pub ts: String,
}

/// Appends a change; returns its sequence number.
pub fn append_event(
    conn: &Connection,
    tenant: &str,
    kind: &str,
    payload: &str,
    ts: &str,
) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO events (tenant_id, kind, payload, ts) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![tenant, kind, payload, ts])?;
    Ok(conn.last_insert_rowid())
}

/// Changes after `after`, visible to `tenant` (every tenant when `None`), in order.
pub fn events_after(
    conn: &Connection,
    tenant: Option<&str>,
    after: i64,
    limit: u32,
) -> Result<Vec<EventRow>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, tenant_id, kind, payload, ts FROM events WHERE seq > ?1 \
         AND (?2 IS NULL OR tenant_id = ?2 OR tenant_id = '') ORDER BY seq LIMIT ?3",
    )?;
    let rows = statement.query_map(params![after, tenant, limit], |row| {
        Ok(EventRow {
            seq: row.get(0)?,
            tenant_id: row.get(1)?,
            kind: row.get(2)?,
            payload: row.get(3)?,
            ts: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest sequence number (0 when empty).
pub fn last_event(conn: &Connection) -> Result<i64, StoreError> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |row| {
            row.get(0)
        })?,
    )
}
