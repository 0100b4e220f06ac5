//! The shipper: sends the spool's records to `POST /v1/events` in order,
//! in batches, and moves the spool's cursor only past what the server
//! confirmed. Failures back off exponentially with jitter and retry the
//! same records; the server deduplicates by (device, sequence), so a
//! batch sent twice (a crash between sending and moving the cursor) is
//! stored once.

use std::sync::Arc;
use std::time::Duration;
use ward_api::{AgentEvent, EventBatch};

use super::Runtime;
use super::control::random_u64;
use crate::error::AgentError;

/// Records per batch (the server takes up to 1000).
const BATCH_RECORDS: usize = 500;
/// About this many bytes of payload per batch.
const BATCH_BYTES: usize = 512 * 1024;
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Ships forever: whenever woken or every second, until the spool is empty.
pub async fn shipper(runtime: Arc<Runtime>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match ship_batch(&runtime).await {
            Ok(0) => {
                backoff = Duration::from_millis(200);
                tokio::select! {
                    () = runtime.wake_shipper.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Ok(_) => backoff = Duration::from_millis(200),
            Err(error) => {
                let wait = jittered(backoff);
                tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "shipping events");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// `base` ± 50 %.
fn jittered(base: Duration) -> Duration {
    let ms = base.as_millis().max(2) as u64;
    Duration::from_millis(ms / 2 + random_u64() % ms)
}

/// Sends the next batch; returns how many records it moved past.
pub async fn ship_batch(runtime: &Runtime) -> Result<usize, AgentError> {
    let records = runtime.spool.pending(BATCH_RECORDS, BATCH_BYTES)?;
    let Some(last) = records.last().map(|r| r.seq) else {
        return Ok(0);
    };
    let mut events = Vec::with_capacity(records.len());
    for record in &records {
        match serde_json::from_slice::<AgentEvent>(&record.payload) {
            Ok(mut event) => {
                event.seq = record.seq;
                events.push(event);
            }
            // It passed its checksum, so the daemon wrote it; a version
            // that wrote another shape cannot be shipped as an event.
            Err(error) => {
                tracing::error!(seq = record.seq, error = %error, "spool record is not an event; skipped")
            }
        }
    }
    if !events.is_empty() {
        let batch = EventBatch {
            agent_id: runtime.record.agent_id.clone(),
            events,
        };
        runtime.client.ship_events(&runtime.device, &batch).await?;
    }
    runtime.spool.shipped(last)?;
    Ok(records.len())
}
