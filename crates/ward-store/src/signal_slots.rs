//! Behaviour history: how many events of each signal each subject (an
//! agent, a user, a tenant) produced in each 15-minute slot. Rows only;
//! `ward_telemetry` says what a signal is and how a baseline is taken.
//!
//! INVARIANT: counts are added in the transaction that stores the events
//! they count, and only for events stored now, so a resent batch is never
//! counted twice.

use rusqlite::{Connection, params};

use crate::StoreError;

/// The schema of this module, appended to the migrations.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE signal_slots (
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('agent', 'user', 'tenant')),
    subject TEXT NOT NULL,
    signal TEXT NOT NULL,
    slot INTEGER NOT NULL,
    count INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (kind, signal, tenant_id, subject, slot)
) STRICT, WITHOUT ROWID;
CREATE INDEX signal_slots_by_slot ON signal_slots(slot);
CREATE TABLE signal_subjects (
    kind TEXT NOT NULL,
    signal TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    first_slot INTEGER NOT NULL,
    PRIMARY KEY (kind, signal, tenant_id, subject)
) STRICT, WITHOUT ROWID;
"#;

/// Events of one signal of one subject in one slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotKey {
    /// Tenant.
    pub tenant_id: String,
    /// `agent`, `user` or `tenant`.
    pub kind: &'static str,
    /// The agent id, the user, or the tenant id.
    pub subject: String,
    /// The signal's name, e.g. `external_call`.
    pub signal: &'static str,
    /// The slot number (15-minute periods since the epoch).
    pub slot: i64,
}

/// Adds `count` to each slot (one statement per distinct slot).
pub fn add_signal_slots(conn: &Connection, counts: &[(SlotKey, i64)]) -> Result<(), StoreError> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO signal_slots (tenant_id, kind, subject, signal, slot, count) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (kind, signal, tenant_id, subject, slot) DO UPDATE SET count = count + excluded.count",
    )?;
    let mut first = conn.prepare_cached(
        "INSERT INTO signal_subjects (kind, signal, tenant_id, subject, first_slot) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (kind, signal, tenant_id, subject) \
         DO UPDATE SET first_slot = min(first_slot, excluded.first_slot)",
    )?;
    for (key, count) in counts {
        statement.execute(params![
            key.tenant_id,
            key.kind,
            key.subject,
            key.signal,
            key.slot,
            count
        ])?;
        first.execute(params![
            key.kind,
            key.signal,
            key.tenant_id,
            key.subject,
            key.slot
        ])?;
    }
    Ok(())
}

/// The non-zero slots of `kind` and `signal` within the `[start, end)`
/// `ranges` (a baseline's few slots, read through the slot index):
/// (tenant, subject, slot, count), grouped by subject, slots ascending.
pub fn signal_slots_in(
    conn: &Connection,
    kind: &str,
    signal: &str,
    ranges: &[(i64, i64)],
) -> Result<Vec<(String, String, i64, i64)>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT tenant_id, subject, slot, count FROM signal_slots INDEXED BY signal_slots_by_slot \
         WHERE slot >= ?3 AND slot < ?4 AND kind = ?1 AND signal = ?2",
    )?;
    let mut rows = Vec::new();
    for (start, end) in ranges {
        let found = statement.query_map(params![kind, signal, start, end], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?;
        for row in found {
            rows.push(row?);
        }
    }
    rows.sort();
    rows.dedup();
    Ok(rows)
}

/// When each subject of `kind` and `signal` was first counted: (tenant,
/// subject) to its first slot.
pub fn first_slots(
    conn: &Connection,
    kind: &str,
    signal: &str,
) -> Result<std::collections::HashMap<(String, String), i64>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT tenant_id, subject, first_slot FROM signal_subjects WHERE kind = ?1 AND signal = ?2",
    )?;
    let rows = statement.query_map(params![kind, signal], |row| {
        Ok(((row.get(0)?, row.get(1)?), row.get(2)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One subject's non-zero slots of every signal from `since_slot` on:
/// (signal, slot, count).
pub fn subject_slots(
    conn: &Connection,
    tenant: &str,
    kind: &str,
    subject: &str,
    since_slot: i64,
) -> Result<Vec<(String, i64, i64)>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT signal, slot, count FROM signal_slots \
         WHERE kind = ?1 AND tenant_id = ?2 AND subject = ?3 AND slot >= ?4 ORDER BY signal, slot",
    )?;
    let rows = statement.query_map(params![kind, tenant, subject, since_slot], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes slots before `before_slot`; returns how many.
pub fn prune_signal_slots(conn: &Connection, before_slot: i64) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM signal_slots WHERE slot < ?1")?
        .execute(params![before_slot])?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;
    use crate::Store;

    fn key(subject: &str, slot: i64) -> SlotKey {
        SlotKey {
            tenant_id: "ten_a".into(),
            kind: "user",
            subject: subject.into(),
            signal: "external_call",
            slot,
        }
    }

    #[tokio::test]
    async fn counts_add_up_per_slot_and_old_slots_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|ctx| {
                add_signal_slots(ctx.conn(), &[(key("alice", 10), 2), (key("bob", 11), 1)])?;
                add_signal_slots(ctx.conn(), &[(key("alice", 10), 3), (key("alice", 12), 1)])
            })
            .await
            .unwrap();
        let rows = store
            .read(|conn| signal_slots_in(conn, "user", "external_call", &[(0, 11), (12, 13)]))
            .await
            .unwrap();
        assert_eq!(
            rows,
            [
                ("ten_a".into(), "alice".into(), 10, 5),
                ("ten_a".into(), "alice".into(), 12, 1)
            ]
        );
        let first = store
            .read(|conn| first_slots(conn, "user", "external_call"))
            .await
            .unwrap();
        assert_eq!(first[&("ten_a".to_owned(), "alice".to_owned())], 10);
        assert_eq!(first[&("ten_a".to_owned(), "bob".to_owned())], 11);
        let pruned = store
            .write(|ctx| prune_signal_slots(ctx.conn(), 11))
            .await
            .unwrap();
        assert_eq!(pruned, 1);
        let alice = store
            .read(|conn| subject_slots(conn, "ten_a", "user", "alice", 0))
            .await
            .unwrap();
        assert_eq!(alice, [("external_call".into(), 12, 1)]);
    }
}
