//! Alerts, their notifications and silences. Rows only: the control plane
//! decides when an alert fires, who is notified and what a silence covers.
//!
//! INVARIANT: at most one unresolved alert per fingerprint (a partial
//! unique index), so a restart or a race can never raise one twice.
//! INVARIANT: a notification is written in the transaction that fires or
//! resolves its alert, so none is lost between the two.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::StoreError;

/// The schema of this module, appended to the migrations.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    subject_label TEXT NOT NULL,
    subject TEXT NOT NULL,
    summary TEXT NOT NULL,
    explanation TEXT NOT NULL,
    value REAL NOT NULL,
    threshold REAL NOT NULL,
    evidence TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    resolved_ms INTEGER,
    silenced_by TEXT
) STRICT;
CREATE UNIQUE INDEX alerts_firing ON alerts(fingerprint) WHERE resolved_ms IS NULL;
CREATE INDEX alerts_by_tenant ON alerts(tenant_id, id);

CREATE TABLE alert_notifications (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    receiver TEXT NOT NULL,
    transition TEXT NOT NULL CHECK (transition IN ('fired', 'resolved')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL,
    next_ms INTEGER NOT NULL,
    last_error TEXT,
    created_ms INTEGER NOT NULL,
    done_ms INTEGER
) STRICT;
CREATE INDEX alert_notifications_due ON alert_notifications(status, next_ms);
CREATE INDEX alert_notifications_by_alert ON alert_notifications(alert_id, status);
CREATE INDEX alerts_by_fingerprint ON alerts(fingerprint);
CREATE INDEX alerts_unresolved ON alerts(id) WHERE resolved_ms IS NULL;
CREATE INDEX alert_notifications_by_tenant ON alert_notifications(tenant_id, status, id);

CREATE TABLE silences (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    matchers TEXT NOT NULL,
    starts_ms INTEGER NOT NULL,
    ends_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX silences_by_tenant ON silences(tenant_id, ends_ms);
"#;

/// An alert as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRow {
    /// Row id (0 before insert).
    pub id: i64,
    /// Tenant.
    pub tenant_id: String,
    /// (rule, tenant, subject) hashed.
    pub fingerprint: String,
    /// Rule name.
    pub rule: String,
    /// `high`, `medium` or `low`.
    pub severity: String,
    /// `agent_id`, `user_id` or `tenant`.
    pub subject_label: String,
    /// The agent, user or tenant.
    pub subject: String,
    /// The rule's summary.
    pub summary: String,
    /// Why, with figures.
    pub explanation: String,
    /// The figure that crossed.
    pub value: f64,
    /// The figure it crossed.
    pub threshold: f64,
    /// Correlation ids, a JSON array.
    pub evidence: String,
    /// When it fired, ms.
    pub started_ms: i64,
    /// When it resolved, ms.
    pub resolved_ms: Option<i64>,
    /// The silence that covered it when it fired.
    pub silenced_by: Option<String>,
}

/// A notification to one receiver about one transition of one alert.
#[derive(Clone, Debug, PartialEq)]
pub struct NotificationRow {
    /// Row id.
    pub id: i64,
    /// Tenant.
    pub tenant_id: String,
    /// The alert.
    pub alert_id: i64,
    /// Receiver name.
    pub receiver: String,
    /// `fired` or `resolved`.
    pub transition: String,
    /// `pending`, `delivered` or `failed` (the dead-letter list).
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due, ms.
    pub next_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued, ms.
    pub created_ms: i64,
    /// When it was delivered or given up, ms.
    pub done_ms: Option<i64>,
}

/// A silence: alerts whose labels match every matcher, fired between
/// `starts_ms` and `ends_ms`, notify nobody.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SilenceRow {
    /// `sil_...`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Label name to value, a JSON object.
    pub matchers: String,
    /// From, ms.
    pub starts_ms: i64,
    /// Until, ms (set to the time of expiry when ended early).
    pub ends_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// When it was created, ms.
    pub created_ms: i64,
}

const ALERT_COLUMNS: &str = "id, tenant_id, fingerprint, rule, severity, subject_label, subject, \
     summary, explanation, value, threshold, evidence, started_ms, resolved_ms, silenced_by";

fn alert_from_row(row: &Row<'_>) -> rusqlite::Result<AlertRow> {
    Ok(AlertRow {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        fingerprint: row.get(2)?,
        rule: row.get(3)?,
        severity: row.get(4)?,
        subject_label: row.get(5)?,
        subject: row.get(6)?,
        summary: row.get(7)?,
        explanation: row.get(8)?,
        value: row.get(9)?,
        threshold: row.get(10)?,
        evidence: row.get(11)?,
        started_ms: row.get(12)?,
        resolved_ms: row.get(13)?,
        silenced_by: row.get(14)?,
    })
}

