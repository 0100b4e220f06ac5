//! Scopes (`resource:action:pattern`): parsing, normalisation, and the
//! containment test that decides whether a granted scope covers a requested one.
//!
//! A pattern is a `/`-separated list of segments. Within a segment `*`
//! matches zero or more characters other than `/`; a segment that is exactly
//! `**` matches zero or more whole segments. Patterns are normalised when
//! parsed, for grants and requests alike, so that a request cannot escape a
//! grant through `..`, encoded separators or doubled slashes: such input is
//! either rewritten to one canonical form or rejected.
//!
//! Internally a pattern is compared as a list of segments whose first element
//! may be a root marker (`/`, for absolute paths) or a URL authority
//! (`https://host`). Both contain `/`, which a `*` never matches, so only a
//! literal equal prefix or a `**` segment can match them.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted resource or action name, in bytes.
const MAX_NAME_LEN: usize = 64;
/// Longest accepted pattern, in bytes.
const MAX_PATTERN_LEN: usize = 1024;
/// Longest piece of user input echoed back in an error message, in bytes.
const MAX_ECHO_LEN: usize = 200;

/// A validated, normalised `resource:action:pattern` scope.
///
/// Equality, ordering and hashing use the canonical string form.
#[derive(Clone, Debug)]
pub struct Scope {
    resource: String,
    action: String,
    pattern: String,
    // INVARIANT: `segments` is `split_segments(&pattern)`; it is kept only to
    // avoid re-splitting on every comparison.
    segments: Vec<String>,
}

/// Why a scope string was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope `{scope}`: {reason}")]
pub struct ScopeError {
    /// The offending input (control characters escaped, long input shortened).
    pub scope: String,
    /// What is wrong with it and how to fix it.
    pub reason: String,
}

impl Scope {
    /// Returns the resource, e.g. `files`, or `*` for a wildcard grant.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Returns the action, e.g. `read`, or `*` for a wildcard grant.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// Returns the normalised pattern, e.g. `/projects/**`.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Reports whether the action only reads (`read`, `list` or `get`).
    ///
    /// A wildcard action is not read-only.
    pub fn is_read(&self) -> bool {
        matches!(self.action.as_str(), "read" | "list" | "get")
    }

    /// Reports whether every concrete target matched by `requested` is also
    /// matched by `self`.
    ///
    /// A `*` resource or action in `self` covers any value; a `*` in
    /// `requested` is covered only by `*`. The `*` and `**` of `requested`
    /// stand for any text, so only `self`'s own `*` and `**` can cover them.
    /// Exact (sound and complete) and polynomial: no backtracking, so
    /// patterns at the 1024-byte limit full of stars take well under a
    /// millisecond.
    pub fn covers(&self, requested: &Scope) -> bool {
        name_covers(&self.resource, &requested.resource)
            && name_covers(&self.action, &requested.action)
            && segments_cover(&self.segments, &requested.segments)
    }

    /// Reports whether this scope matches a concrete request.
    ///
    /// `target` is normalised like any pattern first; a target, resource or
    /// action that does not parse never matches. A `*` in a target is treated
    /// as a wildcard, which can only make matching stricter.
    pub fn matches(&self, resource: &str, action: &str, target: &str) -> bool {
        if !is_valid_name(resource) || !is_valid_name(action) {
            return false;
        }
        match normalise_pattern(target) {
            Ok(pattern) => {
                name_covers(&self.resource, resource)
                    && name_covers(&self.action, action)
                    && segments_cover(&self.segments, &split_segments(&pattern))
            }
            Err(_) => false,
        }
    }

