//! The local decision behind the daemon's `POST /v1/authorize`: a pure
//! function of the request, Ward's protected paths, the features' grants and
//! the situation (mode, quarantine, last contact, staleness bounds, flags).
//! It knows nothing about sockets, tokens on the wire or the clock (the
//! caller passes `now_ms`); the only I/O is canonicalising the resource.
//!
//! Order (fail closed, every deny says why):
//! 1. the resource is canonicalised ([`crate::resource::canonicalise`]); an
//!    error denies with its reason;
//! 2. Ward's own state ([`Protected`]) is denied, whatever the matrix says;
//! 3. quarantine denies everything;
//! 4. the effective mode ([`effective_mode`]): offline denies everything
//!    (also when the control plane has never been heard from), read-only
//!    denies every action other than `read`, `list` and `get`;
//! 5. the candidate features: the named one (unknown: deny) or all;
//! 6. the first scope of a usable feature that covers the resource allows;
//!    a feature is usable when no flag turns it off, it holds a token that
//!    has not expired, and, if high-risk, the control plane was reached
//!    within `high_risk_after_secs`. A non-read action on a symlink also
//!    needs the link itself covered (unlink and rename act on the link);
//! 7. otherwise deny: the reason of an unusable feature whose scope covered
//!    the resource if there is one, else which features' scopes were tried.

use std::collections::HashSet;

use ward_api::StalenessBounds;
use ward_model::enforcement::Mode;
use ward_model::scope::{Scope, echo};

use crate::resource::{Canonical, Protected, canonicalise};

/// One feature of the agent's profile and the token it holds.
#[derive(Clone, Debug)]
pub struct FeatureGrant {
    /// The feature's name in the matrix.
    pub name: String,
    /// Whether the matrix marks it high-risk (it stops at the shorter
    /// staleness bound).
    pub high_risk: bool,
    /// The scopes its token grants; without a token, the matrix's scopes
    /// for the feature, which only name why a covered action is denied.
    pub scopes: Vec<Scope>,
    /// When its token expires (ms since the epoch); `None`: no token.
    pub token_expires_at_ms: Option<i64>,
    /// Why this feature holds no usable token: refused by the broker,
    /// consent missing, approval pending, ...
    pub unavailable: Option<String>,
}

/// What the daemon knows when it decides.
#[derive(Clone, Copy, Debug)]
pub struct Situation<'a> {
    /// Now, ms since the epoch.
    pub now_ms: i64,
    /// The mode set by kill switches and directives.
    pub mode: Mode,
    /// Why that mode, in plain words.
    pub mode_reason: &'a str,
    /// Whether the agent is quarantined.
    pub quarantined: bool,
    /// Last successful contact with the control plane (ms since the epoch).
    pub last_contact_ms: Option<i64>,
    /// The staleness bounds in force; `None`: never heard from the server,
    /// so everything is denied.
    pub bounds: Option<StalenessBounds>,
    /// Features turned off by a flag named after them.
    pub flags_off: &'a HashSet<String>,
}

/// One question: may `action` be done to `resource`?
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The feature acting; `None`: any feature of the profile.
    pub feature: Option<&'a str>,
    /// `resource:action`, e.g. `files:read`.
    pub action: &'a str,
    /// The path, command, URL or name.
    pub resource: &'a str,
    /// The directory relative paths and commands are resolved from.
    pub cwd: Option<&'a str>,
    /// `PATH` for bare commands; `None`: the daemon's own.
    pub search_path: Option<&'a str>,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the action may be done.
    pub allow: bool,
    /// Why, in plain words.
    pub reason: String,
    /// The scope that allowed it; `None` on deny.
    pub scope: Option<String>,
    /// The feature whose scope allowed it; `None` on deny.
    pub feature: Option<String>,
    /// The canonical target, or the input as given when it could not be
    /// canonicalised.
    pub resource: String,
}

