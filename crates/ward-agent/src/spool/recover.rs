//! Opening a spool directory after a clean stop or a crash: every segment
//! is read and checked; what is not a good record is copied into
//! `corrupt/` and counted, then removed from the segment, so that after
//! opening every segment holds only good records in strictly increasing
//! sequence order.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::cursor::{self, Cursor, Loaded};
use super::format::{self, FORMAT_VERSION, Header, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use super::{Segment, State};
use crate::error::AgentError;

pub(super) const CORRUPT_DIR: &str = "corrupt";
/// Where records the server refused are kept.
pub(super) const REFUSED_DIR: &str = "refused";
const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".wsp";
const TEMP_SUFFIX: &str = ".tmp";

/// The file name of the segment whose first record has sequence `seq`.
pub(super) fn segment_name(seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{seq:020}{SEGMENT_SUFFIX}")
}

/// The sequence number in a segment's file name.
fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Creates the segment for records from `seq` on: header written and
/// synced, and its directory entry made durable, before any record goes
/// into it (a record's fdatasync does not make a new name durable).
pub(super) fn create_segment(dir: &Path, seq: u64) -> Result<(Segment, std::fs::File), AgentError> {
    let path = dir.join(segment_name(seq));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| {
            file.write_all(&format::segment_header())?;
            file.sync_all()?;
            Ok(file)
        })
        .map_err(AgentError::io("create", &path))?;
    cursor::sync_dir(dir)?;
    Ok((Segment::empty(path), file))
}

/// Reads the spool directory `dir` (which exists and is private) into the
/// state to run from and the active segment's file.
pub(super) fn recover(dir: &Path) -> Result<(State, std::fs::File), AgentError> {
    let mut aside = SetAside::new(dir);
    let mut cursor = match cursor::load(dir)? {
        Loaded::Missing => Cursor::default(),
        Loaded::Good(cursor) => cursor,
        Loaded::Corrupt(_) => {
            // Fail closed: nothing counts as shipped, so every record still
            // on disk ships again (the server deduplicates by sequence).
            aside.move_file(&dir.join(cursor::CURSOR_FILE), cursor::CURSOR_FILE)?;
            Cursor {
                corrupt: 1,
                ..Cursor::default()
            }
        }
    };
    let corrupt_before = cursor.corrupt;

    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(AgentError::io("read", dir))? {
        let entry = entry.map_err(AgentError::io("read", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TEMP_SUFFIX) {
            // A replacement that never got renamed in: the original stands.
            let path = entry.path();
            std::fs::remove_file(&path).map_err(AgentError::io("write", &path))?;
        } else if let Some(seq) = parse_segment_name(name) {
            found.push((seq, entry.path()));
        }
    }
    found.sort();

    let mut segments = BTreeMap::new();
    // INVARIANT: `floor` is above every sequence number that may have been
    // handed out before: the cursor, every good record, and the names (and
    // possible contents) of segments set aside whole.
    let mut floor = cursor.shipped + 1;
    let mut min_seq = 1;
    for (name_seq, path) in found {
        let bytes = std::fs::read(&path).map_err(AgentError::io("read", &path))?;
        match format::read_header(&bytes) {
            Header::Current => {}
            Header::Version(version) => {
                return Err(AgentError::Corrupt {
                    path,
                    problem: format!(
                        "was written in spool format version {version}, this ward reads version \
                         {FORMAT_VERSION}; run the ward that wrote it until the spool drains, or \
                         move the file out of the spool directory to discard its events"
                    ),
                });
            }
            Header::Bad => {
                if bytes.is_empty() {
                    // Created but never given its header: it held nothing.
                    std::fs::remove_file(&path).map_err(AgentError::io("write", &path))?;
                } else {
                    aside.move_file(&path, &file_name(&path))?;
                    cursor.corrupt += 1;
                }
                let could_hold = (bytes.len() / RECORD_HEADER_LEN) as u64;
                floor = floor.max(name_seq + could_hold);
                continue;
            }
        }
        let scan = format::scan(&bytes, SEGMENT_HEADER_LEN, min_seq.max(name_seq));
        let mut len = scan.records_end() as u64;
        if !scan.bad.is_empty() {
            for range in &scan.bad {
                let name = format!("{}.at-{}", file_name(&path), range.start);
                aside.write(&name, bytes.get(range.clone()).unwrap_or_default())?;
                cursor.corrupt += 1;
            }
            aside.sync()?;
            // Counted before the segment changes: a crash in between counts
            // a stretch twice rather than never.
            cursor::store(dir, &cursor)?;
            len = rewrite(dir, &path, &bytes, &scan)?;
        }
        let mut segment = Segment::empty(path);
        for frame in &scan.frames {
            segment.note(frame.seq);
        }
        segment.len = len;
        if let Some(last) = segment.last {
            min_seq = last + 1;
        }
        floor = floor.max(min_seq).max(name_seq);
        segments.insert(name_seq, segment);
    }
    if cursor.corrupt != corrupt_before {
        cursor::store(dir, &cursor)?;
    }

    // Segments wholly shipped (a crash after the cursor was written) and
    // empty ones before the last go; the last stays, since its name keeps
    // the floor of sequence numbers.
    let last_name = segments.keys().next_back().copied();
    segments.retain(|&name, segment| {
        let spent = segment.last.is_none_or(|last| last <= cursor.shipped);
        if Some(name) != last_name && spent {
            let _ = std::fs::remove_file(&segment.path);
            false
        } else {
            true
        }
    });

    let reusable = segments
        .iter()
        .next_back()
        .filter(|(name, segment)| segment.next_seq(**name) == floor);
    let (active, file) = match reusable {
        Some((&name, segment)) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&segment.path)
                .map_err(AgentError::io("write", &segment.path))?;
            (name, file)
        }
        None => {
            // Start a segment named after the floor so it stays on disk.
            let (segment, file) = create_segment(dir, floor)?;
            segments.insert(floor, segment);
            (floor, file)
        }
    };
    let state = State {
        segments,
        active,
        next_seq: floor,
        cursor,
        hint: None,
        closed: false,
    };
    Ok((state, file))
}

