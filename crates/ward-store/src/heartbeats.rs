//! What desktop runtimes report: the latest heartbeat of each agent, the
//! directives they acknowledged, and each tenant's staleness policy (the
//! bounds devices tighten at on their own). Rows only; the control plane
//! decides what they mean.

use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::HashMap;

use crate::StoreError;

/// The schema of this module, appended to the migrations.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE heartbeats (
    agent_id TEXT PRIMARY KEY REFERENCES agents(id),
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    received_at_ms INTEGER NOT NULL,
    version TEXT NOT NULL,
    uptime_secs INTEGER NOT NULL,
    os TEXT NOT NULL,
    health TEXT NOT NULL,
    problems TEXT NOT NULL,
    mode TEXT NOT NULL,
    spool_depth INTEGER NOT NULL,
    spool_bytes INTEGER NOT NULL,
    spool_dropped INTEGER NOT NULL
) STRICT;
CREATE INDEX heartbeats_by_tenant ON heartbeats(tenant_id);

CREATE TABLE directive_acks (
    agent_id TEXT NOT NULL REFERENCES agents(id),
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    directive TEXT NOT NULL,
    kind TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    applied_at_ms INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (agent_id, directive)
) STRICT;
CREATE INDEX directive_acks_by_directive ON directive_acks(directive);

CREATE TABLE agent_policies (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    heartbeat_interval_secs INTEGER NOT NULL,
    high_risk_after_secs INTEGER NOT NULL,
    read_only_after_secs INTEGER NOT NULL,
    offline_after_secs INTEGER NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL
) STRICT;
"#;

/// The latest heartbeat of an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatRow {
    /// The agent.
    pub agent_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// When the server received it, unix milliseconds.
    pub received_at_ms: i64,
    /// Runtime version.
    pub version: String,
    /// Seconds since the runtime started.
    pub uptime_secs: u64,
    /// Operating system.
    pub os: String,
    /// `ok` or `degraded`.
    pub health: String,
    /// What is wrong, JSON array of strings.
    pub problems: String,
    /// The mode in force on the device.
    pub mode: String,
    /// Events waiting in the spool.
    pub spool_depth: u64,
    /// Spool bytes on disk.
    pub spool_bytes: u64,
    /// Telemetry events dropped.
    pub spool_dropped: u64,
}

const HEARTBEAT_COLUMNS: &str = "agent_id, tenant_id, received_at_ms, version, uptime_secs, os, \
     health, problems, mode, spool_depth, spool_bytes, spool_dropped";

fn heartbeat_from_row(row: &Row<'_>) -> rusqlite::Result<HeartbeatRow> {
    heartbeat_at(row, 0)
}

/// The heartbeat whose [`HEARTBEAT_COLUMNS`] start at column `at` of `row`.
fn heartbeat_at(row: &Row<'_>, at: usize) -> rusqlite::Result<HeartbeatRow> {
    Ok(HeartbeatRow {
        agent_id: row.get(at)?,
        tenant_id: row.get(at + 1)?,
        received_at_ms: row.get(at + 2)?,
        version: row.get(at + 3)?,
        uptime_secs: row.get::<_, i64>(at + 4)?.max(0) as u64,
        os: row.get(at + 5)?,
        health: row.get(at + 6)?,
        problems: row.get(at + 7)?,
        mode: row.get(at + 8)?,
        spool_depth: row.get::<_, i64>(at + 9)?.max(0) as u64,
        spool_bytes: row.get::<_, i64>(at + 10)?.max(0) as u64,
        spool_dropped: row.get::<_, i64>(at + 11)?.max(0) as u64,
    })
}

/// SQLite integers are signed; counters beyond `i64::MAX` are stored as it.
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Replaces the agent's latest heartbeat.
pub fn upsert_heartbeat(conn: &Connection, row: &HeartbeatRow) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO heartbeats ({HEARTBEAT_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        row.agent_id,
        row.tenant_id,
        row.received_at_ms,
        row.version,
        clamp(row.uptime_secs),
        row.os,
        row.health,
        row.problems,
        row.mode,
        clamp(row.spool_depth),
        clamp(row.spool_bytes),
        clamp(row.spool_dropped)
    ])?;
    Ok(())
}

