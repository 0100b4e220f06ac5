//! The shipper: sends the spool's records to `POST /v1/events` in order,
//! in batches, and moves the spool's cursor only past what the server
//! confirmed. Failures back off exponentially with jitter and retry the
//! same records; the server deduplicates by (device, sequence), so a
//! batch sent twice (a crash between sending and moving the cursor) is
//! stored once. An event the server refuses for its content is set aside
//! (the spool's `refused/`), never retried forever.

use std::sync::Arc;
use std::time::Duration;
use ward_api::{AgentEvent, EventBatch};
use ward_client::ClientError;

use super::Runtime;
use super::control::random_u64;
use crate::error::AgentError;
use crate::spool::Record;

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

/// Sends the next batch; returns how many records it moved past (0 when
/// there are none, or the owner is not known yet: the first heartbeat
/// answer tells it).
///
/// An event the server would refuse (checked by the server's own rule,
/// [`AgentEvent::problem`]) or did refuse (a 400 naming `events[i]`) is
/// set aside in the spool's `refused/` directory after the events before
/// it are shipped, so one bad event never holds up the rest. A 400 that
/// names no event (a server of another version) is narrowed down by
/// sending the first event alone: each round ships or sets aside one.
pub async fn ship_batch(runtime: &Runtime) -> Result<usize, AgentError> {
    let owner = runtime.read().owner.clone();
    if owner.is_empty() {
        return Ok(0);
    }
    let records = runtime.spool.pending(BATCH_RECORDS, BATCH_BYTES)?;
    let mut events = Vec::with_capacity(records.len());
    let mut bad = None;
    for record in &records {
        match ready(record, &owner) {
            Ok(event) => events.push(event),
            Err(why) => {
                bad = Some((record, why));
                break;
            }
        }
    }
    let mut moved = events.len();
    if !events.is_empty() {
        match send(runtime, &events).await {
            Ok(()) => {}
            Err(Sent::Refused { index, why }) => {
                if index > 0 {
                    send(runtime, &events[..index])
                        .await
                        .map_err(Sent::into_error)?;
                    runtime.spool.shipped(events[index - 1].seq)?;
                }
                tracing::error!(seq = events[index].seq, why = %why, "the server refused an event; kept in the spool's refused/");
                runtime.spool.set_aside(&records[index], &why)?;
                return Ok(index + 1);
            }
            Err(Sent::Unplaced { why }) if events.len() > 1 => {
                // The server named no event: find it one at a time.
                tracing::warn!(why = %why, "the server refused a batch without naming an event; sending one at a time");
                return alone(runtime, &records[0], &events[0]).await;
            }
            Err(Sent::Unplaced { why }) => {
                tracing::error!(seq = events[0].seq, why = %why, "the server refused an event; kept in the spool's refused/");
                runtime.spool.set_aside(&records[0], &why)?;
                return Ok(1);
            }
            Err(other) => return Err(other.into_error()),
        }
        runtime.spool.shipped(events[moved - 1].seq)?;
    }
    if let Some((record, why)) = bad {
        tracing::error!(seq = record.seq, why = %why, "an event the server would refuse; kept in the spool's refused/");
        runtime.spool.set_aside(record, &why)?;
        moved += 1;
    }
    Ok(moved)
}

/// Ships `event` (of `record`) on its own: stored, or set aside when the
/// server refuses it for its content.
async fn alone(
    runtime: &Runtime,
    record: &Record,
    event: &AgentEvent,
) -> Result<usize, AgentError> {
    match send(runtime, std::slice::from_ref(event)).await {
        Ok(()) => runtime.spool.shipped(event.seq)?,
        Err(Sent::Refused { why, .. } | Sent::Unplaced { why }) => {
            tracing::error!(seq = event.seq, why = %why, "the server refused an event; kept in the spool's refused/");
            runtime.spool.set_aside(record, &why)?;
        }
        Err(Sent::Failed(error)) => return Err(error),
    }
    Ok(1)
}

/// The spool record as the event to send: its sequence number and owner
/// filled in; or why the server would refuse it.
fn ready(record: &Record, owner: &str) -> Result<AgentEvent, String> {
    let mut event = serde_json::from_slice::<AgentEvent>(&record.payload)
        .map_err(|e| format!("the record is not an event: {e}"))?;
    event.seq = record.seq;
    if event.user_id.is_empty() {
        owner.clone_into(&mut event.user_id);
    }
    match event.problem() {
        None => Ok(event),
        Some(problem) => Err(format!("`{}` {}", problem.field, problem.rule)),
    }
}

/// Why a batch was not stored.
enum Sent {
    /// The server refused event `index` of the batch, and will refuse it again.
    Refused { index: usize, why: String },
    /// The server refused the batch (400) without naming an event.
    Unplaced { why: String },
    /// Anything else: worth trying again later.
    Failed(AgentError),
}

impl Sent {
    fn into_error(self) -> AgentError {
        match self {
            Sent::Refused { why, .. } | Sent::Unplaced { why } => AgentError::Invalid(why),
            Sent::Failed(error) => error,
        }
    }
}

async fn send(runtime: &Runtime, events: &[AgentEvent]) -> Result<(), Sent> {
    let batch = EventBatch {
        agent_id: runtime.record.agent_id.clone(),
        events: events.to_vec(),
    };
    match runtime.client.ship_events(&runtime.device, &batch).await {
        Ok(_) => Ok(()),
        Err(ClientError::Api {
            status: 400,
            field: Some(field),
            message,
            ..
        }) if refused_index(&field).is_some_and(|i| i < events.len()) => Err(Sent::Refused {
            index: refused_index(&field).unwrap_or_default(),
            why: message,
        }),
        Err(ClientError::Api {
            status: 400,
            message,
            ..
        }) => Err(Sent::Unplaced { why: message }),
        Err(error) => Err(Sent::Failed(error.into())),
    }
}

/// `3` of a field named `events[3].target`.
fn refused_index(field: &str) -> Option<usize> {
    field
        .strip_prefix("events[")?
        .split_once(']')?
        .0
        .parse()
        .ok()
}
