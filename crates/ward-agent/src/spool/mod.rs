//! The durable event spool: events wait here, on disk, until the shipper
//! has them on the server. Appends are durable when they return (group
//! commit: one write and one `fdatasync` for everything that arrived
//! together), bounded in bytes (telemetry is dropped when full, audit
//! events wait for space and then fail), and a crash loses nothing that
//! was acknowledged. It knows nothing about what an event means, HTTP or
//! the server: the daemon appends bytes and ships what `pending` returns.
//!
//! # On disk
//!
//! The directory (0700, files 0600) holds:
//!
//! - `seg-<first seq, 20 digits>.wsp`: segments, appended to in order. A
//!   segment starts with a 16-byte header: `WARD-SPL`, the format version
//!   (u32 little-endian, now 1) and a CRC-32C of those 12 bytes. Then
//!   records, each a 24-byte header and the payload:
//!
//!   | bytes | field |
//!   |---|---|
//!   | 0..4 | magic `FF A7 57 52` (`0xFF` never occurs in UTF-8) |
//!   | 4..8 | payload length, u32 LE, at most [`MAX_RECORD_PAYLOAD`] |
//!   | 8..16 | sequence number, u64 LE |
//!   | 16 | class: 1 audit, 2 telemetry |
//!   | 17..20 | reserved, zero |
//!   | 20..24 | CRC-32C of bytes 4..20 and the payload, u32 LE |
//!   | 24.. | payload |
//!
//!   A segment rolls over when the next record would take it past
//!   `segment_bytes`, and when everything in it has been shipped. The
//!   writer fills the segment with zeros ahead of its records (1 MiB at a
//!   time, up to `segment_bytes`), so most syncs overwrite allocated
//!   blocks and need no journal commit of a new file size; zeros after
//!   the last record are room, not damage.
//! - `cursor`: the highest sequence number the server holds and the
//!   `dropped`, `corrupt` and `refused` counters, as checksummed text, replaced
//!   atomically (see `cursor.rs`).
//! - `refused/`: records the server refused (it will never take them),
//!   one JSON file each: `seq`, `refused_because` and the `event`.
//! - `corrupt/`: what recovery set aside (copies of bad stretches, named
//!   after their segment and offset; segments with a bad header; a cursor
//!   file that failed its checksum).
//!
//! # Invariants
//!
//! - Sequence numbers start at 1 and increase by one per record kept,
//!   across segments; a number handed out is never handed out again, even
//!   after a crash: `open` continues above the cursor, above every record
//!   read, and above the name of the last segment (which is never deleted;
//!   when it is wholly shipped a new empty one named after the next number
//!   replaces it). A record whose write was not synced may be lost, and
//!   its number reused, only if its append never returned `Ok`.
//! - `pending` returns only synced records; `append` answers only after
//!   the sync.
//! - After `open`, every segment holds only good records in strictly
//!   increasing order: a torn tail, a stretch failing its checksum or a
//!   segment whose header is unreadable is moved into `corrupt/` and
//!   counted, never a crash. A bad stretch ends at the next offset holding
//!   a good record (magic, header, checksum), so one damaged record does
//!   not cost the rest of its segment.
//! - `max_bytes` bounds the bytes of the segments' headers and records (a
//!   segment counts until all of it is shipped; a new segment's 16-byte
//!   header may go past the bound). The active segment's zeroed room
//!   comes on top: disk use may exceed the bound by up to one
//!   `segment_bytes`. Audit records are never dropped: an audit append
//!   waits up to `full_wait` for space, in arrival order, then fails with
//!   nothing written. Telemetry that does not fit, or arrives while an
//!   audit append waits, is dropped and counted.
//! - A failed write or sync breaks the spool: every later append fails
//!   until it is opened again, since only recovery may decide what the
//!   file now holds.
//!
//! Known limit: if the last record of a segment is damaged on disk after
//! it was acknowledged (not a torn write) and it was sent but the cursor
//! did not yet record it, its number may be reused after the restart.

