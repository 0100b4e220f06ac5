//! Approval requests, their decisions, and consent records.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::StoreError;

/// An approval request for a high-risk grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRow {
    /// `apr_...`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// `enrolment` or `token`.
    pub kind: String,
    /// The agent concerned.
    pub agent_id: String,
    /// Who asked (an audit actor).
    pub requested_by: String,
    /// The agent's owner.
    pub owner: String,
    /// Requested scopes, JSON array.
    pub scopes: String,
    /// Requested lifetime, seconds.
    pub duration: i64,
    /// SHA-256 of the one action the token may be used for, if bound.
    pub action_hash: Option<String>,
    /// The action shown to approvers, JSON.
    pub action: Option<String>,
    /// How many approvals are needed.
    pub required: i64,
    /// `pending`, `approved`, `denied` or `used`.
    pub status: String,
    /// Why approval is needed, JSON array of reasons.
    pub reasons: String,
    /// Correlation id of the request that caused it.
    pub correlation_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// Unix seconds after which it can no longer be approved or used.
    pub expires_at: i64,
    /// Scopes granted by the approvers, JSON array.
    pub approved_scopes: Option<String>,
    /// Lifetime granted by the approvers, seconds.
    pub approved_duration: Option<i64>,
    /// When it was decided, RFC 3339.
    pub decided_at: Option<String>,
}

/// One approver's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionRow {
    /// The approval.
    pub approval_id: String,
    /// Who decided (an audit actor).
    pub approver: String,
    /// `approve` or `deny`.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// Whether their sign-in showed multi-factor authentication.
    pub mfa: bool,
    /// RFC 3339.
    pub decided_at: String,
}

/// A recorded consent (or refusal) of an agent's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRow {
    /// `con_...`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Agent.
    pub agent_id: String,
    /// The person who consented.
    pub owner: String,
    /// Scopes consented to, JSON array.
    pub scopes: String,
    /// `granted` or `refused`.
    pub decision: String,
    /// Version of the consent text shown.
    pub text_version: String,
    /// Device it was given on.
    pub device_id: String,
    /// Correlation id.
    pub correlation_id: String,
    /// RFC 3339.
    pub recorded_at: String,
}

const APPROVAL_COLUMNS: &str = "id, tenant_id, kind, agent_id, requested_by, owner, scopes, duration, action_hash, action, required, status, reasons, correlation_id, created_at, expires_at, approved_scopes, approved_duration, decided_at";

fn approval_from_row(row: &Row<'_>) -> rusqlite::Result<ApprovalRow> {
    Ok(ApprovalRow {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        kind: row.get(2)?,
        agent_id: row.get(3)?,
        requested_by: row.get(4)?,
        owner: row.get(5)?,
        scopes: row.get(6)?,
        duration: row.get(7)?,
        action_hash: row.get(8)?,
        action: row.get(9)?,
        required: row.get(10)?,
        status: row.get(11)?,
        reasons: row.get(12)?,
        correlation_id: row.get(13)?,
        created_at: row.get(14)?,
        expires_at: row.get(15)?,
        approved_scopes: row.get(16)?,
        approved_duration: row.get(17)?,
        decided_at: row.get(18)?,
    })
}

/// Inserts an approval request.
pub fn insert_approval(conn: &Connection, row: &ApprovalRow) -> Result<(), StoreError> {
    conn.execute(
        &format!(
            "INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        ),
        params![
            row.id, row.tenant_id, row.kind, row.agent_id, row.requested_by, row.owner, row.scopes,
            row.duration, row.action_hash, row.action, row.required, row.status, row.reasons,
            row.correlation_id, row.created_at, row.expires_at, row.approved_scopes,
            row.approved_duration, row.decided_at
        ],
    )?;
    Ok(())
}

/// An approval by id in `tenant` (any tenant when `None`).
pub fn approval(
    conn: &Connection,
    tenant: Option<&str>,
    id: &str,
) -> Result<Option<ApprovalRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)"),
            params![id, tenant],
            approval_from_row,
        )
        .optional()?)
}

/// A pending approval of `agent` for exactly these scopes and action.
pub fn pending_approval(
    conn: &Connection,
    agent: &str,
    kind: &str,
    scopes: &str,
    action_hash: Option<&str>,
    now: i64,
) -> Result<Option<ApprovalRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE agent_id = ?1 AND kind = ?2 AND scopes = ?3 \
                 AND action_hash IS ?4 AND status = 'pending' AND expires_at > ?5 ORDER BY id DESC LIMIT 1"
            ),
            params![agent, kind, scopes, action_hash, now],
            approval_from_row,
        )
        .optional()?)
}

