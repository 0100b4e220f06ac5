//! `AgentEvent::fit` makes any free text the runtime writes acceptable to
//! `AgentEvent::problem`, the rule the server refuses events by, and
//! leaves acceptable text as it was.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use proptest::prelude::*;
use ward_api::{
    AgentEvent, EVENT_ACTION_MAX_BYTES, EVENT_REASON_MAX_BYTES, EVENT_TARGET_MAX_BYTES,
    EVENT_USER_MAX_BYTES,
};

fn event(action: &str, user: &str, target: &str, reason: Option<&str>) -> AgentEvent {
    AgentEvent {
        seq: 1,
        ts: "2026-12-02T10:00:00.000Z".into(),
        correlation_id: "corr_1".into(),
        agent_id: "agt_a".into(),
        user_id: user.into(),
        device_id: "jkt".into(),
        class: "audit".into(),
        feature: None,
        action: action.into(),
        target: target.into(),
        result: "deny".into(),
        reason: reason.map(str::to_owned),
        duration_ms: None,
        sampling: 1.0,
    }
}

proptest! {
    #[test]
    fn fitted_text_is_always_accepted(
        action in "\\PC{1,200}|[\\x00-\\x1f]{1,20}",
        user in "\\PC{1,300}",
        target in any::<String>(),
        reason in proptest::option::of(any::<String>()),
        long in 0usize..5000,
    ) {
        let target = format!("{target}{}", "é".repeat(long));
        let mut e = event(&action, &user, &target, reason.as_deref());
        e.fit();
        prop_assert_eq!(e.problem(), None);
        prop_assert!(e.target.len() <= EVENT_TARGET_MAX_BYTES);
        prop_assert!(e.action.len() <= EVENT_ACTION_MAX_BYTES);
        prop_assert!(e.user_id.len() <= EVENT_USER_MAX_BYTES);
        prop_assert!(e.reason.as_ref().is_none_or(|r| r.len() <= EVENT_REASON_MAX_BYTES));
    }

    #[test]
    fn acceptable_text_is_left_alone(target in "[^\\x00]{0,500}", action in "[a-z:]{1,100}") {
        let mut e = event(&action, "alice@example.com", &target, Some("why"));
        let before = e.clone();
        e.fit();
        prop_assert_eq!(e, before);
    }
}

#[test]
fn nul_is_shown_and_a_cut_is_marked() {
    let mut e = event(
        "files:\u{7}read",
        "alice",
        "/a\0.png",
        Some(&"r".repeat(2000)),
    );
    e.fit();
    assert_eq!(e.action, "files: read");
    assert_eq!(e.target, "/a\\0.png");
    let reason = e.reason.unwrap();
    assert!(reason.ends_with('…') && reason.len() <= EVENT_REASON_MAX_BYTES);
}

#[test]
fn each_rule_names_its_field() {
    let field = |change: fn(&mut AgentEvent)| {
        let mut e = event("files:read", "alice", "/a", None);
        change(&mut e);
        e.problem().map(|p| p.field)
    };
    assert_eq!(field(|_| {}), None);
    assert_eq!(field(|e| e.seq = 0), Some("seq"));
    assert_eq!(field(|e| e.ts = "now".into()), Some("ts"));
    assert_eq!(field(|e| e.user_id = String::new()), Some("user_id"));
    assert_eq!(field(|e| e.result = "Deny".into()), Some("result"));
    assert_eq!(field(|e| e.feature = Some("a b".into())), Some("feature"));
    assert_eq!(field(|e| e.target = "a\0".into()), Some("target"));
}
