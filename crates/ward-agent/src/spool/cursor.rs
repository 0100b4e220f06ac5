//! The cursor file: the highest sequence number the server holds and the
//! counters that must survive restarts, replaced atomically (temp file,
//! fsync, rename, fsync of the directory).
//!
//! The file is text, one `key=value` a line, ending with a CRC-32C of the
//! lines before it:
//!
//! ```text
//! ward-spool-cursor 1
//! shipped=1200
//! dropped=3
//! corrupt=0
//! refused=0
//! crc=1a2b3c4d
//! ```

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::format::crc32c;
use crate::error::AgentError;

pub(super) const CURSOR_FILE: &str = "cursor";
const CURSOR_TEMP: &str = "cursor.tmp";
const FIRST_LINE: &str = "ward-spool-cursor 1";

/// What the cursor file holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Cursor {
    /// Every record up to this one is on the server (0: none).
    pub shipped: u64,
    /// Telemetry records dropped because the spool was full.
    pub dropped: u64,
    /// Stretches set aside because they were torn or failed a check.
    pub corrupt: u64,
    /// Records set aside because the server refused them.
    pub refused: u64,
}

/// What reading the cursor file found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Loaded {
    /// No cursor file: nothing shipped yet.
    Missing,
    /// A good cursor.
    Good(Cursor),
    /// A file that is not a good cursor, and why.
    Corrupt(String),
}

impl Cursor {
    fn render(&self) -> String {
        let body = format!(
            "{FIRST_LINE}\nshipped={}\ndropped={}\ncorrupt={}\nrefused={}\n",
            self.shipped, self.dropped, self.corrupt, self.refused
        );
        let crc = crc32c(body.as_bytes());
        format!("{body}crc={crc:08x}\n")
    }

    fn parse(text: &str) -> Result<Cursor, String> {
        let Some((body, last)) = text.trim_end_matches('\n').rsplit_once('\n') else {
            return Err("has no checksum line".into());
        };
        let crc = last
            .strip_prefix("crc=")
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .ok_or("has no checksum line")?;
        let body = format!("{body}\n");
        if crc32c(body.as_bytes()) != crc {
            return Err("fails its checksum".into());
        }
        let mut lines = body.lines();
        if lines.next() != Some(FIRST_LINE) {
            return Err(format!("does not start with `{FIRST_LINE}`"));
        }
        let mut field = |name: &str| -> Result<u64, String> {
            lines
                .next()
                .and_then(|line| line.strip_prefix(name))
                .and_then(|line| line.strip_prefix('='))
                .and_then(|value| value.parse().ok())
                .ok_or_else(|| format!("has no valid `{name}` line"))
        };
        Ok(Cursor {
            shipped: field("shipped")?,
            dropped: field("dropped")?,
            corrupt: field("corrupt")?,
            refused: field("refused")?,
        })
    }
}

/// Reads the cursor file of the spool directory `dir`.
pub(super) fn load(dir: &Path) -> Result<Loaded, AgentError> {
    let path = dir.join(CURSOR_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) => return Err(AgentError::io("read", &path)(e)),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(Loaded::Corrupt("is not text".into()));
    };
    Ok(match Cursor::parse(&text) {
        Ok(cursor) => Loaded::Good(cursor),
        Err(why) => Loaded::Corrupt(why),
    })
}

/// Replaces the cursor file of `dir` with `cursor`, durably.
pub(super) fn store(dir: &Path, cursor: &Cursor) -> Result<(), AgentError> {
    replace(
        dir,
        &dir.join(CURSOR_FILE),
        &dir.join(CURSOR_TEMP),
        cursor.render().as_bytes(),
    )
}

/// Replaces `path` in `dir` with `bytes` so that a crash leaves either the
/// old file or the new one: written to `temp` (mode 0600) and synced,
/// renamed over `path`, and the directory synced.
pub(super) fn replace(
    dir: &Path,
    path: &Path,
    temp: &Path,
    bytes: &[u8],
) -> Result<(), AgentError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(AgentError::io("write", temp))?;
    std::fs::rename(temp, path).map_err(AgentError::io("write", path))?;
    sync_dir(dir)
}

/// Makes the directory entries of `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), AgentError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(AgentError::io("write", dir))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "a test fails by panicking"
    )]

    use super::*;

    #[test]
    fn a_cursor_round_trips_and_any_changed_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), Loaded::Missing);
        let cursor = Cursor {
            shipped: 1200,
            dropped: 3,
            corrupt: 1,
            refused: 2,
        };
        store(dir.path(), &cursor).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Loaded::Good(cursor));
        let text = std::fs::read(dir.path().join(CURSOR_FILE)).unwrap();
        for at in 0..text.len() - 1 {
            let mut changed = text.clone();
            changed[at] ^= 0x01;
            std::fs::write(dir.path().join(CURSOR_FILE), &changed).unwrap();
            let loaded = load(dir.path()).unwrap();
            assert!(
                matches!(loaded, Loaded::Corrupt(_)),
                "byte {at}: {loaded:?}"
            );
        }
    }
}
