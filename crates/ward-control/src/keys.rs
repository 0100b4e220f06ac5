//! The token signing keys: the current Ed25519 key that signs, and the
//! retired keys the JWKS keeps publishing until every token they signed has
//! expired. Private halves live in `DATA_DIR/keys/<kid>.key` (mode 0600).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use ward_api::{Jwks, PublicJwk};
use ward_auth::{Keypair, VerifyingKey};
use ward_store::SigningKeyRow;

/// A key that may verify tokens.
#[derive(Clone)]
struct Published {
    kid: String,
    key: VerifyingKey,
    publish_until_ms: Option<i64>,
}

struct KeySet {
    current_kid: String,
    current: Keypair,
    published: Vec<Published>,
}

/// The signing key and every key still published.
pub struct KeyRing {
    set: RwLock<KeySet>,
}

/// A key ring problem at start-up or rotation.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("key file `{path}`: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// There is no current key in the database.
    #[error("no current signing key is recorded; the data directory is incomplete")]
    NoCurrentKey,
    /// The randomness source failed.
    #[error("cannot generate a key: {0}")]
    Generate(String),
}

impl KeyRing {
    /// The directory holding private key files under `data_dir`.
    pub fn key_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("keys")
    }

    /// Loads the current key and the published ones from their records.
    pub fn load(data_dir: &Path, rows: &[SigningKeyRow], now_ms: i64) -> Result<KeyRing, KeyError> {
        let dir = Self::key_dir(data_dir);
        let current_row = rows
            .iter()
            .find(|row| row.retired_at_ms.is_none())
            .ok_or(KeyError::NoCurrentKey)?;
        let current = read_key(&dir, &current_row.kid)?;
        let mut published = Vec::new();
        for row in rows {
            if row.publish_until_ms.is_some_and(|until| until <= now_ms) {
                continue;
            }
            let key = if row.kid == current_row.kid {
                current.verifying_key()
            } else {
                read_key(&dir, &row.kid)?.verifying_key()
            };
            published.push(Published {
                kid: row.kid.clone(),
                key,
                publish_until_ms: row.publish_until_ms,
            });
        }
        Ok(KeyRing {
            set: RwLock::new(KeySet {
                current_kid: current_row.kid.clone(),
                current,
                published,
            }),
        })
    }

    /// Generates a key, writes its private half to disk and returns its
    /// public record (not yet stored) with the key pair.
    pub fn generate(
        data_dir: &Path,
        kid: &str,
        created_at: &str,
    ) -> Result<(SigningKeyRow, Keypair), KeyError> {
        let dir = Self::key_dir(data_dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| file_error(&dir, e))?;
        let pair = Keypair::generate().map_err(|e| KeyError::Generate(e.to_string()))?;
        let path = dir.join(format!("{kid}.key"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| file_error(&path, e))?;
        file.write_all(URL_SAFE_NO_PAD.encode(pair.seed_bytes()).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| file_error(&path, e))?;
        let row = SigningKeyRow {
            kid: kid.to_owned(),
            public_x: pair.public_jwk().x,
            created_at: created_at.to_owned(),
            retired_at_ms: None,
            publish_until_ms: None,
        };
        Ok((row, pair))
    }

    /// Makes `pair` the signing key; the previous one stays published until
    /// `previous_until_ms`. Returns the previous key id.
    pub fn rotate(&self, kid: &str, pair: Keypair, previous_until_ms: i64) -> String {
        let Ok(mut set) = self.set.write() else {
            return String::new();
        };
        let previous = std::mem::replace(&mut set.current_kid, kid.to_owned());
        for published in &mut set.published {
            if published.kid == previous {
                published.publish_until_ms = Some(previous_until_ms);
            }
        }
        set.published.insert(
            0,
            Published {
                kid: kid.to_owned(),
                key: pair.verifying_key(),
                publish_until_ms: None,
            },
        );
        set.current = pair;
        previous
    }

    /// Signs `claims` with the current key; returns the JWT.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, String> {
        let set = self
            .set
            .read()
            .map_err(|_| "key ring lock poisoned".to_owned())?;
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), "at+jwt".into());
        header.insert("kid".into(), set.current_kid.clone().into());
        ward_auth::jws::sign(&set.current, &header, claims).map_err(|e| e.to_string())
    }

    /// The key id that currently signs.
    pub fn current_kid(&self) -> String {
        self.set
            .read()
            .map(|set| set.current_kid.clone())
            .unwrap_or_default()
    }

    /// The verifying key for `kid`, if it is still published at `now_ms`.
    pub fn lookup(&self, kid: &str, now_ms: i64) -> Option<VerifyingKey> {
        let set = self.set.read().ok()?;
        set.published
            .iter()
            .find(|p| p.kid == kid && p.publish_until_ms.is_none_or(|until| until > now_ms))
            .map(|p| p.key)
    }

    /// The JWKS document at `now_ms`: current key first.
    pub fn jwks(&self, now_ms: i64) -> Jwks {
        let keys = self
            .set
            .read()
            .map(|set| {
                set.published
                    .iter()
                    .filter(|p| p.publish_until_ms.is_none_or(|until| until > now_ms))
                    .map(|p| {
                        let jwk = ward_auth::Jwk::from_verifying_key(&p.key);
                        PublicJwk {
                            kty: jwk.kty,
                            crv: jwk.crv,
                            x: jwk.x,
                            kid: p.kid.clone(),
                            alg: "EdDSA".into(),
                            use_: "sig".into(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Jwks { keys }
    }
}

fn read_key(dir: &Path, kid: &str) -> Result<Keypair, KeyError> {
    let path = dir.join(format!("{kid}.key"));
    let text = fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|e| file_error(&path, e))?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::File {
        path: path.display().to_string(),
        reason: "not a 32-byte Ed25519 seed".into(),
    })?;
    Ok(Keypair::from_seed(&seed))
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> KeyError {
    KeyError::File {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}