impl Decision {
    fn deny(reason: String, resource: &str) -> Decision {
        Decision {
            allow: false,
            reason,
            scope: None,
            feature: None,
            resource: resource.to_owned(),
        }
    }
}

/// Milliseconds since the last contact; `None` when there never was one.
/// A clock that went backwards counts as no time elapsed.
fn elapsed_ms(situation: &Situation) -> Option<i64> {
    situation
        .last_contact_ms
        .map(|last| situation.now_ms.saturating_sub(last).max(0))
}

fn strictness(mode: Mode) -> usize {
    Mode::ALL
        .iter()
        .position(|m| *m == mode)
        .unwrap_or(Mode::ALL.len())
}

/// The mode in force: the stricter of `situation.mode` and the safe mode
/// the staleness bounds impose since the last contact, with the reason
/// (e.g. "no contact with the control plane for 312 s (bound 300 s):
/// read-only").
pub fn effective_mode(situation: &Situation) -> (Mode, String) {
    let (stale_mode, stale_reason) = match (situation.bounds, elapsed_ms(situation)) {
        (None, _) => (
            Mode::Offline,
            "the control plane has not sent staleness bounds yet (never reached): offline until it is".to_owned(),
        ),
        (Some(_), None) => (
            Mode::Offline,
            "the control plane has never been reached: offline until it is".to_owned(),
        ),
        (Some(bounds), Some(elapsed)) => {
            let stale = |bound: u64, mode: Mode| {
                format!(
                    "no contact with the control plane for {} s (bound {bound} s): {}",
                    elapsed / 1000,
                    mode.as_str()
                )
            };
            if elapsed >= secs_to_ms(bounds.offline_after_secs) {
                (Mode::Offline, stale(bounds.offline_after_secs, Mode::Offline))
            } else if elapsed >= secs_to_ms(bounds.read_only_after_secs) {
                (
                    Mode::ReadOnly,
                    stale(bounds.read_only_after_secs, Mode::ReadOnly),
                )
            } else {
                (Mode::Normal, String::new())
            }
        }
    };
    if strictness(stale_mode) > strictness(situation.mode) {
        (stale_mode, stale_reason)
    } else if situation.mode_reason.is_empty() {
        (situation.mode, situation.mode.as_str().to_owned())
    } else {
        (situation.mode, situation.mode_reason.to_owned())
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)
}

/// Why `grant` cannot be used now, if it cannot.
fn unusable(grant: &FeatureGrant, situation: &Situation) -> Option<String> {
    let name = echo(&grant.name);
    if situation.flags_off.contains(&grant.name) {
        return Some(format!(
            "feature `{name}` is turned off by the flag `{name}`; an admin can turn it back on"
        ));
    }
    if let Some(why) = &grant.unavailable {
        return Some(why.clone());
    }
    match grant.token_expires_at_ms {
        None => {
            return Some(format!(
                "feature `{name}` holds no token yet; wait until the daemon has obtained one"
            ));
        }
        Some(expires) if expires <= situation.now_ms => {
            return Some(format!(
                "the token of feature `{name}` expired {} s ago; the daemon renews it once it reaches the control plane",
                (situation.now_ms - expires) / 1000
            ));
        }
        Some(_) => {}
    }
    if grant.high_risk {
        let bound = situation.bounds.map(|b| b.high_risk_after_secs);
        match (bound, elapsed_ms(situation)) {
            (Some(bound), Some(elapsed)) if elapsed < secs_to_ms(bound) => {}
            (Some(bound), Some(elapsed)) => {
                return Some(format!(
                    "feature `{name}` is high-risk and the control plane has not been reached for {} s (bound {bound} s); it resumes on the next contact",
                    elapsed / 1000
                ));
            }
            _ => {
                return Some(format!(
                    "feature `{name}` is high-risk and the control plane has never been reached"
                ));
            }
        }
    }
    None
}

