//! Policy-as-code at the broker: each tenant's active Rego bundle,
//! evaluated after the capability matrix for every token request and
//! enrolment. Policy can only deny, narrow scopes or lifetime, or require
//! approval; an evaluation error denies.
//!
//! Tenant Rego never runs in this process: decisions and push-time tests
//! run in sandbox processes ([`sandbox`]) whose use is bounded per tenant
//! and in all ([`pool`]).

mod pool;
pub mod sandbox;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use time::OffsetDateTime;
use ward_policy::sandbox::Response;
use ward_policy::{Bundle, PolicyDecision, PolicyError};
use ward_store::{AgentRow, PolicyBundleRow, Store, StoreError};

use crate::error::ApiError;
pub use pool::{PushSlot, Refusal};

/// A tenant's active bundle: its files, to send to a sandbox, and hash.
struct Active {
    hash: String,
    files: Vec<(String, String)>,
}

/// Each tenant's active policy and the sandboxes that evaluate it.
#[derive(Default)]
pub struct Policies {
    /// A stored bundle that cannot be read back is kept as its error: it
    /// denies.
    active: RwLock<HashMap<String, Arc<Result<Active, String>>>>,
    /// The stored id of each tenant's active bundle.
    bundle_ids: RwLock<HashMap<String, String>>,
    tenant_names: RwLock<HashMap<String, String>>,
    decisions: pool::Decisions,
    pushes: pool::Pushes,
}

/// Reads a stored bundle's files back.
pub fn files_of(row: &PolicyBundleRow) -> Result<Vec<(String, String)>, String> {
    serde_json::from_str(&row.files).map_err(|e| format!("stored bundle `{}`: {e}", row.id))
}

impl Policies {
    /// Loads every tenant's active bundle. Nothing is compiled here: a
    /// sandbox compiles a bundle when it first decides with it.
    pub async fn load(store: &Store) -> Result<Policies, StoreError> {
        let rows = store.read(ward_store::active_policy_bundles).await?;
        let policies = Policies::default();
        for row in rows {
            let active = files_of(&row).map(|files| Active {
                hash: row.hash.clone(),
                files,
            });
            if let Err(error) = &active {
                // Fail closed: a bundle that cannot be read denies.
                tracing::error!(tenant = %row.tenant_id, %error, "stored policy bundle cannot be read; its tenant's requests are denied until a bundle is pushed");
            }
            if let Ok(mut map) = policies.active.write() {
                map.insert(row.tenant_id.clone(), Arc::new(active));
            }
            if let Ok(mut ids) = policies.bundle_ids.write() {
                ids.insert(row.tenant_id.clone(), row.id.clone());
            }
        }
        Ok(policies)
    }

