//! The embedded schema migrations, applied in order on open; the applied
//! count lives in SQLite's `user_version`.

/// Each entry moves the schema one version forward. Never edit a shipped
/// entry; append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    tenant_id TEXT REFERENCES tenants(id),
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    description TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;

CREATE TABLE enroll_tokens (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    token_hash TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    profile TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at TEXT,
    agent_id TEXT
) STRICT;

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    owner TEXT NOT NULL,
    profile TEXT NOT NULL,
    state TEXT NOT NULL,
    os TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    host_id TEXT NOT NULL,
    device_jwk TEXT NOT NULL,
    device_jkt TEXT NOT NULL,
    enroll_token_id TEXT NOT NULL REFERENCES enroll_tokens(id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX agents_by_tenant ON agents(tenant_id, id);

CREATE TABLE revocations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL CHECK (kind IN ('jti', 'agent', 'scope_prefix')),
    value TEXT NOT NULL,
    revoked_at_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL
) STRICT;

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    public_x TEXT NOT NULL,
    created_at TEXT NOT NULL,
    retired_at_ms INTEGER,
    publish_until_ms INTEGER
) STRICT;

CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    tenant_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL,
    reason TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_tenant ON audit(tenant_id, seq);
CREATE INDEX audit_by_correlation ON audit(correlation_id);
CREATE INDEX audit_by_target ON audit(target);
CREATE INDEX audit_by_actor ON audit(actor);
"#,
    r#"
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL CHECK (kind IN ('enrolment', 'token')),
    agent_id TEXT NOT NULL REFERENCES agents(id),
    requested_by TEXT NOT NULL,
    owner TEXT NOT NULL,
    scopes TEXT NOT NULL,
    duration INTEGER NOT NULL,
    action_hash TEXT,
    action TEXT,
    required INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    reasons TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    approved_scopes TEXT,
    approved_duration INTEGER,
    decided_at TEXT
) STRICT;
CREATE INDEX approvals_by_tenant ON approvals(tenant_id, status, id);
CREATE INDEX approvals_by_agent ON approvals(agent_id, status);

CREATE TABLE approval_decisions (
    approval_id TEXT NOT NULL REFERENCES approvals(id),
    approver TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    reason TEXT NOT NULL,
    mfa INTEGER NOT NULL,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (approval_id, approver)
) STRICT;

CREATE TABLE consents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    agent_id TEXT NOT NULL REFERENCES agents(id),
    owner TEXT NOT NULL,
    scopes TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('granted', 'refused')),
    text_version TEXT NOT NULL,
    device_id TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    recorded_at TEXT NOT NULL
) STRICT;
CREATE INDEX consents_by_agent ON consents(agent_id, recorded_at);
"#,
    r#"
CREATE TABLE policy_bundles (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    hash TEXT NOT NULL,
    files TEXT NOT NULL,
    pushed_by TEXT NOT NULL,
    pushed_at TEXT NOT NULL,
    active INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX policy_active_per_tenant ON policy_bundles(tenant_id) WHERE active = 1;
"#,
    r#"
CREATE TABLE killswitches (
    scope TEXT NOT NULL CHECK (scope IN ('global', 'tenant', 'agent', 'agent_version')),
    tenant_id TEXT NOT NULL,
    target TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('read-only', 'offline')),
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL,
    PRIMARY KEY (scope, tenant_id, target)
) STRICT;

CREATE TABLE flags (
    key TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL,
    PRIMARY KEY (key, tenant_id)
) STRICT;
"#,
    r#"
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    ts TEXT NOT NULL
) STRICT;
"#,
    crate::heartbeats::MIGRATION,
    // The events devices ship (`agent_events.rs`); `id` is received order.
    r#"
CREATE TABLE agent_events (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    ts TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    correlation_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    class TEXT NOT NULL CHECK (class IN ('audit', 'telemetry')),
    feature TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL,
    reason TEXT,
    duration_ms INTEGER,
    sampling REAL NOT NULL CHECK (sampling > 0 AND sampling <= 1),
    received_at TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX agent_events_id ON agent_events(tenant_id, agent_id, device_id, seq);
CREATE INDEX agent_events_by_tenant ON agent_events(tenant_id, id);
CREATE INDEX agent_events_by_agent ON agent_events(tenant_id, agent_id, id);
CREATE INDEX agent_events_by_correlation ON agent_events(tenant_id, correlation_id, id);
"#,
    crate::alerts::MIGRATION,
    // Rebuilding the alert windows after a restart reads the events
    // received in the longest window.
    "CREATE INDEX agent_events_by_received ON agent_events(received_at);",
    crate::signal_slots::MIGRATION,
];
