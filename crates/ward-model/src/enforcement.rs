//! The state every enforcement point holds in memory and decides from:
//! token revocation rules, engaged kill switches, feature flags, and the
//! DPoP proof replay cache. The control plane fills it from its database,
//! gateways from the change feed; all answer the same way, because this is
//! the only code that evaluates them.
//!
//! The serde form of a rule, switch and flag is the data of its change
//! feed event (`crate::feed`). Fields missing from an event take the value
//! that restricts most: a rule without a time revokes every token it
//! matches, a switch without a known mode is `offline`, a flag without a
//! value is off.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, RwLock};

/// A token revocation rule: tokens issued at or before `revoked_at_ms`
/// whose id, agent, or a scope prefix matches are revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRule {
    /// Revocation id (`rev_...`).
    #[serde(default)]
    pub id: String,
    /// Tenant the rule belongs to.
    #[serde(default)]
    pub tenant: String,
    /// `jti`, `agent` or `scope_prefix`.
    #[serde(default)]
    pub kind: String,
    /// The token id, agent id or scope prefix.
    #[serde(default)]
    pub value: String,
    /// When it was made, unix milliseconds.
    #[serde(default = "latest")]
    pub revoked_at_ms: i64,
}

/// The time of a rule that does not say: it revokes every token it matches.
fn latest() -> i64 {
    i64::MAX
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
    /// Every mode, loosest first.
    pub const ALL: [Mode; 3] = [Mode::Normal, Mode::ReadOnly, Mode::Offline];

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

    /// Reads a stored or streamed mode; an unknown one is `Offline` (fails
    /// closed: a newer control plane's mode stops everything here).
    pub fn parse_or_offline(text: &str) -> Mode {
        Mode::parse(text).unwrap_or(Mode::Offline)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Mode, D::Error> {
        Ok(Mode::parse_or_offline(&String::deserialize(deserializer)?))
    }
}

fn offline() -> Mode {
    Mode::Offline
}

/// What a kill switch applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SwitchScope {
    /// Every agent of every tenant (set by the bootstrap token).
    Global,
    /// Every agent of one tenant.
    Tenant,
    /// One agent.
    Agent,
    /// Every agent of one tenant running one software version.
    AgentVersion,
}

impl SwitchScope {
    /// Every scope.
    pub const ALL: [SwitchScope; 4] = [
        SwitchScope::Global,
        SwitchScope::Tenant,
        SwitchScope::Agent,
        SwitchScope::AgentVersion,
    ];

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<SwitchScope> {
        SwitchScope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchScope::Global => "global",
            SwitchScope::Tenant => "tenant",
            SwitchScope::Agent => "agent",
            SwitchScope::AgentVersion => "agent_version",
        }
    }

    /// Reads a stored or streamed scope; an unknown one is `Global`, which
    /// still only covers the switch's tenant when it has one (fails closed:
    /// it applies to every agent it could mean).
    pub fn parse_or_global(text: &str) -> SwitchScope {
        SwitchScope::parse(text).unwrap_or(SwitchScope::Global)
    }
}

impl fmt::Display for SwitchScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SwitchScope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SwitchScope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SwitchScope, D::Error> {
        Ok(SwitchScope::parse_or_global(&String::deserialize(
            deserializer,
        )?))
    }
}

fn global() -> SwitchScope {
    SwitchScope::Global
}

/// A kill switch: engaged, or released (`Mode::Normal`). Its key is
/// `(scope, tenant, target)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitch {
    /// What it applies to.
    #[serde(default = "global")]
    pub scope: SwitchScope,
    /// Tenant, or empty for instance-wide switches.
    #[serde(default)]
    pub tenant: String,
    /// Agent id, agent version, tenant id (`tenant`) or empty (`global`).
    #[serde(default)]
    pub target: String,
    /// How far it restricts.
    #[serde(default = "offline")]
    pub mode: Mode,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// Who (not on the change feed).
    #[serde(skip)]
    pub set_by: String,
    /// When, RFC 3339 with milliseconds. On the change feed since
    /// devices acknowledge a switch by [`KillSwitch::directive_id`].
    #[serde(default)]
    pub set_at: String,
}

impl KillSwitch {
    fn same_key(&self, other: &KillSwitch) -> bool {
        self.scope == other.scope && self.tenant == other.tenant && self.target == other.target
    }

    /// The id a device acknowledges this switch by: its key and when it
    /// was set, so setting it again (another mode) is a new directive.
    pub fn directive_id(&self) -> String {
        format!(
            "killswitch:{}:{}:{}:{}",
            self.scope.as_str(),
            self.tenant,
            self.target,
            self.set_at
        )
    }

    /// Whether it covers the agent `agent` (of `tenant`, running `agent_version`).
    pub fn applies_to(&self, tenant: &str, agent: &str, agent_version: &str) -> bool {
        (self.tenant.is_empty() || self.tenant == tenant)
            && match self.scope {
                SwitchScope::Global => true,
                SwitchScope::Tenant => self.target == tenant,
                SwitchScope::Agent => self.target == agent,
                SwitchScope::AgentVersion => self.target == agent_version,
            }
    }
}

