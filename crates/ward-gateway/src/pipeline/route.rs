//! Which route a request is for: path hygiene (nothing ambiguous is ever
//! normalised into another route), the allowlist of routes and methods,
//! and the scope the route's template makes of the path. Knows nothing
//! about tokens, bodies or the upstream.

use http::{Method, StatusCode};
use std::collections::HashMap;
use ward_model::scope::Scope;

use super::response::shown;
use crate::config::{Route, Segment, substitute};
use crate::error::GatewayError;

/// The route a request is for.
pub struct Matched {
    /// Its index in the configuration's routes.
    pub index: usize,
    /// The values of its path parameters, by name.
    pub params: HashMap<String, String>,
}

/// The route `path` and `method` are for: 404 when no route's path
/// matches, 405 (with `Allow`) when one does for other methods.
pub fn find(routes: &[Route], path: &str, method: &Method) -> Result<Matched, GatewayError> {
    let segments = clean_path(path)?;
    let mut allowed: Vec<String> = Vec::new();
    for (index, route) in routes.iter().enumerate() {
        let Some(params) = match_template(&route.segments, &segments)? else {
            continue;
        };
        if route.config.methods.iter().any(|m| m == method.as_str()) {
            return Ok(Matched { index, params });
        }
        allowed.extend(route.config.methods.iter().cloned());
    }
    if allowed.is_empty() {
        return Err(GatewayError::new(
            StatusCode::NOT_FOUND,
            "no_route",
            "no route of this gateway matches the path",
        ));
    }
    let mut error = GatewayError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "method `{method}` is not allowed here; use {}",
            allowed.join(", ")
        ),
    );
    error.headers.push(("allow", allowed.join(", ")));
    Err(error)
}

/// Splits a request path into segments, refusing anything ambiguous:
/// `.` and `..` segments, encoded `/`, `.`, `\`, `%` and NUL, backslashes
/// and empty segments. The path is never rewritten.
fn clean_path(path: &str) -> Result<Vec<&str>, GatewayError> {
    let refuse = |why: &str| {
        GatewayError::bad_request(
            "invalid_path",
            format!("the request path is ambiguous ({why}); send the canonical path"),
        )
    };
    let Some(rest) = path.strip_prefix('/') else {
        return Err(refuse("it does not start with `/`"));
    };
    if path.contains('\\') {
        return Err(refuse("it contains `\\`"));
    }
    let lower = path.to_ascii_lowercase();
    for encoded in ["%2f", "%2e", "%5c", "%25", "%00"] {
        if lower.contains(encoded) {
            return Err(refuse("it contains an encoded `/`, `.`, `\\`, `%` or NUL"));
        }
    }
    let mut decoded = Vec::with_capacity(path.len());
    let mut bytes = path.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'%' {
            decoded.push(byte);
            continue;
        }
        let escaped = match (bytes.next(), bytes.next()) {
            (Some(high), Some(low)) => hex_digit(high).zip(hex_digit(low)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        let Some(escaped) = escaped else {
            return Err(refuse("it has a `%` not followed by two hex digits"));
        };
        // RFC 3986 §2.3: `%67` is `g`, so it could spell a scope two ways.
        if escaped.is_ascii_alphanumeric() || matches!(escaped, b'-' | b'_' | b'~') {
            return Err(refuse("it percent-encodes an unreserved character"));
        }
        if escaped.is_ascii_control() {
            return Err(refuse("it encodes a control character"));
        }
        decoded.push(escaped);
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(refuse("its escapes do not decode to UTF-8"));
    }
    let segments: Vec<&str> = rest.split('/').collect();
    for segment in &segments {
        match *segment {
            "" => return Err(refuse("it has an empty segment")),
            "." | ".." => return Err(refuse("it has a `.` or `..` segment")),
            _ => {}
        }
    }
    Ok(segments)
}

/// Matches segments against a template; `Err` when a parameter's value is
/// not allowed in a scope.
fn match_template(
    template: &[Segment],
    segments: &[&str],
) -> Result<Option<HashMap<String, String>>, GatewayError> {
    if template.len() != segments.len() {
        return Ok(None);
    }
    let mut params = HashMap::new();
    for (part, segment) in template.iter().zip(segments) {
        match part {
            Segment::Literal(text) if text == segment => {}
            Segment::Literal(_) => return Ok(None),
            Segment::Param(name) => {
                params.insert(name.clone(), (*segment).to_owned());
            }
        }
    }
    for value in params.values() {
        let ok = value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'~' | b'@' | b'+' | b',' | b'=' | b'%' | b':'
                )
        });
        if !ok {
            return Err(GatewayError::bad_request(
                "invalid_path",
                format!(
                    "path segment `{}` has characters a route parameter may not hold",
                    shown(value)
                ),
            ));
        }
    }
    Ok(Some(params))
}

/// The scope the route's template makes with the path's parameters.
pub fn required_scope(
    route: &Route,
    params: &HashMap<String, String>,
) -> Result<Scope, GatewayError> {
    // `,` separates scopes in lists, so a scope spells it `%2C`.
    let text = substitute(&route.config.scope, |name| {
        params.get(name).map(|value| value.replace(',', "%2C"))
    })
    .map_err(|_| {
        GatewayError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "gateway_misconfigured",
            "the route's scope template is broken",
        )
    })?;
    text.parse::<Scope>().map_err(|e| {
        GatewayError::bad_request(
            "invalid_path",
            format!("the path does not make a valid scope: {}", e.reason),
        )
    })
}

/// The value of one hex digit, if it is one.
pub fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
    use super::*;

    #[test]
    fn ambiguous_paths_are_refused_not_resolved() {
        for path in [
            "/a/../b",
            "/a/./b",
            "/a//b",
            "/a/%2e%2e/b",
            "/a%2Fb",
            "/a/%5c",
            "/a\\b",
            "/a/b/",
            "/exec/%67it",
            "/a/%7E",
            "/a/%C0%AE",
            "/a/%ff",
            "/a/%0a",
            "/a/%zz",
            "/a/%4",
            "/a/%+1",
        ] {
            assert_eq!(clean_path(path).unwrap_err().code, "invalid_path", "{path}");
        }
        assert_eq!(clean_path("/a/b.c/d").unwrap(), vec!["a", "b.c", "d"]);
        assert_eq!(
            clean_path("/a/%C3%A9t%C3%A9").unwrap(),
            vec!["a", "%C3%A9t%C3%A9"]
        );
        assert_eq!(clean_path("/a/x%20y").unwrap(), vec!["a", "x%20y"]);
    }
}
