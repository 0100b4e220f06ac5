//! The audit log's hash chain: a canonical encoding of one entry and the
//! verification that finds the first entry altered, removed or reordered.
//!
//! INVARIANT: `hash(n) = SHA-256(prev_hash(n) || canonical(n))` where
//! `prev_hash(n) = hash(n - 1)` and `prev_hash(1)` is [`GENESIS_HASH`]. The
//! sequence number is part of the encoding, so moving an entry breaks it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// The `prev_hash` of the first entry: 64 hex zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How an audited action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    /// It was done.
    Success,
    /// It was refused; the reason names the rule.
    Denied,
    /// It failed.
    Error,
}

impl AuditResult {
    /// Every result.
    pub const ALL: [AuditResult; 3] = [
        AuditResult::Success,
        AuditResult::Denied,
        AuditResult::Error,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Success => "success",
            AuditResult::Denied => "denied",
            AuditResult::Error => "error",
        }
    }
}

impl fmt::Display for AuditResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditResult {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditResult::ALL
            .into_iter()
            .find(|result| result.as_str() == s)
            .ok_or_else(|| format!("unknown audit result `{s}`"))
    }
}

/// The recorded fields of one audit entry, as they are hashed. A record
/// being written (a draft) has `seq` 0: the store's writer gives it its
/// place in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, starting at 1, without gaps (0 in a draft).
    pub seq: i64,
    /// When it happened, RFC 3339 UTC with milliseconds.
    pub ts: String,
    /// The tenant the entry belongs to; `None` for instance-wide actions.
    pub tenant: Option<String>,
    /// Who acted: `admin:<token id>`, `agent:<agent id>`, `bootstrap`, `system`.
    pub actor: String,
    /// What was done, dotted: `agent.enroll`, `token.issue`, ...
    pub action: String,
    /// What it was done to (an id or a name).
    pub target: String,
    /// How it ended.
    pub result: AuditResult,
    /// Why: a human reason, or the machine reason for a denial.
    pub reason: String,
    /// The correlation id of the request that caused it.
    pub correlation_id: String,
    /// Further facts as canonical JSON (object with sorted keys).
    pub details: String,
}

/// One stored entry: the record plus its links in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedRecord {
    /// The recorded fields.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// Hash of the previous entry, hex.
    pub prev_hash: String,
    /// Hash of this entry, hex.
    pub hash: String,
}

impl AuditRecord {
    /// The canonical encoding: every field in a fixed order, each prefixed by
    /// its length, so no two different records encode alike.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let seq = self.seq.to_string();
        let tenant = self.tenant.as_deref();
        let fields: [Option<&str>; 10] = [
            Some(&seq),
            Some(&self.ts),
            tenant,
            Some(&self.actor),
            Some(&self.action),
            Some(&self.target),
            Some(self.result.as_str()),
            Some(&self.reason),
            Some(&self.correlation_id),
            Some(&self.details),
        ];
        for field in fields {
            match field {
                None => out.push(0),
                Some(value) => {
                    out.push(1);
                    out.extend_from_slice(&(value.len() as u64).to_be_bytes());
                    out.extend_from_slice(value.as_bytes());
                }
            }
        }
        out
    }

    /// The hash of this record chained after `prev_hash` (hex).
    pub fn chain_hash(&self, prev_hash: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(prev_hash.as_bytes());
        hasher.update(self.canonical_bytes());
        hex(&hasher.finalize())
    }

    /// Links this record after `prev_hash`.
    pub fn chain(self, prev_hash: String) -> ChainedRecord {
        let hash = self.chain_hash(&prev_hash);
        ChainedRecord {
            record: self,
            prev_hash,
            hash,
        }
    }
}

/// Where and how a chain stops being intact.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The entry's content no longer matches its hash.
    #[error("entry {seq} was altered: its content does not match its hash")]
    Altered {
        /// The entry.
        seq: i64,
    },
    /// Entries are missing before this one.
    #[error("entries {expected} to {} were removed (next present entry is {found})", found - 1)]
    Removed {
        /// The sequence number that should have come next.
        expected: i64,
        /// The sequence number found instead.
        found: i64,
    },
    /// The entry does not link to the one before it.
    #[error(
        "entry {seq} does not follow entry {}: entries were reordered or replaced",
        seq - 1
    )]
    Unlinked {
        /// The entry.
        seq: i64,
    },
}

