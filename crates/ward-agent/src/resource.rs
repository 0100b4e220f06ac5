//! Resources in the canonical form scopes are matched against, and Ward's
//! own paths, which no action may touch.
//!
//! `canonicalise("files:read", "../x", Some("/home/a/p"), None)` turns what
//! an agent asked for into what the kernel, the loader or an HTTP client
//! would actually act on, so that a scope is judged against the real thing:
//!
//! - `files`: the real path. The longest existing ancestor is resolved by the
//!   kernel (`std::fs::canonicalize`: symlinks, `..`, `//`, `.`); the
//!   components that do not exist yet are appended, and a `..` among them is
//!   refused (the kernel would resolve it against a directory that does not
//!   exist). A dangling symlink is followed to where a write would create its
//!   target. A final component that is a symlink is also remembered as
//!   itself ([`Canonical::link`]), because unlink and rename act on the link,
//!   not on its target. Paths that are not UTF-8 are refused.
//! - `exec`: the real path of the executable that would run: argv[0] with a
//!   `/` is resolved against the cwd, a bare name is looked up in `PATH`
//!   like `execvp` does (the first regular, executable file); symlinks are
//!   resolved, so a grant must name `/usr/bin/python3.11` when `python3` is a
//!   symlink to it.
//! - `http`: the URL normalised by RFC 3986 §6.2.2 (scheme and host lower
//!   case, IDN hosts as punycode, default port dropped, dot segments
//!   removed, percent-escapes of unreserved characters decoded and the others
//!   upper case, empty path `/`, fragment dropped); user info, schemes other
//!   than http and https, and `\` are refused. The query is kept in the
//!   target; scopes cannot name queries, so matching ignores it.
//! - any other resource: the name as given, checked against the scope
//!   grammar.
//!
//! Case: Linux file systems are case-sensitive, so paths compare as they
//! are. On macOS (whose default file systems fold case) the path and every
//! scope pattern are lower-cased before they are compared
//! ([`CASE_INSENSITIVE_PATHS`]); Unicode normalisation (NFD) is not folded.
//!
//! Scope patterns give `*`, `**`, `%XX`, whitespace, `,`, `"`, `?`, `[`,
//! `{` and `\` a meaning or refuse them; a real file name may contain any of
//! them. So a path is turned into the pattern language before matching:
//! `*`, whitespace, `,`, `"`, `?`, `[` and `{` are percent-encoded (a file
//! named `*` is granted by `%2A` or by a glob, never taken for one), and a
//! name containing `%` followed by two hex digits, a `\`, or made only of
//! dots is refused, because no scope could name it without ambiguity.
//!
//! INVARIANT: a [`Canonical`] always holds the requested scope its target
//! parses to; matching never re-reads the input.

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use ward_model::scope::{Scope, echo};

/// Whether paths compare case-insensitively on this operating system.
pub const CASE_INSENSITIVE_PATHS: bool = cfg!(target_os = "macos");

/// Symbolic links followed while resolving one path (Linux's `MAXSYMLINKS`).
const MAX_SYMLINK_HOPS: usize = 40;
/// Files under the protected paths whose identities are remembered.
const MAX_PROTECTED_FILES: usize = 100_000;
/// Longest resource or action name (as in the scope grammar).
const MAX_NAME_LEN: usize = 64;

/// Why a resource could not be put in canonical form.
///
/// The message says why in plain words, names the input in backticks and
/// says what to do; it becomes the deny reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ResourceError {
    reason: String,
}

impl ResourceError {
    fn new(reason: impl Into<String>) -> ResourceError {
        ResourceError {
            reason: reason.into(),
        }
    }

    /// The explanation (the same text as `Display`).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A resource in the canonical form scopes are matched against.
#[derive(Clone, Debug)]
pub struct Canonical {
    /// The resource, e.g. `files`.
    pub resource: String,
    /// The action, e.g. `read`.
    pub action: String,
    /// The canonical path, absolute executable, normalised URL, or the
    /// name as given.
    pub target: String,
    // INVARIANT: `requested` is `resource:action:<target in the pattern
    // language>` (case-folded for paths where the OS folds case).
    requested: Scope,
    /// `(device, inode)` of the file, when it exists (files and exec).
    identity: Option<(u64, u64)>,
    /// The final symlink itself, when the path named one (files only).
    link: Option<Link>,
    /// Whether `target` is a file system path.
    is_path: bool,
}

/// A symlink named as the last component of a path, judged as itself.
#[derive(Clone, Debug)]
struct Link {
    path: String,
    requested: Scope,
}

impl Canonical {
    /// Reports whether the action only reads (`read`, `list` or `get`).
    pub fn is_read(&self) -> bool {
        self.requested.is_read()
    }

