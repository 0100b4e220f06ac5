//! What the gateway knows of the control plane, and the follower that keeps
//! it current: a snapshot at start, then the `GET /v1/watch` push stream,
//! resumed from the last applied event after every disconnect.
//!
//! INVARIANT: events are applied in stream order and `seq` only advances
//! after an event is applied, so a reconnect never skips one.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};
use ward_api::{Jwks, WatchSnapshot};
use ward_auth::{Jwk, VerifyingKey};
use ward_model::enforcement::ReplayCache;
use ward_model::feed::{Enforcement, Event};
use ward_model::scope::Scope;

pub use ward_model::enforcement::{Mode, TokenFacts};

/// Keys, the matrix's high-risk scopes, and the last applied event.
#[derive(Default)]
struct Rules {
    seq: i64,
    keys: HashMap<String, VerifyingKey>,
    /// The matrix's high-risk scopes.
    high_risk: Vec<Scope>,
}

/// Stream health, for staleness.
struct Contact {
    connected: bool,
    last: Instant,
}

/// The shared, in-memory view of the control plane's state.
/// Revocations, kill switches, flags and the replay cache are the control
/// plane's own types (`ward_model::enforcement`), changed by the change
/// feed's own events (`ward_model::feed`), so every enforcement point
/// decides alike.
pub struct ControlState {
    rules: RwLock<Rules>,
    enforcement: Enforcement,
    replay: ReplayCache,
    contact: Mutex<Contact>,
    staleness: Duration,
}

/// A connected stream that sent nothing (not even a keep-alive, every 15 s)
/// for this long is treated as down.
const SILENT_STREAM: Duration = Duration::from_secs(45);

impl ControlState {
    /// Starts from a snapshot.
    pub fn from_snapshot(snapshot: &WatchSnapshot, staleness: Duration) -> ControlState {
        let enforcement = Enforcement::default();
        for revocation in &snapshot.revocations {
            enforcement.revocations.add(&revocation.into());
        }
        for switch in &snapshot.killswitches {
            enforcement.kills.set(switch.into());
        }
        for flag in &snapshot.flags {
            enforcement.flags.set(flag.into());
        }
        let rules = Rules {
            seq: snapshot.seq,
            keys: keys_of(&snapshot.jwks),
            high_risk: scopes_of(&snapshot.high_risk_scopes),
        };
        ControlState {
            rules: RwLock::new(rules),
            enforcement,
            replay: ReplayCache::default(),
            contact: Mutex::new(Contact {
                connected: false,
                last: Instant::now(),
            }),
            staleness,
        }
    }

    /// The last applied event.
    pub fn seq(&self) -> i64 {
        self.rules.read().map(|r| r.seq).unwrap_or(0)
    }

    /// The verification key for `kid`.
    pub fn key(&self, kid: &str) -> Option<VerifyingKey> {
        self.rules.read().ok()?.keys.get(kid).copied()
    }

    /// Replaces the matrix's high-risk scopes (refreshed on every reconnect:
    /// a restarted control plane may run another matrix).
    pub fn set_high_risk(&self, scopes: &[String]) {
        if let Ok(mut rules) = self.rules.write() {
            rules.high_risk = scopes_of(scopes);
        }
    }

    /// Whether a request needing `required` touches a high-risk scope: one
    /// of them covers it, or it covers one of them. Fails closed.
    pub fn is_high_risk(&self, required: &Scope) -> bool {
        self.rules.read().map_or(true, |rules| {
            rules
                .high_risk
                .iter()
                .any(|risky| risky.covers(required) || required.covers(risky))
        })
    }

    /// Replaces the signing keys.
    pub fn set_keys(&self, jwks: &Jwks) {
        if let Ok(mut rules) = self.rules.write() {
            rules.keys = keys_of(jwks);
        }
    }

    /// Applies one stream event. Kinds this version does not know are
    /// skipped (the event still counts as seen): they are changes it does
    /// not enforce. An event whose data does not read is skipped too.
    pub fn apply(&self, seq: i64, kind: &str, data: &str) -> EventEffect {
        let effect = match Event::decode(kind, data) {
            Ok(Some(event)) => {
                let effect = if matches!(event, Event::KeyRotation(_)) {
                    EventEffect::RefetchKeys
                } else {
                    EventEffect::Applied
                };
                self.enforcement.apply(event);
                effect
            }
            Ok(None) => EventEffect::Applied,
            Err(_) => return EventEffect::Malformed,
        };
        let Ok(mut rules) = self.rules.write() else {
            return EventEffect::Malformed;
        };
        rules.seq = rules.seq.max(seq);
        effect
    }

    /// Why the token is revoked, or `None` (the control plane's rules).
    pub fn revoked(&self, token: &TokenFacts<'_>) -> Option<String> {
        self.enforcement.revocations.check(token)
    }

    /// The strictest kill switch mode for an agent and the switch's
    /// reason. Fails closed.
    pub fn mode_for(&self, tenant: &str, agent: &str, agent_version: &str) -> (Mode, String) {
        let (mode, switch) = self
            .enforcement
            .kills
            .mode_for(tenant, agent, agent_version);
        (mode, switch.map(|k| k.reason).unwrap_or_default())
    }