impl ChainBreak {
    /// The sequence number the break is reported at.
    pub fn seq(&self) -> i64 {
        match self {
            ChainBreak::Altered { seq } | ChainBreak::Unlinked { seq } => *seq,
            ChainBreak::Removed { expected, .. } => *expected,
        }
    }
}

/// Incremental verification of a chain read in sequence order.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
        }
    }
}

impl ChainVerifier {
    /// Checks the next entry; entries must be fed in ascending `seq` order.
    pub fn push(&mut self, entry: &ChainedRecord) -> Result<(), ChainBreak> {
        let seq = entry.record.seq;
        if seq != self.expected_seq {
            if seq > self.expected_seq {
                return Err(ChainBreak::Removed {
                    expected: self.expected_seq,
                    found: seq,
                });
            }
            return Err(ChainBreak::Unlinked { seq });
        }
        if entry.record.chain_hash(&entry.prev_hash) != entry.hash {
            return Err(ChainBreak::Altered { seq });
        }
        if entry.prev_hash != self.prev_hash {
            return Err(ChainBreak::Unlinked { seq });
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&entry.hash);
        Ok(())
    }

    /// How many entries were verified.
    pub fn verified(&self) -> i64 {
        self.expected_seq - 1
    }

    /// The hash of the last verified entry (the chain head).
    pub fn head(&self) -> &str {
        &self.prev_hash
    }
}

/// Whether `id` may serve as a correlation id taken from a caller: 1 to 128
/// characters of ASCII letters, digits, `-`, `_`, `.` and `:`, so it is
/// safe in a header, a log line and an audit entry.
pub fn valid_correlation_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: i64, action: &str) -> AuditRecord {
        AuditRecord {
            seq,
            ts: "2026-11-26T00:00:00.000Z".into(),
            tenant: Some("t1".into()),
            actor: "bootstrap".into(),
            action: action.into(),
            target: "x".into(),
            result: AuditResult::Success,
            reason: String::new(),
            correlation_id: "c".into(),
            details: "{}".into(),
        }
    }

    fn chain(n: i64) -> Vec<ChainedRecord> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let entry = record(seq, &format!("a{seq}")).chain(prev.clone());
                prev.clone_from(&entry.hash);
                entry
            })
            .collect()
    }

    fn verify(entries: &[ChainedRecord]) -> Result<i64, ChainBreak> {
        let mut verifier = ChainVerifier::default();
        for entry in entries {
            verifier.push(entry)?;
        }
        Ok(verifier.verified())
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn an_altered_field_is_named() {
        let mut entries = chain(5);
        entries[2].record.result = AuditResult::Denied;
        assert_eq!(verify(&entries), Err(ChainBreak::Altered { seq: 3 }));
    }

    #[test]
    fn a_removed_entry_is_named() {
        let mut entries = chain(5);
        entries.remove(1);
        assert_eq!(
            verify(&entries),
            Err(ChainBreak::Removed {
                expected: 2,
                found: 3
            })
        );
    }

    #[test]
    fn swapped_contents_are_named() {
        let mut entries = chain(5);
        let (a, b) = (entries[1].clone(), entries[2].clone());
        entries[1] = ChainedRecord {
            record: AuditRecord { seq: 2, ..b.record },
            ..b
        };
        entries[2] = ChainedRecord {
            record: AuditRecord { seq: 3, ..a.record },
            ..a
        };
        assert_eq!(verify(&entries), Err(ChainBreak::Altered { seq: 2 }));
    }

    #[test]
    fn a_rehashed_forgery_breaks_the_link() {
        let mut entries = chain(5);
        entries[2].record.result = AuditResult::Denied;
        let prev = entries[2].prev_hash.clone();
        entries[2] = entries[2].record.clone().chain(prev);
        assert_eq!(verify(&entries), Err(ChainBreak::Unlinked { seq: 4 }));
    }

    #[test]
    fn absent_tenant_differs_from_empty_tenant() {
        let a = AuditRecord {
            tenant: None,
            ..record(1, "x")
        };
        let b = AuditRecord {
            tenant: Some(String::new()),
            ..record(1, "x")
        };
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
    }
}