    /// Reports whether `scope` covers this resource (the target; not the
    /// link, see [`Canonical::link_covered_by`]).
    pub fn covered_by(&self, scope: &Scope) -> bool {
        covers(scope, &self.requested, self.is_path)
    }

    /// The path of the symlink the request named, when its last component
    /// is one: unlink, rename and similar calls act on it, not its target.
    pub fn link(&self) -> Option<&str> {
        self.link.as_ref().map(|link| link.path.as_str())
    }

    /// Reports whether `scope` covers the symlink itself; `true` when there
    /// is none.
    pub fn link_covered_by(&self, scope: &Scope) -> bool {
        self.link
            .as_ref()
            .is_none_or(|link| covers(scope, &link.requested, true))
    }

    /// The paths an action on this resource can touch: the target and the
    /// link, for path resources.
    fn paths(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.target.as_str()).chain(self.link())
    }
}

fn covers(scope: &Scope, requested: &Scope, is_path: bool) -> bool {
    if is_path && CASE_INSENSITIVE_PATHS {
        fold_scope(scope).is_some_and(|folded| folded.covers(requested))
    } else {
        scope.covers(requested)
    }
}

/// The scope with its pattern lower-cased (percent-escapes keep upper-case
/// hex, since the scope grammar normalises them back).
pub fn fold_scope(scope: &Scope) -> Option<Scope> {
    format!(
        "{}:{}:{}",
        scope.resource(),
        scope.action(),
        scope.pattern().to_lowercase()
    )
    .parse()
    .ok()
}

/// Puts `resource` in canonical form for `action` (`resource:action`, e.g.
/// `files:read`).
///
/// `cwd` resolves relative paths and commands (it must be absolute);
/// `search_path` is the `PATH` bare commands are looked up in (`None`: this
/// process's `PATH`).
pub fn canonicalise(
    action: &str,
    resource: &str,
    cwd: Option<&str>,
    search_path: Option<&str>,
) -> Result<Canonical, ResourceError> {
    let (kind, verb) = split_action(action)?;
    if resource.is_empty() {
        return Err(ResourceError::new(
            "the resource is empty; name a path, command, url or name",
        ));
    }
    if resource.contains('\0') {
        return Err(ResourceError::new(format!(
            "`{}` contains a NUL byte, which no file, command or url can; remove it",
            echo(resource)
        )));
    }
    match kind {
        "files" => {
            let resolved = resolve_file(resource, cwd)?;
            path_canonical(kind, verb, resolved)
        }
        "exec" => {
            let resolved = resolve_command(resource, cwd, search_path)?;
            path_canonical(kind, verb, resolved)
        }
        "http" => url_canonical(kind, verb, resource),
        _ => {
            if resource.chars().any(char::is_control) {
                return Err(ResourceError::new(format!(
                    "`{}` contains a control character; remove it",
                    echo(resource)
                )));
            }
            let requested = requested_scope(kind, verb, resource, resource)?;
            Ok(Canonical {
                resource: kind.to_owned(),
                action: verb.to_owned(),
                target: resource.to_owned(),
                requested,
                identity: None,
                link: None,
                is_path: false,
            })
        }
    }
}

/// Splits `files:read` into its resource and action, both valid names.
fn split_action(action: &str) -> Result<(&str, &str), ResourceError> {
    let Some((kind, verb)) = action.split_once(':') else {
        return Err(ResourceError::new(format!(
            "action `{}` is not `resource:action`; write e.g. `files:read`, `exec:run` or `http:call`",
            echo(action)
        )));
    };
    for (what, name) in [("resource", kind), ("action", verb)] {
        let mut bytes = name.bytes();
        let valid = name.len() <= MAX_NAME_LEN
            && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(ResourceError::new(format!(
                "the {what} of action `{}` is not valid; start with a lowercase letter and use only lowercase letters, digits, `_` or `-`, e.g. `files:read`",
                echo(action)
            )));
        }
    }
    Ok((kind, verb))
}

