//! Commands: argv[0] resolved to the real path of the executable that runs.

use std::collections::HashSet;

use ward_agent::decide::{Request, authorize};
use ward_agent::resource::{Protected, canonicalise};

use crate::{Tree, assert_allowed, assert_denied, feature, normal};

fn tree() -> Tree {
    let tree = Tree::create();
    tree.executable("bin/tool")
        .file("bin/plain")
        .dir("bin/subdir")
        .executable("other/plain")
        .executable("state/ward-helper");
    tree.symlink("bin/alias", tree.path("bin/tool"));
    tree
}

fn resolve(tree: &Tree, argv0: &str, cwd: Option<&str>, path: &str) -> Result<String, String> {
    let _ = tree;
    canonicalise("exec:run", argv0, cwd, Some(path))
        .map(|c| c.target)
        .map_err(|e| e.to_string())
}

#[test]
fn a_bare_name_is_found_on_the_search_path() {
    let tree = tree();
    let path = format!("{}:{}", tree.at("bin"), tree.at("other"));
    assert_eq!(
        resolve(&tree, "tool", None, &path).unwrap(),
        tree.at("bin/tool")
    );
    // Like execvp: `bin/plain` is not executable, so `other/plain` runs.
    assert_eq!(
        resolve(&tree, "plain", None, &path).unwrap(),
        tree.at("other/plain")
    );
    let missing = resolve(&tree, "nothing-here", None, &path).unwrap_err();
    assert!(missing.contains("not found on `PATH`"), "{missing}");
}

#[test]
fn a_relative_command_is_resolved_against_the_cwd() {
    let tree = tree();
    let bin = tree.at("bin");
    assert_eq!(
        resolve(&tree, "./tool", Some(&bin), "").unwrap(),
        tree.at("bin/tool")
    );
    assert_eq!(
        resolve(&tree, "../bin/tool", Some(&bin), "").unwrap(),
        tree.at("bin/tool")
    );
    let no_cwd = resolve(&tree, "./tool", None, "").unwrap_err();
    assert!(no_cwd.contains("no cwd"), "{no_cwd}");
    let relative_entry = resolve(&tree, "tool", None, "bin").unwrap_err();
    assert!(
        relative_entry.contains("relative entry `bin`"),
        "{relative_entry}"
    );
    assert_eq!(
        resolve(&tree, "tool", Some(tree.root.to_str().unwrap()), "bin").unwrap(),
        tree.at("bin/tool")
    );
}

#[test]
fn a_symlinked_executable_is_judged_by_its_target() {
    let tree = tree();
    assert_eq!(
        resolve(&tree, "alias", None, &tree.at("bin")).unwrap(),
        tree.at("bin/tool")
    );
    let flags = HashSet::new();
    let decide = |scope: String| {
        let request = Request {
            feature: None,
            action: "exec:run",
            resource: "alias",
            cwd: None,
            search_path: Some(&tree.at("bin")),
        };
        authorize(
            &request,
            &Protected::new(&[]),
            &[feature("run", &[scope])],
            &normal(&flags),
        )
    };
    assert_allowed(
        &decide(format!("exec:run:{}", tree.at("bin/tool"))),
        &format!("exec:run:{}", tree.at("bin/tool")),
    );
    assert_denied(
        &decide(format!("exec:run:{}", tree.at("bin/alias"))),
        "no scope",
    );
}

#[test]
fn what_cannot_run_is_refused() {
    let tree = tree();
    let bin = tree.at("bin");
    for (argv0, needle) in [
        ("./plain", "not an executable file"),
        ("./subdir", "is a directory"),
        ("./missing", "does not exist"),
        ("", "empty"),
        ("to\0ol", "NUL byte"),
    ] {
        let error = resolve(&tree, argv0, Some(&bin), &bin).unwrap_err();
        assert!(error.contains(needle), "`{argv0}`: {error}");
    }
}

#[test]
fn an_executable_in_wards_own_state_is_denied() {
    let tree = tree();
    let flags = HashSet::new();
    let request = Request {
        feature: None,
        action: "exec:run",
        resource: "ward-helper",
        cwd: None,
        search_path: Some(&tree.at("state")),
    };
    let decision = authorize(
        &request,
        &Protected::new(&[tree.path("state")]),
        &[feature("all", &["exec:*:**".to_owned()])],
        &normal(&flags),
    );
    assert_denied(&decision, "Ward's own state");
}