/// The engaged kill switches.
#[derive(Default)]
pub struct KillSwitches {
    engaged: RwLock<Vec<KillSwitch>>,
}

impl KillSwitches {
    /// Starts from stored switches.
    pub fn new(switches: Vec<KillSwitch>) -> KillSwitches {
        let kills = KillSwitches::default();
        for switch in switches {
            kills.set(switch);
        }
        kills
    }

    /// Records a switch, replacing one with the same key; `normal` releases.
    pub fn set(&self, switch: KillSwitch) {
        let Ok(mut engaged) = self.engaged.write() else {
            return;
        };
        engaged.retain(|k| !k.same_key(&switch));
        if switch.mode != Mode::Normal {
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

    /// Every engaged switch that applies to an agent. Fails closed:
    /// unreadable state is an instance-wide offline switch.
    pub fn applying(&self, tenant: &str, agent: &str, agent_version: &str) -> Vec<KillSwitch> {
        let Ok(engaged) = self.engaged.read() else {
            return vec![KillSwitch {
                scope: SwitchScope::Global,
                tenant: String::new(),
                target: String::new(),
                mode: Mode::Offline,
                reason: "kill switch state unreadable".to_owned(),
                set_by: String::new(),
                set_at: String::new(),
            }];
        };
        engaged
            .iter()
            .filter(|k| k.applies_to(tenant, agent, agent_version))
            .cloned()
            .collect()
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
            .max_by_key(|k| k.mode)
            .map_or((Mode::Normal, None), |k| (k.mode, Some(k.clone())))
    }
}

/// A feature flag value: on or off for one tenant, or for everyone (empty
/// tenant). Its key is `(key, tenant)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// Flag key.
    #[serde(default)]
    pub key: String,
    /// Tenant, or empty for everyone.
    #[serde(default)]
    pub tenant: String,
    /// On or off.
    #[serde(default)]
    pub enabled: bool,
    /// Why (not on the change feed).
    #[serde(skip)]
    pub reason: String,
    /// Who (not on the change feed).
    #[serde(skip)]
    pub set_by: String,
    /// When, RFC 3339 with milliseconds. On the change feed since
    /// devices acknowledge a switch by [`KillSwitch::directive_id`].
    #[serde(default)]
    pub set_at: String,
}

/// Feature flag values. A flag never set is on.
#[derive(Default)]
pub struct Flags {
    values: RwLock<Vec<Flag>>,
}

impl Flags {
    /// Starts from stored values.
    pub fn new(values: Vec<Flag>) -> Flags {
        let flags = Flags::default();
        for flag in values {
            flags.set(flag);
        }
        flags
    }

    /// Records a value, replacing the one with the same key and tenant.
    pub fn set(&self, flag: Flag) {
        let Ok(mut values) = self.values.write() else {
            return;
        };
        values.retain(|f| !(f.key == flag.key && f.tenant == flag.tenant));
        values.push(flag);
    }

    /// The values visible to `tenant` (the ones for everyone too); all of
    /// them for `None`.
    pub fn visible(&self, tenant: Option<&str>) -> Vec<Flag> {
        self.values
            .read()
            .map(|values| {
                values
                    .iter()
                    .filter(|f| tenant.is_none_or(|t| f.tenant.is_empty() || f.tenant == t))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether flag `key` is off for everyone or for `tenant`. Fails
    /// closed: unreadable values count as off.
    pub fn is_off(&self, key: &str, tenant: &str) -> bool {
        let Ok(values) = self.values.read() else {
            return true;
        };
        values
            .iter()
            .any(|f| f.key == key && (f.tenant.is_empty() || f.tenant == tenant) && !f.enabled)
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
            id: "rev_1".into(),
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
            scope: SwitchScope::parse_or_global(scope),
            tenant: tenant.into(),
            target: target.into(),
            mode: Mode::parse_or_offline(mode),
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

    #[test]
    fn a_flag_is_off_where_its_value_for_everyone_or_the_tenant_says_so() {
        let flag = |tenant: &str, enabled: bool| Flag {
            key: "k".into(),
            tenant: tenant.into(),
            enabled,
            reason: String::new(),
            set_by: String::new(),
            set_at: String::new(),
        };
        let flags = Flags::default();
        assert!(!flags.is_off("k", "t1"), "a flag never set is on");
        flags.set(flag("t1", false));
        assert!(flags.is_off("k", "t1"));
        assert!(!flags.is_off("k", "t2"));
        flags.set(flag("t1", true));
        assert!(!flags.is_off("k", "t1"));
        flags.set(flag("", false));
        assert!(flags.is_off("k", "t2"));
        assert_eq!(flags.visible(Some("t2")).len(), 1);
        assert_eq!(flags.visible(None).len(), 2);
    }
}
