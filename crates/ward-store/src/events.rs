//! The change feed gateways follow (`ward_model::feed::Event`): each event
//! appended in the transaction that made the change, numbered in commit
//! order, and read back in its wire form (kind and JSON data) so the feed
//! streams exactly what was written.

use rusqlite::{Connection, params};
use ward_model::feed::Event;

use crate::StoreError;

/// One stored change. `tenant_id` is empty for instance-wide changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    /// Position in the feed; strictly increasing in commit order.
    pub seq: i64,
    /// Tenant, or empty for instance-wide changes.
    pub tenant_id: String,
    /// The event's kind (`ward_model::feed::Event::KINDS`).
    pub kind: String,
    /// The event's data, JSON.
    pub payload: String,
    /// RFC 3339.
    pub ts: String,
}

/// Appends a change at `ts` (RFC 3339); returns its sequence number.
pub fn append_event(conn: &Connection, event: &Event, ts: &str) -> Result<i64, StoreError> {
    let (kind, payload) = event
        .encode()
        .map_err(|e| StoreError::Rejected(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO events (tenant_id, kind, payload, ts) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![event.tenant(), kind, payload, ts])?;
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
