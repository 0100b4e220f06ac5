//! The access log: one JSON line per request on stdout.
//!
//! Lines are serialised straight into a shared buffer and written in
//! batches: when the buffer passes [`FLUSH_BYTES`], every
//! [`FLUSH_INTERVAL`] (the gateway runs [`flush_periodically`]), and when
//! the log is dropped at shutdown. Only whole lines are ever written, so a
//! reader never sees half a line; a `write` per request was a tenth of the
//! gateway's CPU under load (`bench/README.md`).

use serde::Serialize;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Buffered bytes that trigger a write right away.
const FLUSH_BYTES: usize = 32 * 1024;
/// The longest a line waits in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// The buffer of lines not yet written to stdout.
#[derive(Default)]
pub struct AccessLog {
    buffer: Mutex<Vec<u8>>,
}

impl AccessLog {
    /// Appends `entry` as one JSON line.
    pub fn append(&self, entry: &impl Serialize) {
        let Ok(mut buffer) = self.buffer.lock() else {
            return;
        };
        let start = buffer.len();
        if serde_json::to_writer(&mut *buffer, entry).is_err() {
            buffer.truncate(start);
            return;
        }
        buffer.push(b'\n');
        if buffer.len() >= FLUSH_BYTES {
            write_out(&mut buffer);
        }
    }

    /// Writes every buffered line to stdout.
    pub fn flush(&self) {
        if let Ok(mut buffer) = self.buffer.lock() {
            write_out(&mut buffer);
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

fn write_out(buffer: &mut Vec<u8>) {
    if buffer.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    // A failed write (stdout closed) loses these lines, as `println!` would
    // have; the gateway keeps serving.
    let _ = out.write_all(buffer);
    let _ = out.flush();
    buffer.clear();
}

/// Flushes `log` every [`FLUSH_INTERVAL`], for ever.
pub async fn flush_periodically(log: Arc<AccessLog>) {
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        log.flush();
    }
}
