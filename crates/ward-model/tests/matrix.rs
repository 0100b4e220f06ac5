//! The capability matrix: the example file, authorisation, and every error
//! reported with its exact line, column and text.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::error::Error;

use ward_model::matrix::{Matrix, Risk};
use ward_model::scope::Scope;

type TestResult = Result<(), Box<dyn Error>>;

const EXAMPLE: &str = include_str!("../../../examples/matrix.yaml");

/// Asserts that `yaml` is rejected with exactly `expected` (one error a line).
fn check_errors(yaml: &str, expected: &str) {
    let result = Matrix::from_yaml(yaml).map(|_| ());
    assert_eq!(
        result.map_err(|errors| errors.to_string()),
        Err(expected.to_owned()),
        "for:\n{yaml}"
    );
}

/// A valid matrix with `extra` spliced in at the end of feature `a`.
fn with_feature_extra(extra: &str) -> String {
    format!(
        "version: 1
features:
  a:
    description: Read things
    risk: low
    scopes:
      - files:read:/a/**
{extra}profiles:
  p:
    description: Reads
    features: [a]
"
    )
}

fn scope(text: &str) -> Result<Scope, Box<dyn Error>> {
    Ok(text.parse()?)
}

#[test]
fn example_matrix_parses() -> TestResult {
    let matrix = Matrix::from_yaml(EXAMPLE)?;
    let names: Vec<&str> = matrix.features().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "call-weather-api",
            "read-db-secrets",
            "read-projects",
            "run-git",
            "write-projects"
        ]
    );
    let profiles: Vec<&str> = matrix.profiles().map(|p| p.name.as_str()).collect();
    assert_eq!(profiles, ["developer", "reader", "writer"]);
    assert!(!matrix.profile_is_high_risk("reader"));
    assert!(!matrix.profile_is_high_risk("writer"));
    assert!(matrix.profile_is_high_risk("developer"));
    assert!(!matrix.profile_is_high_risk("nobody"));
    assert_eq!(matrix.feature("run-git").map(|f| f.risk), Some(Risk::High));
    assert_eq!(matrix.digest().len(), 64);
    Ok(())
}

#[test]
fn authorize_returns_the_first_covering_grant_in_profile_order() -> TestResult {
    let matrix = Matrix::from_yaml(EXAMPLE)?;
    let read = scope("files:read:/home/ann/projects/ward/src/lib.rs")?;
    let grant = matrix.authorize("developer", &read);
    assert_eq!(
        grant.map(|g| g.feature.name.as_str()),
        Some("read-projects")
    );
    assert_eq!(
        grant.map(|g| g.scope.to_string()),
        Some("files:read:/home/*/projects/**".to_owned())
    );

    let git = scope("exec:run:/usr/bin/git")?;
    assert!(matrix.authorize("reader", &git).is_none());
    assert_eq!(
        matrix
            .authorize("developer", &git)
            .map(|g| g.feature.name.as_str()),
        Some("run-git")
    );
    let escape = scope("files:read:/home/ann/projects/**")?;
    assert!(matrix.authorize("reader", &escape).is_some());
    let other_home = scope("files:read:/home/**")?;
    assert!(matrix.authorize("reader", &other_home).is_none());
    assert!(matrix.authorize("nobody", &read).is_none());
    assert!(Matrix::empty().authorize("developer", &read).is_none());
    Ok(())
}

#[test]
fn digest_is_the_sha256_of_the_source() -> TestResult {
    let matrix = Matrix::from_yaml(&with_feature_extra(""))?;
    let other = Matrix::from_yaml(&format!("{}\n", with_feature_extra("")))?;
    assert_ne!(matrix.digest(), other.digest());
    assert_eq!(
        Matrix::empty().digest(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    Ok(())
}

#[test]
fn unknown_key_is_reported_at_the_key() {
    check_errors(
        &with_feature_extra("    owner: ann\n"),
        "line 8, column 5: unknown key `owner`, expected one of `description`, `risk`, `scopes`, `two_person`, `consent`",
    );
}

#[test]
fn bad_scope_in_a_list_is_reported_at_the_item() {
    check_errors(
        &with_feature_extra("      - files:read:/a/../etc\n"),
        "line 8, column 9: invalid scope `files:read:/a/../etc`: contains a `..` segment; use the resolved path",
    );
}

#[test]
fn unknown_feature_in_a_profile_is_reported_at_the_item() {
    check_errors(
        "version: 1
features:
  a:
    description: Read things
    risk: low
    scopes: [files:read:/a/**]
profiles:
  p:
    description: Reads
    features: [a, b]
",
        "line 10, column 19: profile `p` lists unknown feature `b`; define it under `features` or remove it",
    );
}

#[test]
fn all_semantic_errors_are_reported_in_source_order() {
    check_errors(
        "version: 2
features:
  Read:
    description: ''
    risk: low
    scopes: []
  b:
    description: B
    risk: high
    scopes: ['files:read:/x?', 'files:*:/y']
profiles:
  p:
    description: P
    features: [b, b, c]
",
        "line 1, column 10: unsupported version `2`; use `version: 1`
line 3, column 3: feature name `Read` is not valid; use at most 64 lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit
line 4, column 18: feature `Read` has an empty description; say what it allows
line 6, column 13: feature `Read` has no scopes; list at least one, e.g. `files:read:/projects/**`
line 10, column 14: invalid scope `files:read:/x?`: `?` is not supported; use `*`
line 14, column 19: profile `p` lists feature `b` twice; remove one
line 14, column 22: profile `p` lists unknown feature `c`; define it under `features` or remove it",
    );
}

#[test]
fn yaml_syntax_error_carries_the_scanner_position() {
    check_errors(
        "version: 1\nfeatures: [a\nprofiles: {}\n",
        "line 3, column 9: invalid yaml: illegal placement of ':' indicator; fix the syntax",
    );
}

#[test]
fn wrong_type_is_reported_at_the_value() {
    check_errors(
        &with_feature_extra("").replace("risk: low", "risk: [low]"),
        "line 5, column 11: invalid type: sequence, expected a string",
    );
    check_errors(
        &with_feature_extra("").replace("risk: low", "risk: medium"),
        "line 5, column 11: feature `a` has unknown risk `medium`; use `low` or `high`",
    );
    check_errors(
        "version: 1\nfeatures:\n  a: read things\nprofiles: {}\n",
        "line 3, column 6: invalid type: string \"read things\", expected a mapping with `description`, `risk`, `scopes` and optionally `two_person`, `consent`",
    );
}

#[test]
fn missing_key_is_reported_at_its_mapping() {
    check_errors(
        "version: 1\nfeatures: {}\nprofiles:\n  p:\n    features: []\n",
        "line 5, column 5: missing key `description`; add it",
    );
    check_errors(
        "",
        "line 1, column 1: invalid type: null, expected a mapping with `version`, `features` and `profiles`",
    );
}

#[test]
fn anchors_aliases_tags_duplicates_and_extra_documents_are_rejected() {
    check_errors(
        "version: &v 1\n",
        "line 1, column 13: anchors (`&name`) are not supported; repeat the value instead",
    );
    check_errors(
        "a: 1\nversion: *v\n",
        "line 2, column 10: invalid yaml: while parsing node, found unknown anchor; fix the syntax",
    );
    check_errors(
        "version: !!int 1\n",
        "line 1, column 16: tags (`!tag`) are not supported; remove the tag",
    );
    check_errors(
        "version: 1\nversion: 1\n",
        "line 2, column 1: duplicate key `version`; remove one of them",
    );
    check_errors(
        "version: 1\n---\nversion: 1\n",
        "line 2, column 1: only one yaml document is allowed; remove the extra `---` and what follows",
    );
    check_errors(
        "? [a]\n: 1\n",
        "line 1, column 3: mapping keys must be plain text; quote the key or restructure it",
    );
}

#[test]
fn deep_nesting_is_rejected() {
    let nested = |depth: usize| format!("version: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
    check_errors(
        &nested(40),
        "line 1, column 41: nesting is deeper than 32 levels; flatten the document",
    );
    check_errors(
        &nested(10_000),
        "line 1, column 265: invalid yaml: recursion limit exceeded; fix the syntax",
    );
}

#[test]
fn two_person_and_consent_are_read_and_checked() {
    let text = "version: 1\nfeatures:\n  s:\n    description: Secrets\n    risk: high\n    two_person: true\n    consent: required\n    scopes: [secrets:read:db/*]\n  l:\n    description: Low\n    risk: low\n    two_person: true\n    consent: maybe\n    scopes: [files:read:/a]\nprofiles:\n  p:\n    description: P\n    features: [s, l]\n";
    let errors = ward_model::matrix::Matrix::from_yaml(text)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        errors.contains(
            "line 12, column 17: feature `l` is low risk; `two_person` applies only to `risk: high`"
        ),
        "{errors}"
    );
    assert!(
        errors.contains("feature `l` has unknown consent `maybe`"),
        "{errors}"
    );
    let good = text.replace("    two_person: true\n    consent: maybe\n", "");
    let matrix = ward_model::matrix::Matrix::from_yaml(&good).map_err(|e| e.to_string());
    let matrix = matrix.as_ref().map_err(String::clone);
    assert_eq!(
        matrix.map(|m| m.feature("s").map(|f| (f.two_person, f.consent_required))),
        Ok(Some((true, true)))
    );
}
