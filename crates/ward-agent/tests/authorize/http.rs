//! URLs: RFC 3986 normalisation before matching.

use std::collections::HashSet;

use ward_agent::resource::Protected;

use crate::{assert_allowed, assert_denied, decide, feature, normal, target};

#[track_caller]
fn normalises(input: &str, expected: &str) {
    assert_eq!(
        target("http:get", input, None).as_deref(),
        Ok(expected),
        "{input}"
    );
}

#[track_caller]
fn refuses(input: &str, needle: &str) {
    let error = target("http:get", input, None).unwrap_err();
    assert!(error.contains(needle), "{input}: {error}");
}

#[test]
fn case_default_ports_and_dot_segments_are_normalised() {
    normalises(
        "HTTPS://API.Example.COM:443/a/./b/../c",
        "https://api.example.com/a/c",
    );
    normalises("http://x.example:80", "http://x.example/");
    normalises("https://x.example:8443/v1", "https://x.example:8443/v1");
    normalises("https://x.example/a/%2e%2E/b", "https://x.example/b");
    normalises("https://x.example/a#fragment", "https://x.example/a");
}

#[test]
fn percent_escapes_are_normalised() {
    normalises("https://x.example/%41%7e%2d", "https://x.example/A~-");
    normalises("https://x.example/caf%c3%a9", "https://x.example/caf%C3%A9");
    normalises(
        "https://x.example/x?q=%7e&r=%2f",
        "https://x.example/x?q=~&r=%2F",
    );
    normalises("https://x.example/a[1]", "https://x.example/a%5B1%5D");
    refuses("https://x.example/100%", "does not start a percent-escape");
}

#[test]
fn an_encoded_slash_never_matches_a_grant_for_a_real_slash() {
    let flags = HashSet::new();
    let grants = vec![feature(
        "api",
        &[
            "http:get:https://x.example/a/b".to_owned(),
            "http:get:https://x.example/**".to_owned(),
        ],
    )];
    let decision = decide(
        "http:get",
        "https://x.example/a%2Fb",
        &Protected::new(&[]),
        &grants,
        &normal(&flags),
    );
    assert_denied(&decision, "%2F");
    assert_eq!(decision.resource, "https://x.example/a%2Fb");
    assert!(
        decide(
            "http:get",
            "https://x.example/a/b",
            &Protected::new(&[]),
            &grants,
            &normal(&flags)
        )
        .allow
    );
}

#[test]
fn an_escaped_unreserved_character_matches_its_plain_spelling() {
    let flags = HashSet::new();
    let grants = vec![feature(
        "api",
        &["http:get:https://api.example.com/v1/A".to_owned()],
    )];
    let decision = decide(
        "http:get",
        "https://API.example.com:443/v1/%41?page=2",
        &Protected::new(&[]),
        &grants,
        &normal(&flags),
    );
    assert_allowed(&decision, "http:get:https://api.example.com/v1/A");
    assert_eq!(decision.resource, "https://api.example.com/v1/A?page=2");
    assert!(
        !decide(
            "http:get",
            "https://api.example.com/v1/a",
            &Protected::new(&[]),
            &grants,
            &normal(&flags)
        )
        .allow
    );
}

#[test]
fn user_info_other_schemes_and_ambiguous_urls_are_refused() {
    refuses("https://user:secret@x.example/", "user info");
    refuses("https://user@x.example/", "user info");
    refuses("https://@x.example/", "user info");
    refuses("javascript:alert(1)", "scheme `javascript`");
    refuses("file:///etc/passwd", "scheme `file`");
    refuses("https:x.example/a", "scheme://host");
    refuses("https:///x.example/a", "scheme://host");
    refuses("https://x.example\\@evil.example/", "`\\`");
    refuses("https://x.example/a b", "whitespace");
    refuses("https://[::1]/", "IPv6");
}

#[test]
fn international_host_names_become_punycode() {
    normalises("https://Bücher.example/", "https://xn--bcher-kva.example/");
    let flags = HashSet::new();
    let grants = vec![feature(
        "api",
        &["http:get:https://xn--bcher-kva.example/**".to_owned()],
    )];
    assert!(
        decide(
            "http:get",
            "https://bücher.example/x",
            &Protected::new(&[]),
            &grants,
            &normal(&flags)
        )
        .allow
    );
}
