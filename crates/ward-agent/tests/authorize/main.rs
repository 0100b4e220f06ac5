//! The local `authorize` decision and the resource canonicalisation under
//! it, against real files, symlinks, hard links and executables in temp
//! directories.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod decisions;
mod exec;
mod files;
mod http;
mod properties;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ward_agent::decide::{Decision, FeatureGrant, Request, Situation, authorize};
use ward_agent::resource::{Protected, canonicalise};
use ward_api::StalenessBounds;
use ward_model::enforcement::Mode;

/// The canonical target of `resource` for `action`, or the refusal.
pub fn target(action: &str, resource: &str, cwd: Option<&str>) -> Result<String, String> {
    canonicalise(action, resource, cwd, None)
        .map(|c| c.target)
        .map_err(|e| e.to_string())
}

/// A temp directory, by its real path.
pub struct Tree {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Tree {
    pub fn create() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        Tree { _dir: dir, root }
    }

    /// `root/relative` as text.
    pub fn at(&self, relative: &str) -> String {
        format!("{}/{relative}", self.root.display())
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub fn dir(&self, relative: &str) -> &Tree {
        std::fs::create_dir_all(self.path(relative)).unwrap();
        self
    }

    pub fn file(&self, relative: &str) -> &Tree {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
        self
    }

    pub fn executable(&self, relative: &str) -> &Tree {
        use std::os::unix::fs::PermissionsExt;
        self.file(relative);
        std::fs::set_permissions(self.path(relative), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        self
    }

    pub fn symlink(&self, relative: &str, to: impl AsRef<Path>) -> &Tree {
        std::os::unix::fs::symlink(to, self.path(relative)).unwrap();
        self
    }
}

/// A feature with a token valid for an hour and `scopes`.
pub fn feature(name: &str, scopes: &[String]) -> FeatureGrant {
    FeatureGrant {
        name: name.to_owned(),
        high_risk: false,
        scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
        token_expires_at_ms: Some(NOW + 3_600_000),
        unavailable: None,
    }
}

pub const NOW: i64 = 1_800_000_000_000;

pub const BOUNDS: StalenessBounds = StalenessBounds {
    heartbeat_interval_secs: 30,
    high_risk_after_secs: 90,
    read_only_after_secs: 300,
    offline_after_secs: 900,
};

/// Normal mode, in contact a second ago.
pub fn normal(flags_off: &HashSet<String>) -> Situation<'_> {
    Situation {
        now_ms: NOW,
        mode: Mode::Normal,
        mode_reason: "",
        quarantined: false,
        last_contact_ms: Some(NOW - 1_000),
        bounds: Some(BOUNDS),
        flags_off,
    }
}

/// Decides `action` on `resource` for any feature, in `cwd`.
pub fn decide(
    action: &str,
    resource: &str,
    protected: &Protected,
    grants: &[FeatureGrant],
    situation: &Situation,
) -> Decision {
    let request = Request {
        feature: None,
        action,
        resource,
        cwd: None,
        search_path: None,
    };
    authorize(&request, protected, grants, situation)
}

/// Asserts a deny whose reason contains `needle`.
#[track_caller]
pub fn assert_denied(decision: &Decision, needle: &str) {
    assert!(!decision.allow, "expected a deny, got {decision:?}");
    assert!(
        decision.reason.contains(needle),
        "reason `{}` does not contain `{needle}`",
        decision.reason
    );
    assert_eq!(decision.scope, None);
}

/// Asserts an allow by `scope`.
#[track_caller]
pub fn assert_allowed(decision: &Decision, scope: &str) {
    assert!(decision.allow, "expected an allow, got {decision:?}");
    assert_eq!(decision.scope.as_deref(), Some(scope), "{decision:?}");
}