const NOTIFICATION_COLUMNS: &str = "id, tenant_id, alert_id, receiver, transition, status, \
     attempts, next_ms, last_error, created_ms, done_ms";

fn notification_from_row(row: &Row<'_>) -> rusqlite::Result<NotificationRow> {
    Ok(NotificationRow {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        alert_id: row.get(2)?,
        receiver: row.get(3)?,
        transition: row.get(4)?,
        status: row.get(5)?,
        attempts: row.get(6)?,
        next_ms: row.get(7)?,
        last_error: row.get(8)?,
        created_ms: row.get(9)?,
        done_ms: row.get(10)?,
    })
}

fn queue(
    conn: &Connection,
    tenant: &str,
    alert_id: i64,
    transition: &str,
    receivers: &[String],
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO alert_notifications (tenant_id, alert_id, receiver, transition, status, \
         attempts, next_ms, created_ms) VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5)",
    )?;
    for receiver in receivers {
        statement.execute(params![tenant, alert_id, receiver, transition, now_ms])?;
    }
    Ok(())
}

/// Stores a fired alert and queues a notification to each of `receivers`
/// (none when it is silenced). Returns its id, or `None` when an alert
/// with its fingerprint is already firing.
pub fn fire_alert(
    conn: &Connection,
    alert: &AlertRow,
    receivers: &[String],
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let written = conn
        .prepare_cached(
            "INSERT INTO alerts (tenant_id, fingerprint, rule, severity, subject_label, subject, \
             summary, explanation, value, threshold, evidence, started_ms, silenced_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (fingerprint) WHERE resolved_ms IS NULL DO NOTHING",
        )?
        .execute(params![
            alert.tenant_id,
            alert.fingerprint,
            alert.rule,
            alert.severity,
            alert.subject_label,
            alert.subject,
            alert.summary,
            alert.explanation,
            alert.value,
            alert.threshold,
            alert.evidence,
            alert.started_ms,
            alert.silenced_by
        ])?;
    if written == 0 {
        return Ok(None);
    }
    let id = conn.last_insert_rowid();
    queue(conn, &alert.tenant_id, id, "fired", receivers, now_ms)?;
    Ok(Some(id))
}

/// Updates the figures of the firing alert with `fingerprint`.
pub fn update_alert(
    conn: &Connection,
    fingerprint: &str,
    value: f64,
    explanation: &str,
    evidence: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE alerts SET value = ?2, explanation = ?3, evidence = ?4 \
         WHERE fingerprint = ?1 AND resolved_ms IS NULL",
    )?
    .execute(params![fingerprint, value, explanation, evidence])?;
    Ok(())
}

/// Resolves the firing alert with `fingerprint` and queues a notification
/// to each of `receivers` unless it was silenced when it fired. Returns
/// the resolved alert, `None` when none was firing.
pub fn resolve_alert(
    conn: &Connection,
    fingerprint: &str,
    resolved_ms: i64,
    receivers: &[String],
) -> Result<Option<AlertRow>, StoreError> {
    let Some(mut alert) = conn
        .prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = ?1 AND resolved_ms IS NULL"
        ))?
        .query_row(params![fingerprint], alert_from_row)
        .optional()?
    else {
        return Ok(None);
    };
    conn.prepare_cached("UPDATE alerts SET resolved_ms = ?2 WHERE id = ?1")?
        .execute(params![alert.id, resolved_ms])?;
    alert.resolved_ms = Some(resolved_ms);
    if alert.silenced_by.is_none() {
        queue(
            conn,
            &alert.tenant_id,
            alert.id,
            "resolved",
            receivers,
            resolved_ms,
        )?;
    }
    Ok(Some(alert))
}

/// Every firing alert (to restore the engine at start).
pub fn firing_alerts(conn: &Connection) -> Result<Vec<AlertRow>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts INDEXED BY alerts_unresolved WHERE resolved_ms IS NULL ORDER BY id"
    ))?;
    let rows = statement.query_map([], alert_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The alert with `id` in `tenant`.
pub fn alert(conn: &Connection, tenant: &str, id: i64) -> Result<Option<AlertRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = ?1 AND id = ?2"
        ))?
        .query_row(params![tenant, id], alert_from_row)
        .optional()?)
}