mod cursor;
mod format;
mod recover;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::AgentError;
use crate::state::refuse_if_open;
pub use format::MAX_RECORD_PAYLOAD;

/// The most refused records kept in `refused/`.
pub const MAX_REFUSED: u64 = 10_000;
use format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};

/// How big the spool may grow and how long an audit append waits for room.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// Bytes of segments holding unshipped records on disk (default 256 MiB).
    pub max_bytes: u64,
    /// A segment rolls over past this many bytes (default 8 MiB).
    pub segment_bytes: u64,
    /// How long an audit append waits for space before failing (default 5 s).
    pub full_wait: Duration,
}

impl Default for SpoolConfig {
    fn default() -> SpoolConfig {
        SpoolConfig {
            max_bytes: 256 << 20,
            segment_bytes: 8 << 20,
            full_wait: Duration::from_secs(5),
        }
    }
}

/// What kind of event a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Decisions, directives, consent: never dropped.
    Audit,
    /// Sampled telemetry: dropped (and counted) when the spool is full.
    Telemetry,
}

/// One record read back from the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// Its class.
    pub class: Class,
    /// The bytes appended.
    pub payload: Vec<u8>,
}

/// What an append did with each record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Per record, in order: its sequence number, or `None` for a
    /// telemetry record dropped because the spool was full.
    pub seqs: Vec<Option<u64>>,
    /// How many were dropped.
    pub dropped: u64,
}

/// The spool of one state directory. Clones share it.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<writer::Msg>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer ends when its channel closes; waiting for it means a
        // reopen of the same directory never races the old writer.
        self.tx.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// What the writer thread and the callers share.
struct Shared {
    dir: PathBuf,
    config: SpoolConfig,
    state: Mutex<State>,
    /// Held while the cursor file is replaced, so writes of it are ordered.
    cursor_io: Mutex<()>,
    /// Group commits (`fdatasync` of records) since `open`.
    commits: AtomicU64,
}

/// The published view of the spool: only synced records are in it.
struct State {
    /// Segments by name (the sequence number in the file name).
    segments: BTreeMap<u64, Segment>,
    /// The segment the writer appends to.
    active: u64,
    /// Every sequence number below this was handed out.
    next_seq: u64,
    /// The cursor and the counters, as last written (or being written).
    cursor: cursor::Cursor,
    /// Where the record after the last `pending` batch starts.
    hint: Option<ReadHint>,
    /// Set by `wipe`.
    closed: bool,
}

impl State {
    fn bytes(&self) -> u64 {
        self.segments.values().map(|s| s.len).sum()
    }
}

/// Where a record is: its sequence number, segment and offset.
#[derive(Clone, Copy, Debug)]
struct ReadHint {
    seq: u64,
    segment: u64,
    offset: u64,
}

/// One segment as far as it is synced.
#[derive(Clone, Debug)]
struct Segment {
    path: PathBuf,
    len: u64,
    first: Option<u64>,
    last: Option<u64>,
    count: u64,
}

impl Segment {
    fn empty(path: PathBuf) -> Segment {
        Segment {
            path,
            len: SEGMENT_HEADER_LEN as u64,
            first: None,
            last: None,
            count: 0,
        }
    }

    fn note(&mut self, seq: u64) {
        self.first.get_or_insert(seq);
        self.last = Some(seq);
        self.count += 1;
    }

    /// The sequence number after this segment's records (its name when
    /// it has none).
    fn next_seq(&self, name: u64) -> u64 {
        self.last.map_or(name, |last| last + 1)
    }

    /// How many of its records are above `shipped`.
    fn unshipped(&self, shipped: u64) -> u64 {
        match (self.first, self.last) {
            (Some(first), Some(last)) if shipped < last => {
                if shipped < first {
                    self.count
                } else {
                    self.count.min(last - shipped)
                }
            }
            _ => 0,
        }
    }
}

