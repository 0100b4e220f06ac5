//! The credentials `ward login` keeps per server, in a private file
//! (`WARD_CREDENTIALS`, else `$XDG_CONFIG_HOME/ward/credentials.json`, else
//! `~/.config/ward/credentials.json`), and the token other commands read back.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Stored credentials, per server URL.
#[derive(Default, Serialize, Deserialize)]
struct Credentials {
    servers: BTreeMap<String, Stored>,
}

/// One server's access token.
#[derive(Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The bearer token.
    pub access_token: String,
    /// Unix seconds after which it is not used.
    pub expires_at: i64,
    /// The OpenID provider that issued it.
    pub issuer: String,
}

fn credentials_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WARD_CREDENTIALS") {
        return Some(PathBuf::from(path));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("ward").join("credentials.json"))
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn load() -> Credentials {
    credentials_path()
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The stored, unexpired token for `server`, if any.
pub fn stored_token(server: &str) -> Option<String> {
    let credentials = load();
    let stored = credentials.servers.get(server.trim_end_matches('/'))?;
    (stored.expires_at > now() + 10).then(|| stored.access_token.clone())
}

/// Keeps `stored` as the token for `server`; returns the file's path.
pub fn save(server: &str, stored: Stored) -> Result<PathBuf, String> {
    let path =
        credentials_path().ok_or("cannot tell where to keep credentials; set WARD_CREDENTIALS")?;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    }
    let mut credentials = load();
    credentials
        .servers
        .insert(server.trim_end_matches('/').to_owned(), stored);
    let text = serde_json::to_vec_pretty(&credentials).map_err(|e| e.to_string())?;
    let temporary = path.with_extension("json.tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(&text)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    Ok(path)
}
