//! What the gateway knows of the control plane, and the follower that keeps
//! it current: a snapshot at start, then the `GET /v1/watch` push stream,
//! resumed from the last applied event after every disconnect.
//!
//! INVARIANT: events are applied in stream order and `seq` only advances
//! after an event is applied, so a reconnect never skips one.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};
use ward_api::{Jwks, WatchSnapshot};
use ward_auth::{Jwk, VerifyingKey};
use ward_model::enforcement::{KillSwitch, KillSwitches, ReplayCache, RevocationRule, Revocations};
use ward_model::scope::Scope;

pub use ward_model::enforcement::{Mode, TokenFacts};

#[derive(Clone, Debug)]
struct FlagValue {
    key: String,
    tenant: String,
    enabled: bool,
}

/// Flags and keys, and the last applied event.
#[derive(Default)]
struct Rules {
    seq: i64,
    flags: Vec<FlagValue>,
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
/// Revocations, kill switches and the replay cache are the control
/// plane's own types (`ward_model::enforcement`), so both enforcement
/// points decide alike.
pub struct ControlState {
    rules: RwLock<Rules>,
    revocations: Revocations,
    kills: KillSwitches,
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
        let revocations = Revocations::default();
        for r in &snapshot.revocations {
            revocations.add(&RevocationRule {
                tenant: r.tenant.clone(),
                kind: r.kind.clone(),
                value: r.value.clone(),
                revoked_at_ms: parse_ms(&r.revoked_at),
            });
        }
        let kills = KillSwitches::default();
        for k in &snapshot.killswitches {
            kills.set(KillSwitch {
                scope: k.scope.clone(),
                tenant: k.tenant.clone().unwrap_or_default(),
                target: k.target.clone(),
                mode: k.mode.clone(),
                reason: k.reason.clone(),
                set_by: k.set_by.clone(),
                set_at: k.set_at.clone(),
            });
        }
        let rules = Rules {
            seq: snapshot.seq,
            flags: snapshot
                .flags
                .iter()
                .map(|f| FlagValue {
                    key: f.key.clone(),
                    tenant: f.tenant.clone().unwrap_or_default(),
                    enabled: f.enabled,
                })
                .collect(),
            keys: keys_of(&snapshot.jwks),
            high_risk: scopes_of(&snapshot.high_risk_scopes),
        };
        ControlState {
            rules: RwLock::new(rules),
            revocations,
            kills,
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

    /// Applies one stream event; unknown kinds are skipped (the event still
    /// counts as seen).
    pub fn apply(&self, seq: i64, kind: &str, data: &str) -> EventEffect {
        let Ok(payload) = serde_json::from_str::<Value>(data) else {
            return EventEffect::Malformed;
        };
        let text = |name: &str| payload.get(name).and_then(Value::as_str).unwrap_or("");
        let mut effect = EventEffect::Applied;
        match kind {
            "revocation" => self.revocations.add(&RevocationRule {
                tenant: text("tenant").to_owned(),
                kind: text("kind").to_owned(),
                value: text("value").to_owned(),
                // A rule without a time revokes every token it matches.
                revoked_at_ms: payload
                    .get("revoked_at_ms")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MAX),
            }),
            "killswitch" => self.kills.set(KillSwitch {
                scope: text("scope").to_owned(),
                tenant: text("tenant").to_owned(),
                target: text("target").to_owned(),
                mode: text("mode").to_owned(),
                reason: text("reason").to_owned(),
                set_by: String::new(),
                set_at: String::new(),
            }),
            "key_rotation" => effect = EventEffect::RefetchKeys,
            _ => {}
        }
        let Ok(mut rules) = self.rules.write() else {
            return EventEffect::Malformed;
        };
        if kind == "flag" {
            let flag = FlagValue {
                key: text("key").to_owned(),
                tenant: text("tenant").to_owned(),
                enabled: payload
                    .get("enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            };
            rules
                .flags
                .retain(|f| !(f.key == flag.key && f.tenant == flag.tenant));
            rules.flags.push(flag);
        }
        rules.seq = rules.seq.max(seq);
        effect
    }

    /// Why the token is revoked, or `None` (the control plane's rules).
    pub fn revoked(&self, token: &TokenFacts<'_>) -> Option<String> {
        self.revocations.check(token)
    }

    /// The strictest kill switch mode for an agent and the switch's
    /// reason. Fails closed.
    pub fn mode_for(&self, tenant: &str, agent: &str, agent_version: &str) -> (Mode, String) {
        let (mode, switch) = self.kills.mode_for(tenant, agent, agent_version);
        (mode, switch.map(|k| k.reason).unwrap_or_default())
    }

    /// Whether flag `key` is off for everyone or for `tenant`. A flag never
    /// set is on. Fails closed.
    pub fn flag_off(&self, key: &str, tenant: &str) -> bool {
        let Ok(rules) = self.rules.read() else {
            return true;
        };
        rules
            .flags
            .iter()
            .any(|f| f.key == key && (f.tenant.is_empty() || f.tenant == tenant) && !f.enabled)
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
    /// The payload was not JSON (skipped).
    Malformed,
}

/// RFC 3339 to unix milliseconds; unparsable times revoke everything (fail
/// closed).
fn parse_ms(text: &str) -> i64 {
    ward_model::timestamp::parse_rfc3339(text).unwrap_or(i64::MAX)
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
