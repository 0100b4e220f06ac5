//! The capability matrix: named features (sets of scopes with a risk level)
//! and profiles (lists of features), loaded from YAML with every error
//! reported at its line and column.
//!
//! Loading runs in three steps. The YAML event stream is turned into a JSON
//! value plus a map from each node's path (`features.run-git.scopes[0]`) to
//! where it starts in the source; anchors, aliases, tags, duplicate keys and
//! multiple documents are rejected there. Serde then checks the shape (unknown
//! keys, wrong types), and its error path is mapped back to a position.
//! Finally every semantic rule is checked and all violations are reported.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Number, Value};
use sha2::{Digest as _, Sha256};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::scope::Scope;

/// The only supported value of `version`.
const VERSION: u64 = 1;
/// Deepest nesting accepted in a matrix document.
const MAX_DEPTH: usize = 32;
/// Longest feature or profile name, in bytes.
const MAX_NAME_LEN: usize = 64;

/// How much damage a feature can do if misused.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Safe to grant without a human in the loop.
    Low,
    /// Needs approval before an agent may use it.
    High,
}

/// A named set of scopes granted together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    /// The feature's name, e.g. `run-git`.
    pub name: String,
    /// What the feature allows, for people reading approvals.
    pub description: String,
    /// How risky granting it is.
    pub risk: Risk,
    /// The scopes it grants; never empty.
    pub scopes: Vec<Scope>,
    /// High-risk only: approval needs two different approvers, not one.
    pub two_person: bool,
    /// Whether the agent's owner must have consented to its scopes.
    pub consent_required: bool,
}

/// A named list of features assigned to an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name, e.g. `developer`.
    pub name: String,
    /// What the profile is for.
    pub description: String,
    /// Names of its features, in the order they are tried; each exists.
    pub features: Vec<String>,
}

/// The granting scope that authorised a request, and its feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant<'a> {
    /// The feature the scope belongs to.
    pub feature: &'a Feature,
    /// The first scope of the feature that covers the request.
    pub scope: &'a Scope,
}

/// A validated capability matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix {
    // INVARIANT: every name in every profile's `features` is a key here.
    features: BTreeMap<String, Feature>,
    profiles: BTreeMap<String, Profile>,
    digest: String,
}

/// One problem found in a matrix document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct MatrixError {
    /// The 1-based line of the offending node.
    pub line: usize,
    /// The 1-based column of the offending node.
    pub column: usize,
    /// The node's path, e.g. `features.run-git.scopes[0]`; empty for the root.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Every problem found in a matrix document, in source order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixErrors(pub Vec<MatrixError>);

impl fmt::Display for MatrixErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MatrixErrors {}

impl Matrix {
    /// Returns a matrix with no features and no profiles, which denies everything.
    pub fn empty() -> Matrix {
        Matrix {
            features: BTreeMap::new(),
            profiles: BTreeMap::new(),
            digest: sha256_hex(""),
        }
    }

    /// Parses and validates a matrix document, reporting every problem found.
    ///
    /// Shape errors (YAML syntax, unknown keys, wrong types) stop at the first
    /// one; semantic errors (bad names, scopes, versions, unknown features)
    /// are all collected.
    pub fn from_yaml(text: &str) -> Result<Matrix, MatrixErrors> {
        let tree = load_yaml(text).map_err(|error| MatrixErrors(vec![error]))?;
        let raw: RawMatrix = serde_path_to_error::deserialize(&tree.value).map_err(|error| {
            let path = error.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let message = error.into_inner().to_string();
            MatrixErrors(vec![tree.shape_error(path, message)])
        })?;
        let mut errors = Vec::new();
        let matrix = validate(raw, &tree, &mut errors);
        if errors.is_empty() {
            Ok(Matrix {
                digest: sha256_hex(text),
                ..matrix
            })
        } else {
            errors.sort_by_key(|error| (error.line, error.column));
            Err(MatrixErrors(errors))
        }
    }

    /// Iterates over the features, ordered by name.
    pub fn features(&self) -> impl Iterator<Item = &Feature> {
        self.features.values()
    }

