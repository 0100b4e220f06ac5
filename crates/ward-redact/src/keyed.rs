//! The hand-written keyed detectors: PEM private keys, JWTs, credentials in
//! URLs and `Bearer` credentials. Each runs on one keyword hit, reads only
//! the text around it, pushes what it finds and returns the offset up to
//! which later hits of the same keyword are already covered.

use memchr::memmem;

use crate::{Finding, Kind, MARKER_PREFIX};

/// The most bytes a URL's authority or a bearer credential is read for;
/// a longer one is redacted up to here and the rest is left to the
/// high-entropy scanner.
const MAX_TOKEN: usize = 16 * 1024;

/// The most bytes of an assigned value that are read; a longer value is
/// redacted up to here.
pub(crate) const MAX_VALUE: usize = 64 * 1024;

/// Whether `byte` can be part of an API key (`[A-Za-z0-9_-]`).
pub(crate) fn is_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// Whether `byte` can be part of a base64url part of a JWT.
fn is_b64url(byte: u8) -> bool {
    is_key_byte(byte)
}

/// A PEM block whose label ends in `PRIVATE KEY` (or `PGP PRIVATE KEY
/// BLOCK`), from `-----BEGIN` through its `-----END …-----` line, or to the
/// end of the text when there is none.
pub(crate) fn private_key(text: &str, start: usize, out: &mut Vec<Finding>) -> usize {
    let bytes = text.as_bytes();
    let after_begin = start + "-----BEGIN".len();
    let Some(head) = bytes.get(after_begin..) else {
        return after_begin;
    };
    // The label: up to the closing dashes, on the same line, short.
    let head = &head[..head.len().min(80)];
    let Some(close) = memmem::find(head, b"-----") else {
        return after_begin;
    };
    let label = &head[..close];
    if label.contains(&b'\n') || !contains_ignore_case(label, b"PRIVATE KEY") {
        return after_begin;
    }
    let body = after_begin + close + 5;
    let end = match memmem::find(&bytes[body..], b"-----END") {
        Some(at) => {
            let end_line = body + at + "-----END".len();
            let tail = &bytes[end_line..bytes.len().min(end_line + 80)];
            match memmem::find(tail, b"-----") {
                Some(close) => end_line + close + 5,
                None => end_line,
            }
        }
        None => bytes.len(),
    };
    out.push(Finding {
        kind: Kind::PrivateKey,
        start,
        end,
    });
    end
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// A compact JWS or JWE: `eyJ` + base64url, then at least two more
/// `.`-separated base64url parts (the last may be empty: `alg: none`), or
/// exactly one more when it also starts with `eyJ` (an unsigned claim set).
pub(crate) fn jwt(text: &str, start: usize, out: &mut Vec<Finding>) -> usize {
    let bytes = text.as_bytes();
    let next = start + 3;
    if bytes.get(start..next) != Some(b"eyJ".as_slice())
        || (start > 0 && is_b64url(bytes[start - 1]))
    {
        return next;
    }
    let part = |from: usize| {
        let mut end = from;
        while end < bytes.len() && is_b64url(bytes[end]) {
            end += 1;
        }
        end
    };
    let first_end = part(start);
    if first_end - start < 10 {
        return first_end;
    }
    let mut end = first_end;
    let mut parts = 1;
    let mut second_is_json = false;
    while end < bytes.len() && bytes[end] == b'.' {
        let part_end = part(end + 1);
        if parts == 1 {
            second_is_json = bytes.get(end + 1..end + 4) == Some(b"eyJ".as_slice());
        }
        parts += 1;
        end = part_end;
    }
    while end < bytes.len() && bytes[end] == b'=' {
        end += 1;
    }
    if parts >= 3 || (parts == 2 && second_is_json) {
        out.push(Finding {
            kind: Kind::Jwt,
            start,
            end,
        });
    }
    end
}

/// The password in `scheme://user:password@host`: the userinfo ends at the
/// last `@` before the authority ends (`/`, `?`, `#` or a delimiter); the
/// password is what follows its first `:`.
pub(crate) fn url_credentials(
    text: &str,
    start: usize,
    end: usize,
    out: &mut Vec<Finding>,
) -> usize {
    let bytes = text.as_bytes();
    // A scheme: at least one letter right before `://`.
    if start == 0 || !bytes[start - 1].is_ascii_alphanumeric() {
        return end;
    }
    let limit = bytes.len().min(end.saturating_add(MAX_TOKEN));
    let mut at = None;
    let mut authority_end = end;
    while authority_end < limit {
        let byte = bytes[authority_end];
        if matches!(byte, b'/' | b'?' | b'#') || byte.is_ascii_whitespace() || byte == b'"' {
            break;
        }
        if byte == b'@' {
            at = Some(authority_end);
        }
        authority_end += 1;
    }
    let Some(at) = at else {
        return end;
    };
    let userinfo = &bytes[end..at];
    if let Some(colon) = memchr::memchr(b':', userinfo) {
        let password = end + colon + 1;
        if password < at && !bytes[password..at].starts_with(MARKER_PREFIX.as_bytes()) {
            out.push(Finding {
                kind: Kind::UrlCredentials,
                start: password,
                end: at,
            });
        }
    }
    at
}

/// The credential after `Bearer` (a word on its own, then spaces, `:` or
/// `=`): at least 16 characters, or 8 with a letter and a digit, so
/// `bearer instrument` in prose is left alone.
pub(crate) fn bearer(text: &str, start: usize, end: usize, out: &mut Vec<Finding>) -> usize {
    let bytes = text.as_bytes();
    if (start > 0 && bytes[start - 1].is_ascii_alphanumeric())
        || bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric())
    {
        return end;
    }
    let mut value = end;
    while value < bytes.len() && matches!(bytes[value], b' ' | b'\t' | b':' | b'=') {
        value += 1;
    }
    if value == end {
        return end;
    }
    let limit = bytes.len().min(value.saturating_add(MAX_TOKEN));
    let mut value_end = value;
    while value_end < limit
        && (bytes[value_end].is_ascii_alphanumeric()
            || matches!(
                bytes[value_end],
                b'.' | b'_' | b'~' | b'+' | b'/' | b'-' | b'='
            ))
    {
        value_end += 1;
    }
    let credential = &bytes[value..value_end];
    let letters = credential.iter().any(u8::is_ascii_alphabetic);
    let digits = credential.iter().any(u8::is_ascii_digit);
    if credential.len() >= 16 || (credential.len() >= 8 && letters && digits) {
        out.push(Finding {
            kind: Kind::ApiKey,
            start: value,
            end: value_end,
        });
    }
    value_end.max(end)
}
