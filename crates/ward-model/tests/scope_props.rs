//! Scope parsing, normalisation and containment: attack cases by example, and
//! properties checked against a small backtracking reference matcher.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::error::Error;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use ward_model::scope::{Scope, ScopeError};

type TestResult = Result<(), Box<dyn Error>>;

fn parse(text: &str) -> Result<Scope, ScopeError> {
    text.parse()
}

/// Asserts that `text` is rejected with exactly `reason`.
fn check_rejected(text: &str, reason: &str) {
    let result = parse(text).map(|scope| scope.to_string());
    assert_eq!(
        result.as_ref().map_err(|error| &error.reason),
        Err(&reason.to_owned()),
        "for `{text}`"
    );
    if !text.chars().any(char::is_control) && text.len() <= 200 {
        assert_eq!(
            result.map_err(|error| error.to_string()),
            Err(format!("invalid scope `{text}`: {reason}"))
        );
    }
}

/// Asserts that `text` parses and normalises to `canonical`.
fn check_canonical(text: &str, canonical: &str) -> TestResult {
    assert_eq!(parse(text)?.to_string(), canonical, "for `{text}`");
    Ok(())
}

// ---------------------------------------------------------------------------
// Examples: normalisation and attacks.

#[test]
fn parent_segments_are_rejected_not_resolved() {
    check_rejected(
        "files:read:/projects/../etc/passwd",
        "contains a `..` segment; use the resolved path",
    );
    check_rejected(
        "files:read:/projects/./x",
        "contains a `.` segment; use the resolved path",
    );
    check_rejected(
        "files:read:/projects/.../x",
        "contains a `...` segment; use the resolved path",
    );
    check_rejected(
        "files:read:..",
        "contains a `..` segment; use the resolved path",
    );
}

#[test]
fn trailing_dots_inside_a_segment_are_literal() -> TestResult {
    check_canonical(
        "files:read:/projects/foo./..x",
        "files:read:/projects/foo./..x",
    )
}

#[test]
fn encoded_dots_slashes_and_percents_are_rejected() {
    for (escape, text) in [
        ("%2e", "files:read:/projects/%2e%2e/etc"),
        ("%2E", "files:read:/projects/%2E./etc"),
        ("%2F", "files:read:/projects/a%2Fb"),
        ("%2f", "files:read:/projects/a%2fb"),
        ("%5c", "files:read:/projects/a%5cb"),
        ("%00", "files:read:/projects/a%00"),
        ("%25", "files:read:/projects/%252e"),
    ] {
        check_rejected(
            text,
            &format!(
                "`{escape}` encodes `.`, `/`, `\\`, `%` or NUL, which is ambiguous; use the decoded path"
            ),
        );
    }
}

#[test]
fn other_percent_escapes_are_kept_verbatim() -> TestResult {
    check_canonical("files:read:/a%20b/%c3%a9", "files:read:/a%20b/%C3%A9")?;
    check_canonical("files:read:/a%2cb", "files:read:/a%2Cb")?;
    assert!(parse("files:read:/a%20b")?.matches("files", "read", "/a%20b"));
    assert!(!parse("files:read:/a%20b")?.matches("files", "read", "/a b"));
    Ok(())
}

#[test]
fn doubled_and_trailing_slashes_collapse() -> TestResult {
    check_canonical("files:read://projects//x", "files:read:/projects/x")?;
    check_canonical("files:read:/projects/x///", "files:read:/projects/x")?;
    check_canonical("files:read:///", "files:read:/")?;
    check_canonical("secrets:read:db//*/", "secrets:read:db/*")?;
    assert!(parse("files:read:/projects/*")?.matches("files", "read", "//projects//x/"));
    Ok(())
}

