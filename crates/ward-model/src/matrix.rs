//! The capability matrix: named features (sets of scopes with a risk level)
//! and profiles (lists of features), loaded from YAML with every error
//! reported at its line and column.
//!
//! Loading runs in three steps. [`crate::yaml`] reads the document into a
//! JSON value with the position of every node; serde then checks the shape
//! (unknown keys, wrong types), and its error path is mapped back to a
//! position. Finally every semantic rule is checked and all violations are
//! reported.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::scope::Scope;
use crate::yaml::{Tree, YamlError, join_key};

/// The only supported value of `version`.
const VERSION: u64 = 1;
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

/// One problem found in a matrix document: where it is and what is wrong.
pub type MatrixError = YamlError;

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
        let tree = crate::yaml::load(text).map_err(|error| MatrixErrors(vec![error]))?;
        let raw: RawMatrix = tree
            .deserialize()
            .map_err(|error| MatrixErrors(vec![error]))?;
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
