//! Enrolled agents by id, cached for the token broker's hot path so a token
//! request does not wait on a database read.
//!
//! INVARIANT: the cache only speeds up the broker's early checks; the
//! authoritative state check runs inside the write transaction that records
//! the token, so a stale entry can never let a token out.
//! INVARIANT: an entry read from the database is cached only if no agent
//! changed while it was being read (the generation did not move).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use ward_auth::{Jwk, VerifyingKey};
use ward_store::{AgentRow, Store, StoreError};

/// An agent with its device key decoded once.
pub struct CachedAgent {
    /// The stored agent.
    pub row: AgentRow,
    /// Its enrolled device key.
    pub jwk: Jwk,
    /// The same key, decoded for signature checks.
    pub key: VerifyingKey,
}

impl CachedAgent {
    fn new(row: AgentRow) -> Result<CachedAgent, StoreError> {
        let corrupt = |e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("device key of agent `{}`: {e}", row.id))
        };
        let jwk: Jwk = serde_json::from_str(&row.device_jwk).map_err(|e| corrupt(&e))?;
        let key = jwk.verifying_key().map_err(|e| corrupt(&e))?;
        Ok(CachedAgent { row, jwk, key })
    }
}

/// The most agents kept; past it the cache starts over.
const CAPACITY: usize = 100_000;

/// Agents by id.
#[derive(Default)]
pub struct AgentCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    agents: HashMap<String, Arc<CachedAgent>>,
    generation: u64,
}

impl AgentCache {
    /// The agent `id` in any tenant, from the cache or the database.
    pub async fn get(
        &self,
        store: &Store,
        id: &str,
    ) -> Result<Option<Arc<CachedAgent>>, StoreError> {
        let generation = {
            let inner = self.lock();
            if let Some(agent) = inner.agents.get(id) {
                return Ok(Some(Arc::clone(agent)));
            }
            inner.generation
        };
        let wanted = id.to_owned();
        let Some(row) = store
            .read(move |conn| ward_store::agent(conn, None, &wanted))
            .await?
        else {
            return Ok(None);
        };
        let agent = Arc::new(CachedAgent::new(row)?);
        let mut inner = self.lock();
        if inner.generation == generation {
            if inner.agents.len() >= CAPACITY {
                inner.agents.clear();
            }
            inner.agents.insert(id.to_owned(), Arc::clone(&agent));
        }
        Ok(Some(agent))
    }

    /// Forgets `id` after a committed change to it.
    pub fn invalidate(&self, id: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.agents.remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another request panicked mid-update of
        // a cache; starting over from the database is always correct.
        self.inner.lock().unwrap_or_else(|poisoned| {
            let mut inner = poisoned.into_inner();
            inner.agents.clear();
            inner.generation += 1;
            inner
        })
    }
}
