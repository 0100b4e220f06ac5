//! The state both enforcement points hold in memory and decide from: token
//! revocation rules, engaged kill switches, and the DPoP proof replay
//! cache. The control plane fills it from its database, gateways from the
//! change feed; both answer the same way.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, RwLock};

/// A token revocation rule: tokens issued at or before `revoked_at_ms`
/// whose id, agent, or a scope prefix matches are revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationRule {
    /// Tenant the rule belongs to.
    pub tenant: String,
    /// `jti`, `agent` or `scope_prefix`.
    pub kind: String,
    /// The token id, agent id or scope prefix.
    pub value: String,
    /// When it was made, unix milliseconds.
    pub revoked_at_ms: i64,
}

/// The facts of a token a rule is tested against.
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

/// Revocation rules.
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

impl Revocations {
    /// Adds a rule (unknown kinds are treated as scope prefixes: they can
    /// only revoke more).
    pub fn add(&self, rule: &RevocationRule) {
        let Ok(mut set) = self.set.write() else {
            return;
        };
        match rule.kind.as_str() {
            "jti" => {
                set.jti.insert(rule.value.clone(), rule.revoked_at_ms);
            }
            "agent" => {
                let at = set.agents.entry(rule.value.clone()).or_insert(i64::MIN);
                *at = (*at).max(rule.revoked_at_ms);
            }
            _ => set
                .prefixes
                .push((rule.tenant.clone(), rule.value.clone(), rule.revoked_at_ms)),
        }
    }

    /// Why the token is revoked, or `None`. Fails closed: an unreadable
    /// rule set revokes.
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

/// How far a kill switch restricts an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Nothing restricted.
    Normal,
    /// Only read-style scopes and safe methods pass.
    ReadOnly,
    /// Nothing passes.
    Offline,
}

impl Mode {
    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "normal" => Some(Mode::Normal),
            "read-only" => Some(Mode::ReadOnly),
            "offline" => Some(Mode::Offline),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::ReadOnly => "read-only",
            Mode::Offline => "offline",
        }
    }
}

/// An engaged kill switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KillSwitch {
    /// `global`, `tenant`, `agent` or `agent_version`.
    pub scope: String,
    /// Tenant, or empty for instance-wide switches.
    pub tenant: String,
    /// Agent id, agent version, tenant id (`tenant`) or empty (`global`).
    pub target: String,
    /// The mode (an unknown mode counts as offline: fail closed).
    pub mode: String,
    /// Why.
    pub reason: String,
    /// Who.
    pub set_by: String,
    /// When, RFC 3339.
    pub set_at: String,
}

impl KillSwitch {
    /// The switch's mode; an unknown one is `Offline`.
    pub fn mode(&self) -> Mode {
        Mode::parse(&self.mode).unwrap_or(Mode::Offline)
    }

    fn same_key(&self, other: &KillSwitch) -> bool {
        self.scope == other.scope && self.tenant == other.tenant && self.target == other.target
    }

    fn applies_to(&self, tenant: &str, agent: &str, agent_version: &str) -> bool {
        (self.tenant.is_empty() || self.tenant == tenant)
            && match self.scope.as_str() {
                "global" => true,
                "tenant" => self.target == tenant,
                "agent" => self.target == agent,
                "agent_version" => self.target == agent_version,
                _ => true,
            }
    }
}

/// The engaged kill switches.
#[derive(Default)]
pub struct KillSwitches {
    engaged: RwLock<Vec<KillSwitch>>,
}

impl KillSwitches {
    /// Records a switch, replacing one with the same key; `normal` releases.
    pub fn set(&self, switch: KillSwitch) {
        let Ok(mut engaged) = self.engaged.write() else {
            return;
        };
        engaged.retain(|k| !k.same_key(&switch));
        if switch.mode() != Mode::Normal {
            engaged.push(switch);
        }
    }