    /// The scope in plain words, for a person deciding whether to allow
    /// it: `files:read:/projects/**` is "read files under `/projects/`".
    pub fn describe(&self) -> String {
        let verb = if self.action == "*" {
            "do anything with"
        } else {
            self.action.as_str()
        };
        let what = match self.resource.as_str() {
            "files" => "files",
            "exec" if self.action == "run" => {
                return format!("run the program {}", where_(&self.pattern));
            }
            "http" if self.action == "call" => {
                return format!("call the web address {}", where_(&self.pattern));
            }
            "*" => "any resource",
            other => other,
        };
        format!("{verb} {what} {}", where_(&self.pattern))
    }

    /// The canonical key used for equality, ordering and hashing.
    fn key(&self) -> (&str, &str, &str) {
        (&self.resource, &self.action, &self.pattern)
    }
}

/// A pattern in plain words: "under `/p/`" for `/p/**`, "matching `x`"
/// for other wildcards, "`x`" for one target.
fn where_(pattern: &str) -> String {
    if pattern == "**" || pattern == "/**" {
        return "anywhere".to_owned();
    }
    if let Some(prefix) = pattern.strip_suffix("**")
        && !prefix.contains('*')
    {
        return format!("under `{prefix}`");
    }
    if pattern.contains('*') {
        format!("matching `{pattern}`")
    } else {
        format!("`{pattern}`")
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason: String| ScopeError {
            scope: echo(text),
            reason,
        };
        let mut parts = text.splitn(3, ':');
        let (Some(resource), Some(action), Some(pattern)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(error(
                "expected `resource:action:pattern`, e.g. `files:read:/projects/**`".to_owned(),
            ));
        };
        check_name("resource", resource).map_err(error)?;
        check_name("action", action).map_err(error)?;
        let pattern = normalise_pattern(pattern).map_err(error)?;
        let segments = split_segments(&pattern);
        Ok(Scope {
            resource: resource.to_owned(),
            action: action.to_owned(),
            pattern,
            segments,
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.resource, self.action, self.pattern)
    }
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Scope {}

impl Hash for Scope {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for Scope {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scope {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// Writes a canonical path in the scope pattern language, so that scope
/// matching reads every character of a file name literally: `*`,
/// whitespace, `,`, `"`, `?`, `[` and `{` are percent-encoded; a name with
/// `%` and two hex digits, a `\\`, a control character, or made only of
/// dots is refused (no scope could name it without ambiguity), the error
/// saying which. The desktop runtime matches every path through it, and
/// the alert engine reads recorded paths through it too.
pub fn literal_path(path: &str) -> Result<String, String> {
    let mut out = String::with_capacity(path.len() + 8);
    for segment in path.split('/') {
        if !segment.is_empty() && segment.bytes().all(|b| b == b'.') {
            return Err(format!(
                "`{}` has a name made only of dots (`{segment}`), which no scope can name; rename it",
                echo(path)
            ));
        }
    }
    let bytes = path.as_bytes();
    for (index, c) in path.char_indices() {
        match c {
            '%' if bytes.get(index + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(index + 2).is_some_and(u8::is_ascii_hexdigit) =>
            {
                return Err(format!(
                    "`{}` has `{}` in a file name, which a scope would read as a percent-escape; rename it",
                    echo(path),
                    path.get(index..index + 3).unwrap_or("%")
                ));
            }
            '\\' => {
                return Err(format!(
                    "`{}` has `\\` in a file name, which no scope can name; rename it",
                    echo(path)
                ));
            }
            c if c.is_control() => {
                return Err(format!(
                    "`{}` has a control character in a file name; rename it",
                    echo(path)
                ));
            }
            c if c.is_whitespace() || matches!(c, '*' | ',' | '"' | '?' | '[' | '{') => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Shortens `text` (to 200 bytes) and escapes control characters so that
/// an error or a decision can echo what it was given.
pub fn echo(text: &str) -> String {
    let mut out = String::new();
    for (index, c) in text.char_indices() {
        if index >= MAX_ECHO_LEN {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Reports whether `name` is a valid resource or action (`*` included).
fn is_valid_name(name: &str) -> bool {
    check_name("", name).is_ok()
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name == "*" {
        return Ok(());
    }
    if name.is_empty() {
        return Err(format!(
            "the {what} is empty; name one, e.g. `files`, or use `*`"
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the {what} is longer than {MAX_NAME_LEN} characters; shorten it"
        ));
    }
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    let rest_ok =
        bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "{what} `{}` is not valid; start with a lowercase letter and use only lowercase letters, digits, `_` or `-`, or use `*`",
            echo(name)
        ))
    }
}

fn name_covers(granted: &str, requested: &str) -> bool {
    granted == "*" || granted == requested
}

/// Validates and normalises a pattern, returning its canonical text.
fn normalise_pattern(pattern: &str) -> Result<String, String> {
    if pattern.is_empty() {
        return Err("the pattern is empty; use `**` to match everything".to_owned());
    }
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "the pattern is longer than {MAX_PATTERN_LEN} bytes; shorten it or use `*`"
        ));
    }
    if pattern.chars().any(char::is_control) {
        return Err("the pattern contains a control character; remove it".to_owned());
    }
    if pattern.contains('\\') {
        return Err("`\\` is not allowed; use `/` to separate segments".to_owned());
    }
    check_percent_escapes(pattern)?;

    let url = split_url_scheme(pattern);
    if url.is_some() {
        if pattern.contains('?') {
            return Err("the url has a query (`?`); remove it".to_owned());
        }
        if pattern.contains('#') {
            return Err("the url has a fragment (`#`); remove it".to_owned());
        }
    }
    for c in ['?', '[', '{'] {
        if pattern.contains(c) {
            return Err(format!("`{c}` is not supported; use `*`"));
        }
    }
    // Scopes travel in space-separated lists (the `scope` claim, the
    // gateway's `X-Ward-Scopes` header) and comma-joined headers: a
    // separator inside one scope would forge another.
    if pattern.chars().any(char::is_whitespace) {
        return Err("whitespace is not allowed; write a space as `%20`".to_owned());
    }
    for (c, escape) in [(',', "%2C"), ('"', "%22")] {
        if pattern.contains(c) {
            return Err(format!("`{c}` is not allowed; write it as `{escape}`"));
        }
    }

    let (prefix, path) = match url {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            (Some(normalise_authority(scheme, authority)?), path)
        }
        None => (None, pattern),
    };

    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for segment in &segments {
        check_segment(segment)?;
    }
    let joined = upper_case_escapes(&segments.join("/"));
    Ok(match prefix {
        Some(authority) if joined.is_empty() => authority,
        Some(authority) => format!("{authority}/{joined}"),
        None if path.starts_with('/') => format!("/{joined}"),
        // A relative pattern is non-empty and has no empty segments left.
        None => joined,
    })
}

/// Splits `http://` or `https://` (any case) off a pattern.
fn split_url_scheme(pattern: &str) -> Option<(&'static str, &str)> {
    for scheme in ["http", "https"] {
        let prefix_len = scheme.len() + 3;
        let bytes = pattern.as_bytes();
        if bytes.len() >= prefix_len
            && bytes[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
            && &bytes[scheme.len()..prefix_len] == b"://"
            && let Some(rest) = pattern.get(prefix_len..)
        {
            return Some((scheme, rest));
        }
    }
    None
}

/// Normalises a URL authority into the opaque first segment `scheme://host`.
fn normalise_authority(scheme: &str, authority: &str) -> Result<String, String> {
    if authority.is_empty() {
        return Err("the url has no host; add one, e.g. `https://api.example.com/**`".to_owned());
    }
    if authority.contains('@') {
        return Err("the url has user info (`@`); remove it".to_owned());
    }
    if authority.contains("**") {
        return Err("`**` is not allowed in a url host; use `*`".to_owned());
    }
    let authority = authority.to_ascii_lowercase();
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority.as_str(), None),
    };
    if host.is_empty() {
        return Err("the url has no host; add one, e.g. `https://api.example.com/**`".to_owned());
    }
    let default_port = if scheme == "http" { "80" } else { "443" };
    match port {
        None => Ok(format!("{scheme}://{host}")),
        Some(port) if port == default_port => Ok(format!("{scheme}://{host}")),
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit() || b == b'*') => {
            Ok(format!("{scheme}://{host}:{port}"))
        }
        Some(port) => Err(format!(
            "the url port `{}` is not valid; use digits or `*`, e.g. `https://api.example.com:8443`",
            echo(port)
        )),
    }
}

/// Rejects percent-escapes that decode to `.`, `/`, `\`, NUL or `%`.
fn check_percent_escapes(pattern: &str) -> Result<(), String> {
    let bytes = pattern.as_bytes();
    for (index, window) in bytes.windows(3).enumerate() {
        if window[0] != b'%' {
            continue;
        }
        let (Some(high), Some(low)) = (hex_value(window[1]), hex_value(window[2])) else {
            continue;
        };
        let decoded = high * 16 + low;
        let escape = pattern.get(index..index + 3).unwrap_or("%");
        if matches!(decoded, 0x2e | 0x2f | 0x5c | 0x00 | 0x25) {
            return Err(format!(
                "`{escape}` encodes `.`, `/`, `\\`, `%` or NUL, which is ambiguous; use the decoded path"
            ));
        }
        // RFC 3986 §2.3: an escaped unreserved character means the same as
        // the character, so two spellings would name one target.
        if decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'_' | b'~') {
            return Err(format!(
                "`{escape}` encodes the unreserved `{}`; write it unescaped",
                char::from(decoded)
            ));
        }
    }
    Ok(())
}

/// `%2c` and `%2C` are one character (RFC 3986 §6.2.2.1): the canonical
/// form has upper-case hex digits.
fn upper_case_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest
            .get(at..at + 3)
            .filter(|e| e.bytes().skip(1).all(|b| b.is_ascii_hexdigit()));
        match escape {
            Some(escape) => {
                out.push_str(&escape.to_ascii_uppercase());
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn check_segment(segment: &str) -> Result<(), String> {
    if segment.bytes().all(|b| b == b'.') {
        return Err(format!(
            "contains a `{segment}` segment; use the resolved path"
        ));
    }
    if segment != "**" && segment.contains("**") {
        return Err(format!(
            "segment `{}` mixes `**` with other characters; use `*` within a segment or `**` as a whole segment",
            echo(segment)
        ));
    }
    Ok(())
}

/// Splits a normalised pattern into the segments compared by [`Scope::covers`].
fn split_segments(pattern: &str) -> Vec<String> {
    let (first, rest) = if let Some((scheme, after)) = split_url_scheme(pattern) {
        let end = after.find('/').unwrap_or(after.len());
        (
            format!("{scheme}://{}", &after[..end]),
            after[end..].trim_start_matches('/'),
        )
    } else if let Some(rest) = pattern.strip_prefix('/') {
        ("/".to_owned(), rest)
    } else {
        let mut segments: Vec<String> = pattern.split('/').map(str::to_owned).collect();
        segments.retain(|s| !s.is_empty());
        return segments;
    };
    let mut segments = vec![first];
    segments.extend(rest.split('/').filter(|s| !s.is_empty()).map(str::to_owned));
    segments
}

/// A worst-case segment produced by a requested `**`.
///
/// A requested `**` stands for any run of segments. Each of these segments is
/// matched by the fewest granted segments in its class, so if the grant
/// accepts every run of them it accepts every run at all.
#[derive(Clone, Copy)]
enum Fresh {
    /// A plain segment with a character the grant never mentions: only a
    /// granted `*` matches it.
    Plain,
    /// The root marker of an absolute path (first position only).
    Root,
    /// A URL authority with a fresh host (first position only).
    Authority(&'static str),
}

impl Fresh {
    fn matched_by(self, granted: &str) -> bool {
        match self {
            Fresh::Plain => granted == "*",
            Fresh::Root => granted == "/",
            Fresh::Authority(prefix) => granted.strip_prefix(prefix) == Some("*"),
        }
    }
}

/// The segments a requested `**` may start with when nothing precedes it.
const FIRST_FRESH: [Fresh; 4] = [
    Fresh::Plain,
    Fresh::Root,
    Fresh::Authority("http://"),
    Fresh::Authority("https://"),
];

/// Reports whether the granted segment list covers the requested one, i.e.
/// every target matched by `requested` is matched by `granted`.
///
/// The grant is run as a chain automaton (a `**` state loops) over the
/// request, tracking the set of grant positions reached. A requested glob
/// advances exactly the granted segments that cover it: substituting a fresh
/// character for its `*`s gives one target segment that all other granted
/// segments reject, so this is the worst case. A requested `**` branches into
/// every number of [`Fresh`] segments; the position sets stop changing after
/// `granted.len() + 1` of them. The request is covered iff every branch ends
/// in a set containing the accepting position.
fn segments_cover(granted: &[String], requested: &[String]) -> bool {
    let start = close(granted, vec![0]);
    // Each branch: the grant positions reached, and whether any target
    // segment has been produced yet (an empty target is not a target).
    let mut frontier: Vec<(Vec<usize>, bool)> = vec![(start, false)];
    for segment in requested {
        let mut next = Vec::new();
        if segment == "**" {
            for (set, produced) in &frontier {
                next.push((set.clone(), *produced));
                let firsts: &[Fresh] = if *produced {
                    &[Fresh::Plain]
                } else {
                    &FIRST_FRESH
                };
                for &first in firsts {
                    let mut current = advance(granted, set, |g| first.matched_by(g));
                    for _ in 0..=granted.len() + 1 {
                        let following = advance(granted, &current, |g| Fresh::Plain.matched_by(g));
                        let stable = following == current;
                        next.push((current, true));
                        if stable {
                            break;
                        }
                        current = following;
                    }
                }
            }
        } else {
            let mut memo: Vec<Option<bool>> = vec![None; granted.len()];
            for (set, _) in &frontier {
                let mut covers = |index: usize, g: &str| {
                    *memo[index].get_or_insert_with(|| segment_covers(g, segment))
                };
                let mut advanced = Vec::new();
                for &index in set {
                    match granted.get(index) {
                        Some(g) if g == "**" => advanced.push(index),
                        Some(g) if covers(index, g) => advanced.push(index + 1),
                        _ => {}
                    }
                }
                next.push((close(granted, advanced), true));
            }
        }
        frontier = minimise(granted, next);
        if frontier.iter().any(|(set, _)| set.is_empty()) {
            return false;
        }
    }
    frontier
        .iter()
        .all(|(set, produced)| !produced || set.contains(&granted.len()))
}

/// Moves every position in `set` over one target segment, given which
/// granted segments match it.
fn advance(granted: &[String], set: &[usize], matches: impl Fn(&str) -> bool) -> Vec<usize> {
    let mut advanced = Vec::with_capacity(set.len());
    for &index in set {
        match granted.get(index) {
            Some(g) if g == "**" => advanced.push(index),
            Some(g) if matches(g) => advanced.push(index + 1),
            _ => {}
        }
    }
    close(granted, advanced)
}

/// Adds the positions reachable by letting a `**` match nothing, then drops
/// positions before the last `**` reached: from that `**` the grant accepts
/// everything they would.
fn close(granted: &[String], mut set: Vec<usize>) -> Vec<usize> {
    let mut index = 0;
    while index < set.len() {
        let position = set[index];
        if granted.get(position).is_some_and(|g| g == "**") {
            set.push(position + 1);
        }
        index += 1;
    }
    set.sort_unstable();
    set.dedup();
    let last_any = set
        .iter()
        .rposition(|&position| granted.get(position).is_some_and(|g| g == "**"));
    if let Some(last_any) = last_any {
        set.drain(..last_any);
    }
    set
}

/// Removes branches that accept whenever another branch does, keeping only
/// the hardest ones (the request is covered iff all branches accept).
fn minimise(granted: &[String], frontier: Vec<(Vec<usize>, bool)>) -> Vec<(Vec<usize>, bool)> {
    let mut kept: Vec<(Vec<usize>, bool)> = Vec::with_capacity(frontier.len());
    for branch in frontier {
        if kept.iter().any(|other| implies(granted, other, &branch)) {
            continue;
        }
        kept.retain(|other| !implies(granted, &branch, other));
        kept.push(branch);
    }
    kept
}

/// Reports whether branch `easier` accepts whenever branch `harder` does:
/// each position of `harder` is in `easier` or precedes a `**` in `easier`,
/// from which the grant accepts everything that position would.
fn implies(granted: &[String], harder: &(Vec<usize>, bool), easier: &(Vec<usize>, bool)) -> bool {
    if harder.1 != easier.1 {
        return false;
    }
    // INVARIANT: sets are closed, so their last `**` is their first element.
    let last_any = easier
        .0
        .first()
        .filter(|&&position| granted.get(position).is_some_and(|g| g == "**"));
    harder.0.iter().all(|position| {
        last_any.is_some_and(|any| position <= any) || easier.0.binary_search(position).is_ok()
    })
}

/// Reports whether a granted segment glob covers a requested segment glob.
///
/// A granted `*` consumes any run of requested characters except `/`
/// (requested `*` included); a granted literal character only matches the
/// same literal character.
fn segment_covers(granted: &str, requested: &str) -> bool {
    let requested = requested.as_bytes();
    // row[j]: granted[..i] covers requested[..j].
    let mut row = vec![false; requested.len() + 1];
    row[0] = true;
    let mut next = vec![false; requested.len() + 1];
    for &g in granted.as_bytes() {
        if g == b'*' {
            next[0] = row[0];
            for j in 1..=requested.len() {
                next[j] = row[j] || (next[j - 1] && requested[j - 1] != b'/');
            }
        } else {
            next[0] = false;
            for j in 1..=requested.len() {
                next[j] = row[j - 1] && requested[j - 1] == g;
            }
        }
        std::mem::swap(&mut row, &mut next);
        if !row.iter().any(|&reachable| reachable) {
            return false;
        }
    }
    row[requested.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_mark_root_and_authority() {
        assert_eq!(split_segments("/"), vec!["/"]);
        assert_eq!(split_segments("/a/b"), vec!["/", "a", "b"]);
        assert_eq!(split_segments("a/b"), vec!["a", "b"]);
        assert_eq!(
            split_segments("https://h.example/v1"),
            vec!["https://h.example", "v1"]
        );
        assert_eq!(
            split_segments("https://h.example"),
            vec!["https://h.example"]
        );
    }

    #[test]
    fn single_star_does_not_match_root_or_authority() -> Result<(), ScopeError> {
        assert!(
            !"files:read:*"
                .parse::<Scope>()?
                .matches("files", "read", "/")
        );
        assert!(
            !"http:call:*"
                .parse::<Scope>()?
                .matches("http", "call", "https://a.example")
        );
        assert!(
            "http:call:**"
                .parse::<Scope>()?
                .matches("http", "call", "https://a.example/x")
        );
        Ok(())
    }

    #[test]
    fn closing_drops_positions_before_the_last_double_star() {
        let granted: Vec<String> = ["a", "**", "b", "**", "c"].map(str::to_owned).into();
        assert_eq!(close(&granted, vec![0, 1]), vec![1, 2]);
        assert_eq!(close(&granted, vec![2, 3]), vec![3, 4]);
    }
}
