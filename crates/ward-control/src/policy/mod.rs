//! Policy-as-code at the broker: each tenant's active Rego bundle, compiled
//! once, evaluated after the capability matrix for every token request and
//! enrolment. Policy can only deny, narrow scopes or lifetime, or require
//! approval; an evaluation error denies.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use time::OffsetDateTime;
use ward_policy::{Bundle, Policy, PolicyDecision};
use ward_store::{AgentRow, PolicyBundleRow, Store, StoreError};

use crate::error::ApiError;

/// Each tenant's active policy, compiled.
#[derive(Default)]
pub struct Policies {
    /// A bundle that no longer compiles is kept as its error: it denies.
    active: RwLock<HashMap<String, Arc<Result<Policy, String>>>>,
    /// The stored id of each tenant's active bundle.
    bundle_ids: RwLock<HashMap<String, String>>,
    tenant_names: RwLock<HashMap<String, String>>,
}

/// Turns a stored bundle back into a bundle.
pub fn bundle_of(row: &PolicyBundleRow) -> Result<Bundle, String> {
    let files: Vec<(String, String)> =
        serde_json::from_str(&row.files).map_err(|e| format!("stored bundle `{}`: {e}", row.id))?;
    Bundle::from_files(files).map_err(|e| e.to_string())
}

impl Policies {
    /// Loads every tenant's active bundle.
    pub async fn load(store: &Store) -> Result<Policies, StoreError> {
        let rows = store.read(ward_store::active_policy_bundles).await?;
        let policies = Policies::default();
        for row in rows {
            let compiled = bundle_of(&row).and_then(|b| b.compile().map_err(|e| e.to_string()));
            if let Err(error) = &compiled {
                // Fail closed: a bundle that no longer compiles denies.
                tracing::error!(tenant = %row.tenant_id, %error, "stored policy bundle does not compile; its tenant's requests are denied until a bundle is pushed");
            }
            if let Ok(mut active) = policies.active.write() {
                active.insert(row.tenant_id.clone(), Arc::new(compiled));
            }
            if let Ok(mut ids) = policies.bundle_ids.write() {
                ids.insert(row.tenant_id.clone(), row.id.clone());
            }
        }
        Ok(policies)
    }

    /// Makes `policy` (stored as bundle `bundle_id`) the tenant's active
    /// one, unless a later push got there first: bundle ids are
    /// time-ordered, so concurrent pushes end with the newest in memory,
    /// as in the store.
    pub fn set(&self, tenant: &str, bundle_id: &str, policy: Policy) {
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
        active.insert(tenant.to_owned(), Arc::new(Ok(policy)));
    }

    fn get(&self, tenant: &str) -> Option<Arc<Result<Policy, String>>> {
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
        let policy = match loaded.as_ref() {
            Ok(policy) => policy,
            Err(error) => {
                return Err(ApiError::forbidden(
                    "policy_error",
                    format!(
                        "the active policy bundle does not compile, so the request is denied: {error}"
                    ),
                ));
            }
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
        let hash = policy.hash().to_owned();
        match policy.evaluate(&input) {
            Ok(decision) => Ok(Some(Decision { hash, decision })),
            Err(error) => Err(ApiError::forbidden(
                "policy_error",
                format!(
                    "policy bundle `{}` failed to decide, so the request is denied: {error}",
                    hash
                ),
            )),
        }
    }
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
