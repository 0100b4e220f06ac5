//! Every branch of the decision: quarantine, modes, staleness, features.

use std::collections::HashSet;

use ward_agent::decide::{Decision, FeatureGrant, Request, Situation, authorize, effective_mode};
use ward_agent::resource::Protected;
use ward_model::enforcement::Mode;

use crate::{BOUNDS, NOW, Tree, assert_allowed, assert_denied, feature, normal};

/// A file tree with `work/f`, and features `reader` (read) and `deploy`
/// (write, high-risk).
struct Setup {
    tree: Tree,
    grants: Vec<FeatureGrant>,
}

impl Setup {
    fn new() -> Setup {
        let tree = Tree::create();
        tree.file("work/f");
        let work = tree.at("work");
        let mut deploy = feature("deploy", &[format!("files:write:{work}/**")]);
        deploy.high_risk = true;
        let grants = vec![
            feature("reader", &[format!("files:read:{work}/**")]),
            deploy,
        ];
        Setup { tree, grants }
    }

    fn ask(&self, feature: Option<&str>, action: &str, situation: &Situation) -> Decision {
        let file = self.tree.at("work/f");
        let request = Request {
            feature,
            action,
            resource: &file,
            cwd: None,
            search_path: None,
        };
        authorize(&request, &Protected::new(&[]), &self.grants, situation)
    }

    fn read(&self, situation: &Situation) -> Decision {
        self.ask(None, "files:read", situation)
    }

    fn write(&self, situation: &Situation) -> Decision {
        self.ask(None, "files:write", situation)
    }
}

/// In contact `elapsed_ms` ago.
fn since(flags: &HashSet<String>, elapsed_ms: i64) -> Situation<'_> {
    Situation {
        last_contact_ms: Some(NOW - elapsed_ms),
        ..normal(flags)
    }
}

#[test]
fn in_normal_mode_each_feature_grants_its_own_scopes() {
    let setup = Setup::new();
    let flags = HashSet::new();
    assert_allowed(
        &setup.read(&normal(&flags)),
        &format!("files:read:{}/**", setup.tree.at("work")),
    );
    let write = setup.write(&normal(&flags));
    assert_allowed(&write, &format!("files:write:{}/**", setup.tree.at("work")));
    assert_eq!(write.feature.as_deref(), Some("deploy"));
    assert!(
        write.reason.contains("feature `deploy`"),
        "{}",
        write.reason
    );
}

#[test]
fn quarantine_denies_everything() {
    let setup = Setup::new();
    let flags = HashSet::new();
    let situation = Situation {
        quarantined: true,
        ..normal(&flags)
    };
    assert_denied(&setup.read(&situation), "quarantined");
}

#[test]
fn offline_denies_everything() {
    let setup = Setup::new();
    let flags = HashSet::new();
    let situation = Situation {
        mode: Mode::Offline,
        mode_reason: "kill switch `ks-1`: offline",
        ..normal(&flags)
    };
    assert_denied(&setup.read(&situation), "kill switch `ks-1`: offline");
}

#[test]
fn a_read_only_kill_switch_lets_only_reads_pass() {
    let setup = Setup::new();
    let flags = HashSet::new();
    let situation = Situation {
        mode: Mode::ReadOnly,
        mode_reason: "kill switch `ks-2`: read-only",
        ..normal(&flags)
    };
    assert!(setup.read(&situation).allow);
    assert_denied(
        &setup.write(&situation),
        "read-only (kill switch `ks-2`: read-only): only read, list and get are allowed, not `files:write`",
    );
}

#[test]
fn never_heard_from_the_server_denies_everything() {
    let setup = Setup::new();
    let flags = HashSet::new();
    let no_bounds = Situation {
        bounds: None,
        ..normal(&flags)
    };
    assert_denied(&setup.read(&no_bounds), "offline");
    let no_contact = Situation {
        last_contact_ms: None,
        ..normal(&flags)
    };
    assert_denied(&setup.read(&no_contact), "never been reached");
}

#[test]
fn staleness_bounds_apply_at_exactly_the_bound_not_a_millisecond_before() {
    let setup = Setup::new();
    let flags = HashSet::new();
    let read_only = BOUNDS.read_only_after_secs as i64 * 1000;
    let offline = BOUNDS.offline_after_secs as i64 * 1000;
    let high_risk = BOUNDS.high_risk_after_secs as i64 * 1000;

    assert_eq!(
        effective_mode(&since(&flags, read_only - 1)).0,
        Mode::Normal
    );
    let (mode, reason) = effective_mode(&since(&flags, read_only));
    assert_eq!(mode, Mode::ReadOnly);
    assert_eq!(
        reason,
        "no contact with the control plane for 300 s (bound 300 s): read-only"
    );
    assert_eq!(
        effective_mode(&since(&flags, offline - 1)).0,
        Mode::ReadOnly
    );
    assert_eq!(
        effective_mode(&since(&flags, offline)),
        (
            Mode::Offline,
            "no contact with the control plane for 900 s (bound 900 s): offline".to_owned()
        )
    );

    assert!(setup.read(&since(&flags, read_only)).allow);
    assert_denied(
        &setup.ask(Some("reader"), "files:write", &since(&flags, read_only)),
        "bound 300 s",
    );
    assert_denied(&setup.read(&since(&flags, offline)), "bound 900 s");

    // The high-risk feature stops at its own shorter bound.
    assert!(setup.write(&since(&flags, high_risk - 1)).allow);
    assert_denied(
        &setup.write(&since(&flags, high_risk)),
        "feature `deploy` is high-risk and the control plane has not been reached for 90 s (bound 90 s)",
    );
    assert!(setup.read(&since(&flags, high_risk)).allow);
}