/// The agent's latest heartbeat, if it ever sent one.
pub fn heartbeat(conn: &Connection, agent_id: &str) -> Result<Option<HeartbeatRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {HEARTBEAT_COLUMNS} FROM heartbeats WHERE agent_id = ?1"
        ))?
        .query_row(params![agent_id], heartbeat_from_row)
        .optional()?)
}

/// The latest heartbeat of every agent of a tenant that sent one, by agent.
pub fn heartbeats_of_tenant(
    conn: &Connection,
    tenant: &str,
) -> Result<HashMap<String, HeartbeatRow>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {HEARTBEAT_COLUMNS} FROM heartbeats WHERE tenant_id = ?1"
    ))?;
    let rows = statement.query_map(params![tenant], heartbeat_from_row)?;
    rows.map(|row| row.map(|r| (r.agent_id.clone(), r)).map_err(Into::into))
        .collect()
}

/// A directive a device applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckRow {
    /// The agent.
    pub agent_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// The directive's id.
    pub directive: String,
    /// The directive's kind (`killswitch`, `quarantine`, ...: the id's
    /// first part).
    pub kind: String,
    /// When it took effect on the device, RFC 3339 as the device sent it.
    pub applied_at: String,
    /// The same, unix milliseconds.
    pub applied_at_ms: i64,
    /// When the server received it, RFC 3339.
    pub received_at: String,
}

/// Stores an acknowledgement; false if the agent had acknowledged that
/// directive already (the first one stands).
pub fn insert_ack(conn: &Connection, ack: &AckRow) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "INSERT OR IGNORE INTO directive_acks (agent_id, tenant_id, directive, kind, applied_at, \
             applied_at_ms, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            ack.agent_id,
            ack.tenant_id,
            ack.directive,
            ack.kind,
            ack.applied_at,
            ack.applied_at_ms,
            ack.received_at
        ])?
        == 1)
}

/// Every acknowledgement of a directive, by agent.
pub fn acks_of_directive(
    conn: &Connection,
    directive: &str,
) -> Result<HashMap<String, AckRow>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT agent_id, tenant_id, directive, kind, applied_at, applied_at_ms, received_at \
         FROM directive_acks WHERE directive = ?1",
    )?;
    let rows = statement.query_map(params![directive], |row| {
        Ok(AckRow {
            agent_id: row.get(0)?,
            tenant_id: row.get(1)?,
            directive: row.get(2)?,
            kind: row.get(3)?,
            applied_at: row.get(4)?,
            applied_at_ms: row.get(5)?,
            received_at: row.get(6)?,
        })
    })?;
    rows.map(|row| row.map(|r| (r.agent_id.clone(), r)).map_err(Into::into))
        .collect()
}

/// A tenant's staleness bounds, seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentPolicyRow {
    /// The tenant.
    pub tenant_id: String,
    /// Heartbeat interval.
    pub heartbeat_interval_secs: u64,
    /// High-risk features stop after this long without contact.
    pub high_risk_after_secs: u64,
    /// Read-only after this long.
    pub read_only_after_secs: u64,
    /// Offline after this long.
    pub offline_after_secs: u64,
    /// Who set it.
    pub set_by: String,
    /// When, RFC 3339.
    pub set_at: String,
}

/// The tenant's policy, if one was set.
pub fn agent_policy(conn: &Connection, tenant: &str) -> Result<Option<AgentPolicyRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT tenant_id, heartbeat_interval_secs, high_risk_after_secs, read_only_after_secs, \
             offline_after_secs, set_by, set_at FROM agent_policies WHERE tenant_id = ?1",
        )?
        .query_row(params![tenant], |row| {
            Ok(AgentPolicyRow {
                tenant_id: row.get(0)?,
                heartbeat_interval_secs: row.get::<_, i64>(1)?.max(0) as u64,
                high_risk_after_secs: row.get::<_, i64>(2)?.max(0) as u64,
                read_only_after_secs: row.get::<_, i64>(3)?.max(0) as u64,
                offline_after_secs: row.get::<_, i64>(4)?.max(0) as u64,
                set_by: row.get(5)?,
                set_at: row.get(6)?,
            })
        })
        .optional()?)
}