/// Locks a mutex; a panic elsewhere while holding it does not stop the
/// spool (its state is only changed by whole assignments).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Spool {
    /// Opens (creating, 0700) the spool directory `dir`, recovering from a
    /// crash: a torn tail or a record failing its checksum is moved aside
    /// into `dir/corrupt/` and counted, never a crash; the rest stays
    /// readable; sequence numbers continue after the highest seen (and
    /// after the shipped cursor).
    pub fn open(dir: &Path, config: SpoolConfig) -> Result<Spool, AgentError> {
        if config.max_bytes == 0 || config.segment_bytes == 0 {
            return Err(AgentError::Invalid(format!(
                "the spool's max_bytes ({}) and segment_bytes ({}) must be above 0; set both",
                config.max_bytes, config.segment_bytes
            )));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(AgentError::io("create", dir))?;
        let meta = std::fs::metadata(dir).map_err(AgentError::io("read", dir))?;
        refuse_if_open(dir, &meta, 0o022, "writable", "700")?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(AgentError::io("write", dir))?;
        }
        let (state, file) = recover::recover(dir)?;
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            config,
            state: Mutex::new(state),
            cursor_io: Mutex::new(()),
            commits: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let writer = writer::Writer::new(Arc::clone(&shared), file);
        let handle = std::thread::Builder::new()
            .name("ward-spool-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(AgentError::io("create", dir))?;
        Ok(Spool {
            inner: Arc::new(Inner {
                shared,
                tx: Some(tx),
                writer: Some(handle),
            }),
        })
    }

    /// Appends records in order; returns once they are durable (synced).
    /// Appends from concurrent callers that arrive together share one
    /// write and one `fdatasync`. When the spool is full, telemetry records
    /// are dropped and counted, and an append with audit records waits up
    /// to `full_wait` for the shipper to free space, then fails with
    /// [`AgentError::SpoolFull`] having written none of its records.
    pub async fn append(&self, records: Vec<(Class, Vec<u8>)>) -> Result<Appended, AgentError> {
        if records.is_empty() {
            return Ok(Appended {
                seqs: Vec::new(),
                dropped: 0,
            });
        }
        if let Some((at, (_, payload))) = records
            .iter()
            .enumerate()
            .find(|(_, (_, payload))| payload.len() > MAX_RECORD_PAYLOAD)
        {
            return Err(AgentError::Invalid(format!(
                "event {at} is {} bytes, more than the spool's limit of {MAX_RECORD_PAYLOAD} \
                 bytes per event; shorten it",
                payload.len()
            )));
        }
        let (reply, answer) = oneshot::channel();
        let closed = || AgentError::SpoolUnavailable {
            reason: "the spool was closed or wiped".into(),
        };
        let tx = self.inner.tx.as_ref().ok_or_else(closed)?;
        tx.send(writer::Msg::Append { records, reply })
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Unshipped records in sequence order: at most `max_records`, and
    /// no more than `max_bytes` of payload unless the first alone is
    /// larger.
    pub fn pending(&self, max_records: usize, max_bytes: usize) -> Result<Vec<Record>, AgentError> {
        let shared = &self.inner.shared;
        let (shipped, hint, segments) = {
            let state = lock(&shared.state);
            if state.closed {
                return Err(wiped());
            }
            let shipped = state.cursor.shipped;
            let segments: Vec<(u64, Segment)> = state
                .segments
                .iter()
                .filter(|(_, s)| s.last.is_some_and(|last| last > shipped))
                .map(|(name, s)| (*name, s.clone()))
                .collect();
            (shipped, state.hint, segments)
        };
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let want = shipped + 1;
        // Where the next call starts once these are shipped: after the
        // last record returned, so a shipper that keeps up does not read
        // (and checksum) its segment from the start on every call.
        let mut after = None;
        for (name, segment) in segments {
            let start = match hint {
                Some(h) if h.segment == name && h.seq == want => h.offset,
                _ => SEGMENT_HEADER_LEN as u64,
            };
            let file = match std::fs::File::open(&segment.path) {
                Ok(file) => file,
                // Deleted by a concurrent `shipped`: all of it is shipped.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(AgentError::io("read", &segment.path)(e)),
            };
            let mut reader = SegmentReader::new(file, &segment, start)?;
            while let Some((offset, record)) = reader.next()? {
                if record.seq < want {
                    continue;
                }
                let full = records.len() >= max_records
                    || (!records.is_empty() && bytes + record.payload.len() > max_bytes);
                if full {
                    lock(&shared.state).hint = Some(ReadHint {
                        seq: record.seq,
                        segment: name,
                        offset,
                    });
                    return Ok(records);
                }
                bytes += record.payload.len();
                after = Some(ReadHint {
                    seq: record.seq + 1,
                    segment: name,
                    offset: offset + format::encoded_len(record.payload.len()),
                });
                records.push(record);
            }
        }
        if after.is_some() {
            lock(&shared.state).hint = after;
        }
        Ok(records)
    }

    /// The server holds every record up to `seq`: persists the cursor
    /// durably (temp file, fsync, rename, fsync of the directory), deletes
    /// segments wholly shipped and wakes audit appends waiting for space.
    pub fn shipped(&self, seq: u64) -> Result<(), AgentError> {
        self.advance(seq, 0)
    }

    /// The server refused `record` (it will never take it): keeps a copy in
    /// `refused/` with `why`, durably, counts it, and moves the cursor past
    /// it like [`Spool::shipped`]. Records before it must be shipped first.
    /// Refused once [`MAX_REFUSED`] records are kept: the records then stay
    /// in the spool, which fills up, and audit appends fail when it is full.
    pub fn set_aside(&self, record: &Record, why: &str) -> Result<(), AgentError> {
        let shared = &self.inner.shared;
        let kept = lock(&shared.state).cursor.refused;
        if kept >= MAX_REFUSED {
            return Err(AgentError::SpoolUnavailable {
                reason: format!(
                    "{kept} refused events are already kept in `{}`; read them, remove them and restart",
                    shared.dir.join(recover::REFUSED_DIR).display()
                ),
            });
        }
        let mut copy = format!(
            "{{\"seq\":{},\"refused_because\":{},\"event\":",
            record.seq,
            serde_json::Value::String(why.to_owned())
        )
        .into_bytes();
        copy.extend_from_slice(&record.payload);
        copy.extend_from_slice(b"}\n");
        let mut aside = recover::SetAside::named(&shared.dir, recover::REFUSED_DIR);
        aside.write(&format!("seq-{:020}.json", record.seq), &copy)?;
        aside.sync()?;
        self.advance(record.seq, 1)
    }

    /// Moves the cursor to `seq`, adding `refused` to its counter.
    fn advance(&self, seq: u64, refused: u64) -> Result<(), AgentError> {
        let shared = &self.inner.shared;
        let doomed = {
            let _io = lock(&shared.cursor_io);
            let cursor = {
                let state = lock(&shared.state);
                if state.closed {
                    return Err(wiped());
                }
                if seq <= state.cursor.shipped {
                    return Ok(());
                }
                if seq >= state.next_seq {
                    return Err(AgentError::Invalid(format!(
                        "cannot mark event `{seq}` shipped: the spool has handed out sequence \
                         numbers up to {} only; pass the last sequence number the server \
                         acknowledged",
                        state.next_seq - 1
                    )));
                }
                cursor::Cursor {
                    shipped: seq,
                    refused: state.cursor.refused + refused,
                    ..state.cursor
                }
            };
            cursor::store(&shared.dir, &cursor)?;
            let mut state = lock(&shared.state);
            state.cursor.shipped = seq;
            state.cursor.refused += refused;
            let active = state.active;
            let spent: Vec<u64> = state
                .segments
                .iter()
                .filter(|(name, s)| **name != active && s.last.is_none_or(|last| last <= seq))
                .map(|(name, _)| *name)
                .collect();
            spent
                .into_iter()
                .filter_map(|name| state.segments.remove(&name))
                .collect::<Vec<_>>()
        };
        for segment in doomed {
            match std::fs::remove_file(&segment.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(AgentError::io("write", &segment.path)(e)),
            }
        }
        if let Some(tx) = &self.inner.tx {
            // The writer rolls a wholly shipped active segment and retries
            // audit appends waiting for space.
            let _ = tx.send(writer::Msg::Wake);
        }
        Ok(())
    }

    /// The counters for `GET /v1/status` and heartbeats.
    pub fn status(&self) -> ward_api::SpoolStatus {
        let state = lock(&self.inner.shared.state);
        if state.closed {
            return ward_api::SpoolStatus::default();
        }
        let shipped = state.cursor.shipped;
        ward_api::SpoolStatus {
            depth: state.segments.values().map(|s| s.unshipped(shipped)).sum(),
            bytes: state.bytes(),
            dropped: state.cursor.dropped,
            corrupt: state.cursor.corrupt,
            refused: state.cursor.refused,
            shipped_seq: shipped,
        }
    }

    /// How many group commits (one write and one `fdatasync` each) the
    /// spool made since it was opened: appended records ÷ this is the mean
    /// group size.
    pub fn commits(&self) -> u64 {
        self.inner.shared.commits.load(Ordering::Relaxed)
    }

    /// Removes every file of the spool, its directory included (uninstall).
    /// Appends still queued, and any made later through a clone, fail.
    pub fn wipe(self) -> Result<(), AgentError> {
        let shared = Arc::clone(&self.inner.shared);
        if let Some(tx) = &self.inner.tx {
            let (ack, stopped) = mpsc::channel();
            if tx.send(writer::Msg::Stop(ack)).is_ok() {
                let _ = stopped.recv();
            }
        }
        let _io = lock(&shared.cursor_io);
        lock(&shared.state).closed = true;
        match std::fs::remove_dir_all(&shared.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(AgentError::io("write", &shared.dir)(e)),
        }
    }
}

fn wiped() -> AgentError {
    AgentError::SpoolUnavailable {
        reason: "the spool was wiped".into(),
    }
}

/// Reads the records of one segment from an offset up to its synced
/// length, checking each checksum.
struct SegmentReader {
    reader: BufReader<std::fs::File>,
    path: PathBuf,
    offset: u64,
    end: u64,
}

impl SegmentReader {
    fn new(mut file: std::fs::File, segment: &Segment, start: u64) -> Result<Self, AgentError> {
        file.seek(SeekFrom::Start(start))
            .map_err(AgentError::io("read", &segment.path))?;
        Ok(SegmentReader {
            reader: BufReader::with_capacity(64 << 10, file),
            path: segment.path.clone(),
            offset: start,
            end: segment.len,
        })
    }

    /// The next record and its offset; `None` at the synced end.
    fn next(&mut self) -> Result<Option<(u64, Record)>, AgentError> {
        if self.offset >= self.end {
            return Ok(None);
        }
        let at = self.offset;
        let mut header = [0u8; RECORD_HEADER_LEN];
        self.reader
            .read_exact(&mut header)
            .map_err(AgentError::io("read", &self.path))?;
        let damaged = |what: &str| AgentError::Corrupt {
            path: self.path.clone(),
            problem: format!(
                "changed on disk after it was written ({what} at byte {at}); restart the \
                 agent: opening the spool sets damaged records aside"
            ),
        };
        let (len, seq, class, crc) = format::parse_header(&header).map_err(|e| match e {
            format::FrameError::Short => damaged("a short record"),
            format::FrameError::Bad(why) => damaged(why),
        })?;
        let mut payload = vec![0u8; len];
        self.reader
            .read_exact(&mut payload)
            .map_err(AgentError::io("read", &self.path))?;
        if !format::checksum_ok(&header, &payload, crc) {
            return Err(damaged("checksum mismatch"));
        }
        self.offset += format::encoded_len(len);
        Ok(Some((
            at,
            Record {
                seq,
                class,
                payload,
            },
        )))
    }
}