/// The scope `kind:verb:pattern` a request stands for.
fn requested_scope(
    kind: &str,
    verb: &str,
    pattern: &str,
    target: &str,
) -> Result<Scope, ResourceError> {
    format!("{kind}:{verb}:{pattern}")
        .parse::<Scope>()
        .map_err(|e| {
            ResourceError::new(format!(
                "`{}` cannot be named by any scope: {}",
                echo(target),
                e.reason
            ))
        })
}

/// A path resolved like the kernel would.
#[derive(Debug)]
struct Resolved {
    path: PathBuf,
    identity: Option<(u64, u64)>,
    link: Option<PathBuf>,
}

fn path_canonical(kind: &str, verb: &str, resolved: Resolved) -> Result<Canonical, ResourceError> {
    let target = utf8(&resolved.path)?;
    let requested = requested_scope(kind, verb, &path_pattern(&target)?, &target)?;
    let link = match resolved.link {
        Some(link) => {
            let path = utf8(&link)?;
            let requested = requested_scope(kind, verb, &path_pattern(&path)?, &path)?;
            Some(Link { path, requested })
        }
        None => None,
    };
    Ok(Canonical {
        resource: kind.to_owned(),
        action: verb.to_owned(),
        target,
        requested,
        identity: resolved.identity,
        link,
        is_path: true,
    })
}

fn utf8(path: &Path) -> Result<String, ResourceError> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        ResourceError::new(format!(
            "`{}` is not valid UTF-8, and scopes can only name UTF-8 paths; rename it",
            echo(&path.to_string_lossy())
        ))
    })
}

/// Makes `input` absolute against `cwd`.
fn absolute(input: &str, cwd: Option<&str>) -> Result<PathBuf, ResourceError> {
    let path = Path::new(input);
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    match cwd {
        Some(cwd) if cwd.contains('\0') => Err(ResourceError::new(format!(
            "the cwd `{}` contains a NUL byte; remove it",
            echo(cwd)
        ))),
        Some(cwd) if Path::new(cwd).is_absolute() => Ok(Path::new(cwd).join(path)),
        Some(cwd) => Err(ResourceError::new(format!(
            "the cwd `{}` is not an absolute path; give an absolute cwd",
            echo(cwd)
        ))),
        None => Err(ResourceError::new(format!(
            "`{}` is a relative path and no cwd was given; give an absolute path or the cwd",
            echo(input)
        ))),
    }
}

/// Resolves a file path: the real path, its identity if it exists, and the
/// final symlink if the path named one.
fn resolve_file(input: &str, cwd: Option<&str>) -> Result<Resolved, ResourceError> {
    let path = absolute(input, cwd)?;
    let link = final_symlink(&path)?;
    let (real, identity) = resolve(&path)?;
    Ok(Resolved {
        path: real,
        identity,
        link,
    })
}

/// The symlink named by the last component of `path` (its parent
/// resolved), if it is one.
fn final_symlink(path: &Path) -> Result<Option<PathBuf>, ResourceError> {
    let (Some(parent), Some(Component::Normal(name))) =
        (path.parent(), path.components().next_back())
    else {
        return Ok(None);
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let (parent, _) = resolve(parent)?;
            Ok(Some(parent.join(name)))
        }
        _ => Ok(None),
    }
}

