//! Kill switches and feature flags: the runtime switches operators flip.

use rusqlite::{Connection, params};

use crate::StoreError;

/// An engaged kill switch. `tenant_id` is empty for instance-wide ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KillSwitchRow {
    /// `global`, `tenant`, `agent` or `agent_version`.
    pub scope: String,
    /// Tenant, or empty for instance-wide switches.
    pub tenant_id: String,
    /// Agent id or agent version; the tenant id for `tenant`; empty for `global`.
    pub target: String,
    /// `read-only` or `offline`.
    pub mode: String,
    /// Why.
    pub reason: String,
    /// Who.
    pub set_by: String,
    /// RFC 3339.
    pub set_at: String,
}

/// A feature flag value. `tenant_id` is empty for the default for everyone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagRow {
    /// Flag key.
    pub key: String,
    /// Tenant, or empty for everyone.
    pub tenant_id: String,
    /// On or off.
    pub enabled: bool,
    /// Why.
    pub reason: String,
    /// Who.
    pub set_by: String,
    /// RFC 3339.
    pub set_at: String,
}

/// Engages (or changes) a kill switch.
pub fn upsert_killswitch(conn: &Connection, row: &KillSwitchRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO killswitches (scope, tenant_id, target, mode, reason, set_by, set_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (scope, tenant_id, target) DO UPDATE SET \
         mode = excluded.mode, reason = excluded.reason, set_by = excluded.set_by, set_at = excluded.set_at",
        params![row.scope, row.tenant_id, row.target, row.mode, row.reason, row.set_by, row.set_at],
    )?;
    Ok(())
}

/// Releases a kill switch; false if it was not engaged.
pub fn clear_killswitch(
    conn: &Connection,
    scope: &str,
    tenant: &str,
    target: &str,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "DELETE FROM killswitches WHERE scope = ?1 AND tenant_id = ?2 AND target = ?3",
        params![scope, tenant, target],
    )? == 1)
}

/// Every engaged kill switch.
pub fn killswitches(conn: &Connection) -> Result<Vec<KillSwitchRow>, StoreError> {
    let mut statement = conn.prepare(
        "SELECT scope, tenant_id, target, mode, reason, set_by, set_at FROM killswitches ORDER BY set_at",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(KillSwitchRow {
            scope: row.get(0)?,
            tenant_id: row.get(1)?,
            target: row.get(2)?,
            mode: row.get(3)?,
            reason: row.get(4)?,
            set_by: row.get(5)?,
            set_at: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sets a flag for everyone (empty tenant) or for one tenant.
pub fn upsert_flag(conn: &Connection, row: &FlagRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO flags (key, tenant_id, enabled, reason, set_by, set_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (key, tenant_id) DO UPDATE SET enabled = excluded.enabled, reason = excluded.reason, \
         set_by = excluded.set_by, set_at = excluded.set_at",
        params![row.key, row.tenant_id, row.enabled, row.reason, row.set_by, row.set_at],
    )?;
    Ok(())
}

/// Every flag value.
pub fn flags(conn: &Connection) -> Result<Vec<FlagRow>, StoreError> {
    let mut statement = conn.prepare(
        "SELECT key, tenant_id, enabled, reason, set_by, set_at FROM flags ORDER BY key, tenant_id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(FlagRow {
            key: row.get(0)?,
            tenant_id: row.get(1)?,
            enabled: row.get(2)?,
            reason: row.get(3)?,
            set_by: row.get(4)?,
            set_at: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
