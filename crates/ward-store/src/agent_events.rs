//! The events devices ship (`POST /v1/events`): the agents' own log, kept
//! per tenant in `agent_events` (not the change feed, which is `events`),
//! and read back in the order the server received them.
//!
//! INVARIANT: an event's id is (tenant, agent, device key thumbprint, the
//! device's sequence number); a row with an id already stored is never
//! written again, so a device that resends after a crash stores each event
//! once.

use rusqlite::{Connection, Row, params};

use crate::StoreError;

/// One event as a device sent it, with where and when it was received.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentEventRow {
    /// Position in received order (the page cursor); 0 before insertion.
    pub id: i64,
    /// Tenant of the sending agent.
    pub tenant_id: String,
    /// The sending agent.
    pub agent_id: String,
    /// The thumbprint of the device key that signed the batch.
    pub device_id: String,
    /// The device's sequence number.
    pub seq: i64,
    /// When it happened on the device, as sent (RFC 3339).
    pub ts: String,
    /// The same instant, unix milliseconds (for time filters).
    pub ts_ms: i64,
    /// Correlation id.
    pub correlation_id: String,
    /// The agent's owner, as sent.
    pub user_id: String,
    /// `audit` or `telemetry`.
    pub class: String,
    /// The feature, if any.
    pub feature: Option<String>,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// The outcome.
    pub result: String,
    /// Why, if given.
    pub reason: Option<String>,
    /// How long it took, if given.
    pub duration_ms: Option<i64>,
    /// The sampling rate it was kept at.
    pub sampling: f64,
    /// When the server stored it, RFC 3339.
    pub received_at: String,
}

/// What storing a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventsStored {
    /// Rows written now.
    pub stored: u64,
    /// Rows whose id was already stored (or repeated within the batch).
    pub duplicates: u64,
    /// The indexes in the batch of the rows written now.
    pub fresh: Vec<usize>,
}

/// Filters for reading events; all present filters must match.
#[derive(Clone, Debug, Default)]
pub struct AgentEventFilter {
    /// Only this tenant's events (always set: events are read per tenant).
    pub tenant: String,
    /// Events of this agent.
    pub agent: Option<String>,
    /// Events with this correlation id.
    pub correlation_id: Option<String>,
    /// Events of this feature.
    pub feature: Option<String>,
    /// Events with this result.
    pub result: Option<String>,
    /// Events of this class.
    pub class: Option<String>,
    /// Events whose `ts` is at or after this instant (unix ms).
    pub since_ms: Option<i64>,
    /// Events whose `ts` is before this instant (unix ms).
    pub until_ms: Option<i64>,
    /// Events naming this user.
    pub user: Option<String>,
    /// Events of this action (`files:write`).
    pub action: Option<String>,
    /// Events whose target or reason contains this text.
    pub text: Option<String>,
    /// Events received after this position (the page cursor).
    pub after_id: Option<i64>,
    /// Page size.
    pub limit: u32,
}

/// Inserts `rows` (one device's batch), skipping any whose id is already
/// stored. Call inside one write transaction so the batch lands whole.
pub fn insert_agent_events(
    conn: &Connection,
    rows: &[AgentEventRow],
) -> Result<EventsStored, StoreError> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO agent_events (tenant_id, agent_id, device_id, seq, ts, ts_ms, correlation_id, \
         user_id, class, feature, action, target, result, reason, duration_ms, sampling, received_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
         ON CONFLICT (tenant_id, agent_id, device_id, seq) DO NOTHING",
    )?;
    let mut outcome = EventsStored::default();
    for (index, row) in rows.iter().enumerate() {
        let written = statement.execute(params![
            row.tenant_id,
            row.agent_id,
            row.device_id,
            row.seq,
            row.ts,
            row.ts_ms,
            row.correlation_id,
            row.user_id,
            row.class,
            row.feature,
            row.action,
            row.target,
            row.result,
            row.reason,
            row.duration_ms,
            row.sampling,
            row.received_at
        ])?;
        if written == 0 {
            outcome.duplicates += 1;
        } else {
            outcome.stored += 1;
            outcome.fresh.push(index);
        }
    }
    Ok(outcome)
}

