//! Properties: canonical forms are fixed points and never spell an escape.

use proptest::prelude::*;

use crate::{Tree, target};

/// A tree with directories, a file, and symlinks inward, outward, upward
/// and dangling.
fn tree() -> Tree {
    let tree = Tree::create();
    tree.file("a/b/f").dir("c");
    tree.symlink("a/up", "..")
        .symlink("a/to-c", tree.path("c"))
        .symlink("c/back", "../a/b")
        .symlink("c/dangling", "../nowhere/x");
    tree
}

fn component() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a", "b", "c", "f", "up", "to-c", "back", "dangling", "missing", "..", ".", "",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_canonical_file_target_is_a_fixed_point(parts in prop::collection::vec(component(), 0..8)) {
        let tree = tree();
        let input = format!("{}/{}", tree.root.display(), parts.join("/"));
        if let Ok(first) = target("files:read", &input, None) {
            prop_assert!(first.starts_with('/'));
            for bad in ["/../", "/./", "//"] {
                prop_assert!(!first.contains(bad), "{} contains {}", first, bad);
            }
            prop_assert!(!first.ends_with("/..") && !first.ends_with("/.") && (first == "/" || !first.ends_with('/')));
            prop_assert_eq!(target("files:read", &first, None), Ok(first.clone()));
        }
    }

    #[test]
    fn a_canonical_url_is_a_fixed_point_without_user_info(
        scheme in prop::sample::select(vec!["http", "HTTPS", "https", "HtTp"]),
        user in prop::sample::select(vec!["", "u@", "u:p@", "@"]),
        host in prop::sample::select(vec!["api.example.com", "API.Example.COM", "bücher.example", "10.0.0.1"]),
        port in prop::sample::select(vec!["", ":80", ":443", ":8080"]),
        segments in prop::collection::vec(prop::sample::select(vec!["a", "B", ".", "..", "%7e", "%2e", "%2E%2e", "%41", "%c3%a9", "%2F", "*", ",", "~", "x%20y", ""]), 0..6),
        query in prop::sample::select(vec!["", "?q=1", "?a=%7e&b=%2f", "?"]),
        fragment in prop::sample::select(vec!["", "#f", "#%41"]),
    ) {
        let input = format!("{scheme}://{user}{host}{port}/{}{query}{fragment}", segments.join("/"));
        match target("http:get", &input, None) {
            Ok(first) => {
                prop_assert!(user.is_empty(), "{} kept user info", input);
                prop_assert!(!first.contains('@'));
                prop_assert!(!first.contains('#'));
                prop_assert_eq!(target("http:get", &first, None), Ok(first.clone()));
            }
            Err(reason) => prop_assert!(reason.contains('`'), "{}", reason),
        }
    }
}