    /// Looks a feature up by name.
    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.get(name)
    }

    /// Iterates over the profiles, ordered by name.
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.values()
    }

    /// Looks a profile up by name.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// Reports whether the profile includes any high-risk feature.
    ///
    /// An unknown profile is not high risk: it grants nothing.
    pub fn profile_is_high_risk(&self, profile: &str) -> bool {
        self.profile_features(profile)
            .any(|feature| feature.risk == Risk::High)
    }

    /// Finds the first scope, in the profile's feature order, that covers
    /// `requested`; `None` denies the request.
    pub fn authorize(&self, profile: &str, requested: &Scope) -> Option<Grant<'_>> {
        self.profile_features(profile).find_map(|feature| {
            feature
                .scopes
                .iter()
                .find(|scope| scope.covers(requested))
                .map(|scope| Grant { feature, scope })
        })
    }

    /// Returns the hex SHA-256 of the source text, for audit records.
    pub fn digest(&self) -> String {
        self.digest.clone()
    }

    fn profile_features(&self, profile: &str) -> impl Iterator<Item = &Feature> {
        self.profiles
            .get(profile)
            .into_iter()
            .flat_map(|profile| profile.features.iter())
            .filter_map(|name| self.features.get(name))
    }
}

/// Parses any YAML document into `T` with the matrix's strictness (no
/// anchors, aliases, tags or duplicate keys) and its errors: line, column
/// and path of the offending node. Used for Ward's own configuration files.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, MatrixError> {
    let tree = load_yaml(text)?;
    serde_path_to_error::deserialize(&tree.value).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = error.into_inner().to_string();
        tree.shape_error(path, message)
    })
}

fn sha256_hex(text: &str) -> String {
    use fmt::Write as _;
    let hash = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in hash.iter() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

// ---------------------------------------------------------------------------
// Shape: what serde checks.

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `version`, `features` and `profiles`"
)]
struct RawMatrix {
    version: Value,
    features: BTreeMap<String, RawFeature>,
    profiles: BTreeMap<String, RawProfile>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `description`, `risk`, `scopes` and optionally `two_person`, `consent`"
)]
struct RawFeature {
    description: String,
    risk: String,
    scopes: Vec<String>,
    #[serde(default)]
    two_person: bool,
    #[serde(default)]
    consent: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `description` and `features`"
)]
struct RawProfile {
    description: String,
    features: Vec<String>,
}

// ---------------------------------------------------------------------------
// Semantics: what `validate` checks, collecting every error.

fn validate(raw: RawMatrix, tree: &Tree, errors: &mut Vec<MatrixError>) -> Matrix {
    if raw.version.as_u64() != Some(VERSION) {
        errors.push(tree.error_at(
            "version",
            format!(
                "unsupported version `{}`; use `version: {VERSION}`",
                raw.version
            ),
        ));
    }

    let mut features = BTreeMap::new();
    for (name, feature) in raw.features {
        let path = join_key("features", &name);
        check_name("feature", &name, &path, tree, errors);
        if feature.description.trim().is_empty() {
            errors.push(tree.error_at(
                &join_key(&path, "description"),
                format!("feature `{name}` has an empty description; say what it allows"),
            ));
        }
        let risk = match feature.risk.as_str() {
            "low" => Risk::Low,
            "high" => Risk::High,
            other => {
                errors.push(tree.error_at(
                    &join_key(&path, "risk"),
                    format!("feature `{name}` has unknown risk `{other}`; use `low` or `high`"),
                ));
                Risk::High
            }
        };
        let scopes_path = join_key(&path, "scopes");
        if feature.scopes.is_empty() {
            errors.push(tree.error_at(
                &scopes_path,
                format!("feature `{name}` has no scopes; list at least one, e.g. `files:read:/projects/**`"),
            ));
        }
        let mut scopes = Vec::with_capacity(feature.scopes.len());
        for (index, text) in feature.scopes.iter().enumerate() {
            match text.parse::<Scope>() {
                Ok(scope) => scopes.push(scope),
                Err(error) => {
                    errors
                        .push(tree.error_at(&format!("{scopes_path}[{index}]"), error.to_string()));
                }
            }
        }
        if feature.two_person && risk != Risk::High {
            errors.push(tree.error_at(
                &join_key(&path, "two_person"),
                format!("feature `{name}` is low risk; `two_person` applies only to `risk: high`"),
            ));
        }
        let consent_required = match feature.consent.as_deref() {
            None | Some("not_required") => false,
            Some("required") => true,
            Some(other) => {
                errors.push(tree.error_at(
                    &join_key(&path, "consent"),
                    format!("feature `{name}` has unknown consent `{other}`; use `required` or `not_required`"),
                ));
                true
            }
        };
        features.insert(
            name.clone(),
            Feature {
                name,
                description: feature.description,
                risk,
                scopes,
                two_person: feature.two_person,
                consent_required,
            },
        );
    }

    let mut profiles = BTreeMap::new();
    for (name, profile) in raw.profiles {
        let path = join_key("profiles", &name);
        check_name("profile", &name, &path, tree, errors);
        if profile.description.trim().is_empty() {
            errors.push(tree.error_at(
                &join_key(&path, "description"),
                format!("profile `{name}` has an empty description; say what it is for"),
            ));
        }
        let list_path = join_key(&path, "features");
        let mut seen = BTreeSet::new();
        for (index, feature) in profile.features.iter().enumerate() {
            let item_path = format!("{list_path}[{index}]");
            if !features.contains_key(feature) {
                errors.push(tree.error_at(
                    &item_path,
                    format!(
                        "profile `{name}` lists unknown feature `{feature}`; define it under `features` or remove it"
                    ),
                ));
            } else if !seen.insert(feature.as_str()) {
                errors.push(tree.error_at(
                    &item_path,
                    format!("profile `{name}` lists feature `{feature}` twice; remove one"),
                ));
            }
        }
        profiles.insert(
            name.clone(),
            Profile {
                name,
                description: profile.description,
                features: profile.features,
            },
        );
    }

    Matrix {
        features,
        profiles,
        digest: String::new(),
    }
}