const COLUMNS: &str = "id, tenant_id, agent_id, device_id, seq, ts, ts_ms, correlation_id, user_id, \
     class, feature, action, target, result, reason, duration_ms, sampling, received_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<AgentEventRow> {
    Ok(AgentEventRow {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        agent_id: row.get(2)?,
        device_id: row.get(3)?,
        seq: row.get(4)?,
        ts: row.get(5)?,
        ts_ms: row.get(6)?,
        correlation_id: row.get(7)?,
        user_id: row.get(8)?,
        class: row.get(9)?,
        feature: row.get(10)?,
        action: row.get(11)?,
        target: row.get(12)?,
        result: row.get(13)?,
        reason: row.get(14)?,
        duration_ms: row.get(15)?,
        sampling: row.get(16)?,
        received_at: row.get(17)?,
    })
}

/// A tenant's events matching `filter`, in received order, after the cursor.
pub fn query_agent_events(
    conn: &Connection,
    filter: &AgentEventFilter,
) -> Result<Vec<AgentEventRow>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM agent_events WHERE tenant_id = ?1 \
         AND (?2 IS NULL OR agent_id = ?2) AND (?3 IS NULL OR correlation_id = ?3) \
         AND (?4 IS NULL OR feature = ?4) AND (?5 IS NULL OR result = ?5) \
         AND (?6 IS NULL OR class = ?6) AND (?7 IS NULL OR ts_ms >= ?7) \
         AND (?8 IS NULL OR ts_ms < ?8) AND id > ?9 \
         AND (?11 IS NULL OR user_id = ?11) AND (?12 IS NULL OR action = ?12) \
         AND (?13 IS NULL OR instr(target, ?13) > 0 OR instr(coalesce(reason, ''), ?13) > 0) \
         ORDER BY id LIMIT ?10"
    ))?;
    let rows = statement.query_map(
        params![
            filter.tenant,
            filter.agent,
            filter.correlation_id,
            filter.feature,
            filter.result,
            filter.class,
            filter.since_ms,
            filter.until_ms,
            filter.after_id.unwrap_or(0),
            filter.limit,
            filter.user,
            filter.action,
            filter.text
        ],
        from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The highest event position of `tenant` (0: none), where a live tail
/// starts.
pub fn last_agent_event(conn: &Connection, tenant: &str) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(id), 0) FROM agent_events WHERE tenant_id = ?1")?
        .query_row(params![tenant], |row| row.get(0))?)
}