#[test]
fn a_single_star_does_not_cover_a_double_star() -> TestResult {
    let one = parse("files:read:/projects/*")?;
    let any = parse("files:read:/projects/**")?;
    assert!(!one.covers(&any));
    assert!(any.covers(&one));
    assert!(!one.matches("files", "read", "/projects/a/b"));
    assert!(any.matches("files", "read", "/projects/a/b"));
    assert!(any.matches("files", "read", "/projects"));
    assert!(!one.matches("files", "read", "/projects/../etc/passwd"));
    assert!(!one.matches("files", "read", "/projects/%2e%2e/etc"));
    assert!(!one.matches("files", "read", "/projects/a%2Fb"));
    Ok(())
}

#[test]
fn a_star_segment_can_absorb_part_of_a_requested_double_star() -> TestResult {
    // Every target under `a/**` ends in a plain segment, which `*` matches.
    assert!(parse("files:read:**/*")?.covers(&parse("files:read:a/**")?));
    assert!(parse("files:read:*/**")?.covers(&parse("files:read:a/**")?));
    // `**/a` includes `/a`, whose root segment no `*` matches.
    assert!(!parse("files:read:*/**")?.covers(&parse("files:read:**/a")?));
    assert!(!parse("files:read:*/**")?.covers(&parse("files:read:**")?));
    assert!(parse("files:read:/*/**")?.covers(&parse("files:read:/a/**")?));
    assert!(!parse("files:read:/*/**")?.covers(&parse("files:read:/**")?));
    Ok(())
}

#[test]
fn stars_stay_within_a_segment() -> TestResult {
    let grant = parse("files:read:/projects/*.txt")?;
    assert!(grant.matches("files", "read", "/projects/a.txt"));
    assert!(grant.matches("files", "read", "/projects/.txt"));
    assert!(!grant.matches("files", "read", "/projects/a/b.txt"));
    assert!(grant.covers(&parse("files:read:/projects/a*.txt")?));
    assert!(!grant.covers(&parse("files:read:/projects/*")?));
    Ok(())
}

#[test]
fn relative_and_absolute_patterns_are_distinct() -> TestResult {
    let grant = parse("secrets:read:db/*")?;
    assert!(grant.matches("secrets", "read", "db/password"));
    assert!(!grant.matches("secrets", "read", "/db/password"));
    assert!(!parse("files:read:*/x")?.matches("files", "read", "/x"));
    assert!(parse("files:read:**/x")?.matches("files", "read", "/x"));
    Ok(())
}

#[test]
fn wildcard_resource_and_action_only_in_grants() -> TestResult {
    let any_resource = parse("*:read:/projects/**")?;
    let any_action = parse("files:*:/projects/**")?;
    let read = parse("files:read:/projects/a")?;
    let wildcard_request = parse("files:*:/projects/a")?;
    assert!(any_resource.covers(&read));
    assert!(any_action.covers(&read));
    assert!(any_action.covers(&wildcard_request));
    assert!(!read.covers(&wildcard_request));
    assert!(!parse("files:read:/projects/**")?.covers(&wildcard_request));
    assert!(!parse("files:read:/projects/**")?.covers(&parse("*:read:/projects/a")?));
    assert!(any_resource.matches("spreadsheets", "read", "/projects/a"));
    assert!(!any_resource.matches("spreadsheets", "write", "/projects/a"));
    assert!(!any_resource.matches("Files", "read", "/projects/a"));
    Ok(())
}

#[test]
fn read_actions_are_read_only() -> TestResult {
    for (text, read) in [
        ("files:read:/a", true),
        ("files:list:/a", true),
        ("http:get:https://a.example", true),
        ("files:write:/a", false),
        ("files:*:/a", false),
    ] {
        assert_eq!(parse(text)?.is_read(), read, "for `{text}`");
    }
    Ok(())
}

