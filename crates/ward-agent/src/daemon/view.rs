//! What the daemon knows about its agent at this moment: the profile's
//! features and the tokens held for them, the kill switches, flags and
//! revocations that apply, the lifecycle state, and when the control plane
//! was last heard from. Heartbeat answers and change-feed events update
//! it; `authorize` and `status` read it. It never touches the network.
//!
//! INVARIANT: tokens live in this structure only (memory), never on disk.

use std::collections::{HashMap, HashSet};
use ward_api::{AgentFeature, Directive, DirectiveAck, HeartbeatResponse, StalenessBounds};
use ward_model::enforcement::{Flags, KillSwitch, KillSwitches, Mode, Revocations, TokenFacts};
use ward_model::feed::{Event, directive_for_state};
use ward_model::lifecycle::AgentState;
use ward_model::scope::Scope;

use crate::decide::{FeatureGrant, Situation};

/// A token held for one feature.
pub struct HeldToken {
    /// The JWT.
    pub token: String,
    /// Its id (`jti`), for revocations by id.
    pub jti: String,
    /// When it was issued, unix seconds.
    pub iat: i64,
    /// When it expires, unix milliseconds.
    pub expires_at_ms: i64,
    /// When to ask for the next one, unix milliseconds (jittered).
    pub refresh_at_ms: i64,
    /// The scopes granted.
    pub scopes: Vec<String>,
}

/// The daemon's view of its agent.
pub struct View {
    /// The agent id.
    pub agent_id: String,
    /// Its tenant.
    pub tenant: String,
    /// The runtime's version (what `agent_version` kill switches match).
    pub version: String,
    /// The owner, as the server last said (`user_id` of events).
    pub owner: String,
    /// The lifecycle state as last heard; `None` before the first answer.
    pub state: Option<AgentState>,
    /// The profile's features as last heard.
    pub features: Vec<AgentFeature>,
    /// Features the server asks consent for again.
    pub reconsent: Vec<String>,
    /// Tokens held, by feature.
    pub tokens: HashMap<String, HeldToken>,
    /// Why a feature holds no token, by feature.
    pub refused: HashMap<String, String>,
    /// Kill switches that apply to this agent.
    pub kills: KillSwitches,
    /// Flags visible to the tenant.
    pub flags: Flags,
    /// Revocation rules heard since start.
    pub revocations: Revocations,
    /// Last successful contact, unix milliseconds.
    pub last_contact_ms: Option<i64>,
    /// The bounds in force; `None` before the first answer.
    pub bounds: Option<StalenessBounds>,
    /// The change feed position to resume from.
    pub feed_seq: i64,
    /// Whether the server told the device to uninstall.
    pub uninstall: Option<String>,
    /// Directive ids already acknowledged.
    acked: HashSet<String>,
    /// Acknowledgements not yet delivered.
    pub unsent_acks: Vec<DirectiveAck>,
}

/// What applying an answer or an event changed, for the caller to act on.
#[derive(Default, Debug)]
pub struct Applied {
    /// Directives that took effect now (to acknowledge and record).
    pub directives: Vec<String>,
    /// Tokens were dropped: fetch new ones.
    pub tokens_dropped: bool,
    /// The profile or consent changed: fetch tokens again.
    pub profile_changed: bool,
}

impl View {
    /// The view of a daemon that has not heard from the server yet.
    pub fn new(agent_id: String, tenant: String, version: String) -> View {
        View {
            agent_id,
            tenant,
            version,
            owner: String::new(),
            state: None,
            features: Vec::new(),
            reconsent: Vec::new(),
            tokens: HashMap::new(),
            refused: HashMap::new(),
            kills: KillSwitches::default(),
            flags: Flags::default(),
            revocations: Revocations::default(),
            last_contact_ms: None,
            bounds: None,
            feed_seq: 0,
            uninstall: None,
            acked: HashSet::new(),
            unsent_acks: Vec::new(),
        }
    }

    /// Applies a heartbeat answer received at `now_ms`: the whole truth at
    /// that moment (kill switches, state, profile, flags, bounds).
    pub fn apply_heartbeat(&mut self, answer: &HeartbeatResponse, now_ms: i64) -> Applied {
        let mut applied = Applied::default();
        self.last_contact_ms = Some(now_ms);
        self.bounds = Some(answer.bounds);
        self.owner.clone_from(&answer.owner);
        self.feed_seq = self.feed_seq.max(answer.feed_seq);
        let state = answer.state.parse::<AgentState>().ok();
        if state != self.state {
            applied.tokens_dropped |= !state.is_some_and(AgentState::may_obtain_tokens);
            self.state = state;
        }
        if answer.features != self.features {
            applied.profile_changed = true;
            self.features.clone_from(&answer.features);
        }
        self.flags = Flags::new(
            answer
                .flags
                .iter()
                .map(ward_model::enforcement::Flag::from)
                .collect(),
        );
        let switches: Vec<KillSwitch> = answer
            .directives
            .iter()
            .filter_map(|d| d.switch.as_ref())
            .map(KillSwitch::from)
            .collect();
        self.kills = KillSwitches::new(switches);
        self.reconsent = answer
            .directives
            .iter()
            .filter(|d| d.kind == "reconsent")
            .flat_map(|d| d.features.iter().cloned())
            .collect();
        for directive in &answer.directives {
            if self.take_effect(directive) {
                applied.directives.push(directive.id.clone());
            }
        }
        if !self.state.is_some_and(AgentState::may_obtain_tokens) {
            applied.tokens_dropped |= !self.tokens.is_empty();
            self.tokens.clear();
        }
        applied
    }