/// Whether `name` is a valid name for a feature, a profile or a tenant:
/// 1 to 64 lowercase letters, digits, `.`, `_` or `-`, starting with a
/// letter or digit.
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    first_ok && rest_ok && name.len() <= MAX_NAME_LEN
}

fn check_name(kind: &str, name: &str, path: &str, tree: &Tree, errors: &mut Vec<MatrixError>) {
    if !is_valid_name(name) {
        errors.push(tree.key_error_at(
            path,
            format!(
                "{kind} name `{name}` is not valid; use at most {MAX_NAME_LEN} lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit"
            ),
        ));
    }
}

// ---------------------------------------------------------------------------
// YAML: events to a JSON value with positions.

/// Where a node starts in the source, 1-based.
#[derive(Clone, Copy, Debug, Default)]
struct Position {
    line: usize,
    column: usize,
}

impl From<Marker> for Position {
    fn from(mark: Marker) -> Self {
        Position {
            line: mark.line(),
            // The scanner counts columns from 0.
            column: mark.col() + 1,
        }
    }
}

/// A parsed document: its value and where each node and key starts.
struct Tree {
    value: Value,
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl Tree {
    fn position(&self, path: &str) -> Position {
        self.values
            .get(path)
            .or_else(|| self.values.get(""))
            .copied()
            .unwrap_or(Position { line: 1, column: 1 })
    }

    fn key_position(&self, path: &str) -> Position {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.position(path))
    }

    fn error_at(&self, path: &str, message: String) -> MatrixError {
        make_error(self.position(path), path, message)
    }

    fn key_error_at(&self, path: &str, message: String) -> MatrixError {
        make_error(self.key_position(path), path, message)
    }

    /// Places a serde error: unknown fields at the key, the rest at the value.
    fn shape_error(&self, path: String, message: String) -> MatrixError {
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or_default();
            let message = format!("unknown key `{rest}");
            // The error path may or may not already end at the unknown key.
            let key_path = join_key(&path, field);
            for candidate in [key_path.as_str(), path.as_str()] {
                if let Some(position) = self.keys.get(candidate) {
                    return make_error(*position, candidate, message);
                }
            }
            return self.error_at(&path, message);
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            return self.error_at(&path, format!("missing key `{rest}; add it"));
        }
        self.error_at(&path, message)
    }
}

fn make_error(position: Position, path: &str, message: String) -> MatrixError {
    MatrixError {
        line: position.line,
        column: position.column,
        path: path.to_owned(),
        message,
    }
}

/// Joins a mapping key onto a path the way `serde_path_to_error` prints it.
fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A container being filled while events arrive.
enum Frame {
    Mapping {
        path: String,
        map: Map<String, Value>,
        /// The key whose value comes next, with its path.
        key: Option<(String, String)>,
    },
    Sequence {
        path: String,
        items: Vec<Value>,
    },
}

/// Builds a [`Tree`] from parser events, stopping at the first problem.
#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Frame>,
    root: Option<Value>,
    documents: usize,
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
    error: Option<MatrixError>,
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        if let Err(error) = self.handle(event, mark) {
            self.error = Some(error);
        }
    }
}