#[test]
fn urls_are_normalised() -> TestResult {
    check_canonical(
        "http:call:HTTPS://API.Example.COM:443/v1/",
        "http:call:https://api.example.com/v1",
    )?;
    check_canonical(
        "http:call:http://a.example:80",
        "http:call:http://a.example",
    )?;
    check_canonical(
        "http:call:http://a.example:443/x",
        "http:call:http://a.example:443/x",
    )?;
    check_canonical(
        "http:call:https://a.example/",
        "http:call:https://a.example",
    )?;
    check_canonical(
        "http:call:https://a.example//v1//Users",
        "http:call:https://a.example/v1/Users",
    )?;
    let grant = parse("http:call:https://*.example.com/**")?;
    assert!(grant.matches("http", "call", "https://api.example.com/v1/users"));
    assert!(grant.matches("http", "call", "HTTPS://API.EXAMPLE.COM:443"));
    assert!(!grant.matches("http", "call", "https://api.example.com:8443/v1"));
    assert!(!grant.matches("http", "call", "http://api.example.com/v1"));
    assert!(!grant.matches("http", "call", "https://evil.com/.example.com"));
    assert!(!grant.matches("http", "call", "https://evil.com?.example.com"));
    assert!(!grant.matches("http", "call", "https://x@api.example.com/"));
    assert!(grant.covers(&parse("http:call:https://api.example.com/v1/*")?));
    assert!(!grant.covers(&parse("http:call:https://*/v1")?));
    let exact = parse("http:call:https://api.example.com/v1/*")?;
    assert!(exact.matches("http", "call", "https://api.example.com/v1/users"));
    assert!(!exact.matches("http", "call", "https://api.example.com/v1/users/1"));
    assert!(!exact.matches("http", "call", "https://api.example.com/v1/../admin"));
    assert!(!exact.matches("http", "call", "https://api.example.com/v1/%2e%2e/admin"));
    Ok(())
}

#[test]
fn url_parts_that_could_hide_a_target_are_rejected() {
    check_rejected(
        "http:call:https://user@a.example/",
        "the url has user info (`@`); remove it",
    );
    check_rejected(
        "http:call:https://a.example/x?y=1",
        "the url has a query (`?`); remove it",
    );
    check_rejected(
        "http:call:https://a.example/x#y",
        "the url has a fragment (`#`); remove it",
    );
    check_rejected(
        "http:call:https:///x",
        "the url has no host; add one, e.g. `https://api.example.com/**`",
    );
    check_rejected(
        "http:call:https://a:443:443/x",
        "the url port `443:443` is not valid; use digits or `*`, e.g. `https://api.example.com:8443`",
    );
    check_rejected(
        "http:call:https://:443/x",
        "the url has no host; add one, e.g. `https://api.example.com/**`",
    );
    check_rejected(
        "http:call:https://**/x",
        "`**` is not allowed in a url host; use `*`",
    );
}

#[test]
fn malformed_scopes_say_how_to_fix_them() {
    check_rejected(
        "files:read",
        "expected `resource:action:pattern`, e.g. `files:read:/projects/**`",
    );
    check_rejected(
        "Files:read:/a",
        "resource `Files` is not valid; start with a lowercase letter and use only lowercase letters, digits, `_` or `-`, or use `*`",
    );
    check_rejected(
        "files::/a",
        "the action is empty; name one, e.g. `files`, or use `*`",
    );
    check_rejected(
        "files:read:",
        "the pattern is empty; use `**` to match everything",
    );
    check_rejected("files:read:/a?", "`?` is not supported; use `*`");
    check_rejected("files:read:/a[bc]", "`[` is not supported; use `*`");
    check_rejected("files:read:/{a,b}", "`{` is not supported; use `*`");
    check_rejected(
        "files:read:/a**",
        "segment `a**` mixes `**` with other characters; use `*` within a segment or `**` as a whole segment",
    );
    check_rejected(
        "files:read:/a\\b",
        "`\\` is not allowed; use `/` to separate segments",
    );
    check_rejected(
        "files:read:/a\tb",
        "the pattern contains a control character; remove it",
    );
    // Separators of scope lists and headers cannot hide inside one scope.
    check_rejected(
        "files:read:/x files:write:/**",
        "whitespace is not allowed; write a space as `%20`",
    );
    check_rejected(
        "files:read:/x\u{a0}y",
        "whitespace is not allowed; write a space as `%20`",
    );
    check_rejected(
        "files:read:/x,files:write:/**",
        "`,` is not allowed; write it as `%2C`",
    );
    check_rejected(
        "files:read:/\"x\"",
        "`\"` is not allowed; write it as `%22`",
    );
    // An escaped unreserved character is the character: one spelling only.
    check_rejected(
        "exec:run:/usr/bin/%67it",
        "`%67` encodes the unreserved `g`; write it unescaped",
    );
    check_rejected(
        &format!("files:read:/{}", "a".repeat(1024)),
        "the pattern is longer than 1024 bytes; shorten it or use `*`",
    );
}

