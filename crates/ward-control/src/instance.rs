//! First start in a data directory: the signing key and the bootstrap
//! admin token, each audited.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use ward_store::{ApiTokenRow, Store};

use crate::InitError;
use crate::audit::{DraftExt, entry};
use crate::keys::KeyRing;
use crate::util::{new_id, new_secret, now_ms, rfc3339, secret_hash};

/// The file the bootstrap admin token is written to on first start.
pub const BOOTSTRAP_TOKEN_FILE: &str = "bootstrap-admin-token";

/// On the first start in a directory: creates the signing key and the
/// bootstrap admin token (written to a 0600 file). Returns the token when
/// this call created it.
pub async fn first_start(store: &Store, dir: &Path) -> Result<Option<String>, InitError> {
    let (has_key, has_bootstrap) = store
        .read(|conn| {
            Ok((
                !ward_store::signing_keys(conn)?.is_empty(),
                ward_store::has_bootstrap_token(conn)?,
            ))
        })
        .await?;
    if !has_key {
        let kid = new_id("key")?;
        let (row, _) = KeyRing::generate(dir, &kid, &rfc3339(now_ms()))?;
        let draft = entry("system", "key.create", &kid);
        store
            .write(move |ctx| {
                ward_store::insert_signing_key(ctx.conn(), &row)?;
                ctx.audit(draft);
                Ok(())
            })
            .await?;
    }
    if has_bootstrap {
        return Ok(None);
    }
    let secret = new_secret("ward_bt")?;
    let path = dir.join(BOOTSTRAP_TOKEN_FILE);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| {
            file.write_all(format!("{secret}\n").as_bytes())?;
            file.sync_all()
        })
        .map_err(|e| InitError::DataDir {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    let row = ApiTokenRow {
        id: new_id("tok")?,
        tenant_id: None,
        role: "bootstrap".into(),
        description: Some("bootstrap admin token, created on first start".into()),
        created_by: "system".into(),
        created_at: rfc3339(now_ms()),
        revoked_at: None,
    };
    let hash = secret_hash(&secret);
    let draft = entry("system", "instance.init", &row.id)
        .reason("first start: bootstrap admin token created");
    store
        .write(move |ctx| {
            ward_store::insert_api_token(ctx.conn(), &row, &hash)?;
            ctx.audit(draft);
            Ok(())
        })
        .await?;
    Ok(Some(secret))
}
