//! The device key: an Ed25519 key made on the device, kept as the
//! base64url of its seed in a file only its owner can read (0600). Its
//! public half is what the server enrols; proofs signed with it bind the
//! agent's tokens to this device.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::path::Path;
use ward_auth::Keypair;

use crate::error::AgentError;
use crate::state::{refuse_if_open, write_private};

/// Makes a new device key and writes it to `path` (0600); refuses to
/// replace an existing file.
pub fn create(path: &Path) -> Result<Keypair, AgentError> {
    let key = Keypair::generate()
        .map_err(|e| AgentError::Invalid(format!("cannot make a device key: {e}")))?;
    write_private(path, URL_SAFE_NO_PAD.encode(key.seed_bytes()).as_bytes())?;
    Ok(key)
}

/// Reads the device key at `path`; refused when others can read the file.
pub fn load(path: &Path) -> Result<Keypair, AgentError> {
    let meta = std::fs::metadata(path).map_err(AgentError::io("read", path))?;
    refuse_if_open(path, &meta, 0o077, "readable", "600")?;
    let text = std::fs::read_to_string(path).map_err(AgentError::io("read", path))?;
    let not_a_key = || AgentError::Corrupt {
        path: path.to_owned(),
        problem: "is not a device key".to_owned(),
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| not_a_key())?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| not_a_key())?;
    Ok(Keypair::from_seed(&seed))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "a test fails by panicking"
    )]

    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_key_file_is_0600_and_reads_back_as_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let key = create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&path).unwrap().public_jwk().x, key.public_jwk().x);
        assert!(create(&path).is_err(), "an existing key is never replaced");
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(
            error.ends_with("is readable by others (mode 644); run `chmod 600` on it"),
            "{error}"
        );
    }

    #[test]
    fn a_corrupted_key_file_gives_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        for garbage in ["", "not base64!", "c2hvcnQ"] {
            std::fs::write(&path, garbage).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let error = load(&path).unwrap_err().to_string();
            assert_eq!(error, format!("`{}` is not a device key", path.display()));
        }
    }
}