/// Resolves an absolute path like the kernel would for a call that follows
/// symlinks and may create the last components.
fn resolve(path: &Path) -> Result<(PathBuf, Option<(u64, u64)>), ResourceError> {
    let mut path = path.to_owned();
    for _ in 0..=MAX_SYMLINK_HOPS {
        match std::fs::canonicalize(&path) {
            Ok(real) => {
                let identity = std::fs::metadata(&real).ok().map(|m| (m.dev(), m.ino()));
                return Ok((real, identity));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(unresolvable(&path, &e)),
        }
        let components: Vec<Component> = path.components().collect();
        // The root always resolves, so some prefix does.
        let mut split = components.len();
        let base = loop {
            if split == 0 {
                return Err(ResourceError::new(format!(
                    "`{}` cannot be resolved; give an absolute path",
                    echo(&path.to_string_lossy())
                )));
            }
            split -= 1;
            let prefix: PathBuf = components[..split].iter().collect();
            match std::fs::canonicalize(&prefix) {
                Ok(real) => break real,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(unresolvable(&prefix, &e)),
            }
        };
        let Some(Component::Normal(name)) = components.get(split) else {
            return Err(ResourceError::new(format!(
                "`{}` cannot be resolved; check the path",
                echo(&path.to_string_lossy())
            )));
        };
        let rest = &components[split + 1..];
        let candidate = base.join(name);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                // A dangling symlink: judged by where it leads.
                let target =
                    std::fs::read_link(&candidate).map_err(|e| unresolvable(&candidate, &e))?;
                let mut next = base.join(target);
                next.extend(rest);
                path = next;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut out = candidate;
                for component in rest {
                    match component {
                        Component::Normal(name) => out.push(name),
                        Component::CurDir => {}
                        _ => {
                            return Err(ResourceError::new(format!(
                                "`{}` has `..` after `{}`, which does not exist; give the path without `..`",
                                echo(&path.to_string_lossy()),
                                echo(&out.to_string_lossy())
                            )));
                        }
                    }
                }
                return Ok((out, None));
            }
            Ok(_) => {
                return Err(ResourceError::new(format!(
                    "`{}` exists but cannot be resolved; check its permissions",
                    echo(&candidate.to_string_lossy())
                )));
            }
            Err(e) => return Err(unresolvable(&candidate, &e)),
        }
    }
    Err(ResourceError::new(format!(
        "`{}` goes through more than {MAX_SYMLINK_HOPS} symbolic links; resolve the loop",
        echo(&path.to_string_lossy())
    )))
}

fn unresolvable(path: &Path, error: &std::io::Error) -> ResourceError {
    ResourceError::new(format!(
        "`{}` cannot be resolved ({error}); check the path and its permissions",
        echo(&path.to_string_lossy())
    ))
}

/// Writes a canonical path in the scope pattern language
/// (`ward_model::scope::literal_path`), lower-cased where the OS folds case.
fn path_pattern(path: &str) -> Result<String, ResourceError> {
    let out = ward_model::scope::literal_path(path).map_err(ResourceError::new)?;
    if CASE_INSENSITIVE_PATHS {
        return Ok(out.to_lowercase());
    }
    Ok(out)
}

/// Resolves argv[0] to the real path of the executable that would run.
fn resolve_command(
    argv0: &str,
    cwd: Option<&str>,
    search_path: Option<&str>,
) -> Result<Resolved, ResourceError> {
    let found = if argv0.contains('/') {
        absolute(argv0, cwd)?
    } else {
        search(argv0, cwd, search_path)?
    };
    let real = std::fs::canonicalize(&found).map_err(|e| {
        ResourceError::new(format!(
            "command `{}` cannot be run: `{}` {}; give an existing executable",
            echo(argv0),
            echo(&found.to_string_lossy()),
            if e.kind() == std::io::ErrorKind::NotFound {
                "does not exist".to_owned()
            } else {
                format!("cannot be resolved ({e})")
            }
        ))
    })?;
    let meta = std::fs::metadata(&real).map_err(|e| unresolvable(&real, &e))?;
    if meta.is_dir() {
        return Err(ResourceError::new(format!(
            "command `{}` is a directory (`{}`); name an executable file",
            echo(argv0),
            echo(&real.to_string_lossy())
        )));
    }
    if !is_executable(&meta) {
        return Err(ResourceError::new(format!(
            "command `{}` (`{}`) is not an executable file; name an executable or `chmod +x` it",
            echo(argv0),
            echo(&real.to_string_lossy())
        )));
    }
    Ok(Resolved {
        path: real,
        identity: Some((meta.dev(), meta.ino())),
        link: None,
    })
}

fn is_executable(meta: &std::fs::Metadata) -> bool {
    meta.is_file() && meta.permissions().mode() & 0o111 != 0
}

