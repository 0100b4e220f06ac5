//! The writer thread: the only code that appends to segments. It takes
//! append requests from a channel, admits what fits under `max_bytes`,
//! writes a whole group with one `write` and one `fdatasync`, publishes
//! the records to readers, and only then answers the callers.

use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use tokio::sync::oneshot;

use super::format::{self, SEGMENT_HEADER_LEN};
use super::recover::create_segment;
use super::{Appended, Class, Segment, Shared, cursor, lock};
use crate::error::AgentError;

/// At most this many requests go into one group, so a flood of callers
/// cannot keep a group open forever.
const MAX_GROUP: usize = 4096;

/// The active segment is filled with zeros ahead of the records, this much
/// at a time (up to `segment_bytes`): a sync of bytes written over
/// already-allocated blocks need not commit a change of file size to the
/// file system's journal, which on ext4 makes it several times faster.
const ZERO_AHEAD: u64 = 1 << 20;

/// What callers send the writer.
pub(super) enum Msg {
    /// Append these records and answer on `reply`.
    Append {
        records: Vec<(Class, Vec<u8>)>,
        reply: oneshot::Sender<Result<Appended, AgentError>>,
    },
    /// Space may have been freed: look at the waiting requests again.
    Wake,
    /// Fail everything queued and stop; acknowledge on the channel.
    Stop(std::sync::mpsc::Sender<()>),
}

/// An append request not answered yet.
struct Request {
    records: Vec<(Class, Vec<u8>)>,
    reply: oneshot::Sender<Result<Appended, AgentError>>,
    /// When an audit request waiting for space gives up.
    deadline: Instant,
}

/// A request admitted into the group being written.
struct Admitted {
    request: Request,
    /// Which of its records are kept (the rest were dropped).
    keep: Vec<bool>,
}

/// The writer's own state; readers see what it publishes in `Shared`.
pub(super) struct Writer {
    shared: Arc<Shared>,
    file: std::fs::File,
    /// The name (first sequence number) of the segment being written.
    active: u64,
    /// The segment being written, as far as it is written.
    segment: Segment,
    next_seq: u64,
    /// The active segment's file size: zeros from `segment.len` to here.
    zeroed_to: u64,
    waiting: VecDeque<Request>,
    /// Set by the first failed write or sync; every later append fails.
    broken: Option<String>,
}

impl Writer {
    pub(super) fn new(shared: Arc<Shared>, file: std::fs::File) -> Writer {
        let (active, segment, next_seq) = {
            let state = lock(&shared.state);
            let segment = state.segments.get(&state.active).cloned();
            (state.active, segment, state.next_seq)
        };
        let zeroed_to = file.metadata().map_or(0, |m| m.len());
        Writer {
            shared,
            file,
            zeroed_to,
            active,
            segment: segment.unwrap_or_else(|| Segment::empty(Default::default())),
            next_seq,
            waiting: VecDeque::new(),
            broken: None,
        }
    }