/// Sets the tenant's policy.
pub fn upsert_agent_policy(conn: &Connection, row: &AgentPolicyRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO agent_policies (tenant_id, heartbeat_interval_secs, high_risk_after_secs, \
         read_only_after_secs, offline_after_secs, set_by, set_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            row.tenant_id,
            clamp(row.heartbeat_interval_secs),
            clamp(row.high_risk_after_secs),
            clamp(row.read_only_after_secs),
            clamp(row.offline_after_secs),
            row.set_by,
            row.set_at
        ],
    )?;
    Ok(())
}

/// Every agent's tenant, state, enrolment time and latest heartbeat time
/// (unix milliseconds, if any), for counting agents by tenant and state.
pub fn agent_contacts(
    conn: &Connection,
    tenant: Option<&str>,
) -> Result<Vec<AgentContact>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT a.tenant_id, a.id, a.state, a.created_at, h.received_at_ms, a.agent_version, h.version \
         FROM agents a \
         LEFT JOIN heartbeats h ON h.agent_id = a.id WHERE (?1 IS NULL OR a.tenant_id = ?1)",
    )?;
    let rows = statement.query_map(params![tenant], |row| {
        Ok(AgentContact {
            tenant_id: row.get(0)?,
            agent_id: row.get(1)?,
            state: row.get(2)?,
            created_at: row.get(3)?,
            last_heartbeat_ms: row.get(4)?,
            enrolled_version: row.get(5)?,
            heartbeat_version: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// An agent and when it was last heard of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentContact {
    /// Its tenant.
    pub tenant_id: String,
    /// The agent.
    pub agent_id: String,
    /// Its lifecycle state, as stored.
    pub state: String,
    /// Enrolment time, RFC 3339.
    pub created_at: String,
    /// Its latest heartbeat, unix milliseconds.
    pub last_heartbeat_ms: Option<i64>,
    /// The runtime version it enrolled with.
    pub enrolled_version: String,
    /// The runtime version of its latest heartbeat.
    pub heartbeat_version: Option<String>,
}

/// An agent, what it enrolled as, and its latest heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentHealth {
    /// Its tenant.
    pub tenant_id: String,
    /// The agent.
    pub agent_id: String,
    /// Its lifecycle state, as stored.
    pub state: String,
    /// Enrolment time, RFC 3339.
    pub created_at: String,
    /// The runtime version it enrolled with.
    pub enrolled_version: String,
    /// The operating system it enrolled with.
    pub enrolled_os: String,
    /// Its latest heartbeat, if it ever sent one.
    pub heartbeat: Option<HeartbeatRow>,
}

/// Every agent of `tenant` (`None`: of every tenant) with its latest
/// heartbeat, by tenant and agent id, in one statement.
pub fn agent_health(
    conn: &Connection,
    tenant: Option<&str>,
) -> Result<Vec<AgentHealth>, StoreError> {
    let heartbeat_columns = HEARTBEAT_COLUMNS
        .split(", ")
        .map(|column| format!("h.{column}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statement = conn.prepare_cached(&format!(
        "SELECT a.tenant_id, a.id, a.state, a.created_at, a.agent_version, a.os, {heartbeat_columns} \
         FROM agents a LEFT JOIN heartbeats h ON h.agent_id = a.id \
         WHERE (?1 IS NULL OR a.tenant_id = ?1) ORDER BY a.tenant_id, a.id"
    ))?;
    let rows = statement.query_map(params![tenant], |row| {
        let sent: Option<String> = row.get(6)?;
        Ok(AgentHealth {
            tenant_id: row.get(0)?,
            agent_id: row.get(1)?,
            state: row.get(2)?,
            created_at: row.get(3)?,
            enrolled_version: row.get(4)?,
            enrolled_os: row.get(5)?,
            heartbeat: sent.map(|_| heartbeat_at(row, 6)).transpose()?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every tenant's policy, by tenant.
pub fn agent_policies(conn: &Connection) -> Result<HashMap<String, AgentPolicyRow>, StoreError> {
    let mut statement = conn.prepare_cached("SELECT tenant_id FROM agent_policies")?;
    let tenants: Vec<String> = statement
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut policies = HashMap::new();
    for tenant in tenants {
        if let Some(row) = agent_policy(conn, &tenant)? {
            policies.insert(tenant, row);
        }
    }
    Ok(policies)
}
