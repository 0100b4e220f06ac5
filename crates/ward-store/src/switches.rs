//! Kill switches and feature flags: the runtime switches operators flip,
//! stored as the domain's `ward_model::enforcement` types.

use rusqlite::{Connection, Row, params};
use ward_model::enforcement::{Flag, KillSwitch, Mode, SwitchScope};

use crate::StoreError;

/// Engages (or changes) a kill switch. `tenant` is empty for instance-wide
/// ones.
pub fn upsert_killswitch(conn: &Connection, switch: &KillSwitch) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO killswitches (scope, tenant_id, target, mode, reason, set_by, set_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (scope, tenant_id, target) DO UPDATE SET \
         mode = excluded.mode, reason = excluded.reason, set_by = excluded.set_by, set_at = excluded.set_at",
        params![
            switch.scope.as_str(),
            switch.tenant,
            switch.target,
            switch.mode.as_str(),
            switch.reason,
            switch.set_by,
            switch.set_at
        ],
    )?;
    Ok(())
}

/// Releases a kill switch; false if it was not engaged.
pub fn clear_killswitch(
    conn: &Connection,
    scope: SwitchScope,
    tenant: &str,
    target: &str,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "DELETE FROM killswitches WHERE scope = ?1 AND tenant_id = ?2 AND target = ?3",
        params![scope.as_str(), tenant, target],
    )? == 1)
}

fn killswitch_from_row(row: &Row<'_>) -> rusqlite::Result<KillSwitch> {
    Ok(KillSwitch {
        // Read as the enforcement points read the feed: what this version
        // does not know applies as widely and as strictly as it could.
        scope: SwitchScope::parse_or_global(&row.get::<_, String>(0)?),
        tenant: row.get(1)?,
        target: row.get(2)?,
        mode: Mode::parse_or_offline(&row.get::<_, String>(3)?),
        reason: row.get(4)?,
        set_by: row.get(5)?,
        set_at: row.get(6)?,
    })
}

/// Every engaged kill switch.
pub fn killswitches(conn: &Connection) -> Result<Vec<KillSwitch>, StoreError> {
    let mut statement = conn.prepare(
        "SELECT scope, tenant_id, target, mode, reason, set_by, set_at FROM killswitches ORDER BY set_at",
    )?;
    let rows = statement.query_map([], killswitch_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sets a flag for everyone (empty tenant) or for one tenant.
pub fn upsert_flag(conn: &Connection, flag: &Flag) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO flags (key, tenant_id, enabled, reason, set_by, set_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (key, tenant_id) DO UPDATE SET enabled = excluded.enabled, reason = excluded.reason, \
         set_by = excluded.set_by, set_at = excluded.set_at",
        params![flag.key, flag.tenant, flag.enabled, flag.reason, flag.set_by, flag.set_at],
    )?;
    Ok(())
}

/// Every flag value.
pub fn flags(conn: &Connection) -> Result<Vec<Flag>, StoreError> {
    let mut statement = conn.prepare(
        "SELECT key, tenant_id, enabled, reason, set_by, set_at FROM flags ORDER BY key, tenant_id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(Flag {
            key: row.get(0)?,
            tenant: row.get(1)?,
            enabled: row.get(2)?,
            reason: row.get(3)?,
            set_by: row.get(4)?,
            set_at: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