    /// Serves requests until every sender is gone or `Stop` arrives.
    pub(super) fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let first = match self.waiting.front() {
                Some(oldest) => {
                    let wait = oldest.deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(msg) => Some(msg),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match rx.recv() {
                    Ok(msg) => Some(msg),
                    Err(_) => break,
                },
            };
            let mut fresh = Vec::new();
            let mut stop = None;
            let more = std::iter::from_fn(|| rx.try_recv().ok());
            for msg in first.into_iter().chain(more) {
                match msg {
                    Msg::Append { records, reply } => fresh.push(Request {
                        records,
                        reply,
                        deadline: Instant::now() + self.shared.config.full_wait,
                    }),
                    Msg::Wake => {}
                    Msg::Stop(ack) => {
                        stop = Some(ack);
                        break;
                    }
                }
                if fresh.len() >= MAX_GROUP {
                    break;
                }
            }
            if let Some(ack) = stop {
                for request in fresh.into_iter().chain(self.waiting.drain(..)) {
                    let _ = request.reply.send(Err(closed()));
                }
                let _ = ack.send(());
                return;
            }
            self.group(fresh);
        }
        for request in self.waiting.drain(..) {
            let _ = request.reply.send(Err(closed()));
        }
    }

    /// Admits, writes and answers one group: the requests waiting for
    /// space first (oldest first), then the new ones.
    fn group(&mut self, fresh: Vec<Request>) {
        if let Some(reason) = &self.broken {
            for request in fresh.into_iter().chain(self.waiting.drain(..)) {
                let _ = request.reply.send(Err(AgentError::SpoolUnavailable {
                    reason: reason.clone(),
                }));
            }
            return;
        }
        if let Err(e) = self.roll_if_shipped() {
            self.break_with(&e);
            return self.group(fresh);
        }
        let max = self.shared.config.max_bytes;
        let mut used = lock(&self.shared.state).bytes();
        let now = Instant::now();
        let mut blocked = false;
        let mut admitted = Vec::new();
        let mut dropped = 0u64;
        let queue: Vec<Request> = self.waiting.drain(..).chain(fresh).collect();
        for request in queue {
            let audit: u64 = request
                .records
                .iter()
                .filter(|(class, _)| *class == Class::Audit)
                .map(|(_, payload)| format::encoded_len(payload.len()))
                .sum();
            if audit > 0 && (blocked || used + audit > max) {
                if audit > max {
                    let _ = request.reply.send(Err(AgentError::Invalid(format!(
                        "the audit events need {audit} bytes in the spool, more than its whole \
                         size of {max} bytes; send fewer or smaller events at a time"
                    ))));
                } else if request.deadline <= now {
                    let _ = request.reply.send(Err(AgentError::SpoolFull {
                        used,
                        max,
                        waited_ms: self.shared.config.full_wait.as_millis(),
                    }));
                } else {
                    // INVARIANT: audit requests are served in arrival order;
                    // once one waits, later ones wait behind it.
                    blocked = true;
                    self.waiting.push_back(request);
                }
                continue;
            }
            used += audit;
            let keep: Vec<bool> = request
                .records
                .iter()
                .map(|(class, payload)| match class {
                    Class::Audit => true,
                    Class::Telemetry => {
                        let len = format::encoded_len(payload.len());
                        // While an audit request waits, telemetry is dropped.
                        let fits = !blocked && used + len <= max;
                        if fits {
                            used += len;
                        } else {
                            dropped += 1;
                        }
                        fits
                    }
                })
                .collect();
            admitted.push(Admitted { request, keep });
        }
        if admitted.is_empty() {
            return;
        }
        let first_seq = self.next_seq;
        match self.write(&admitted) {
            Ok(touched) => self.publish(touched, dropped),
            Err(e) => {
                self.break_with(&e);
                for Admitted { request, .. } in admitted {
                    let _ = request.reply.send(Err(AgentError::SpoolUnavailable {
                        reason: e.to_string(),
                    }));
                }
                return;
            }
        }
        let mut seq = first_seq;
        for Admitted { request, keep } in admitted {
            let mut seqs = Vec::with_capacity(keep.len());
            let mut lost = 0;
            for kept in keep {
                if kept {
                    seqs.push(Some(seq));
                    seq += 1;
                } else {
                    seqs.push(None);
                    lost += 1;
                }
            }
            let _ = request.reply.send(Ok(Appended {
                seqs,
                dropped: lost,
            }));
        }
    }

    /// Writes the kept records of `admitted` with their sequence numbers,
    /// rolling to a new segment past `segment_bytes`, and syncs them.
    /// Returns the segments written to, by name, as they now are on disk.
    fn write(&mut self, admitted: &[Admitted]) -> Result<Vec<(u64, Segment)>, AgentError> {
        let limit = self.shared.config.segment_bytes;
        let mut touched = Vec::new();
        let mut buf = Vec::new();
        for Admitted { request, keep } in admitted {
            for ((class, payload), kept) in request.records.iter().zip(keep) {
                if !kept {
                    continue;
                }
                let len = format::encoded_len(payload.len());
                let written = self.segment.len + buf.len() as u64;
                if written > SEGMENT_HEADER_LEN as u64 && written + len > limit {
                    self.flush(&mut buf)?;
                    touched.push((self.active, self.segment.clone()));
                    let (segment, file) = create_segment(&self.shared.dir, self.next_seq)?;
                    (self.active, self.segment, self.file) = (self.next_seq, segment, file);
                    self.zeroed_to = SEGMENT_HEADER_LEN as u64;
                }
                format::encode_record(&mut buf, self.next_seq, *class, payload);
                self.segment.note(self.next_seq);
                self.next_seq += 1;
            }
        }
        self.flush(&mut buf)?;
        touched.push((self.active, self.segment.clone()));
        Ok(touched)
    }

    /// One write and one fdatasync of `buf` at the end of the active
    /// segment's records, with the next stretch of zeros when the records
    /// reach the zeroed room.
    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<(), AgentError> {
        if buf.is_empty() {
            return Ok(());
        }
        let start = self.segment.len;
        let records = buf.len() as u64;
        let end = start + records;
        if end > self.zeroed_to {
            let room = (self.zeroed_to + ZERO_AHEAD)
                .min(self.shared.config.segment_bytes)
                .max(end);
            buf.resize(buf.len() + (room - end) as usize, 0);
        }
        self.file
            .write_all_at(buf, start)
            .and_then(|()| self.file.sync_data())
            .map_err(AgentError::io("write", &self.segment.path))?;
        self.shared
            .commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.zeroed_to = self.zeroed_to.max(start + buf.len() as u64);
        self.segment.len = end;
        buf.clear();
        Ok(())
    }

    /// Makes what was written visible to `pending`, `status` and `shipped`
    /// and persists the drop counter when it moved.
    fn publish(&mut self, touched: Vec<(u64, Segment)>, dropped: u64) {
        {
            let mut state = lock(&self.shared.state);
            for (name, segment) in touched {
                state.segments.insert(name, segment);
            }
            state.active = self.active;
            state.next_seq = self.next_seq;
        }
        if dropped > 0 {
            let _io = lock(&self.shared.cursor_io);
            let cursor = {
                let mut state = lock(&self.shared.state);
                state.cursor.dropped += dropped;
                state.cursor
            };
            // Best effort: the records are durable and their callers must
            // not retry them; a failed write here leaves the count in
            // memory for the next cursor write.
            let _ = cursor::store(&self.shared.dir, &cursor);
        }
    }

    /// When every record of the active segment is shipped, starts a new
    /// segment (named after the next sequence number, keeping the floor on
    /// disk) and deletes the old one, so shipped bytes stop counting.
    fn roll_if_shipped(&mut self) -> Result<(), AgentError> {
        let shipped = lock(&self.shared.state).cursor.shipped;
        if self.segment.last.is_none_or(|last| last > shipped) {
            return Ok(());
        }
        let (segment, file) = create_segment(&self.shared.dir, self.next_seq)?;
        let old = std::mem::replace(&mut self.segment, segment);
        let old_name = std::mem::replace(&mut self.active, self.next_seq);
        self.file = file;
        {
            let mut state = lock(&self.shared.state);
            state.segments.remove(&old_name);
            state.segments.insert(self.active, self.segment.clone());
            state.active = self.active;
        }
        let _ = std::fs::remove_file(&old.path);
        Ok(())
    }

    fn break_with(&mut self, error: &AgentError) {
        // After a failed write or fsync the file's contents are unknown;
        // only a fresh open (recovery) may decide what is on disk.
        self.broken = Some(format!("an earlier write failed ({error})"));
    }
}

fn closed() -> AgentError {
    AgentError::SpoolUnavailable {
        reason: "the spool was closed or wiped".into(),
    }
}