#[test]
fn error_messages_escape_control_characters() {
    assert_eq!(
        parse("files:read:/a\u{0}b").map_err(|error| error.to_string()),
        Err("invalid scope `files:read:/a\\u{0}b`: the pattern contains a control character; remove it".to_owned())
    );
}

#[test]
fn serde_uses_the_canonical_string() -> TestResult {
    let scope = parse("files:read://projects//x/")?;
    assert_eq!(serde_json::to_string(&scope)?, "\"files:read:/projects/x\"");
    let back: Scope = serde_json::from_str("\"files:read:/projects/x\"")?;
    assert_eq!(back, scope);
    let error =
        serde_json::from_str::<Scope>("\"files:read:/a/../b\"").map_err(|error| error.to_string());
    assert_eq!(
        error,
        Err(
            "invalid scope `files:read:/a/../b`: contains a `..` segment; use the resolved path"
                .to_owned()
        )
    );
    Ok(())
}

/// Would hang, and hit the nextest timeout, if containment were exponential.
#[test]
fn pathological_patterns_are_decided() -> TestResult {
    let stars = format!("files:read:/{}", "*a".repeat(500));
    let text = format!("files:read:/{}", "a".repeat(1000));
    let grant = parse(&stars)?;
    assert!(grant.matches("files", "read", &text[11..]));
    assert!(!grant.matches("files", "read", &format!("/{}b", "a".repeat(1000))));
    assert!(grant.covers(&grant));
    let slashes = format!("files:read:/{}", "**/a*/".repeat(100));
    let slashes = parse(&slashes)?;
    assert!(slashes.covers(&parse(&format!("files:read:/{}", "a/".repeat(500)))?));
    assert!(!slashes.covers(&parse(&format!("files:read:/{}", "a/".repeat(99)))?));
    assert!(slashes.covers(&slashes));
    // Runs of `*` and `**` on both sides make the requested `**` branch.
    for (granted, requested) in [
        ("*/**/".repeat(200), "**/*/".repeat(200)),
        ("*/*/*/**/".repeat(100), "**/*/**/a/".repeat(100)),
        ("**/*/a*/".repeat(100), "**/*a/*/**/".repeat(80)),
        ("*/".repeat(500), "**/".repeat(300)),
        ("a*/**/*/".repeat(120), "**/a/*/**/".repeat(100)),
    ] {
        let grant = parse(&format!("files:read:/{granted}"))?;
        let request = parse(&format!("files:read:/{requested}"))?;
        let _ = grant.covers(&request);
        let _ = request.covers(&grant);
    }

    Ok(())
}

// ---------------------------------------------------------------------------
// The reference model: straightforward backtracking over segments.

/// Splits a normalised path pattern into segments, `/` standing for the root.
fn model_segments(pattern: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let rest = match pattern.strip_prefix('/') {
        Some(rest) => {
            segments.push("/");
            rest
        }
        None => pattern,
    };
    segments.extend(rest.split('/').filter(|s| !s.is_empty()));
    segments
}

/// Matches one segment glob against one concrete segment.
fn model_glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            model_glob(rest, text)
                || (text.first().is_some_and(|&c| c != b'/') && model_glob(pattern, &text[1..]))
        }
        Some((c, rest)) => text.first() == Some(c) && model_glob(rest, &text[1..]),
    }
}

/// Matches a segment pattern against concrete segments.
fn model_match(pattern: &[&str], target: &[&str]) -> bool {
    match pattern.split_first() {
        None => target.is_empty(),
        Some((&"**", rest)) => {
            model_match(rest, target) || (!target.is_empty() && model_match(pattern, &target[1..]))
        }
        Some((segment, rest)) => {
            !target.is_empty()
                && model_glob(segment.as_bytes(), target[0].as_bytes())
                && model_match(rest, &target[1..])
        }
    }
}

