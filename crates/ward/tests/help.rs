//! The help describes the commands there are (issue 9: `ward --help` still
//! described the first release): every command is listed with a
//! description, and every command's own `--help` works.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use common::*;
use std::process::Command;

/// `ward <path> --help`, which must succeed.
fn help(path: &[&str]) -> String {
    let out = Command::new(ward_bin())
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`ward {} --help` failed: {}",
        path.join(" "),
        stderr(&out)
    );
    stdout(&out)
}

/// The `Commands:` section of a help text: (name, description) pairs.
fn commands(help: &str) -> Vec<(String, String)> {
    help.lines()
        .skip_while(|line| line.trim_end() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .map(|line| {
            let line = line.trim();
            let (name, description) = line.split_once(' ').unwrap_or((line, ""));
            (name.to_owned(), description.trim().to_owned())
        })
        .collect()
}

/// Checks every command under `path`, depth first; returns their paths.
fn walk(path: &[&str], seen: &mut Vec<String>) {
    let text = help(path);
    for (name, description) in commands(&text) {
        if name == "help" {
            continue;
        }
        let mut child: Vec<&str> = path.to_vec();
        child.push(&name);
        assert!(
            !description.is_empty(),
            "`ward {}` has no description in `ward {} --help`:\n{text}",
            child.join(" "),
            path.join(" ")
        );
        seen.push(child.join(" "));
        walk(&child, seen);
    }
}

#[test]
fn the_help_lists_every_command_with_a_description() {
    let top: Vec<String> = commands(&help(&[]))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let expected = [
        "serve",
        "admin",
        "agent",
        "audit",
        "alerts",
        "baselines",
        "events",
        "login",
        "policy",
        "gateway",
        "hook",
        "mcp",
        "openapi",
        "matrix",
        "help",
    ];
    assert_eq!(top, expected, "the commands `ward --help` lists");
    let mut seen = Vec::new();
    walk(&[], &mut seen);
    for nested in [
        "admin agents quarantine",
        "admin killswitch set",
        "admin flags set",
        "agent enroll",
        "agent token",
        "agent run",
        "hook claude-code",
        "hook install",
        "mcp proxy",
        "agent exec",
        "audit verify",
        "events list",
        "alerts silence",
        "alerts export",
        "baselines show",
        "policy push",
        "gateway check",
        "matrix check",
    ] {
        assert!(
            seen.iter().any(|path| path == nested),
            "`ward {nested}` is missing from the help: {seen:?}"
        );
    }
}

#[test]
fn the_help_does_not_describe_an_older_command_set() {
    let text = help(&[]);
    let about = text.lines().next().unwrap_or_default();
    assert!(
        !about.contains('|'),
        "the summary must not list commands by hand: {about}"
    );
}
