//! The agent's state directory: private to its user (0700, refused when
//! another user can write it, since they could swap the key or the record),
//! holding the device key and the record of the enrolment.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::AgentError;

const KEY_FILE: &str = "device.key";
const RECORD_FILE: &str = "agent.json";
const LOCK_FILE: &str = "agent.lock";

/// What enrolment leaves in the state directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The server the agent enrolled with.
    pub server: String,
    /// The agent's id.
    pub agent_id: String,
    /// Its tenant.
    pub tenant: String,
    /// Thumbprint of the device key the server holds.
    pub device_jkt: String,
}

/// A state directory, checked to be private.
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Creates `path` (0700, with missing parents) if needed and checks it.
    pub fn create(path: &Path) -> Result<StateDir, AgentError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(AgentError::io("create", path))?;
        StateDir::open(path)
    }

    /// An existing state directory; refused if another user can write it.
    pub fn open(path: &Path) -> Result<StateDir, AgentError> {
        let meta = std::fs::metadata(path).map_err(|source| AgentError::Io {
            action: "read",
            path: path.to_owned(),
            source,
            hint: Some("; run `ward agent enroll` first"),
        })?;
        refuse_if_open(path, &meta, 0o022, "writable", "700")?;
        Ok(StateDir {
            path: path.to_owned(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the device key lives.
    pub fn key_path(&self) -> PathBuf {
        self.path.join(KEY_FILE)
    }

    fn record_path(&self) -> PathBuf {
        self.path.join(RECORD_FILE)
    }

    /// Whether an agent was enrolled here.
    pub fn is_enrolled(&self) -> bool {
        self.record_path().exists()
    }

    /// The enrolment record.
    pub fn record(&self) -> Result<AgentRecord, AgentError> {
        let path = self.record_path();
        let bytes = std::fs::read(&path).map_err(|source| AgentError::Io {
            action: "read",
            path: path.clone(),
            source,
            hint: Some("; run `ward agent enroll` first"),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| AgentError::Corrupt {
            path,
            problem: format!("is corrupt: {e}"),
        })
    }

    /// Takes the state directory for one daemon: refused while another
    /// `ward agent run` holds it. Held until the returned file is dropped
    /// (the kernel releases it if the process dies).
    pub fn lock_daemon(&self) -> Result<std::fs::File, AgentError> {
        let path = self.path.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(AgentError::io("write", &path))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(AgentError::Invalid(format!(
                "another `ward agent run` is using `{}`; stop it first",
                self.path.display()
            ))),
            Err(std::fs::TryLockError::Error(source)) => Err(AgentError::Io {
                action: "lock",
                path,
                source,
                hint: None,
            }),
        }
    }

    /// Removes the device key, the enrolment record, the lock and the list
    /// of settings Ward installed into: what an uninstalled agent leaves
    /// behind is an empty directory.
    pub fn wipe(&self) -> Result<(), AgentError> {
        for name in [
            KEY_FILE,
            RECORD_FILE,
            LOCK_FILE,
            crate::install::REGISTRY_FILE,
        ] {
            let path = self.path.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(AgentError::Io {
                        action: "remove",
                        path,
                        source,
                        hint: None,
                    });
                }
            }
        }
        Ok(())
    }

    /// Keeps the enrolment record (0600; never overwrites one).
    pub fn save_record(&self, record: &AgentRecord) -> Result<(), AgentError> {
        let text = serde_json::to_vec_pretty(record)
            .map_err(|e| AgentError::Invalid(format!("cannot encode the agent record: {e}")))?;
        write_private(&self.record_path(), &text)
    }
}

/// Refuses `path` when any bit of `mask` is set in its mode (`0o022`:
/// others may write it; `0o077`: others may read it), naming the mode
/// `fix` to set.
pub(crate) fn refuse_if_open(
    path: &Path,
    meta: &std::fs::Metadata,
    mask: u32,
    what: &'static str,
    fix: &'static str,
) -> Result<(), AgentError> {
    let mode = meta.permissions().mode() & 0o777;
    if mode & mask != 0 {
        return Err(AgentError::NotPrivate {
            path: path.to_owned(),
            what,
            mode,
            fix,
        });
    }
    Ok(())
}

/// Writes a new file readable only by its owner; refuses to replace one.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(AgentError::io("write", path))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "a test fails by panicking"
    )]

    use super::*;

    fn record() -> AgentRecord {
        AgentRecord {
            server: "http://127.0.0.1:8080".into(),
            agent_id: "agt_1".into(),
            tenant: "ten_1".into(),
            device_jkt: "jkt".into(),
        }
    }

    #[test]
    fn a_new_state_dir_is_private_and_keeps_the_record_0600() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a/b");
        let dir = StateDir::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(!dir.is_enrolled());
        dir.save_record(&record()).unwrap();
        assert!(dir.is_enrolled());
        let file = std::fs::metadata(path.join(RECORD_FILE)).unwrap();
        assert_eq!(file.permissions().mode() & 0o777, 0o600);
        assert_eq!(dir.record().unwrap().agent_id, "agt_1");
        let again = dir.save_record(&record()).unwrap_err().to_string();
        assert!(again.starts_with("cannot write `"), "{again}");
    }

    #[test]
    fn a_state_dir_another_user_can_write_is_refused() {
        let root = tempfile::tempdir().unwrap();
        for mode in [0o777, 0o720, 0o702] {
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let error = StateDir::open(root.path()).unwrap_err().to_string();
            assert!(error.contains("is writable by others"), "{error}");
            assert!(error.contains("run `chmod 700`"), "{error}");
        }
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        StateDir::open(root.path()).unwrap();
    }

    #[test]
    fn a_missing_or_corrupt_record_says_what_to_do() {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let dir = StateDir::open(root.path()).unwrap();
        let missing = dir.record().unwrap_err().to_string();
        assert!(
            missing.ends_with("run `ward agent enroll` first"),
            "{missing}"
        );
        std::fs::write(root.path().join(RECORD_FILE), b"{not json").unwrap();
        let corrupt = dir.record().unwrap_err().to_string();
        assert!(corrupt.contains("agent.json` is corrupt: "), "{corrupt}");
    }
}
