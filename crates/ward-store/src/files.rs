//! The database's files in the data directory: the exclusive lock one
//! process holds while it owns the directory, and the private file modes of
//! `ward.db`, `ward.db-wal` and `ward.db-shm`.
//!
//! INVARIANT: at most one process opens a data directory's database for
//! writing; a second one is refused before it touches the database, so the
//! writer's in-memory chain head is always the head on disk.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{DB_FILE, StoreError};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "ward.lock";

/// Suffixes SQLite adds to the database file's name in WAL mode.
const SIDE_FILES: [&str; 2] = ["-wal", "-shm"];

/// An exclusive lock on a data directory, held until dropped (the kernel
/// also releases it when the process ends, however it ends).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` and records this process's id in the lock
    /// file, or names the process that holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::Rejected(format!("cannot open `{}`: {e}", path.display())))?;
        lock(&mut file, dir)?;
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{pid}"))
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::Rejected(format!("cannot write `{}`: {e}", path.display())))?;
        Ok(DirLock { _file: file })
    }
}

/// Fails, naming the holder, if a process holds `dir`'s lock; takes
/// nothing. Lets a server refuse before it binds its address, so a second
/// server on the same directory and address is told about the first one
/// rather than about the address. [`Store::open`](crate::Store::open)
/// still takes the lock for real.
pub fn ensure_unlocked(dir: &Path) -> Result<(), StoreError> {
    match File::open(dir.join(LOCK_FILE)) {
        Ok(mut file) => lock(&mut file, dir),
        Err(_) => Ok(()),
    }
}

/// Takes an exclusive lock on `file`, the lock file of `dir`, or names
/// the process that holds it.
fn lock(file: &mut File, dir: &Path) -> Result<(), StoreError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked {
            dir: dir.display().to_string(),
            holder: match holder_pid(file) {
                Some(pid) => format!("pid {pid}"),
                None => "a process that has not yet written its pid".to_owned(),
            },
        }),
        Err(TryLockError::Error(e)) => Err(StoreError::Rejected(format!(
            "cannot lock `{}`: {e}",
            dir.join(LOCK_FILE).display()
        ))),
    }
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Creates the database file 0600 if it is missing (SQLite gives its WAL
/// and shared-memory files the database file's mode), and takes group and
/// other access away from all three where an older ward left it.
pub(crate) fn make_private(dir: &Path) -> Result<PathBuf, StoreError> {
    let path = dir.join(DB_FILE);
    let fail = |path: &Path, e: std::io::Error| {
        StoreError::Rejected(format!("cannot protect `{}`: {e}", path.display()))
    };
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| fail(&path, e))?;
    let side = SIDE_FILES.map(|suffix| dir.join(format!("{DB_FILE}{suffix}")));
    for file in std::iter::once(&path).chain(&side) {
        let mode = match std::fs::metadata(file) {
            Ok(meta) => meta.permissions().mode() & 0o777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(file, e)),
        };
        if mode & 0o077 != 0 {
            tracing::warn!(file = %file.display(), mode = format!("{mode:o}"), "database file was readable by others; setting mode 600");
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| fail(file, e))?;
        }
    }
    Ok(path)
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
    fn a_second_lock_on_the_directory_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let error = DirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        let probed = ensure_unlocked(dir.path()).unwrap_err().to_string();
        assert_eq!(probed, error);
        drop(first);
        ensure_unlocked(dir.path()).unwrap();
        DirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn existing_database_files_are_made_private() {
        let dir = tempfile::tempdir().unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("{DB_FILE}{suffix}"));
            std::fs::write(&file, b"").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        make_private(dir.path()).unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("{DB_FILE}{suffix}"));
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
    }
}
