//! In-memory views that answer on the hot path without a database read:
//! token revocation rules and the DPoP proof replay cache.
//!
//! INVARIANT: a revocation is added here only after it is durable, and the
//! set is loaded from the database at start, so it never forgets one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, RwLock};
use ward_store::RevocationRow;

/// Revocation rules: by token id, by agent, by scope prefix. A rule revokes
/// tokens issued at or before its time.
#[derive(Default)]
pub struct Revocations {
    set: RwLock<RuleSet>,
}

#[derive(Default)]
struct RuleSet {
    jti: HashMap<String, i64>,
    agents: HashMap<String, i64>,
    prefixes: Vec<(String, String, i64)>,
}

/// The facts of a token a revocation rule is tested against.
pub struct TokenFacts<'a> {
    /// Tenant id.
    pub tenant: &'a str,
    /// Token id.
    pub jti: &'a str,
    /// Agent id.
    pub agent: &'a str,
    /// Granted scopes.
    pub scopes: &'a [String],
    /// Issue time, unix seconds.
    pub iat: i64,
}

impl Revocations {
    /// Adds a durable rule.
    pub fn add(&self, row: &RevocationRow) {
        let Ok(mut set) = self.set.write() else {
            return;
        };
        match row.kind.as_str() {
            "jti" => {
                set.jti.insert(row.value.clone(), row.revoked_at_ms);
            }
            "agent" => {
                let at = set.agents.entry(row.value.clone()).or_insert(i64::MIN);
                *at = (*at).max(row.revoked_at_ms);
            }
            _ => set
                .prefixes
                .push((row.tenant_id.clone(), row.value.clone(), row.revoked_at_ms)),
        }
    }

    /// Why the token is revoked, or `None` if it is not. Fails closed: an
    /// unreadable rule set counts as revoking.
    pub fn check(&self, token: &TokenFacts<'_>) -> Option<String> {
        let Ok(set) = self.set.read() else {
            return Some("revocation state unavailable".into());
        };
        // Token times have second precision; a rule made during the second
        // a token was issued revokes it (fails safe).
        let issued_ms = token.iat.saturating_mul(1000);
        if set.jti.contains_key(token.jti) {
            return Some(format!("token `{}` was revoked", token.jti));
        }
        if set
            .agents
            .get(token.agent)
            .is_some_and(|at| issued_ms <= *at)
        {
            return Some(format!("tokens of agent `{}` were revoked", token.agent));
        }
        set.prefixes
            .iter()
            .find(|(tenant, prefix, at)| {
                tenant == token.tenant
                    && issued_ms <= *at
                    && token
                        .scopes
                        .iter()
                        .any(|scope| scope.starts_with(prefix.as_str()))
            })
            .map(|(_, prefix, _)| format!("tokens with scopes under `{prefix}` were revoked"))
    }
}

/// Seen DPoP proof ids, kept as long as a proof could still be accepted.
/// Expired ids are dropped a few at a time on every insert, oldest first, so
/// no request ever waits for a sweep of the whole cache.
#[derive(Default)]
pub struct ReplayCache {
    seen: Mutex<ReplayState>,
}

#[derive(Default)]
struct ReplayState {
    entries: HashMap<String, i64>,
    expiries: VecDeque<(i64, String)>,
}

impl ReplayCache {
    /// Records `key` until `expires_at` (unix seconds); false if it was
    /// already recorded and unexpired (a replay).
    pub fn first_use(&self, key: String, now: i64, expires_at: i64) -> bool {
        let Ok(mut state) = self.seen.lock() else {
            return false;
        };
        while let Some((expiry, _)) = state.expiries.front() {
            if *expiry > now {
                break;
            }
            if let Some((expiry, old)) = state.expiries.pop_front()
                && state.entries.get(&old) == Some(&expiry)
            {
                state.entries.remove(&old);
            }
        }
        match state.entries.get(&key) {
            Some(expiry) if *expiry > now => false,
            _ => {
                state.entries.insert(key.clone(), expires_at);
                state.expiries.push_back((expires_at, key));
                true
            }
        }
    }

    /// How many proof ids are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().map(|s| s.entries.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: &str, value: &str, at_ms: i64) -> RevocationRow {
        RevocationRow {
            id: "rev_1".into(),
            tenant_id: "ten_a".into(),
            kind: kind.into(),
            value: value.into(),
            revoked_at_ms: at_ms,
            reason: "test".into(),
            created_by: "admin:x".into(),
        }
    }

    fn facts<'a>(scopes: &'a [String], iat: i64) -> TokenFacts<'a> {
        TokenFacts {
            tenant: "ten_a",
            jti: "j1",
            agent: "agt_1",
            scopes,
            iat,
        }
    }

    #[test]
    fn rules_revoke_only_tokens_issued_before_them() {
        let revocations = Revocations::default();
        let scopes = vec!["secrets:read:db/main".to_owned()];
        assert_eq!(revocations.check(&facts(&scopes, 100)), None);
        revocations.add(&rule("agent", "agt_1", 100_500));
        assert!(revocations.check(&facts(&scopes, 100)).is_some());
        assert_eq!(revocations.check(&facts(&scopes, 101)), None);
        revocations.add(&rule("scope_prefix", "secrets:", 200_000));
        assert!(revocations.check(&facts(&scopes, 150)).is_some());
        let other = vec!["files:read:/x".to_owned()];
        assert_eq!(revocations.check(&facts(&other, 150)), None);
        revocations.add(&rule("jti", "j1", 0));
        assert!(revocations.check(&facts(&other, 150)).is_some());
    }

    #[test]
    fn a_proof_id_is_accepted_once_until_it_expires() {
        let cache = ReplayCache::default();
        assert!(cache.first_use("k".into(), 100, 160));
        assert!(!cache.first_use("k".into(), 120, 180));
        assert!(cache.first_use("k".into(), 161, 220));
    }

    #[test]
    fn expired_proof_ids_are_forgotten() {
        let cache = ReplayCache::default();
        for i in 0..1000 {
            assert!(cache.first_use(format!("k{i}"), 100, 160));
        }
        assert_eq!(cache.len(), 1000);
        assert!(cache.first_use("late".into(), 161, 221));
        assert_eq!(cache.len(), 1);
    }
}
