//! `ward agent exec`: an agent process confined by the kernel (Linux
//! Landlock) to what its tokens grant, so that a compromised agent cannot
//! reach past its scopes even with its hooks bypassed.
//!
//! [`confinement`] (pure) turns the token scopes into Landlock's terms:
//! Landlock grants whole directory trees and TCP ports, so a `files` scope
//! becomes the tree under its pattern's literal prefix (`/home/a/work/**`
//! and `/home/a/work/*.md` both become `/home/a/work`; the daemon and the
//! hooks still judge the exact pattern), a read-style action read access,
//! any other action read and write; an `http` scope becomes the port of
//! its URL. Read-only mode drops every write. [`enforce`] applies it to
//! the calling thread and its future children, with no new privileges and
//! scoped (no signal to a process outside the sandbox, such as the
//! supervisor that freezes it; no abstract socket made outside it), and
//! says how much the kernel enforced.
//!
//! Besides the scopes, the process may read what programs need to start
//! ([`SYSTEM_READ`]) and write `/dev/null` and the terminal.

use landlock::{
    ABI, Access, AccessFs, AccessNet, NetPort, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, path_beneath_rules,
};
use std::path::PathBuf;

use crate::error::AgentError;

/// The newest Landlock ABI Ward asks for (6.12: filesystem, TCP,
/// scoping); older kernels enforce what they know.
const WANTED_ABI: ABI = ABI::V6;

/// Read-only trees every program needs: its binary, its libraries, the
/// system's configuration, devices and `/proc`.
pub const SYSTEM_READ: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/opt", "/dev", "/proc", "/sys",
];

/// Files every program may write.
pub const SYSTEM_WRITE: &[&str] = &["/dev/null", "/dev/tty", "/dev/zero", "/dev/full"];

/// How much of a confinement the kernel enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforced {
    /// All of it.
    Fully,
    /// Part of it (an older Landlock ABI: no TCP rules before 6.7, …).
    Partially,
    /// None: the kernel has no Landlock.
    Not,
}

/// What a confined process may touch.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Confinement {
    /// Trees it may read.
    pub read: Vec<PathBuf>,
    /// Trees it may read and write.
    pub write: Vec<PathBuf>,
    /// TCP ports it may connect to; no other port.
    pub connect_ports: Vec<u16>,
}

