//! The change feed (`GET /v1/watch`): one event per change an enforcement
//! point must follow, and [`Enforcement`], the state that follows them. The
//! control plane appends events in the transaction that makes the change;
//! gateways (and desktop runtimes) apply them in order.
//!
//! On the wire an event is two fields: its kind (the server-sent event's
//! name, the serde tag) and its data (a JSON object, the serde content).
//! A follower skips kinds it does not know: they describe changes it does
//! not enforce (a newer control plane's), and refusing them would stop
//! every follower older than the control plane.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::enforcement::{Flag, Flags, KillSwitch, KillSwitches, RevocationRule, Revocations};
use crate::lifecycle::AgentState;

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// Tokens matching a rule were revoked.
    Revocation(RevocationRule),
    /// A kill switch was engaged, changed or released (`normal`).
    Killswitch(KillSwitch),
    /// A feature flag was set.
    Flag(Flag),
    /// The token signing key was rotated: fetch the JWKS again.
    KeyRotation(KeyRotation),
    /// An agent moved through its lifecycle.
    AgentState(AgentStateChange),
}

/// A signing key rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    /// The new key.
    #[serde(default)]
    pub kid: String,
    /// The key it replaces.
    #[serde(default)]
    pub previous_kid: String,
    /// Until when the previous key stays published, unix milliseconds.
    #[serde(default)]
    pub previous_published_until_ms: i64,
}

/// An agent's state change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStateChange {
    /// The agent.
    pub agent_id: String,
    /// Its tenant.
    pub tenant: String,
    /// The state it left.
    pub from: AgentState,
    /// The state it is in.
    pub to: AgentState,
    /// When it changed (the agent's `updated_at`), RFC 3339 with milliseconds.
    #[serde(default)]
    pub at: String,
}

impl AgentStateChange {
    /// The id a device acknowledges this change by, for the states that
    /// are directives to the device (quarantine, uninstall, release from
    /// quarantine); `None` for the others.
    pub fn directive_id(&self) -> Option<String> {
        directive_for_state(&self.agent_id, self.to, &self.at)
    }
}

/// The directive id of an agent being in `state` since `at`, for the
/// states a device must act on; the heartbeat answer and the change feed
/// give the same id for the same change.
pub fn directive_for_state(agent_id: &str, state: AgentState, at: &str) -> Option<String> {
    let kind = match state {
        AgentState::Quarantined => "quarantine",
        AgentState::Uninstalled => "uninstall",
        AgentState::Revoked => "revoke",
        AgentState::Active => "activate",
        AgentState::PendingApproval => return None,
    };
    Some(format!("{kind}:{agent_id}:{at}"))
}

/// An event that cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[error("change feed event `{kind}`: {reason}")]
pub struct FeedError {
    /// The event's kind.
    pub kind: String,
    /// What is wrong.
    pub reason: String,
}

impl Event {
    /// Every kind, as on the wire.
    pub const KINDS: [&'static str; 5] = [
        "revocation",
        "killswitch",
        "flag",
        "key_rotation",
        "agent_state",
    ];

    /// The tenant whose followers see the event; empty for everyone's.
    pub fn tenant(&self) -> &str {
        match self {
            Event::Revocation(rule) => &rule.tenant,
            Event::Killswitch(switch) => &switch.tenant,
            Event::Flag(flag) => &flag.tenant,
            Event::KeyRotation(_) => "",
            Event::AgentState(change) => &change.tenant,
        }
    }

    /// The wire form: the kind and the data as JSON text.
    pub fn encode(&self) -> Result<(String, String), FeedError> {
        let fail = |reason: String| FeedError {
            kind: String::new(),
            reason,
        };
        let tagged = serde_json::to_value(self).map_err(|e| fail(e.to_string()))?;
        match tagged {
            Value::Object(mut fields) => match (fields.remove("kind"), fields.remove("data")) {
                (Some(Value::String(kind)), Some(data)) => Ok((kind, data.to_string())),
                _ => Err(fail("not a tagged object".into())),
            },
            _ => Err(fail("not a tagged object".into())),
        }
    }

    /// Reads the wire form; `Ok(None)` for a kind this version does not
    /// know (skip it).
    pub fn decode(kind: &str, data: &str) -> Result<Option<Event>, FeedError> {
        if !Event::KINDS.contains(&kind) {
            return Ok(None);
        }
        let fail = |e: serde_json::Error| FeedError {
            kind: kind.to_owned(),
            reason: e.to_string(),
        };
        let data: Value = serde_json::from_str(data).map_err(fail)?;
        let tagged = serde_json::json!({ "kind": kind, "data": data });
        serde_json::from_value(tagged).map(Some).map_err(fail)
    }
}

/// The enforcement state a follower of the feed keeps: revocation rules,
/// kill switches and flags, the same types the control plane decides with.
#[derive(Default)]
pub struct Enforcement {
    /// Token revocation rules.
    pub revocations: Revocations,
    /// Engaged kill switches.
    pub kills: KillSwitches,
    /// Feature flag values.
    pub flags: Flags,
}

