//! The process tree of an agent run by `ward agent exec`: the supervisor
//! is its subreaper, so every process the agent starts stays a descendant
//! (a double fork included) and can be frozen (`SIGSTOP`) when the agent
//! is quarantined or the daemon is lost, and resumed (`SIGCONT`) when the
//! quarantine is lifted. Read from `/proc`.

use rustix::process::{Pid, Signal};

/// A process's id, parent's id and state letter (`R`, `S`, `T`, `Z`, …)
/// from the text of `/proc/PID/stat`. The command name may hold spaces
/// and parentheses: the fields after it start after the last `)`.
pub fn parse_stat(text: &str) -> Option<(u32, u32, char)> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((pid, ppid, state))
}

/// Every live descendant of `root`, with its state.
pub fn descendants(root: u32) -> Vec<(u32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let processes: Vec<(u32, u32, char)> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|text| parse_stat(&text))
        .collect();
    let mut found = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for &(pid, ppid, state) in &processes {
            if ppid == parent && state != 'Z' && !found.iter().any(|&(p, _)| p == pid) {
                found.push((pid, state));
                parents.push(pid);
            }
        }
    }
    found
}

/// Signals `pid` if it is still a descendant of `root`: the process is
/// pinned by a pidfd first and its parentage read again, so a pid reused
/// by an unrelated process since the tree was read is never signalled.
fn signal_descendant(root: u32, pid: u32, signal: Signal) {
    let Some(raw) = Pid::from_raw(pid as i32) else {
        return;
    };
    let Ok(pinned) = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    if !descends_from(pid, root) {
        return;
    }
    let _ = rustix::process::pidfd_send_signal(&pinned, signal);
}

/// Whether `pid`'s chain of parents, read now, reaches `root`.
fn descends_from(pid: u32, root: u32) -> bool {
    let mut at = pid;
    // A chain of parents ends at init; the bound only stops a loop that a
    // racing read could make.
    for _ in 0..1 << 16 {
        let Some((_, parent, _)) = std::fs::read_to_string(format!("/proc/{at}/stat"))
            .ok()
            .and_then(|text| parse_stat(&text))
        else {
            return false;
        };
        if parent == root {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        at = parent;
    }
    false
}

/// Sends `signal` to every descendant of `root`, again until a pass
/// finds none it has not signalled (a process forking meanwhile is
/// caught on the next pass); how many were signalled.
pub fn signal_tree(root: u32, signal: Signal) -> usize {
    let mut signalled: Vec<u32> = Vec::new();
    for _ in 0..16 {
        let fresh: Vec<u32> = descendants(root)
            .into_iter()
            .map(|(pid, _)| pid)
            .filter(|pid| !signalled.contains(pid))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            signal_descendant(root, pid, signal);
            signalled.push(pid);
        }
    }
    signalled.len()
}

#[cfg(test)]
mod tests {
    use super::parse_stat;

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        assert_eq!(
            parse_stat("4242 (sh) S 4241 4242 4242 0 -1 4194304"),
            Some((4242, 4241, 'S'))
        );
        assert_eq!(
            parse_stat("77 (a) b) (c) T 12 77 77 0"),
            Some((77, 12, 'T'))
        );
        assert_eq!(parse_stat("77 (no end S 12"), None);
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("x (sh) S 1"), None);
    }
}