fn path(segments: Vec<String>, absolute: bool) -> String {
    let joined = segments.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Small patterns over `a` and `b` so that matches and near misses are common.
fn pattern() -> impl Strategy<Value = String> {
    let segment = prop::sample::select(vec!["a", "b", "ab", "*", "a*", "*b", "*a*", "**", "**"]);
    (
        prop::collection::vec(segment.prop_map(str::to_owned), 1..5),
        any::<bool>(),
    )
        .prop_map(|(segments, absolute)| path(segments, absolute))
}

fn target() -> impl Strategy<Value = String> {
    let segment = prop::sample::select(vec!["a", "b", "ab", "ba", "aa", "aab"]);
    (
        prop::collection::vec(segment.prop_map(str::to_owned), 0..5),
        any::<bool>(),
    )
        .prop_map(|(segments, absolute)| path(segments, absolute))
        .prop_filter("a target is not empty", |t| !t.is_empty())
}

/// Narrows a pattern: each `**` and `*` is replaced by something it covers,
/// chosen by the next entry of `choices`.
fn narrow(pattern: &str, choices: &[usize]) -> String {
    let mut choices = choices.iter().cycle();
    let absolute = pattern.starts_with('/');
    let mut segments = Vec::new();
    for segment in model_segments(pattern).into_iter().filter(|s| *s != "/") {
        let choice = choices.next().copied().unwrap_or(0);
        if segment == "**" {
            let replacement = ["**", "*", "a/**", "*/*", "", "**/b"][choice % 6];
            if !replacement.is_empty() {
                segments.push(replacement.to_owned());
            }
        } else {
            let star = ["*", "a", "", "b*", "*a", "ab"][choice % 6];
            segments.push(segment.replace('*', star));
        }
    }
    let narrowed = path(segments, absolute);
    if narrowed.is_empty() {
        "a".to_owned()
    } else {
        narrowed
    }
}

fn scope_of(pattern: &str) -> Result<Scope, TestCaseError> {
    parse(&format!("files:read:{pattern}")).map_err(|e| TestCaseError::fail(e.to_string()))
}

/// Replaces each `*` of `requested` with `star` and each `**` segment with
/// the next count of `fill` segments.
fn instantiate(requested: &str, star: &str, fill: &str, counts: &[usize]) -> String {
    let mut counts = counts.iter();
    let absolute = requested.starts_with('/');
    let mut segments = Vec::new();
    for segment in model_segments(requested).into_iter().filter(|s| *s != "/") {
        if segment == "**" {
            let count = counts.next().copied().unwrap_or(0);
            segments.extend(std::iter::repeat_n(fill.to_owned(), count));
        } else {
            segments.push(segment.replace('*', star));
        }
    }
    path(segments, absolute)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn matches_agrees_with_the_model(granted in pattern(), concrete in target()) {
        let scope = scope_of(&granted)?;
        let expected = model_match(&model_segments(scope.pattern()), &model_segments(&concrete));
        prop_assert_eq!(scope.matches("files", "read", &concrete), expected);
    }

    #[test]
    fn covers_is_sound(
        granted in pattern(),
        narrowing in prop::collection::vec(0usize..6, 8),
        requested in pattern(),
        use_narrowed in any::<bool>(),
        stars in prop::collection::vec("[ab]{0,3}", 8),
        counts in prop::collection::vec(0usize..3, 8),
        fills in prop::collection::vec(prop::sample::select(vec!["a", "b", "ab"]), 8),
    ) {
        let grant = scope_of(&granted)?;
        // Narrowing the grant gives a request it covers most of the time.
        let requested = if use_narrowed { narrow(grant.pattern(), &narrowing) } else { requested };
        let Ok(request) = parse(&format!("files:read:{requested}")) else { return Ok(()) };
        if !grant.covers(&request) {
            return Ok(());
        }
        // Instantiate every star with its own string and every `**` with its
        // own run of segments.
        let mut stars = stars.iter();
        let mut counts = counts.iter();
        let mut fills = fills.iter();
        let mut segments = Vec::new();
        for segment in model_segments(request.pattern()).into_iter().filter(|s| *s != "/") {
            if segment == "**" {
                let count = counts.next().copied().unwrap_or(1);
                let fill = fills.next().copied().unwrap_or("a");
                segments.extend(std::iter::repeat_n(fill.to_owned(), count));
            } else {
                let mut text = String::new();
                for (index, part) in segment.split('*').enumerate() {
                    if index > 0 {
                        text.push_str(stars.next().map_or("", String::as_str));
                    }
                    text.push_str(part);
                }
                segments.push(text);
            }
        }
        let concrete = path(segments, request.pattern().starts_with('/'));
        // Empty stars can collapse a segment away; only targets the request
        // really matches say anything about the grant.
        if !concrete.is_empty() && model_match(&model_segments(request.pattern()), &model_segments(&concrete)) {
            prop_assert!(grant.matches("files", "read", &concrete), "`{}` covers `{}` but not `{}`", grant, request, concrete);
        }
    }

    #[test]
    fn covers_is_complete(granted in pattern(), requested in pattern()) {
        let grant = scope_of(&granted)?;
        let request = scope_of(&requested)?;
        if grant.covers(&request) {
            return Ok(());
        }
        let doubles = model_segments(request.pattern()).iter().filter(|s| **s == "**").count();
        let limit = model_segments(grant.pattern()).len() + 1;
        let mut witnesses = Vec::new();
        let leading_any = model_segments(request.pattern()).first() == Some(&"**");
        let mut counts = vec![0; doubles];
        loop {
            let concrete = instantiate(request.pattern(), "z", "z", &counts);
            if leading_any {
                // A leading `**` may also start with the root.
                witnesses.push(format!("/{concrete}"));
            }
            if !concrete.is_empty() {
                witnesses.push(concrete);
            }
            // Next combination of `**` lengths, in 0..=limit each.
            let Some(position) = counts.iter().position(|&c| c < limit) else { break };
            counts[position] += 1;
            for count in &mut counts[..position] {
                *count = 0;
            }
        }
        let witness = witnesses
            .iter()
            .find(|w| {
                model_match(&model_segments(request.pattern()), &model_segments(w))
                    && !grant.matches("files", "read", w)
            });
        prop_assert!(witness.is_some(), "`{}` does not cover `{}` but matches all of {:?}", grant, request, witnesses);
    }

    #[test]
    fn covers_is_reflexive_and_agrees_with_matches(granted in pattern(), concrete in target()) {
        let grant = scope_of(&granted)?;
        prop_assert!(grant.covers(&grant));
        let request = scope_of(&concrete)?;
        prop_assert_eq!(grant.covers(&request), grant.matches("files", "read", &concrete));
    }

    #[test]
    fn normalisation_is_idempotent(
        parts in prop::collection::vec(
            prop::sample::select(vec![
                "a", "B", "/", "//", ".", "..", "...", "x.", "%2e", "%2F", "%41", "%", "*", "**",
                "http://", "HTTPS://", "Host", ":80", ":443", "@", "?", "#", ":", "\\", "\u{0}", " ", "é",
            ]),
            0..8,
        ),
    ) {
        let text = format!("files:read:{}", parts.concat());
        if let Ok(scope) = parse(&text) {
            let again = parse(&scope.to_string()).map_err(|e| TestCaseError::fail(format!("`{text}` -> {e}")))?;
            prop_assert_eq!(again.to_string(), scope.to_string());
            prop_assert_eq!(again, scope);
        }
    }

    #[test]
    fn parsing_never_panics(text in any::<String>(), target in any::<String>()) {
        if let Ok(scope) = parse(&text) {
            let _ = scope.matches("files", "read", &target);
            prop_assert_eq!(parse(&scope.to_string()), Ok(scope));
        }
        let _ = parse(&format!("files:read:{target}"));
    }
}