/// Looks a bare command name up in `PATH` like `execvp`: the first regular,
/// executable file. An empty or relative entry is resolved against `cwd`,
/// and refused without one (the shell would use its own directory).
fn search(
    name: &str,
    cwd: Option<&str>,
    search_path: Option<&str>,
) -> Result<PathBuf, ResourceError> {
    let from_env;
    let search_path = match search_path {
        Some(path) => path,
        None => {
            from_env = std::env::var("PATH").map_err(|_| {
                ResourceError::new(format!(
                    "command `{}` is a bare name and there is no UTF-8 `PATH` to look it up in; give its absolute path",
                    echo(name)
                ))
            })?;
            &from_env
        }
    };
    for entry in search_path.split(':') {
        let dir = if entry.is_empty() { "." } else { entry };
        let dir = if Path::new(dir).is_absolute() {
            PathBuf::from(dir)
        } else {
            match cwd {
                Some(cwd) if Path::new(cwd).is_absolute() => Path::new(cwd).join(dir),
                _ => {
                    return Err(ResourceError::new(format!(
                        "`PATH` has the relative entry `{}`, which depends on the working directory; give an absolute cwd or remove the entry",
                        echo(entry)
                    )));
                }
            }
        };
        let candidate = dir.join(name);
        if std::fs::metadata(&candidate).is_ok_and(|meta| is_executable(&meta)) {
            return Ok(candidate);
        }
    }
    Err(ResourceError::new(format!(
        "command `{}` is not found on `PATH` (`{}`); give its absolute path or install it",
        echo(name),
        echo(search_path)
    )))
}

/// Normalises an http(s) URL (RFC 3986 §6.2.2) and its matching form.
fn url_canonical(kind: &str, verb: &str, input: &str) -> Result<Canonical, ResourceError> {
    let refuse = |why: &str| ResourceError::new(format!("url `{}` {why}", echo(input)));
    if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(refuse(
            "contains whitespace or a control character; percent-encode it (e.g. `%20`)",
        ));
    }
    if input.contains('\\') {
        return Err(refuse(
            "contains `\\`, which clients read differently; use `/`",
        ));
    }
    let scheme = input.split_once(':').map(|(s, _)| s).unwrap_or("");
    let scheme_lower = scheme.to_ascii_lowercase();
    if scheme_lower != "http" && scheme_lower != "https" {
        return Err(refuse(&format!(
            "has the scheme `{}`; only `http` and `https` urls can be granted",
            echo(scheme)
        )));
    }
    let after = &input[scheme.len() + 1..];
    let Some(rest) = after.strip_prefix("//").filter(|r| !r.starts_with('/')) else {
        return Err(refuse(
            "does not start with `scheme://host`; write e.g. `https://api.example.com/`",
        ));
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if rest[..authority_end].contains('@') {
        return Err(refuse(
            "has user info (`user@` before the host); remove it and pass credentials another way",
        ));
    }
    let url =
        url::Url::parse(input).map_err(|e| refuse(&format!("is not valid ({e}); check it")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("has user info; remove it"));
    }
    let host = match url.host() {
        Some(url::Host::Domain(domain)) if domain.contains('*') => {
            return Err(refuse("has `*` in its host; name a real host"));
        }
        Some(url::Host::Domain(domain)) => domain.to_owned(),
        Some(url::Host::Ipv4(address)) => address.to_string(),
        Some(url::Host::Ipv6(_)) => {
            return Err(refuse(
                "has an IPv6 host, which scopes cannot name yet; use a host name",
            ));
        }
        None => return Err(refuse("has no host; add one")),
    };
    let mut origin = format!("{}://{host}", url.scheme());
    if let Some(port) = url.port() {
        origin.push_str(&format!(":{port}"));
    }
    let path = normalise_escapes(url.path(), false).map_err(|why| refuse(&why))?;
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    let mut target = format!("{origin}{path}");
    if let Some(query) = url.query() {
        let query = normalise_escapes(query, true).map_err(|why| refuse(&why))?;
        target.push('?');
        target.push_str(&query);
    }
    // `,` is a sub-delimiter in a path; the scope grammar spells it `%2C`.
    let pattern = format!("{origin}{}", path.replace(',', "%2C"));
    let requested = requested_scope(kind, verb, &pattern, &target)?;
    Ok(Canonical {
        resource: kind.to_owned(),
        action: verb.to_owned(),
        target,
        requested,
        identity: None,
        link: None,
        is_path: false,
    })
}