    /// The engaged switches visible to `tenant` (`None`: all).
    pub fn visible(&self, tenant: Option<&str>) -> Vec<KillSwitch> {
        self.engaged
            .read()
            .map(|engaged| {
                engaged
                    .iter()
                    .filter(|k| tenant.is_none_or(|t| k.tenant.is_empty() || k.tenant == t))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The strictest switch that applies to an agent, and that switch.
    /// Fails closed: unreadable state counts as offline.
    pub fn mode_for(
        &self,
        tenant: &str,
        agent: &str,
        agent_version: &str,
    ) -> (Mode, Option<KillSwitch>) {
        let Ok(engaged) = self.engaged.read() else {
            return (Mode::Offline, None);
        };
        engaged
            .iter()
            .filter(|k| k.applies_to(tenant, agent, agent_version))
            .map(|k| (k.mode(), Some(k.clone())))
            .max_by_key(|(mode, _)| *mode)
            .unwrap_or((Mode::Normal, None))
    }
}

/// Seen DPoP proof ids, kept as long as a proof could still be accepted.
/// Expired ids are dropped a few at a time on every insert, oldest first,
/// so no request ever waits for a sweep of the whole cache.
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
    /// already recorded and unexpired (a replay). Fails closed.
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
    pub fn len(&self) -> usize {
        self.seen.lock().map(|s| s.entries.len()).unwrap_or(0)
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: &str, value: &str, at_ms: i64) -> RevocationRule {
        RevocationRule {
            tenant: "ten_a".into(),
            kind: kind.into(),
            value: value.into(),
            revoked_at_ms: at_ms,
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
    fn a_proof_id_is_accepted_once_until_it_expires_and_then_forgotten() {
        let cache = ReplayCache::default();
        assert!(cache.first_use("k".into(), 100, 160));
        assert!(!cache.first_use("k".into(), 120, 180));
        assert!(cache.first_use("k".into(), 161, 220));
        for i in 0..1000 {
            assert!(cache.first_use(format!("k{i}"), 200, 260));
        }
        assert!(cache.first_use("late".into(), 261, 321));
        assert_eq!(cache.len(), 1);
    }

    fn kill(scope: &str, tenant: &str, target: &str, mode: &str) -> KillSwitch {
        KillSwitch {
            scope: scope.into(),
            tenant: tenant.into(),
            target: target.into(),
            mode: mode.into(),
            reason: "drill".into(),
            set_by: "x".into(),
            set_at: "t".into(),
        }
    }

    #[test]
    fn the_strictest_applicable_switch_wins() {
        let switches = KillSwitches::default();
        assert_eq!(switches.mode_for("t1", "a1", "1.0").0, Mode::Normal);
        switches.set(kill("agent_version", "t1", "1.0", "read-only"));
        assert_eq!(switches.mode_for("t1", "a1", "1.0").0, Mode::ReadOnly);
        assert_eq!(
            switches.mode_for("t2", "a9", "1.0").0,
            Mode::Normal,
            "another tenant's switch"
        );
        assert_eq!(switches.mode_for("t1", "a1", "1.1").0, Mode::Normal);
        switches.set(kill("agent", "t1", "a1", "offline"));
        assert_eq!(switches.mode_for("t1", "a1", "1.0").0, Mode::Offline);
        switches.set(kill("agent", "t1", "a1", "normal"));
        assert_eq!(switches.mode_for("t1", "a1", "1.0").0, Mode::ReadOnly);
        switches.set(kill("global", "", "", "offline"));
        assert_eq!(switches.mode_for("t2", "a9", "2.0").0, Mode::Offline);
        switches.set(kill("tenant", "t2", "t2", "read-only"));
        assert_eq!(
            switches.visible(Some("t1")).len(),
            2,
            "t1 sees its own and the global one"
        );
        switches.set(kill("agent", "t1", "a2", "sideways"));
        assert_eq!(
            switches.mode_for("t1", "a2", "3.0").0,
            Mode::Offline,
            "unknown modes fail closed"
        );
    }
}