    /// Records what a directive does beyond the state already copied;
    /// returns whether it is new (to acknowledge).
    fn take_effect(&mut self, directive: &Directive) -> bool {
        if directive.kind == "uninstall" {
            self.uninstall = Some(directive.id.clone());
        }
        !self.acked.contains(&directive.id)
    }

    /// Applies a change-feed event received at `now_ms`.
    pub fn apply_event(&mut self, seq: i64, event: Event, now_ms: i64) -> Applied {
        let mut applied = Applied::default();
        self.last_contact_ms = Some(now_ms);
        self.feed_seq = self.feed_seq.max(seq);
        match event {
            Event::Killswitch(switch) => {
                if switch.applies_to(&self.tenant, &self.agent_id, &self.version) {
                    applied.directives.push(switch.directive_id());
                    self.kills.set(switch);
                }
            }
            Event::Flag(flag) => {
                if flag.tenant.is_empty() || flag.tenant == self.tenant {
                    self.flags.set(flag);
                }
            }
            Event::Revocation(rule) => {
                self.revocations.add(&rule);
                let before = self.tokens.len();
                let (tenant, agent) = (self.tenant.clone(), self.agent_id.clone());
                let revocations = &self.revocations;
                self.tokens.retain(|_, held| {
                    revocations
                        .check(&TokenFacts {
                            tenant: &tenant,
                            jti: &held.jti,
                            agent: &agent,
                            scopes: &held.scopes,
                            iat: held.iat,
                        })
                        .is_none()
                });
                applied.tokens_dropped = self.tokens.len() != before;
            }
            Event::AgentState(change) => {
                if change.agent_id == self.agent_id {
                    self.state = Some(change.to);
                    if change.to == AgentState::Uninstalled {
                        self.uninstall =
                            directive_for_state(&change.agent_id, change.to, &change.at);
                    }
                    if let Some(id) = change.directive_id() {
                        applied.directives.push(id);
                    }
                    if !change.to.may_obtain_tokens() {
                        applied.tokens_dropped = !self.tokens.is_empty();
                        self.tokens.clear();
                    } else {
                        applied.profile_changed = true;
                    }
                }
            }
            Event::KeyRotation(_) => {}
        }
        applied
    }

    /// Counts data from the control plane (a keep-alive included) as contact.
    pub fn touch(&mut self, now_ms: i64) {
        self.last_contact_ms = Some(now_ms);
    }

    /// Moves past a feed event that changes nothing here.
    pub fn skip_event(&mut self, seq: i64) {
        self.feed_seq = self.feed_seq.max(seq);
    }

    /// Keeps an acknowledgement to send; `false` if it was acknowledged before.
    pub fn acknowledge(&mut self, directive: String, applied_at: String) -> bool {
        if !self.acked.insert(directive.clone()) {
            return false;
        }
        self.unsent_acks.push(DirectiveAck {
            directive,
            applied_at,
        });
        true
    }

    /// The mode kill switches impose, and why.
    pub fn switch_mode(&self) -> (Mode, String) {
        match self
            .kills
            .mode_for(&self.tenant, &self.agent_id, &self.version)
        {
            (Mode::Normal, _) => (Mode::Normal, String::new()),
            (mode, Some(switch)) => (
                mode,
                format!(
                    "kill switch ({} {}) is {}: {}",
                    switch.scope.as_str(),
                    if switch.target.is_empty() {
                        "everyone"
                    } else {
                        &switch.target
                    },
                    mode.as_str(),
                    switch.reason
                ),
            ),
            (mode, None) => (mode, "kill switch state unreadable".to_owned()),
        }
    }

    /// The mode in force at `now_ms` and why: the stricter of quarantine,
    /// the kill switches and the staleness bounds.
    pub fn mode_now(&self, now_ms: i64) -> (Mode, String) {
        let (mode, reason) = self.switch_mode();
        let flags_off = self.flags_off();
        crate::decide::effective_mode(&self.situation(now_ms, &reason, mode, &flags_off))
    }

    /// Features turned off by a flag named after them.
    pub fn flags_off(&self) -> HashSet<String> {
        self.features
            .iter()
            .filter(|f| self.flags.is_off(&f.name, &self.tenant))
            .map(|f| f.name.clone())
            .collect()
    }

    /// The features as grants for a decision.
    pub fn grants(&self) -> Vec<FeatureGrant> {
        self.features
            .iter()
            .map(|feature| {
                let held = self.tokens.get(&feature.name);
                FeatureGrant {
                    name: feature.name.clone(),
                    high_risk: feature.risk == "high",
                    // Without a token the matrix scopes still say which
                    // feature an action needs, so that the deny names what
                    // is missing (consent, approval, a refusal); they are
                    // never usable while `unavailable` is set.
                    scopes: held
                        .map_or(&feature.scopes, |h| &h.scopes)
                        .iter()
                        .filter_map(|s| s.parse::<Scope>().ok())
                        .collect(),
                    token_expires_at_ms: held.map(|h| h.expires_at_ms),
                    unavailable: if held.is_some() {
                        None
                    } else {
                        Some(self.refused.get(&feature.name).cloned().unwrap_or_else(|| {
                            format!("feature `{}` holds no token yet", feature.name)
                        }))
                    },
                }
            })
            .collect()
    }

    /// The situation a decision is taken in.
    pub fn situation<'a>(
        &self,
        now_ms: i64,
        mode_reason: &'a str,
        mode: Mode,
        flags_off: &'a HashSet<String>,
    ) -> Situation<'a> {
        Situation {
            now_ms,
            mode,
            mode_reason,
            quarantined: self.state == Some(AgentState::Quarantined),
            last_contact_ms: self.last_contact_ms,
            bounds: self.bounds,
            flags_off,
        }
    }
}