impl TreeBuilder {
    fn handle(&mut self, event: Event, mark: Marker) -> Result<(), MatrixError> {
        let position = Position::from(mark);
        let fail = |path: &str, message: &str| Err(make_error(position, path, message.to_owned()));
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    return fail(
                        "",
                        "only one yaml document is allowed; remove the extra `---` and what follows",
                    );
                }
                Ok(())
            }
            Event::Alias(_) => fail(
                &self.current_path(),
                "aliases (`*name`) are not supported; repeat the value instead",
            ),
            Event::Scalar(text, style, anchor, tag) => {
                check_node(anchor, tag.is_some(), &self.current_path(), position)?;
                if let Some(Frame::Mapping {
                    path,
                    map,
                    key: key @ None,
                }) = self.stack.last_mut()
                {
                    let key_path = join_key(path, &text);
                    if map.contains_key(&text) {
                        return fail(
                            &key_path,
                            &format!("duplicate key `{text}`; remove one of them"),
                        );
                    }
                    if map.is_empty() {
                        // A block mapping's start event is marked after its
                        // first key; the mapping starts at that key.
                        let start = self.values.entry(path.clone()).or_insert(position);
                        if (position.line, position.column) < (start.line, start.column) {
                            *start = position;
                        }
                    }
                    self.keys.insert(key_path.clone(), position);
                    *key = Some((text, key_path));
                    return Ok(());
                }
                let value = scalar_value(text, style);
                let path = self.current_path();
                self.values.insert(path, position);
                self.finish(value);
                Ok(())
            }
            Event::SequenceStart(anchor, tag) => {
                let path = self.start_container(anchor, tag.is_some(), position)?;
                self.stack.push(Frame::Sequence {
                    path,
                    items: Vec::new(),
                });
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                let path = self.start_container(anchor, tag.is_some(), position)?;
                self.stack.push(Frame::Mapping {
                    path,
                    map: Map::new(),
                    key: None,
                });
                Ok(())
            }
            Event::SequenceEnd => {
                if let Some(Frame::Sequence { items, .. }) = self.stack.pop() {
                    self.finish(Value::Array(items));
                }
                Ok(())
            }
            Event::MappingEnd => {
                if let Some(Frame::Mapping { map, .. }) = self.stack.pop() {
                    self.finish(Value::Object(map));
                }
                Ok(())
            }
        }
    }

    /// Checks a container start and returns its path.
    fn start_container(
        &mut self,
        anchor: usize,
        tagged: bool,
        position: Position,
    ) -> Result<String, MatrixError> {
        let path = self.current_path();
        check_node(anchor, tagged, &path, position)?;
        if let Some(Frame::Mapping { key: None, .. }) = self.stack.last() {
            return Err(make_error(
                position,
                &path,
                "mapping keys must be plain text; quote the key or restructure it".to_owned(),
            ));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(make_error(
                position,
                &path,
                format!("nesting is deeper than {MAX_DEPTH} levels; flatten the document"),
            ));
        }
        self.values.insert(path.clone(), position);
        Ok(path)
    }

    /// The path of the node that the next value event will produce.
    fn current_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Mapping {
                key: Some((_, path)),
                ..
            }) => path.clone(),
            Some(Frame::Mapping {
                path, key: None, ..
            }) => path.clone(),
            Some(Frame::Sequence { path, items }) => format!("{path}[{}]", items.len()),
        }
    }

    /// Attaches a completed value to its parent, or makes it the root.
    fn finish(&mut self, value: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Sequence { items, .. }) => items.push(value),
            Some(Frame::Mapping { map, key, .. }) => {
                if let Some((name, _)) = key.take() {
                    map.insert(name, value);
                }
            }
        }
    }
}

fn check_node(
    anchor: usize,
    tagged: bool,
    path: &str,
    position: Position,
) -> Result<(), MatrixError> {
    if anchor != 0 {
        return Err(make_error(
            position,
            path,
            "anchors (`&name`) are not supported; repeat the value instead".to_owned(),
        ));
    }
    if tagged {
        return Err(make_error(
            position,
            path,
            "tags (`!tag`) are not supported; remove the tag".to_owned(),
        ));
    }
    Ok(())
}

/// Types a scalar the way YAML 1.2's core schema does, for the cases a
/// matrix uses: quoted and block scalars are always strings.
fn scalar_value(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let numeric = text
        .strip_prefix(['-', '+'])
        .unwrap_or(&text)
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.');
    if numeric {
        if let Ok(integer) = text.parse::<i64>() {
            return Value::Number(integer.into());
        }
        if let Some(number) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(number);
        }
    }
    Value::String(text)
}

/// Parses YAML text into a [`Tree`], rejecting what a matrix never needs.
fn load_yaml(text: &str) -> Result<Tree, MatrixError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = TreeBuilder::default();
    // Events are pulled one at a time rather than through `Parser::load`,
    // which recurses once per nesting level.
    loop {
        let (event, mark) = parser.next_token().map_err(|error| {
            make_error(
                Position::from(*error.marker()),
                "",
                format!("invalid yaml: {}; fix the syntax", error.info()),
            )
        })?;
        let end = event == Event::StreamEnd;
        builder.on_event(event, mark);
        if let Some(error) = builder.error.take() {
            return Err(error);
        }
        if end {
            break;
        }
    }
    Ok(Tree {
        value: builder.root.unwrap_or(Value::Null),
        values: builder.values,
        keys: builder.keys,
    })
}