/// The confinement for `scopes` (as the broker granted them), read-only
/// when `read_only`.
pub fn confinement(scopes: &[String], read_only: bool) -> Confinement {
    let mut confined = Confinement::default();
    for scope in scopes {
        let mut parts = scope.splitn(3, ':');
        let (Some(resource), Some(action), Some(pattern)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        match resource {
            "files" => {
                let Some(tree) = literal_tree(pattern) else {
                    continue;
                };
                let reads = matches!(action, "read" | "list" | "get");
                let list = if reads || read_only {
                    &mut confined.read
                } else {
                    &mut confined.write
                };
                if !list.contains(&tree) {
                    list.push(tree);
                }
            }
            "http" | "https" => {
                if let Some(port) = url_port(pattern)
                    && !confined.connect_ports.contains(&port)
                {
                    confined.connect_ports.push(port);
                }
            }
            _ => {}
        }
    }
    confined.connect_ports.sort_unstable();
    confined
}

/// The directory tree a path pattern stays within: its part before the
/// first wildcard, cut at the last `/`; the whole pattern without one.
/// `None` for a relative pattern or one whose tree would be `/`.
fn literal_tree(pattern: &str) -> Option<PathBuf> {
    if !pattern.starts_with('/') {
        return None;
    }
    let wild = pattern.find(['*', '?', '[', '{']).unwrap_or(pattern.len());
    let tree = if wild == pattern.len() {
        pattern.trim_end_matches('/')
    } else {
        &pattern[..pattern[..wild].rfind('/').unwrap_or(0)]
    };
    (!tree.is_empty()).then(|| PathBuf::from(tree))
}

/// The TCP port of a URL pattern (`https://host/…` 443, `http://…` 80,
/// or the explicit one).
fn url_port(pattern: &str) -> Option<u16> {
    let (scheme, rest) = pattern.split_once("://")?;
    let authority = rest.split('/').next()?;
    if let Some((_, port)) = authority.rsplit_once(':') {
        return port.parse().ok();
    }
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

impl Confinement {
    /// Takes `protected` (Ward's state directory) out of every granted
    /// tree. Landlock only grants, so a tree holding it is replaced by its
    /// entries along the way down, each but the one leading to
    /// `protected`: what exists now is granted, entries created later in
    /// those directories are not (fail closed).
    pub fn without(mut self, protected: &std::path::Path) -> Confinement {
        self.read = carve(self.read, protected);
        self.write = carve(self.write, protected);
        self
    }
}

/// `trees` with `protected` cut out of each that holds it.
fn carve(trees: Vec<PathBuf>, protected: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for tree in trees {
        if protected.starts_with(&tree) {
            let mut at = tree;
            for component in protected
                .strip_prefix(&at)
                .map(|rest| rest.components().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                let next = at.join(component);
                if let Ok(entries) = std::fs::read_dir(&at) {
                    out.extend(entries.flatten().map(|e| e.path()).filter(|p| *p != next));
                }
                at = next;
            }
        } else if !tree.starts_with(protected) {
            out.push(tree);
        }
    }
    out
}

/// Confines the calling thread (and whatever it executes) to `confined`;
/// how much of it the kernel enforces.
pub fn enforce(confined: &Confinement) -> Result<Enforced, AgentError> {
    let landlock = |e: landlock::RulesetError| AgentError::Invalid(format!("landlock: {e}"));
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(WANTED_ABI))
        .map_err(landlock)?
        .handle_access(AccessNet::ConnectTcp)
        .map_err(landlock)?
        // No signal to a process outside the sandbox (its supervisor, which
        // freezes it), no abstract socket made outside it.
        .scope(Scope::from_all(WANTED_ABI))
        .map_err(landlock)?
        .create()
        .map_err(landlock)?
        .no_new_privs(true)
        .add_rules(path_beneath_rules(
            SYSTEM_READ,
            AccessFs::from_read(WANTED_ABI),
        ))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(
            &confined.read,
            AccessFs::from_read(WANTED_ABI),
        ))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(
            &confined.write,
            AccessFs::from_all(WANTED_ABI),
        ))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(
            SYSTEM_WRITE,
            AccessFs::from_all(WANTED_ABI),
        ))
        .map_err(landlock)?;
    for port in &confined.connect_ports {
        ruleset = ruleset
            .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
            .map_err(landlock)?;
    }
    let status = ruleset.restrict_self().map_err(landlock)?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Fully,
        RulesetStatus::PartiallyEnforced => Enforced::Partially,
        RulesetStatus::NotEnforced => Enforced::Not,
    })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "a test fails by panicking"
    )]

    use super::*;

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn scopes_become_trees_and_ports() {
        let confined = confinement(
            &scopes(&[
                "files:read:/home/a/**",
                "files:list:/home/a/**",
                "files:write:/home/a/work/**",
                "files:write:/home/a/notes/*.md",
                "files:delete:/srv/x/file.txt",
                "files:read:relative/**",
                "files:read:/**",
                "http:get:https://api.example.com/v1/**",
                "http:post:http://localhost:8080/x",
                "http:get:https://other.example.com/**",
                "exec:run:/usr/bin/ls",
                "mcp:call:github/create_issue",
            ]),
            false,
        );
        assert_eq!(confined.read, [PathBuf::from("/home/a")]);
        assert_eq!(
            confined.write,
            [
                PathBuf::from("/home/a/work"),
                PathBuf::from("/home/a/notes"),
                PathBuf::from("/srv/x/file.txt")
            ]
        );
        assert_eq!(confined.connect_ports, [443, 8080]);
    }

    #[test]
    fn the_protected_directory_is_cut_out_of_a_tree_that_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["state/spool", "work/src", "notes"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("readme.txt"), "x").unwrap();
        let confined = Confinement {
            read: vec![root.to_owned(), PathBuf::from("/elsewhere")],
            write: vec![root.join("state/spool")],
            connect_ports: Vec::new(),
        }
        .without(&root.join("state"));
        let mut read = confined.read.clone();
        read.sort();
        assert_eq!(
            read,
            [
                PathBuf::from("/elsewhere"),
                root.join("notes"),
                root.join("readme.txt"),
                root.join("work"),
            ]
        );
        assert!(confined.write.is_empty(), "{:?}", confined.write);
    }

    #[test]
    fn read_only_mode_writes_nothing() {
        let confined = confinement(&scopes(&["files:write:/w/**", "files:read:/r/**"]), true);
        assert!(confined.write.is_empty());
        assert_eq!(confined.read, [PathBuf::from("/w"), PathBuf::from("/r")]);
    }
}