/// Decides `request` locally: no network call, fail closed, every deny
/// says why.
pub fn authorize(
    request: &Request,
    protected: &Protected,
    grants: &[FeatureGrant],
    situation: &Situation,
) -> Decision {
    let canonical = match canonicalise(
        request.action,
        request.resource,
        request.cwd,
        request.search_path,
    ) {
        Ok(canonical) => canonical,
        Err(e) => return Decision::deny(e.to_string(), request.resource),
    };
    decide(request.feature, &canonical, protected, grants, situation)
}

/// The decision for an already canonical resource (steps 2 to 7).
pub fn decide(
    feature: Option<&str>,
    canonical: &Canonical,
    protected: &Protected,
    grants: &[FeatureGrant],
    situation: &Situation,
) -> Decision {
    let target = canonical.target.as_str();
    if let Some(why) = protected.explain(canonical) {
        return Decision::deny(why, target);
    }
    if situation.quarantined {
        return Decision::deny(
            "this agent is quarantined: everything is denied until an admin lifts the quarantine"
                .to_owned(),
            target,
        );
    }
    let (mode, mode_reason) = effective_mode(situation);
    match mode {
        Mode::Offline => {
            return Decision::deny(
                format!("offline ({mode_reason}): everything is denied"),
                target,
            );
        }
        Mode::ReadOnly if !canonical.is_read() => {
            return Decision::deny(
                format!(
                    "read-only ({mode_reason}): only read, list and get are allowed, not `{}:{}`",
                    canonical.resource, canonical.action
                ),
                target,
            );
        }
        Mode::ReadOnly | Mode::Normal => {}
    }

    let candidates: Vec<&FeatureGrant> = match feature {
        Some(name) => match grants.iter().find(|g| g.name == name) {
            Some(grant) => vec![grant],
            None => {
                return Decision::deny(
                    format!(
                        "feature `{}` is not in this agent's profile; use one of its features or none",
                        echo(name)
                    ),
                    target,
                );
            }
        },
        None => grants.iter().collect(),
    };
    if candidates.is_empty() {
        return Decision::deny(
            "this agent's profile has no features, so nothing is granted".to_owned(),
            target,
        );
    }

    let usable: Vec<Option<String>> = candidates
        .iter()
        .map(|grant| unusable(grant, situation))
        .collect();
    let needs_link = !canonical.is_read() && canonical.link().is_some();
    let link_covered = !needs_link
        || candidates
            .iter()
            .zip(&usable)
            .filter(|(_, why)| why.is_none())
            .any(|(grant, _)| grant.scopes.iter().any(|s| canonical.link_covered_by(s)));
    let mut blocked: Option<String> = None;
    for (grant, why_unusable) in candidates.iter().zip(&usable) {
        for scope in &grant.scopes {
            if !canonical.covered_by(scope) {
                continue;
            }
            match why_unusable {
                None if link_covered => {
                    return Decision {
                        allow: true,
                        reason: format!(
                            "allowed by scope `{scope}` of feature `{}`",
                            echo(&grant.name)
                        ),
                        scope: Some(scope.to_string()),
                        feature: Some(grant.name.clone()),
                        resource: canonical.target.clone(),
                    };
                }
                None => {
                    blocked.get_or_insert_with(|| {
                        format!(
                            "`{}` is a symbolic link to `{}`; `{}:{}` acts on the link itself, which no usable scope covers",
                            echo(canonical.link().unwrap_or_default()),
                            echo(target),
                            canonical.resource,
                            canonical.action
                        )
                    });
                }
                Some(why) => {
                    blocked.get_or_insert_with(|| why.clone());
                }
            }
        }
    }
    let reason = blocked.unwrap_or_else(|| {
        let names: Vec<String> = candidates.iter().map(|g| echo(&g.name)).collect();
        format!(
            "no scope of feature{} {} covers {}:{} on `{}`",
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            canonical.resource,
            canonical.action,
            echo(target)
        )
    });
    Decision::deny(reason, target)
}
