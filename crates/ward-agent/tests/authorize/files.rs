//! Files: judged by the real path the kernel would act on.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use ward_agent::resource::Protected;

use crate::{Tree, assert_allowed, assert_denied, decide, feature, normal, target};

/// `granted/` (read and write granted), `outside/`, `state/` (Ward's own).
fn tree() -> Tree {
    let tree = Tree::create();
    tree.file("granted/a.txt")
        .file("outside/secret.txt")
        .file("state/device.key")
        .dir("granted/sub");
    tree
}

fn grants(tree: &Tree) -> Vec<ward_agent::decide::FeatureGrant> {
    let granted = tree.at("granted");
    vec![feature(
        "editor",
        &[
            format!("files:read:{granted}/**"),
            format!("files:write:{granted}/**"),
            format!("files:delete:{granted}/**"),
        ],
    )]
}

fn protected(tree: &Tree) -> Protected {
    Protected::new(&[tree.path("state")])
}

#[test]
fn a_file_inside_the_grant_is_allowed_and_one_outside_denied() {
    let tree = tree();
    let flags = HashSet::new();
    let inside = decide(
        "files:read",
        &tree.at("granted/a.txt"),
        &protected(&tree),
        &grants(&tree),
        &normal(&flags),
    );
    assert_allowed(&inside, &format!("files:read:{}/**", tree.at("granted")));
    assert!(
        inside.reason.contains("feature `editor`"),
        "{}",
        inside.reason
    );
    assert_eq!(inside.resource, tree.at("granted/a.txt"));

    let outside = decide(
        "files:read",
        &tree.at("outside/secret.txt"),
        &protected(&tree),
        &grants(&tree),
        &normal(&flags),
    );
    assert_denied(
        &outside,
        &format!(
            "no scope of feature editor covers files:read on `{}`",
            tree.at("outside/secret.txt")
        ),
    );
}

#[test]
fn dot_dot_double_slash_and_dot_are_resolved_before_matching() {
    let tree = tree();
    let flags = HashSet::new();
    let escape = decide(
        "files:read",
        &tree.at("granted/../outside/secret.txt"),
        &protected(&tree),
        &grants(&tree),
        &normal(&flags),
    );
    assert_denied(&escape, "no scope");
    assert_eq!(escape.resource, tree.at("outside/secret.txt"));

    let spelled = format!("{}//granted/./sub/../a.txt", tree.root.display());
    assert_eq!(
        target("files:read", &spelled, None).unwrap(),
        tree.at("granted/a.txt")
    );
    assert_eq!(
        target("files:read", &tree.at("granted/sub/."), None).unwrap(),
        tree.at("granted/sub")
    );
    assert_eq!(
        target("files:read", &tree.at("granted/sub/"), None).unwrap(),
        tree.at("granted/sub")
    );
    assert_eq!(
        target("files:write", &tree.at("granted/new/."), None).unwrap(),
        tree.at("granted/new")
    );
    // Like the kernel: a file is not a directory.
    let not_dir = target("files:read", &tree.at("granted/a.txt/"), None).unwrap_err();
    assert!(not_dir.contains("Not a directory"), "{not_dir}");
    let allowed = decide(
        "files:read",
        &spelled,
        &protected(&tree),
        &grants(&tree),
        &normal(&flags),
    );
    assert!(allowed.allow, "{allowed:?}");
}

#[test]
fn a_symlink_is_judged_by_its_target() {
    let tree = tree();
    tree.symlink("granted/out", tree.path("outside/secret.txt"))
        .symlink("outside/in", tree.path("granted/a.txt"));
    let flags = HashSet::new();
    let (protected, grants) = (protected(&tree), grants(&tree));

    let out = decide(
        "files:read",
        &tree.at("granted/out"),
        &protected,
        &grants,
        &normal(&flags),
    );
    assert_denied(&out, "no scope");
    assert_eq!(out.resource, tree.at("outside/secret.txt"));

    let inward = decide(
        "files:read",
        &tree.at("outside/in"),
        &protected,
        &grants,
        &normal(&flags),
    );
    assert!(inward.allow, "{inward:?}");
    assert_eq!(inward.resource, tree.at("granted/a.txt"));
}

