//! Typed rows and the queries over them. Queries take a `&Connection` so the
//! control plane can compose them inside one write transaction; the rules
//! deciding what may be written live in the control plane, not here.

use crate::{AUDIT_COLUMNS, StoreError, chained_from_row};
use rusqlite::{Connection, OptionalExtension, Row, params};
use ward_model::audit::ChainedRecord;
use ward_model::lifecycle::AgentState;

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRow {
    /// `ten_...`.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
}

/// An admin API token (its secret is stored only as a hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiTokenRow {
    /// `tok_...`.
    pub id: String,
    /// `None` for the instance-wide bootstrap token.
    pub tenant_id: Option<String>,
    /// `bootstrap` or `admin`.
    pub role: String,
    /// What it is for.
    pub description: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// Set once revoked.
    pub revoked_at: Option<String>,
}

/// A single-use enrolment token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollTokenRow {
    /// `enr_...`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Owner email.
    pub owner: String,
    /// Profile name.
    pub profile: String,
    /// Who created it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Set once used.
    pub used_at: Option<String>,
    /// The agent it enrolled.
    pub agent_id: Option<String>,
}

/// An enrolled agent instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRow {
    /// `agt_...`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Owner email.
    pub owner: String,
    /// Profile name.
    pub profile: String,
    /// Lifecycle state.
    pub state: AgentState,
    /// Device OS.
    pub os: String,
    /// Agent software version.
    pub agent_version: String,
    /// Host id.
    pub host_id: String,
    /// Device public key, JWK JSON.
    pub device_jwk: String,
    /// RFC 7638 thumbprint of the device key.
    pub device_jkt: String,
    /// The enrolment token used.
    pub enroll_token_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A token revocation rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationRow {
    /// `rev_...`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// `jti`, `agent` or `scope_prefix`.
    pub kind: String,
    /// What is revoked.
    pub value: String,
    /// Tokens issued at or before this instant (unix ms) are revoked.
    pub revoked_at_ms: i64,
    /// Why.
    pub reason: String,
    /// Who.
    pub created_by: String,
}

/// A token signing key's public record (the private half is a file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRow {
    /// Key id.
    pub kid: String,
    /// Public key, base64url.
    pub public_x: String,
    /// RFC 3339.
    pub created_at: String,
    /// When it stopped signing (unix ms); `None` for the current key.
    pub retired_at_ms: Option<i64>,
    /// Until when the JWKS keeps publishing it (unix ms).
    pub publish_until_ms: Option<i64>,
}

/// Filters for reading the audit log; all present filters must match.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only this tenant's entries; `None` reads every tenant.
    pub tenant: Option<String>,
    /// Entries at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Entries before this RFC 3339 time.
    pub until: Option<String>,
    /// Entries where the agent acted or was acted upon.
    pub agent: Option<String>,
    /// Entries by this actor.
    pub actor: Option<String>,
    /// Entries with this action.
    pub action: Option<String>,
    /// Entries with this correlation id.
    pub correlation_id: Option<String>,
    /// Entries after this sequence number (the page cursor).
    pub after_seq: Option<i64>,
    /// Page size.
    pub limit: u32,
}

fn conflict(what: String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |error| match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict(what),
        _ => StoreError::Sqlite(error),
    }
}

/// Inserts a tenant; a taken name is a conflict.
pub fn insert_tenant(conn: &Connection, row: &TenantRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
        params![row.id, row.name, row.created_at],
    )
    .map_err(conflict(format!("tenant `{}`", row.name)))?;
    Ok(())
}

fn tenant_from_row(row: &Row<'_>) -> rusqlite::Result<TenantRow> {
    Ok(TenantRow {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at: row.get(2)?,
    })
}

/// A tenant by id or by name.
pub fn tenant(conn: &Connection, id_or_name: &str) -> Result<Option<TenantRow>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, name, created_at FROM tenants WHERE id = ?1 OR name = ?1",
            [id_or_name],
            tenant_from_row,
        )
        .optional()?)
}

/// Every tenant, oldest first.
pub fn list_tenants(conn: &Connection) -> Result<Vec<TenantRow>, StoreError> {
    let mut statement =
        conn.prepare("SELECT id, name, created_at FROM tenants ORDER BY created_at, id")?;
    let rows = statement.query_map([], tenant_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Inserts an API token with the hash of its secret.
pub fn insert_api_token(
    conn: &Connection,
    row: &ApiTokenRow,
    token_hash: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO api_tokens (id, tenant_id, role, token_hash, description, created_by, created_at, revoked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            row.id,
            row.tenant_id,
            row.role,
            token_hash,
            row.description,
            row.created_by,
            row.created_at,
            row.revoked_at
        ],
    )
    .map_err(conflict(format!("api token `{}`", row.id)))?;
    Ok(())
}

/// The API token whose secret hashes to `token_hash`.
pub fn api_token_by_hash(
    conn: &Connection,
    token_hash: &str,
) -> Result<Option<ApiTokenRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, tenant_id, role, description, created_by, created_at, revoked_at \
             FROM api_tokens WHERE token_hash = ?1",
        )?
        .query_row([token_hash], |row| {
            Ok(ApiTokenRow {
                id: row.get(0)?,
                tenant_id: row.get(1)?,
                role: row.get(2)?,
                description: row.get(3)?,
                created_by: row.get(4)?,
                created_at: row.get(5)?,
                revoked_at: row.get(6)?,
            })
        })
        .optional()?)
}