/// RFC 3986 §6.2.2.2 on a path (or, with `query`, a query): escapes of
/// unreserved characters decoded, other escapes in upper case, characters
/// that are not allowed there encoded.
fn normalise_escapes(text: &str, query: bool) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let decoded = match (bytes.get(index + 1), bytes.get(index + 2)) {
                (Some(&high), Some(&low)) => hex(high).zip(hex(low)).map(|(h, l)| h * 16 + l),
                _ => None,
            };
            let Some(decoded) = decoded else {
                return Err(
                    "has a `%` that does not start a percent-escape; write it as `%25`".to_owned(),
                );
            };
            if is_unreserved(decoded) {
                out.push(char::from(decoded));
            } else {
                out.push_str(&format!("%{decoded:02X}"));
            }
            index += 3;
            continue;
        }
        let allowed =
            is_unreserved(byte) || b"!$&'()*+,;=:@/".contains(&byte) || (query && byte == b'?');
        if allowed {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
        index += 1;
    }
    Ok(out)
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn hex(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Ward's own paths (the state directory, its config, the socket): no
/// action on them is ever allowed, whatever the matrix says.
///
/// The paths are canonicalised once; the `(device, inode)` of every file
/// under them at that moment is remembered too, so a hard link elsewhere to
/// e.g. the device key is recognised. Files created under them later are
/// still covered by path, not by identity: build a new `Protected` after
/// creating files that matter. A path that is an ancestor of a protected
/// one (the home directory holding `~/.ward`) may only be read: renaming or
/// deleting it would take Ward's state with it.
#[derive(Clone, Debug, Default)]
pub struct Protected {
    /// Canonical roots (folded on case-insensitive systems).
    roots: Vec<String>,
    identities: HashSet<(u64, u64)>,
}

impl Protected {
    /// Protects `paths` and everything under them.
    pub fn new(paths: &[PathBuf]) -> Protected {
        let mut protected = Protected::default();
        for path in paths {
            let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            let real = resolve(&absolute)
                .map(|(real, _)| real)
                .unwrap_or(absolute.clone());
            for spelling in [&real, &absolute] {
                if let Some(text) = spelling.to_str() {
                    let text = fold(text.trim_end_matches('/'));
                    let text = if text.is_empty() {
                        "/".to_owned()
                    } else {
                        text
                    };
                    if !protected.roots.contains(&text) {
                        protected.roots.push(text);
                    }
                }
            }
            protected.remember(&real);
        }
        protected
    }

    /// Records the identities of `root` and the files under it (without
    /// following symlinks), up to [`MAX_PROTECTED_FILES`].
    fn remember(&mut self, root: &Path) {
        let mut stack = vec![root.to_owned()];
        while let Some(path) = stack.pop() {
            if self.identities.len() >= MAX_PROTECTED_FILES {
                return;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if let Ok(entries) = std::fs::read_dir(&path) {
                    stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
                }
            } else if meta.is_file() {
                self.identities.insert((meta.dev(), meta.ino()));
            }
        }
    }

    /// Reports whether an action on `canonical` would touch Ward's own state.
    pub fn covers(&self, canonical: &Canonical) -> bool {
        self.explain(canonical).is_some()
    }

    /// Why an action on `canonical` would touch Ward's own state, if it
    /// would: the deny reason.
    pub fn explain(&self, canonical: &Canonical) -> Option<String> {
        if canonical
            .identity
            .is_some_and(|identity| self.identities.contains(&identity))
        {
            return Some(format!(
                "`{}` is another name (a hard link) for a file of Ward's own state; no agent may act on it, whatever the matrix says",
                echo(&canonical.target)
            ));
        }
        let paths: Vec<&str> = if canonical.is_path {
            canonical.paths().collect()
        } else if canonical.target.starts_with('/') {
            vec![canonical.target.as_str()]
        } else {
            Vec::new()
        };
        for path in paths {
            let folded = fold(path);
            for root in &self.roots {
                if is_under(&folded, root) {
                    return Some(format!(
                        "`{}` is Ward's own state (under `{root}`); no agent may act on it, whatever the matrix says",
                        echo(path)
                    ));
                }
                if !canonical.is_read() && is_under(root, &folded) {
                    return Some(format!(
                        "`{}` holds Ward's own state (`{root}`); only read, list and get are allowed on it, not `{}`",
                        echo(path),
                        canonical.action
                    ));
                }
            }
        }
        None
    }
}

fn fold(path: &str) -> String {
    if CASE_INSENSITIVE_PATHS {
        path.to_lowercase()
    } else {
        path.to_owned()
    }
}

/// Reports whether `path` is `root` or below it (whole components).
fn is_under(path: &str, root: &str) -> bool {
    root == "/"
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}