/// A tenant's alerts, newest first, before the cursor `before_id`;
/// `firing` keeps only unresolved ones.
pub fn list_alerts(
    conn: &Connection,
    tenant: &str,
    firing: bool,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<AlertRow>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = ?1 \
         AND (?2 = 0 OR resolved_ms IS NULL) AND id < ?3 ORDER BY id DESC LIMIT ?4"
    ))?;
    let rows = statement.query_map(
        params![tenant, firing, before_id.unwrap_or(i64::MAX), limit],
        alert_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Notifications due at `now_ms`, oldest first, with their alerts.
pub fn due_notifications(
    conn: &Connection,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<(NotificationRow, AlertRow)>, StoreError> {
    // A notification waits while an older one to the same receiver about
    // the same rule and subject (any episode) is still pending, so each
    // receiver hears of an alert's transitions in the order they happened.
    let columns: String = NOTIFICATION_COLUMNS
        .split(", ")
        .map(|c| format!("n.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {columns} FROM alert_notifications n JOIN alerts a ON a.id = n.alert_id \
         WHERE n.status = 'pending' AND n.next_ms <= ?1 AND NOT EXISTS ( \
           SELECT 1 FROM alert_notifications o JOIN alerts p ON p.id = o.alert_id \
           WHERE o.status = 'pending' AND o.receiver = n.receiver \
             AND p.fingerprint = a.fingerprint AND o.id < n.id) \
         ORDER BY n.id LIMIT ?2"
    ))?;
    let notifications = statement
        .query_map(params![now_ms, limit], notification_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut alert =
        conn.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"))?;
    let mut out = Vec::with_capacity(notifications.len());
    for notification in notifications {
        let row = alert.query_row(params![notification.alert_id], alert_from_row)?;
        out.push((notification, row));
    }
    Ok(out)
}

/// What became of one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver took it.
    Delivered,
    /// Failed; try again at `next_ms`.
    Retry {
        /// Why.
        error: String,
        /// When.
        next_ms: i64,
    },
    /// Failed for the last time: onto the dead-letter list.
    GiveUp {
        /// Why.
        error: String,
    },
}

/// Records an attempt at notification `id` made at `now_ms`.
pub fn record_attempt(
    conn: &Connection,
    id: i64,
    attempt: &Attempt,
    now_ms: i64,
) -> Result<(), StoreError> {
    let (status, error, next, done) = match attempt {
        Attempt::Delivered => ("delivered", None, now_ms, Some(now_ms)),
        Attempt::Retry { error, next_ms } => ("pending", Some(error.as_str()), *next_ms, None),
        Attempt::GiveUp { error } => ("failed", Some(error.as_str()), now_ms, Some(now_ms)),
    };
    conn.prepare_cached(
        "UPDATE alert_notifications SET status = ?2, attempts = attempts + 1, \
         last_error = COALESCE(?3, last_error), next_ms = ?4, done_ms = ?5 WHERE id = ?1",
    )?
    .execute(params![id, status, error, next, done])?;
    Ok(())
}

/// A tenant's notifications with `status`, newest first, with their alerts.
pub fn notifications(
    conn: &Connection,
    tenant: &str,
    status: &str,
    limit: u32,
) -> Result<Vec<(NotificationRow, AlertRow)>, StoreError> {
    let columns: String = NOTIFICATION_COLUMNS
        .split(", ")
        .map(|c| format!("n.{c}"))
        .chain(ALERT_COLUMNS.split(", ").map(|c| format!("a.{c}")))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {columns} FROM alert_notifications n JOIN alerts a ON a.id = n.alert_id \
         WHERE n.tenant_id = ?1 AND n.status = ?2 ORDER BY n.id DESC LIMIT ?3"
    ))?;
    let width = NOTIFICATION_COLUMNS.split(", ").count();
    let rows = statement.query_map(params![tenant, status, limit], |row| {
        let notification = notification_from_row(row)?;
        let alert = AlertRow {
            id: row.get(width)?,
            tenant_id: row.get(width + 1)?,
            fingerprint: row.get(width + 2)?,
            rule: row.get(width + 3)?,
            severity: row.get(width + 4)?,
            subject_label: row.get(width + 5)?,
            subject: row.get(width + 6)?,
            summary: row.get(width + 7)?,
            explanation: row.get(width + 8)?,
            value: row.get(width + 9)?,
            threshold: row.get(width + 10)?,
            evidence: row.get(width + 11)?,
            started_ms: row.get(width + 12)?,
            resolved_ms: row.get(width + 13)?,
            silenced_by: row.get(width + 14)?,
        };
        Ok((notification, alert))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Puts a failed notification of `tenant` back in the queue, due now.
/// Returns whether one was failed.
pub fn requeue_notification(
    conn: &Connection,
    tenant: &str,
    id: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE alert_notifications SET status = 'pending', attempts = 0, next_ms = ?3, \
             done_ms = NULL WHERE tenant_id = ?1 AND id = ?2 AND status = 'failed'",
        )?
        .execute(params![tenant, id, now_ms])?;
    Ok(changed == 1)
}

/// Stores a silence.
pub fn insert_silence(conn: &Connection, row: &SilenceRow) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO silences (id, tenant_id, matchers, starts_ms, ends_ms, created_by, comment, \
         created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        row.id,
        row.tenant_id,
        row.matchers,
        row.starts_ms,
        row.ends_ms,
        row.created_by,
        row.comment,
        row.created_ms
    ])?;
    Ok(())
}