impl Enforcement {
    /// Applies one change. Key rotations and agent state changes leave
    /// this state as it is (the follower fetches keys itself).
    pub fn apply(&self, event: Event) {
        match event {
            Event::Revocation(rule) => self.revocations.add(&rule),
            Event::Killswitch(switch) => self.kills.set(switch),
            Event::Flag(flag) => self.flags.set(flag),
            Event::KeyRotation(_) | Event::AgentState(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
    use super::*;
    use crate::enforcement::{Mode, SwitchScope, TokenFacts};

    fn every_kind() -> Vec<Event> {
        vec![
            Event::Revocation(RevocationRule {
                id: "rev_1".into(),
                tenant: "t".into(),
                kind: "agent".into(),
                value: "a".into(),
                revoked_at_ms: 5,
            }),
            Event::Killswitch(KillSwitch {
                scope: SwitchScope::Agent,
                tenant: "t".into(),
                target: "a".into(),
                mode: Mode::ReadOnly,
                reason: "x".into(),
                set_by: String::new(),
                set_at: String::new(),
            }),
            Event::Flag(Flag {
                key: "k".into(),
                tenant: String::new(),
                enabled: false,
                reason: String::new(),
                set_by: String::new(),
                set_at: String::new(),
            }),
            Event::KeyRotation(KeyRotation {
                kid: "k2".into(),
                previous_kid: "k1".into(),
                previous_published_until_ms: 9,
            }),
            Event::AgentState(AgentStateChange {
                agent_id: "a".into(),
                tenant: "t".into(),
                from: AgentState::Active,
                to: AgentState::Quarantined,
                at: String::new(),
            }),
        ]
    }

    #[test]
    fn every_kind_round_trips_through_its_wire_form() {
        let events = every_kind();
        assert_eq!(events.len(), Event::KINDS.len());
        for event in events {
            let (kind, data) = event.encode().unwrap();
            assert!(Event::KINDS.contains(&kind.as_str()), "{kind}");
            assert_eq!(Event::decode(&kind, &data).unwrap(), Some(event));
        }
    }

    #[test]
    fn the_data_is_the_shape_gateways_have_always_read() {
        let data =
            |event: &Event| -> Value { serde_json::from_str(&event.encode().unwrap().1).unwrap() };
        let events = every_kind();
        // What gateways have always read, and the field added since for
        // device acknowledgements (an older reader ignores it; data without
        // it, from an older server, still decodes).
        let shapes = [
            (
                serde_json::json!({"id": "rev_1", "tenant": "t", "kind": "agent", "value": "a", "revoked_at_ms": 5}),
                None,
            ),
            (
                serde_json::json!({"scope": "agent", "tenant": "t", "target": "a", "mode": "read-only", "reason": "x"}),
                Some("set_at"),
            ),
            (
                serde_json::json!({"key": "k", "tenant": "", "enabled": false}),
                Some("set_at"),
            ),
            (
                serde_json::json!({"kid": "k2", "previous_kid": "k1", "previous_published_until_ms": 9}),
                None,
            ),
            (
                serde_json::json!({"agent_id": "a", "tenant": "t", "from": "active", "to": "quarantined"}),
                Some("at"),
            ),
        ];
        assert_eq!(shapes.len(), events.len());
        for (event, (legacy, added)) in events.iter().zip(shapes) {
            let mut expected = legacy.clone();
            if let Some(field) = added {
                expected[field] = Value::String(String::new());
            }
            assert_eq!(data(event), expected);
            let (kind, _) = event.encode().unwrap();
            assert_eq!(
                Event::decode(&kind, &legacy.to_string()).unwrap().as_ref(),
                Some(event)
            );
        }
    }

    #[test]
    fn unknown_kinds_are_skipped_and_missing_fields_restrict_most() {
        assert!(Event::decode("rollout", "{}").unwrap().is_none());
        assert!(Event::decode("flag", "not json").is_err());
        let state = Enforcement::default();
        for (kind, data) in [
            ("revocation", r#"{"kind":"agent","value":"a"}"#),
            (
                "killswitch",
                r#"{"scope":"fleet","tenant":"t","mode":"sideways"}"#,
            ),
            ("flag", r#"{"key":"k"}"#),
        ] {
            state.apply(Event::decode(kind, data).unwrap().unwrap());
        }
        let scopes = vec!["files:read:/x".to_owned()];
        let facts = TokenFacts {
            tenant: "t",
            jti: "j",
            agent: "a",
            scopes: &scopes,
            iat: 4_000_000_000,
        };
        assert!(
            state.revocations.check(&facts).is_some(),
            "no time: any time"
        );
        assert_eq!(state.kills.mode_for("t", "b", "1").0, Mode::Offline);
        assert_eq!(state.kills.mode_for("u", "b", "1").0, Mode::Normal);
        assert!(state.flags.is_off("k", "t"));
    }
}
