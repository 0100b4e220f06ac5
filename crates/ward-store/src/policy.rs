//! Policy bundles: every pushed version is kept; one per tenant is active.

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;

/// A stored policy bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyBundleRow {
    /// `pol_...`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// SHA-256 of the bundle, recorded with every decision.
    pub hash: String,
    /// The files, JSON array of `[path, text]`.
    pub files: String,
    /// Who pushed it.
    pub pushed_by: String,
    /// RFC 3339.
    pub pushed_at: String,
    /// Whether it decides now.
    pub active: bool,
}

const COLUMNS: &str = "id, tenant_id, hash, files, pushed_by, pushed_at, active";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyBundleRow> {
    Ok(PolicyBundleRow {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        hash: row.get(2)?,
        files: row.get(3)?,
        pushed_by: row.get(4)?,
        pushed_at: row.get(5)?,
        active: row.get(6)?,
    })
}

/// Stores `row` as the tenant's active bundle; the previous one is kept, inactive.
pub fn activate_policy_bundle(conn: &Connection, row: &PolicyBundleRow) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE policy_bundles SET active = 0 WHERE tenant_id = ?1 AND active = 1",
        [&row.tenant_id],
    )?;
    conn.execute(
        &format!("INSERT INTO policy_bundles ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)"),
        params![
            row.id,
            row.tenant_id,
            row.hash,
            row.files,
            row.pushed_by,
            row.pushed_at
        ],
    )?;
    Ok(())
}

/// The tenant's active bundle, if any.
pub fn active_policy_bundle(
    conn: &Connection,
    tenant: &str,
) -> Result<Option<PolicyBundleRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM policy_bundles WHERE tenant_id = ?1 AND active = 1"),
            [tenant],
            from_row,
        )
        .optional()?)
}

/// Every active bundle (to load at start).
pub fn active_policy_bundles(conn: &Connection) -> Result<Vec<PolicyBundleRow>, StoreError> {
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM policy_bundles WHERE active = 1"
    ))?;
    let rows = statement.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