#[test]
fn the_stricter_of_the_switch_and_the_staleness_wins() {
    let flags = HashSet::new();
    let switch = Situation {
        mode: Mode::ReadOnly,
        mode_reason: "kill switch",
        ..since(&flags, 1_000)
    };
    assert_eq!(
        effective_mode(&switch),
        (Mode::ReadOnly, "kill switch".to_owned())
    );
    let stale = Situation {
        mode: Mode::ReadOnly,
        mode_reason: "kill switch",
        ..since(&flags, 1_000_000)
    };
    assert_eq!(effective_mode(&stale).0, Mode::Offline);
    // A clock that went backwards is not a reason to relax or to panic.
    assert_eq!(effective_mode(&since(&flags, -5_000)).0, Mode::Normal);
}

#[test]
fn a_feature_turned_off_by_its_flag_is_unusable() {
    let setup = Setup::new();
    let flags: HashSet<String> = ["deploy".to_owned()].into();
    assert_denied(
        &setup.write(&normal(&flags)),
        "feature `deploy` is turned off by the flag `deploy`",
    );
    assert!(setup.read(&normal(&flags)).allow);
}

#[test]
fn an_expired_or_missing_token_makes_a_feature_unusable() {
    let mut setup = Setup::new();
    let flags = HashSet::new();
    setup.grants[1].token_expires_at_ms = Some(NOW);
    assert_denied(
        &setup.write(&normal(&flags)),
        "the token of feature `deploy` expired 0 s ago",
    );
    setup.grants[1].token_expires_at_ms = None;
    assert_denied(
        &setup.write(&normal(&flags)),
        "feature `deploy` holds no token",
    );
    setup.grants[1].token_expires_at_ms = Some(NOW + 1);
    assert!(setup.write(&normal(&flags)).allow);
}

#[test]
fn why_a_covering_feature_is_unavailable_is_the_reason() {
    let mut setup = Setup::new();
    let flags = HashSet::new();
    setup.grants[1].unavailable =
        Some("feature `deploy` needs the owner's consent; run `ward agent consent`".to_owned());
    let decision = setup.write(&normal(&flags));
    assert_denied(
        &decision,
        "needs the owner's consent; run `ward agent consent`",
    );
    assert_eq!(decision.feature, None);
}

#[test]
fn an_unknown_feature_is_denied() {
    let setup = Setup::new();
    let flags = HashSet::new();
    assert_denied(
        &setup.ask(Some("nope"), "files:read", &normal(&flags)),
        "feature `nope` is not in this agent's profile",
    );
}

#[test]
fn a_named_feature_is_the_only_candidate() {
    let setup = Setup::new();
    let flags = HashSet::new();
    let decision = setup.ask(Some("reader"), "files:write", &normal(&flags));
    assert_denied(
        &decision,
        &format!(
            "no scope of feature reader covers files:write on `{}`",
            setup.tree.at("work/f")
        ),
    );
    assert!(
        setup
            .ask(Some("deploy"), "files:write", &normal(&flags))
            .allow
    );
    let all = setup.ask(None, "files:delete", &normal(&flags));
    assert_denied(
        &all,
        "no scope of features reader, deploy covers files:delete",
    );
}

#[test]
fn an_empty_profile_grants_nothing() {
    let tree = Tree::create();
    let flags = HashSet::new();
    let file = tree.at("x");
    let request = Request {
        feature: None,
        action: "files:read",
        resource: &file,
        cwd: None,
        search_path: None,
    };
    assert_denied(
        &authorize(&request, &Protected::new(&[]), &[], &normal(&flags)),
        "no features",
    );
}

#[test]
fn a_malformed_action_or_resource_is_denied_with_the_input_echoed() {
    let setup = Setup::new();
    let flags = HashSet::new();
    for (action, resource, needle) in [
        ("files", "/x", "is not `resource:action`"),
        ("Files:read", "/x", "not valid"),
        ("files:*", "/x", "not valid"),
        ("files:read", "", "empty"),
        ("mcp:call", "tool\u{7}", "control character"),
        ("mcp:call", "a b", "whitespace"),
    ] {
        let request = Request {
            feature: None,
            action,
            resource,
            cwd: None,
            search_path: None,
        };
        let decision = authorize(
            &request,
            &Protected::new(&[]),
            &setup.grants,
            &normal(&flags),
        );
        assert_denied(&decision, needle);
        assert_eq!(decision.resource, resource);
    }
}

#[test]
fn another_resource_is_matched_by_its_name() {
    let flags = HashSet::new();
    let grants = vec![feature("tools", &["mcp:call:github/*".to_owned()])];
    let ask = |name: &str| {
        let request = Request {
            feature: None,
            action: "mcp:call",
            resource: name,
            cwd: None,
            search_path: None,
        };
        authorize(&request, &Protected::new(&[]), &grants, &normal(&flags))
    };
    assert_allowed(&ask("github/create_issue"), "mcp:call:github/*");
    assert_denied(&ask("gitlab/create_issue"), "no scope");
}