fn silence_from_row(row: &Row<'_>) -> rusqlite::Result<SilenceRow> {
    Ok(SilenceRow {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        matchers: row.get(2)?,
        starts_ms: row.get(3)?,
        ends_ms: row.get(4)?,
        created_by: row.get(5)?,
        comment: row.get(6)?,
        created_ms: row.get(7)?,
    })
}

/// A tenant's silences ending after `after_ms` (every tenant's when
/// `tenant` is `None`), by id.
pub fn silences(
    conn: &Connection,
    tenant: Option<&str>,
    after_ms: i64,
) -> Result<Vec<SilenceRow>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, tenant_id, matchers, starts_ms, ends_ms, created_by, comment, created_ms \
         FROM silences WHERE (?1 IS NULL OR tenant_id = ?1) AND ends_ms > ?2 ORDER BY id",
    )?;
    let rows = statement.query_map(params![tenant, after_ms], silence_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Ends the silence `id` of `tenant` at `now_ms`; returns whether it was
/// still in force.
pub fn expire_silence(
    conn: &Connection,
    tenant: &str,
    id: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE silences SET ends_ms = ?3 WHERE tenant_id = ?1 AND id = ?2 AND ends_ms > ?3",
        )?
        .execute(params![tenant, id, now_ms])?;
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;
    use crate::Store;

    fn alert(fingerprint: &str) -> AlertRow {
        AlertRow {
            id: 0,
            tenant_id: "ten_a".into(),
            fingerprint: fingerprint.into(),
            rule: "privileged-failures".into(),
            severity: "high".into(),
            subject_label: "agent_id".into(),
            subject: "agt_1".into(),
            summary: "s".into(),
            explanation: "e".into(),
            value: 6.0,
            threshold: 5.0,
            evidence: "[]".into(),
            started_ms: 1000,
            resolved_ms: None,
            silenced_by: None,
        }
    }

    #[tokio::test]
    async fn one_firing_alert_per_fingerprint_and_notifications_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let receivers = vec!["am".to_owned(), "hook".to_owned()];
        let (first, second, resolved, again) = store
            .write(move |ctx| {
                let conn = ctx.conn();
                let first = fire_alert(conn, &alert("f1"), &receivers, 1000)?;
                let second = fire_alert(conn, &alert("f1"), &receivers, 1001)?;
                let resolved = resolve_alert(conn, "f1", 2000, &receivers)?;
                let again = fire_alert(conn, &alert("f1"), &receivers, 3000)?;
                Ok((first, second, resolved, again))
            })
            .await
            .unwrap();
        assert!(first.is_some());
        assert_eq!(second, None);
        assert_eq!(resolved.unwrap().resolved_ms, Some(2000));
        assert!(again.is_some() && again != first);
        let due = store
            .read(|conn| due_notifications(conn, 5000, 100))
            .await
            .unwrap();
        let transitions: Vec<_> = due
            .iter()
            .map(|(n, _)| (n.receiver.as_str(), n.transition.as_str()))
            .collect();
        // One at a time per receiver and alert: the later ones wait.
        assert_eq!(transitions, [("am", "fired"), ("hook", "fired")]);
        let (first, second) = (due[0].0.id, due[1].0.id);
        store
            .write(move |ctx| {
                record_attempt(ctx.conn(), first, &Attempt::Delivered, 5000)?;
                let retry = Attempt::Retry {
                    error: "503".into(),
                    next_ms: 9000,
                };
                record_attempt(ctx.conn(), second, &retry, 5000)
            })
            .await
            .unwrap();
        let later = store
            .read(|conn| due_notifications(conn, 5000, 100))
            .await
            .unwrap();
        let waiting: Vec<_> = later
            .iter()
            .map(|(n, _)| (n.receiver.as_str(), n.transition.as_str()))
            .collect();
        assert_eq!(
            waiting,
            [("am", "resolved")],
            "hook's resolution waits for its retry"
        );
        let due = later;
        let id = due[0].0.id;
        store
            .write(move |ctx| {
                record_attempt(
                    ctx.conn(),
                    id,
                    &Attempt::GiveUp {
                        error: "503".into(),
                    },
                    6000,
                )
            })
            .await
            .unwrap();
        let failed = store
            .read(|conn| notifications(conn, "ten_a", "failed", 10))
            .await
            .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0.last_error.as_deref(), Some("503"));
        assert_eq!(failed[0].1.fingerprint, "f1");
        assert!(
            store
                .read(|conn| notifications(conn, "ten_b", "failed", 10))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .write(move |ctx| requeue_notification(ctx.conn(), "ten_a", id, 7000))
                .await
                .unwrap()
        );
    }
}