    /// Whether flag `key` is off for everyone or for `tenant`. A flag never
    /// set is on. Fails closed.
    pub fn flag_off(&self, key: &str, tenant: &str) -> bool {
        self.enforcement.flags.is_off(key, tenant)
    }

    /// Records a DPoP proof id until `expires_at`; false on a replay.
    pub fn first_use(&self, key: String, now: i64, expires_at: i64) -> bool {
        self.replay.first_use(key, now, expires_at)
    }

    /// Marks the stream up (in contact now) or down (last contact now if
    /// it was up; failed reconnects leave the time of the last contact).
    pub fn set_connected(&self, connected: bool) {
        if let Ok(mut contact) = self.contact.lock() {
            if connected || contact.connected {
                contact.last = Instant::now();
            }
            contact.connected = connected;
        }
    }

    /// Records that the stream said something.
    pub fn touch(&self) {
        if let Ok(mut contact) = self.contact.lock() {
            contact.last = Instant::now();
        }
    }

    /// `Some(how long)` when the state is stale: the stream has been down
    /// for longer than the staleness window (or silent for much longer).
    pub fn stale_for(&self) -> Option<Duration> {
        let Ok(contact) = self.contact.lock() else {
            return Some(Duration::MAX);
        };
        let since = contact.last.elapsed();
        let limit = if contact.connected {
            self.staleness.max(SILENT_STREAM)
        } else {
            self.staleness
        };
        (since > limit).then_some(since)
    }

    /// Seconds since the stream last said something, and whether it is up.
    pub fn contact(&self) -> (f64, bool) {
        self.contact
            .lock()
            .map(|c| (c.last.elapsed().as_secs_f64(), c.connected))
            .unwrap_or((f64::MAX, false))
    }
}

/// What applying an event asks of the follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventEffect {
    /// Done.
    Applied,
    /// The signing keys changed: fetch the JWKS.
    RefetchKeys,
    /// The data did not read as its kind's (skipped).
    Malformed,
}

fn keys_of(jwks: &Jwks) -> HashMap<String, VerifyingKey> {
    jwks.keys
        .iter()
        .filter(|key| key.alg == "EdDSA")
        .filter_map(|key| {
            let jwk = Jwk {
                kty: key.kty.clone(),
                crv: key.crv.clone(),
                x: key.x.clone(),
            };
            Some((key.kid.clone(), jwk.verifying_key().ok()?))
        })
        .collect()
}

/// Parses scopes; ones this version cannot read are left out (the control
/// plane checked them when it loaded the matrix).
fn scopes_of(scopes: &[String]) -> Vec<Scope> {
    scopes.iter().filter_map(|s| s.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
    use super::*;

    fn empty() -> ControlState {
        let snapshot = WatchSnapshot {
            seq: 7,
            revocations: vec![],
            killswitches: vec![],
            flags: vec![],
            jwks: Jwks { keys: vec![] },
            high_risk_scopes: vec!["secrets:read:db/*".into(), "exec:run:/usr/bin/git".into()],
            tenant: None,
        };
        ControlState::from_snapshot(&snapshot, Duration::from_secs(30))
    }

    #[test]
    fn high_risk_scopes_are_those_overlapping_the_matrix_ones() {
        let state = empty();
        let risky = |s: &str| state.is_high_risk(&s.parse().unwrap());
        assert!(risky("secrets:read:db/main"));
        assert!(risky("secrets:read:**"));
        assert!(risky("exec:run:/usr/bin/git"));
        assert!(!risky("secrets:read:kv/main"));
        assert!(!risky("files:read:/home/alice/projects/a"));
        state.set_high_risk(&["files:read:/home/*/projects/**".into()]);
        assert!(risky("files:read:/home/alice/projects/a"));
        assert!(!risky("secrets:read:db/main"));
    }

    #[test]
    fn stream_events_change_revocations_switches_and_flags() {
        let state = empty();
        let scopes = vec!["files:read:/x".to_owned()];
        let facts = TokenFacts {
            tenant: "t",
            jti: "j",
            agent: "a",
            scopes: &scopes,
            iat: 100,
        };
        assert_eq!(state.revoked(&facts), None);
        state.apply(
            8,
            "revocation",
            r#"{"tenant":"t","kind":"scope_prefix","value":"files:","revoked_at_ms":100000}"#,
        );
        assert!(state.revoked(&facts).is_some());
        assert_eq!(state.seq(), 8);
        state.apply(
            9,
            "killswitch",
            r#"{"scope":"agent","tenant":"t","target":"a","mode":"read-only","reason":"x"}"#,
        );
        assert_eq!(state.mode_for("t", "a", "1").0, Mode::ReadOnly);
        assert_eq!(state.mode_for("t", "b", "1").0, Mode::Normal);
        state.apply(
            10,
            "killswitch",
            r#"{"scope":"agent","tenant":"t","target":"a","mode":"normal","reason":"x"}"#,
        );
        assert_eq!(state.mode_for("t", "a", "1").0, Mode::Normal);
        state.apply(11, "flag", r#"{"key":"k","tenant":"","enabled":false}"#);
        assert!(state.flag_off("k", "t"));
        assert!(!state.flag_off("other", "t"));
    }
}