/// Whether a bootstrap token exists already.
pub fn has_bootstrap_token(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM api_tokens WHERE role = 'bootstrap' LIMIT 1",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Inserts an enrolment token with the hash of its secret.
pub fn insert_enroll_token(
    conn: &Connection,
    row: &EnrollTokenRow,
    token_hash: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO enroll_tokens (id, tenant_id, token_hash, owner, profile, created_by, created_at, expires_at, used_at, agent_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            row.id,
            row.tenant_id,
            token_hash,
            row.owner,
            row.profile,
            row.created_by,
            row.created_at,
            row.expires_at,
            row.used_at,
            row.agent_id
        ],
    )
    .map_err(conflict(format!("enrolment token `{}`", row.id)))?;
    Ok(())
}

/// The enrolment token whose secret hashes to `token_hash`.
pub fn enroll_token_by_hash(
    conn: &Connection,
    token_hash: &str,
) -> Result<Option<EnrollTokenRow>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, tenant_id, owner, profile, created_by, created_at, expires_at, used_at, agent_id \
             FROM enroll_tokens WHERE token_hash = ?1",
            [token_hash],
            |row| {
                Ok(EnrollTokenRow {
                    id: row.get(0)?,
                    tenant_id: row.get(1)?,
                    owner: row.get(2)?,
                    profile: row.get(3)?,
                    created_by: row.get(4)?,
                    created_at: row.get(5)?,
                    expires_at: row.get(6)?,
                    used_at: row.get(7)?,
                    agent_id: row.get(8)?,
                })
            },
        )
        .optional()?)
}

/// Marks an enrolment token used; false if it was used already.
pub fn consume_enroll_token(
    conn: &Connection,
    id: &str,
    used_at: &str,
    agent_id: &str,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE enroll_tokens SET used_at = ?2, agent_id = ?3 WHERE id = ?1 AND used_at IS NULL",
        params![id, used_at, agent_id],
    )?;
    Ok(changed == 1)
}

const AGENT_COLUMNS: &str = "id, tenant_id, owner, profile, state, os, agent_version, host_id, device_jwk, device_jkt, enroll_token_id, created_at, updated_at";

/// The agent state in column `index`; a name this version does not know
/// is a corrupt row.
fn agent_state_at(row: &Row<'_>, index: usize) -> rusqlite::Result<AgentState> {
    row.get::<_, String>(index)?.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.into())
    })
}

fn agent_from_row(row: &Row<'_>) -> rusqlite::Result<AgentRow> {
    Ok(AgentRow {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        owner: row.get(2)?,
        profile: row.get(3)?,
        state: agent_state_at(row, 4)?,
        os: row.get(5)?,
        agent_version: row.get(6)?,
        host_id: row.get(7)?,
        device_jwk: row.get(8)?,
        device_jkt: row.get(9)?,
        enroll_token_id: row.get(10)?,
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
    })
}

/// Inserts an agent.
pub fn insert_agent(conn: &Connection, row: &AgentRow) -> Result<(), StoreError> {
    conn.execute(
        &format!(
            "INSERT INTO agents ({AGENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ),
        params![
            row.id,
            row.tenant_id,
            row.owner,
            row.profile,
            row.state.as_str(),
            row.os,
            row.agent_version,
            row.host_id,
            row.device_jwk,
            row.device_jkt,
            row.enroll_token_id,
            row.created_at,
            row.updated_at
        ],
    )
    .map_err(conflict(format!("agent `{}`", row.id)))?;
    Ok(())
}

/// An agent by id, only if it belongs to `tenant` (any tenant when `None`).
pub fn agent(
    conn: &Connection,
    tenant: Option<&str>,
    id: &str,
) -> Result<Option<AgentRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)"
        ))?
        .query_row(params![id, tenant], agent_from_row)
        .optional()?)
}

/// The state of agent `id`, if it exists.
pub fn agent_state(conn: &Connection, id: &str) -> Result<Option<AgentState>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT state FROM agents WHERE id = ?1")?
        .query_row([id], |row| agent_state_at(row, 0))
        .optional()?)
}