    /// Takes the tenant's push slot (one push at a time per tenant, a few
    /// in all), or says why not.
    pub fn start_push(&self, tenant: &str) -> Result<PushSlot<'_>, Refusal> {
        self.pushes.start(tenant)
    }

    /// Makes `files` (stored as bundle `bundle_id`) the tenant's active
    /// bundle, unless a later push got there first: bundle ids are
    /// time-ordered, so concurrent pushes end with the newest in memory,
    /// as in the store.
    pub fn set(&self, tenant: &str, bundle_id: &str, files: Vec<(String, String)>) {
        let Ok(mut active) = self.active.write() else {
            return;
        };
        let Ok(mut ids) = self.bundle_ids.write() else {
            return;
        };
        if ids
            .get(tenant)
            .is_some_and(|current| current.as_str() > bundle_id)
        {
            return;
        }
        ids.insert(tenant.to_owned(), bundle_id.to_owned());
        let hash = Bundle::hash_of(&files);
        active.insert(tenant.to_owned(), Arc::new(Ok(Active { hash, files })));
    }

    fn get(&self, tenant: &str) -> Option<Arc<Result<Active, String>>> {
        match self.active.read() {
            Ok(active) => active.get(tenant).cloned(),
            // Fail closed: unreadable policy state denies.
            Err(_) => Some(Arc::new(Err("policy state unavailable".into()))),
        }
    }

    async fn tenant_name(&self, store: &Store, tenant: &str) -> Result<String, ApiError> {
        if let Some(name) = self
            .tenant_names
            .read()
            .ok()
            .and_then(|n| n.get(tenant).cloned())
        {
            return Ok(name);
        }
        let id = tenant.to_owned();
        let name = store
            .read(move |conn| ward_store::tenant(conn, &id))
            .await?
            .map(|t| t.name)
            .unwrap_or_default();
        if let Ok(mut names) = self.tenant_names.write() {
            names.insert(tenant.to_owned(), name.clone());
        }
        Ok(name)
    }

    /// Evaluates the tenant's policy for `action` on `agent`; `None` when
    /// the tenant has no policy. A policy error is a refusal (fail closed).
    pub async fn evaluate(
        &self,
        store: &Store,
        action: &str,
        agent: &AgentRow,
        request: Value,
        matrix: Value,
        now: i64,
    ) -> Result<Option<Decision>, ApiError> {
        let Some(loaded) = self.get(&agent.tenant_id) else {
            return Ok(None);
        };
        let active = match loaded.as_ref() {
            Ok(active) => active,
            Err(error) => return Err(does_not_compile(error)),
        };
        let tenant_name = self.tenant_name(store, &agent.tenant_id).await?;
        let (os, os_version) = match agent.os.split_once(' ') {
            Some((os, version)) => (os.to_lowercase(), version.trim().to_owned()),
            None => (agent.os.to_lowercase(), String::new()),
        };
        let at = OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let input = json!({
            "action": action,
            "request": request,
            "agent": {"id": agent.id, "profile": agent.profile, "state": agent.state, "owner": agent.owner},
            "device": {"os": os, "os_version": os_version, "agent_version": agent.agent_version, "host_id": agent.host_id},
            "tenant": {"id": agent.tenant_id, "name": tenant_name},
            "time": {
                "unix": now,
                "rfc3339": crate::util::rfc3339(now * 1000),
                "hour": at.hour(),
                "weekday": at.weekday().to_string().to_lowercase(),
            },
            "matrix": matrix,
        });
        let hash = active.hash.clone();
        let failed = |error: &dyn std::fmt::Display| {
            ApiError::forbidden(
                "policy_error",
                format!(
                    "policy bundle `{hash}` failed to decide, so the request is denied: {error}"
                ),
            )
        };
        match self
            .decisions
            .evaluate(&agent.tenant_id, &hash, &active.files, input)
            .await
        {
            Ok(Response::Decided { decision }) => Ok(Some(Decision { hash, decision })),
            Ok(Response::Refused {
                error: error @ PolicyError::Evaluation(_),
            }) => Err(failed(&error)),
            Ok(Response::Refused { error }) => Err(does_not_compile(&error)),
            Ok(other) => Err(failed(&format!("unexpected sandbox answer `{other:?}`"))),
            Err(Refusal::Busy(why)) => Err(failed(&why)),
            Err(Refusal::Failed(failure)) => {
                if !failure.is_limit() {
                    tracing::error!(tenant = %agent.tenant_id, %failure, "policy sandbox failed");
                }
                Err(failed(&failure))
            }
        }
    }
}

fn does_not_compile(error: &dyn std::fmt::Display) -> ApiError {
    ApiError::forbidden(
        "policy_error",
        format!("the active policy bundle does not compile, so the request is denied: {error}"),
    )
}

/// A policy decision and the bundle that made it.
pub struct Decision {
    /// Bundle hash.
    pub hash: String,
    /// What the policy said.
    pub decision: PolicyDecision,
}

impl Decision {
    /// 403 `policy_denied` naming the rules, if the policy denies.
    pub fn refusal(&self) -> Option<ApiError> {
        let first = self.decision.deny.first()?;
        let rules: Vec<&str> = self.decision.deny.iter().map(|r| r.rule.as_str()).collect();
        Some(ApiError::forbidden(
            "policy_denied",
            format!(
                "denied by policy rule `{}` (bundle {}): {}{}",
                first.rule,
                self.hash,
                first.message,
                if rules.len() > 1 {
                    format!("; also {}", rules[1..].join(", "))
                } else {
                    String::new()
                }
            ),
        ))
    }

    /// The decision log entry recorded with the grant.
    pub fn log(&self) -> Value {
        json!({
            "bundle": self.hash,
            "rules": self.decision.rules,
            "removed_scopes": self.decision.remove_scopes.iter().map(|(s, r)| json!({"scope": s, "rule": r.rule})).collect::<Vec<_>>(),
            "max_duration": self.decision.max_duration.as_ref().map(|(s, r)| json!({"seconds": s, "rule": r.rule})),
            "require_approval": self.decision.require_approval,
        })
    }
}