#[test]
fn an_action_that_is_not_a_read_on_a_symlink_also_needs_the_link_covered() {
    let tree = tree();
    tree.symlink("outside/in", tree.path("granted/a.txt"))
        .symlink("granted/alias", tree.path("granted/a.txt"));
    let flags = HashSet::new();
    let (protected, grants) = (protected(&tree), grants(&tree));
    // Unlinking `outside/in` would remove a file outside the grant.
    let delete = decide(
        "files:delete",
        &tree.at("outside/in"),
        &protected,
        &grants,
        &normal(&flags),
    );
    assert_denied(
        &delete,
        &format!("`{}` is a symbolic link", tree.at("outside/in")),
    );
    let inside = decide(
        "files:delete",
        &tree.at("granted/alias"),
        &protected,
        &grants,
        &normal(&flags),
    );
    assert!(inside.allow, "{inside:?}");
}

#[test]
fn a_dangling_symlink_is_judged_by_where_it_leads() {
    let tree = tree();
    tree.symlink("granted/dangling", tree.path("outside/shadow"))
        .symlink("granted/relative", "../outside/new/file");
    let flags = HashSet::new();
    let decision = decide(
        "files:write",
        &tree.at("granted/dangling"),
        &protected(&tree),
        &grants(&tree),
        &normal(&flags),
    );
    assert_denied(&decision, "no scope");
    assert_eq!(decision.resource, tree.at("outside/shadow"));
    assert_eq!(
        target("files:write", &tree.at("granted/relative"), None).unwrap(),
        tree.at("outside/new/file")
    );
}

#[test]
fn a_path_that_does_not_exist_yet_is_judged_by_its_existing_parent() {
    let tree = tree();
    tree.symlink("granted/to-outside", tree.path("outside"));
    let flags = HashSet::new();
    let new = decide(
        "files:write",
        &tree.at("granted/new/dir/f.txt"),
        &protected(&tree),
        &grants(&tree),
        &normal(&flags),
    );
    assert!(new.allow, "{new:?}");
    assert_eq!(new.resource, tree.at("granted/new/dir/f.txt"));
    let through = decide(
        "files:write",
        &tree.at("granted/to-outside/new.txt"),
        &protected(&tree),
        &grants(&tree),
        &normal(&flags),
    );
    assert_denied(&through, "no scope");
    assert_eq!(through.resource, tree.at("outside/new.txt"));
}

#[test]
fn dot_dot_after_a_component_that_does_not_exist_is_refused() {
    let tree = tree();
    let error = target("files:write", &tree.at("granted/missing/../a.txt"), None).unwrap_err();
    assert!(error.contains("`..` after"), "{error}");
    assert!(error.contains("does not exist"), "{error}");
}

#[test]
fn nul_bytes_and_relative_paths_without_cwd_are_refused() {
    let tree = tree();
    let nul = target(
        "files:read",
        &format!("{}\0/etc/passwd", tree.at("granted")),
        None,
    )
    .unwrap_err();
    assert!(nul.contains("NUL byte"), "{nul}");
    let relative = target("files:read", "granted/a.txt", None).unwrap_err();
    assert!(relative.contains("relative path and no cwd"), "{relative}");
    let bad_cwd = target("files:read", "a.txt", Some("granted")).unwrap_err();
    assert!(bad_cwd.contains("not an absolute path"), "{bad_cwd}");
    let root = tree.root.to_str().unwrap();
    assert_eq!(
        target("files:read", "granted/a.txt", Some(root)).unwrap(),
        tree.at("granted/a.txt")
    );
    assert_eq!(
        target(
            "files:read",
            "../outside/secret.txt",
            Some(&tree.at("granted"))
        )
        .unwrap(),
        tree.at("outside/secret.txt")
    );
}

#[test]
fn a_path_that_is_not_utf8_is_refused_and_says_so() {
    let tree = tree();
    let name = OsStr::from_bytes(b"caf\xe9");
    std::fs::create_dir(tree.path("granted").join(name)).unwrap();
    tree.symlink("granted/latin1", tree.path("granted").join(name));
    let flags = HashSet::new();
    let decision = decide(
        "files:read",
        &tree.at("granted/latin1/x"),
        &protected(&tree),
        &grants(&tree),
        &normal(&flags),
    );
    assert_denied(&decision, "not valid UTF-8");
    assert_eq!(decision.resource, tree.at("granted/latin1/x"));
}