/// A page of a tenant's approvals, optionally by status, newest first.
pub fn list_approvals(
    conn: &Connection,
    tenant: &str,
    status: Option<&str>,
    before_id: Option<&str>,
    limit: u32,
) -> Result<Vec<ApprovalRow>, StoreError> {
    let mut statement = conn.prepare(&format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE tenant_id = ?1 AND (?2 IS NULL OR status = ?2) \
         AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
    ))?;
    let rows = statement.query_map(params![tenant, status, before_id, limit], approval_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Moves an approval from `from` to `to` status; false if it was not in `from`.
pub fn set_approval_status(
    conn: &Connection,
    id: &str,
    from: &str,
    to: &str,
    decided_at: Option<&str>,
    approved_scopes: Option<&str>,
    approved_duration: Option<i64>,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE approvals SET status = ?3, decided_at = COALESCE(?4, decided_at), \
         approved_scopes = COALESCE(?5, approved_scopes), approved_duration = COALESCE(?6, approved_duration) \
         WHERE id = ?1 AND status = ?2",
        params![id, from, to, decided_at, approved_scopes, approved_duration],
    )?;
    Ok(changed == 1)
}

/// Records a decision; a second decision by the same approver is a conflict.
pub fn insert_decision(conn: &Connection, row: &DecisionRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO approval_decisions (approval_id, approver, decision, reason, mfa, decided_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            row.approval_id,
            row.approver,
            row.decision,
            row.reason,
            row.mfa,
            row.decided_at
        ],
    )
    .map_err(|error| match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => {
            StoreError::Conflict(format!("a decision by `{}`", row.approver))
        }
        _ => StoreError::Sqlite(error),
    })?;
    Ok(())
}

/// Every decision on an approval, in order.
pub fn decisions(conn: &Connection, approval: &str) -> Result<Vec<DecisionRow>, StoreError> {
    let mut statement = conn.prepare(
        "SELECT approval_id, approver, decision, reason, mfa, decided_at FROM approval_decisions \
         WHERE approval_id = ?1 ORDER BY decided_at, approver",
    )?;
    let rows = statement.query_map([approval], |row| {
        Ok(DecisionRow {
            approval_id: row.get(0)?,
            approver: row.get(1)?,
            decision: row.get(2)?,
            reason: row.get(3)?,
            mfa: row.get(4)?,
            decided_at: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

const CONSENT_COLUMNS: &str = "id, tenant_id, agent_id, owner, scopes, decision, text_version, device_id, correlation_id, recorded_at";

fn consent_from_row(row: &Row<'_>) -> rusqlite::Result<ConsentRow> {
    Ok(ConsentRow {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        agent_id: row.get(2)?,
        owner: row.get(3)?,
        scopes: row.get(4)?,
        decision: row.get(5)?,
        text_version: row.get(6)?,
        device_id: row.get(7)?,
        correlation_id: row.get(8)?,
        recorded_at: row.get(9)?,
    })
}

/// Inserts a consent record (they are never updated or deleted).
pub fn insert_consent(conn: &Connection, row: &ConsentRow) -> Result<(), StoreError> {
    conn.execute(
        &format!("INSERT INTO consents ({CONSENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![
            row.id, row.tenant_id, row.agent_id, row.owner, row.scopes, row.decision,
            row.text_version, row.device_id, row.correlation_id, row.recorded_at
        ],
    )?;
    Ok(())
}

/// The latest consent record of `agent`'s owner, if any.
pub fn latest_consent(conn: &Connection, agent: &str) -> Result<Option<ConsentRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE agent_id = ?1 ORDER BY recorded_at DESC, id DESC LIMIT 1"),
            [agent],
            consent_from_row,
        )
        .optional()?)
}

/// A tenant's consent records, optionally of one agent, newest first.
pub fn list_consents(
    conn: &Connection,
    tenant: &str,
    agent: Option<&str>,
    limit: u32,
) -> Result<Vec<ConsentRow>, StoreError> {
    let mut statement = conn.prepare(&format!(
        "SELECT {CONSENT_COLUMNS} FROM consents WHERE tenant_id = ?1 AND (?2 IS NULL OR agent_id = ?2) \
         ORDER BY recorded_at DESC, id DESC LIMIT ?3"
    ))?;
    let rows = statement.query_map(params![tenant, agent, limit], consent_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