/// A page of a tenant's agents after the cursor `after_id`, ordered by id.
pub fn list_agents(
    conn: &Connection,
    tenant: &str,
    state: Option<AgentState>,
    after_id: Option<&str>,
    limit: u32,
) -> Result<Vec<AgentRow>, StoreError> {
    let mut statement = conn.prepare(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE tenant_id = ?1 AND (?2 IS NULL OR state = ?2) \
         AND (?3 IS NULL OR id > ?3) ORDER BY id LIMIT ?4"
    ))?;
    let rows = statement.query_map(
        params![tenant, state.map(AgentState::as_str), after_id, limit],
        agent_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sets an agent's state, only if it is still `expected` (no lost updates).
pub fn set_agent_state(
    conn: &Connection,
    id: &str,
    expected: AgentState,
    state: AgentState,
    updated_at: &str,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE agents SET state = ?3, updated_at = ?4 WHERE id = ?1 AND state = ?2",
        params![id, expected.as_str(), state.as_str(), updated_at],
    )?;
    Ok(changed == 1)
}

/// Inserts a revocation rule.
pub fn insert_revocation(conn: &Connection, row: &RevocationRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO revocations (id, tenant_id, kind, value, revoked_at_ms, reason, created_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            row.id,
            row.tenant_id,
            row.kind,
            row.value,
            row.revoked_at_ms,
            row.reason,
            row.created_by
        ],
    )
    .map_err(conflict(format!("revocation `{}`", row.id)))?;
    Ok(())
}

/// Revocation rules made at or after `since_ms`, oldest first.
pub fn revocations_since(
    conn: &Connection,
    since_ms: i64,
) -> Result<Vec<RevocationRow>, StoreError> {
    let mut statement = conn.prepare(
        "SELECT id, tenant_id, kind, value, revoked_at_ms, reason, created_by FROM revocations \
         WHERE revoked_at_ms >= ?1 ORDER BY revoked_at_ms, id",
    )?;
    let rows = statement.query_map([since_ms], |row| {
        Ok(RevocationRow {
            id: row.get(0)?,
            tenant_id: row.get(1)?,
            kind: row.get(2)?,
            value: row.get(3)?,
            revoked_at_ms: row.get(4)?,
            reason: row.get(5)?,
            created_by: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Inserts a signing key's public record.
pub fn insert_signing_key(conn: &Connection, row: &SigningKeyRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO signing_keys (kid, public_x, created_at, retired_at_ms, publish_until_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            row.kid,
            row.public_x,
            row.created_at,
            row.retired_at_ms,
            row.publish_until_ms
        ],
    )
    .map_err(conflict(format!("signing key `{}`", row.kid)))?;
    Ok(())
}

/// Retires the current key as of `retired_at_ms`, published until `publish_until_ms`.
pub fn retire_signing_key(
    conn: &Connection,
    kid: &str,
    retired_at_ms: i64,
    publish_until_ms: i64,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE signing_keys SET retired_at_ms = ?2, publish_until_ms = ?3 WHERE kid = ?1 AND retired_at_ms IS NULL",
        params![kid, retired_at_ms, publish_until_ms],
    )?;
    Ok(changed == 1)
}

/// Every signing key, newest first.
pub fn signing_keys(conn: &Connection) -> Result<Vec<SigningKeyRow>, StoreError> {
    let mut statement = conn.prepare(
        "SELECT kid, public_x, created_at, retired_at_ms, publish_until_ms FROM signing_keys \
         ORDER BY created_at DESC, kid DESC",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(SigningKeyRow {
            kid: row.get(0)?,
            public_x: row.get(1)?,
            created_at: row.get(2)?,
            retired_at_ms: row.get(3)?,
            publish_until_ms: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A page of audit entries matching `filter`, ascending by sequence.
pub fn query_audit(
    conn: &Connection,
    filter: &AuditFilter,
) -> Result<Vec<ChainedRecord>, StoreError> {
    let agent_actor = filter.agent.as_ref().map(|agent| format!("agent:{agent}"));
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit WHERE \
         (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR ts >= ?2) AND (?3 IS NULL OR ts < ?3) \
         AND (?4 IS NULL OR target = ?4 OR actor = ?5) AND (?6 IS NULL OR actor = ?6) \
         AND (?7 IS NULL OR action = ?7) AND (?8 IS NULL OR correlation_id = ?8) \
         AND seq > ?9 ORDER BY seq LIMIT ?10"
    ))?;
    let rows = statement.query_map(
        params![
            filter.tenant,
            filter.since,
            filter.until,
            filter.agent,
            agent_actor,
            filter.actor,
            filter.action,
            filter.correlation_id,
            filter.after_seq.unwrap_or(0),
            filter.limit
        ],
        chained_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whether the audit log records the issue of token `jti` in `tenant`.
pub fn token_issued_in(conn: &Connection, tenant: &str, jti: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM audit WHERE target = ?2 AND action = 'token.issue' AND result = 'success' \
             AND tenant_id = ?1 LIMIT 1",
            [tenant, jti],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
