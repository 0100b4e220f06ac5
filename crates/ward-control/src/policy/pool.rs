//! Who may use a policy sandbox, and when: a small pool of long-lived
//! decision sandboxes of which no tenant may hold them all, and the slots
//! for pushed bundles' tests (one per tenant, a few in all). Waiting is
//! bounded; beyond the bounds a caller is told so at once. This module
//! knows nothing about HTTP, the store or what a decision means.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use ward_policy::sandbox::{Request, Response};

use super::sandbox::{DECISION_LIMITS, Failure, PUSH_LIMITS, Process};

/// Longest a decision waits for a sandbox before it is denied.
const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// Pushes whose tests may run at once, over all tenants.
pub const MAX_PUSHES: usize = 2;

/// Why a sandbox was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The bounds on concurrent use are reached; `what` says which.
    Busy(String),
    /// The sandbox failed.
    Failed(Failure),
}

/// The decision sandboxes.
pub struct Decisions {
    idle: Mutex<Vec<Process>>,
    // INVARIANT: no more sandboxes exist than `permits` started with: one
    // is created or taken from `idle` only under one of its permits.
    permits: Arc<Semaphore>,
    per_tenant: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Default for Decisions {
    /// A pool sized for this machine: two sandboxes per core, so that one
    /// tenant's decisions keep the cores busy while each sandbox waits on
    /// its pipe (with one sandbox per tenant, a single busy tenant got 0.55
    /// of the tokens per second of in-process evaluation), and a tenant may
    /// hold all but one of them, so another tenant always has one.
    fn default() -> Decisions {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let processes = 2 * cores.max(1);
        Decisions {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(processes)),
            per_tenant: processes - 1,
            tenants: Mutex::new(HashMap::new()),
        }
    }
}

impl Decisions {
    fn tenant_permits(&self, tenant: &str) -> Arc<Semaphore> {
        match self.tenants.lock() {
            Ok(mut tenants) => tenants
                .entry(tenant.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
                .clone(),
            // Fail closed: a poisoned map gives a tenant no slot.
            Err(_) => Arc::new(Semaphore::new(0)),
        }
    }

    /// Decides `input` with the bundle `hash` of `tenant` in a sandbox,
    /// sending `files` when the sandbox lacks them.
    pub async fn evaluate(
        &self,
        tenant: &str,
        hash: &str,
        files: &[(String, String)],
        input: serde_json::Value,
    ) -> Result<Response, Refusal> {
        let _tenant_slot = acquire(
            self.tenant_permits(tenant),
            "this tenant's policy evaluations already use every sandbox they may",
        )
        .await?;
        let _slot = acquire(self.permits.clone(), "every policy sandbox is busy").await?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut process = match idle {
            Some(process) => process,
            None => Process::spawn(DECISION_LIMITS).map_err(Refusal::Failed)?,
        };
        let mut request = Request::Evaluate {
            hash: hash.to_owned(),
            input,
            files: None,
        };
        let mut answer = process.exchange(&request).await;
        if let (Ok(Response::UnknownBundle), Request::Evaluate { files: sent, .. }) =
            (&answer, &mut request)
        {
            *sent = Some(files.to_vec());
            answer = process.exchange(&request).await;
        }
        match answer {
            Ok(response) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push(process);
                }
                Ok(response)
            }
            // The process is dead or being killed: dropping it reaps it.
            Err(failure) => Err(Refusal::Failed(failure)),
        }
    }
}

async fn acquire(permits: Arc<Semaphore>, busy: &str) -> Result<OwnedSemaphorePermit, Refusal> {
    match tokio::time::timeout(QUEUE_WAIT, permits.acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(Refusal::Busy(format!(
            "{busy}; waited {} s",
            QUEUE_WAIT.as_secs()
        ))),
    }
}

/// The tenants whose pushed bundles are being tested.
#[derive(Default)]
pub struct Pushes {
    running: Mutex<HashSet<String>>,
}

/// A push being tested; dropping it frees the slot.
pub struct PushSlot<'a> {
    pushes: &'a Pushes,
    tenant: String,
}

impl Drop for PushSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.pushes.running.lock() {
            running.remove(&self.tenant);
        }
    }
}

impl Pushes {
    /// Takes the tenant's one slot, if neither it nor all
    /// [`MAX_PUSHES`] slots are taken.
    pub fn start(&self, tenant: &str) -> Result<PushSlot<'_>, Refusal> {
        let Ok(mut running) = self.running.lock() else {
            return Err(Refusal::Busy("push state unavailable".into()));
        };
        if running.contains(tenant) {
            return Err(Refusal::Busy(
                "a bundle pushed for this tenant is still being tested".into(),
            ));
        }
        if running.len() >= MAX_PUSHES {
            return Err(Refusal::Busy(format!(
                "{MAX_PUSHES} pushed bundles are being tested already"
            )));
        }
        running.insert(tenant.to_owned());
        Ok(PushSlot {
            pushes: self,
            tenant: tenant.to_owned(),
        })
    }
}

impl PushSlot<'_> {
    /// Parses, tests and compiles `files` in a one-shot sandbox.
    pub async fn check(&self, files: Vec<(String, String)>) -> Result<Response, Refusal> {
        let mut process = Process::spawn(PUSH_LIMITS).map_err(Refusal::Failed)?;
        process
            .exchange(&Request::Check { files })
            .await
            .map_err(Refusal::Failed)
    }
}