/// Removes the bad stretches of a segment; returns where its records now
/// end. Damage only after the last good record is overwritten with zeros
/// in place (the segment keeps its zero-filled room); otherwise the
/// segment is written again with its good records only.
fn rewrite(dir: &Path, path: &Path, bytes: &[u8], scan: &format::Scan) -> Result<u64, AgentError> {
    let end = scan.records_end();
    if scan.bad.iter().all(|range| range.start >= end) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(AgentError::io("write", path))?;
        for range in &scan.bad {
            file.write_all_at(&vec![0u8; range.len()], range.start as u64)
                .map_err(AgentError::io("write", path))?;
        }
        file.sync_data().map_err(AgentError::io("write", path))?;
        return Ok(end as u64);
    }
    let mut good = bytes.get(..SEGMENT_HEADER_LEN).unwrap_or_default().to_vec();
    for frame in &scan.frames {
        good.extend_from_slice(
            bytes
                .get(frame.offset..frame.offset + frame.len)
                .unwrap_or_default(),
        );
    }
    let temp = PathBuf::from(format!("{}{TEMP_SUFFIX}", path.display()));
    cursor::replace(dir, path, &temp, &good)?;
    Ok(good.len() as u64)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A directory of set-aside files (`corrupt/`, `refused/`), created
/// (0700) when first needed.
pub(super) struct SetAside {
    dir: PathBuf,
    created: bool,
}

impl SetAside {
    fn new(spool: &Path) -> SetAside {
        SetAside::named(spool, CORRUPT_DIR)
    }

    /// The set-aside directory `name` of the spool directory `spool`.
    pub(super) fn named(spool: &Path, name: &str) -> SetAside {
        SetAside {
            dir: spool.join(name),
            created: false,
        }
    }

    fn ensure(&mut self) -> Result<(), AgentError> {
        if !self.created {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(AgentError::io("create", &self.dir))?;
            self.created = true;
        }
        Ok(())
    }

    /// A path in the directory named `base`, or `base.1`, `base.2`, ... when
    /// an earlier recovery used the name.
    fn free_path(&mut self, base: &str) -> Result<PathBuf, AgentError> {
        self.ensure()?;
        let mut path = self.dir.join(base);
        let mut n = 0;
        while path.exists() {
            n += 1;
            path = self.dir.join(format!("{base}.{n}"));
        }
        Ok(path)
    }

    fn move_file(&mut self, from: &Path, base: &str) -> Result<(), AgentError> {
        let to = self.free_path(base)?;
        std::fs::rename(from, &to).map_err(AgentError::io("write", &to))?;
        self.sync()
    }

    /// Writes a new file `base` (or `base.1`, ...) durably.
    pub(super) fn write(&mut self, base: &str, bytes: &[u8]) -> Result<(), AgentError> {
        let path = self.free_path(base)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| {
                file.write_all(bytes)?;
                file.sync_all()
            })
            .map_err(AgentError::io("write", &path))
    }

    /// Makes the directory's entries durable.
    pub(super) fn sync(&mut self) -> Result<(), AgentError> {
        self.ensure()?;
        cursor::sync_dir(&self.dir)?;
        cursor::sync_dir(self.dir.parent().unwrap_or(&self.dir))
    }
}