#[test]
fn a_star_in_a_real_file_name_is_literal_text() {
    let tree = tree();
    tree.file("granted/sub/*")
        .file("granted/sub/**")
        .file("granted/sub/public")
        .file("granted/sub/x y");
    let flags = HashSet::new();
    let sub = tree.at("granted/sub");
    let grants = vec![feature(
        "f",
        &[
            format!("files:read:{sub}/public"),
            format!("files:read:{sub}/%2A"),
            format!("files:read:{sub}/x%20y"),
        ],
    )];
    let protected = protected(&tree);
    // Named literally by `%2A`; `**` is not a wildcard over the directory.
    assert_allowed(
        &decide(
            "files:read",
            &format!("{sub}/*"),
            &protected,
            &grants,
            &normal(&flags),
        ),
        &format!("files:read:{sub}/%2A"),
    );
    assert_denied(
        &decide(
            "files:read",
            &format!("{sub}/**"),
            &protected,
            &grants,
            &normal(&flags),
        ),
        "no scope",
    );
    assert_allowed(
        &decide(
            "files:read",
            &format!("{sub}/x y"),
            &protected,
            &grants,
            &normal(&flags),
        ),
        &format!("files:read:{sub}/x%20y"),
    );
    // A grant for `public` does not cover a file named `*`, and vice versa.
    let only_public = vec![feature("f", &[format!("files:read:{sub}/public")])];
    assert_denied(
        &decide(
            "files:read",
            &format!("{sub}/*"),
            &protected,
            &only_public,
            &normal(&flags),
        ),
        "no scope",
    );
    // A granted glob still covers it, as any name.
    let glob = vec![feature("f", &[format!("files:read:{sub}/*")])];
    assert!(
        decide(
            "files:read",
            &format!("{sub}/**"),
            &protected,
            &glob,
            &normal(&flags)
        )
        .allow
    );
}

#[test]
fn percent_escapes_in_a_real_file_name_are_refused() {
    let tree = tree();
    tree.file("granted/a%2Fb")
        .file("granted/%2e%2e")
        .file("granted/100%.txt");
    let flags = HashSet::new();
    for name in ["a%2Fb", "%2e%2e"] {
        let decision = decide(
            "files:read",
            &tree.at(&format!("granted/{name}")),
            &protected(&tree),
            &grants(&tree),
            &normal(&flags),
        );
        assert_denied(&decision, "percent-escape");
    }
    // A `%` that starts no escape is plain text.
    assert!(
        decide(
            "files:read",
            &tree.at("granted/100%.txt"),
            &protected(&tree),
            &grants(&tree),
            &normal(&flags)
        )
        .allow
    );
}

#[test]
fn wards_own_state_is_denied_whatever_the_matrix_says() {
    let tree = tree();
    tree.symlink("granted/key-link", tree.path("state/device.key"))
        .symlink("state/out", tree.path("granted/a.txt"));
    std::fs::hard_link(tree.path("state/device.key"), tree.path("granted/key-copy")).unwrap();
    let flags = HashSet::new();
    let everything = vec![feature(
        "all",
        &["files:*:**".to_owned(), "exec:*:**".to_owned()],
    )];
    let protected = protected(&tree);
    let denied = |action: &str, path: &str, needle: &str| {
        let decision = decide(action, path, &protected, &everything, &normal(&flags));
        assert_denied(&decision, needle);
    };
    denied(
        "files:read",
        &tree.at("state/device.key"),
        "Ward's own state",
    );
    denied(
        "files:write",
        &tree.at("state/new-file"),
        "Ward's own state",
    );
    denied("files:read", &tree.at("state"), "Ward's own state");
    denied(
        "files:read",
        &tree.at("granted/key-link"),
        "Ward's own state",
    );
    denied("files:read", &tree.at("granted/key-copy"), "hard link");
    // Deleting the symlink inside the state directory acts on the state.
    denied("files:delete", &tree.at("state/out"), "Ward's own state");
    // The directory holding the state may be read, not renamed or deleted.
    denied(
        "files:delete",
        &tree.root.display().to_string(),
        "holds Ward's own state",
    );
    assert!(
        decide(
            "files:list",
            &tree.root.display().to_string(),
            &protected,
            &everything,
            &normal(&flags)
        )
        .allow
    );
    assert!(
        decide(
            "files:read",
            &tree.at("granted/a.txt"),
            &protected,
            &everything,
            &normal(&flags)
        )
        .allow
    );
}

#[test]
fn the_protected_paths_are_canonicalised_once() {
    let tree = tree();
    tree.symlink("state-alias", tree.path("state"));
    let protected = Protected::new(&[tree.path("state-alias")]);
    let flags = HashSet::new();
    let everything = vec![feature("all", &["files:*:**".to_owned()])];
    let decision = decide(
        "files:read",
        &tree.at("state/device.key"),
        &protected,
        &everything,
        &normal(&flags),
    );
    assert_denied(&decision, "Ward's own state");
}