/// Every tenant's events the server received at or after `since` (RFC 3339
/// with milliseconds, as `received_at` is written, so text order is time
/// order), with their agent's owner, in received order after `after_id`
/// (to rebuild the alert windows after a restart).
pub fn agent_events_received_since(
    conn: &Connection,
    since: &str,
    after_id: i64,
    limit: u32,
) -> Result<Vec<(AgentEventRow, String)>, StoreError> {
    let columns: String = COLUMNS
        .split(", ")
        .map(|c| format!("e.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {columns}, a.owner FROM agent_events e INDEXED BY agent_events_by_received \
         JOIN agents a ON a.id = e.agent_id \
         WHERE e.received_at >= ?1 AND e.id > ?2 ORDER BY e.id LIMIT ?3"
    ))?;
    let width = COLUMNS.split(", ").count();
    let rows = statement.query_map(params![since, after_id, limit], |row| {
        Ok((from_row(row)?, row.get(width)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;
    use crate::Store;

    fn row(agent: &str, seq: i64, result: &str) -> AgentEventRow {
        AgentEventRow {
            id: 0,
            tenant_id: "ten_a".into(),
            agent_id: agent.into(),
            device_id: "jkt".into(),
            seq,
            ts: "2026-01-01T00:00:00.000Z".into(),
            ts_ms: 1_767_225_600_000 + seq,
            correlation_id: "corr_1".into(),
            user_id: "alice@example.com".into(),
            class: "audit".into(),
            feature: None,
            action: "files:read".into(),
            target: "/tmp/x".into(),
            result: result.into(),
            reason: None,
            duration_ms: Some(3),
            sampling: 1.0,
            received_at: "2026-01-01T00:00:01.000Z".into(),
        }
    }

    #[tokio::test]
    async fn a_resent_event_is_stored_once_and_counted_as_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = vec![row("agt_a", 1, "allow"), row("agt_a", 2, "deny")];
        let again = vec![
            row("agt_a", 2, "deny"),
            row("agt_a", 3, "allow"),
            row("agt_a", 3, "allow"),
            // Another agent with the same key and sequence number is its own event.
            row("agt_b", 1, "allow"),
        ];
        let outcome = store
            .write(move |ctx| insert_agent_events(ctx.conn(), &first))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            EventsStored {
                stored: 2,
                duplicates: 0,
                fresh: vec![0, 1],
            }
        );
        let outcome = store
            .write(move |ctx| insert_agent_events(ctx.conn(), &again))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            EventsStored {
                stored: 2,
                duplicates: 2,
                fresh: vec![1, 3],
            }
        );
        let filter = AgentEventFilter {
            tenant: "ten_a".into(),
            limit: 100,
            ..AgentEventFilter::default()
        };
        let all = store
            .read(move |conn| query_agent_events(conn, &filter))
            .await
            .unwrap();
        let ids: Vec<(&str, i64)> = all.iter().map(|r| (r.agent_id.as_str(), r.seq)).collect();
        assert_eq!(
            ids,
            [("agt_a", 1), ("agt_a", 2), ("agt_a", 3), ("agt_b", 1)]
        );
        let filter = AgentEventFilter {
            tenant: "ten_a".into(),
            agent: Some("agt_a".into()),
            result: Some("allow".into()),
            after_id: Some(all[0].id),
            limit: 100,
            ..AgentEventFilter::default()
        };
        let some = store
            .read(move |conn| query_agent_events(conn, &filter))
            .await
            .unwrap();
        assert_eq!(some.len(), 1);
        assert_eq!(some[0].seq, 3);
        let filter = AgentEventFilter {
            tenant: "ten_other".into(),
            limit: 100,
            ..AgentEventFilter::default()
        };
        let foreign = store
            .read(move |conn| query_agent_events(conn, &filter))
            .await
            .unwrap();
        assert!(foreign.is_empty());
    }

    #[tokio::test]
    async fn events_are_searched_by_user_action_and_text_in_target_or_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut write = row("agt_a", 1, "deny");
        write.action = "files:write".into();
        write.target = "/etc/passwd".into();
        let mut because = row("agt_a", 2, "deny");
        because.reason = Some("outside /home/alice/projects".into());
        let mut bob = row("agt_a", 3, "allow");
        bob.user_id = "bob@example.com".into();
        store
            .write(move |ctx| insert_agent_events(ctx.conn(), &[write, because, bob]))
            .await
            .unwrap();
        let seqs = |filter: AgentEventFilter| {
            let store = &store;
            async move {
                let rows = store
                    .read(move |conn| query_agent_events(conn, &filter))
                    .await
                    .unwrap();
                rows.iter().map(|r| r.seq).collect::<Vec<_>>()
            }
        };
        let base = || AgentEventFilter {
            tenant: "ten_a".into(),
            limit: 100,
            ..AgentEventFilter::default()
        };
        let by_text = |text: &str| AgentEventFilter {
            text: Some(text.into()),
            ..base()
        };
        assert_eq!(seqs(by_text("passwd")).await, [1]);
        assert_eq!(seqs(by_text("projects")).await, [2]);
        assert_eq!(
            seqs(by_text("%")).await,
            Vec::<i64>::new(),
            "no LIKE pattern"
        );
        let by_action = AgentEventFilter {
            action: Some("files:write".into()),
            ..base()
        };
        assert_eq!(seqs(by_action).await, [1]);
        let by_user = AgentEventFilter {
            user: Some("bob@example.com".into()),
            ..base()
        };
        assert_eq!(seqs(by_user).await, [3]);
        assert_eq!(
            store
                .read(|conn| last_agent_event(conn, "ten_a"))
                .await
                .unwrap(),
            3
        );
        assert_eq!(
            store
                .read(|conn| last_agent_event(conn, "ten_b"))
                .await
                .unwrap(),
            0
        );
    }
}
