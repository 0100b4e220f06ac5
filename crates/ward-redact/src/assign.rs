//! Secret assignments: the value after a sensitive name in `NAME=value`,
//! `NAME: value`, `"name": "value"`, `export NAME=value`, `--name value`,
//! `--name=value`, `?token=value&…`, `Authorization: Bearer value` and
//! escaped JSON (`\"password\":\"value\"`).

use crate::keyed::MAX_VALUE;
use crate::names::is_sensitive_name;
use crate::{Finding, Kind, MARKER_PREFIX};

/// Whether `byte` can be part of a name.
fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.' | b'$')
}

/// Authorization schemes whose credential is the next word.
const SCHEMES: &[&str] = &[
    "bearer",
    "basic",
    "dpop",
    "token",
    "digest",
    "negotiate",
    "ntlm",
    "apikey",
];

/// Names whose unquoted value runs to the end of the line or a quote
/// (headers whose values hold several secrets: `Cookie: a=1; b=2`).
const WHOLE_LINE: &[&str] = &[
    "cookie",
    "set-cookie",
    "authorization",
    "proxy-authorization",
];

/// Values that are not secrets.
const NOT_VALUES: &[&str] = &["null", "true", "false", "none", "nil", "undefined"];

/// Runs on a sensitive-name keyword at `start..end`: reads the whole name
/// around it and, when it is sensitive and followed by a separator and a
/// value, pushes the value. Returns where the name, or the value when
/// there is one, ends: keywords inside a value already redacted are not
/// read again.
pub(crate) fn assignment(text: &str, start: usize, end: usize, out: &mut Vec<Finding>) -> usize {
    let bytes = text.as_bytes();
    let mut name_start = start;
    while name_start > 0 && is_name_byte(bytes[name_start - 1]) && start - name_start < 128 {
        name_start -= 1;
    }
    let mut name_end = end;
    while name_end < bytes.len() && is_name_byte(bytes[name_end]) && name_end - end < 128 {
        name_end += 1;
    }
    // A sentence's full stop is not part of the name.
    while name_end > end && bytes[name_end - 1] == b'.' {
        name_end -= 1;
    }
    let Some(name) = text.get(name_start..name_end) else {
        return name_end;
    };
    if !is_sensitive_name(name) {
        return name_end;
    }
    match value_after(text, name_start, name_end, name) {
        Some((start, end)) => {
            out.push(Finding {
                kind: Kind::SecretAssignment,
                start,
                end,
            });
            end.max(name_end)
        }
        None => name_end,
    }
}

/// The byte range of the value that follows the name at
/// `name_start..name_end`, if it is assigned one.
fn value_after(
    text: &str,
    name_start: usize,
    name_end: usize,
    name: &str,
) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let is_flag = name.starts_with('-');
    let mut at = name_end;
    // The closing quote of a quoted name: `"password":`, `\"password\":`.
    let quote_before = name_start.checked_sub(1).map(|i| bytes[i]);
    if matches!(quote_before, Some(b'"' | b'\'')) {
        if bytes.get(at) == quote_before.as_ref() {
            at += 1;
        } else if bytes.get(at) == Some(&b'\\') && bytes.get(at + 1) == quote_before.as_ref() {
            at += 2;
        }
    }
    let gap_start = at;
    skip_blanks(bytes, &mut at);
    let separated = match bytes.get(at) {
        Some(b'=') => {
            // `token == expected` compares; `TOKEN==x` assigns `=x`.
            if bytes.get(at + 1) == Some(&b'=')
                && bytes.get(at + 2).is_none_or(u8::is_ascii_whitespace)
            {
                return None;
            }
            at += if bytes.get(at + 1) == Some(&b'>') {
                2
            } else {
                1
            };
            true
        }
        Some(b':') => {
            if bytes.get(at + 1) == Some(&b':') {
                return None;
            }
            at += if bytes.get(at + 1) == Some(&b'=') {
                2
            } else {
                1
            };
            true
        }
        // `--password value`: a flag's value may follow after blanks alone.
        Some(_) if is_flag && at > gap_start => bytes.get(at) != Some(&b'-'),
        _ => false,
    };
    if !separated {
        return None;
    }
    skip_blanks(bytes, &mut at);
    let (start, end) = match bytes.get(at)? {
        b'"' | b'\'' | b'`' => {
            let quote = bytes[at];
            let start = at + 1;
            (start, closing_quote(bytes, start, quote))
        }
        b'\\' if matches!(bytes.get(at + 1), Some(b'"' | b'\'')) => {
            let start = at + 2;
            let end = memchr::memmem::find(&bytes[start..], &[b'\\', bytes[at + 1]])
                .map_or_else(|| line_end(bytes, start), |i| start + i);
            (start, end)
        }
        _ => unquoted(bytes, at, name),
    };
    let value = text.get(start..end)?;
    if value.is_empty()
        || value.starts_with(MARKER_PREFIX)
        || NOT_VALUES.iter().any(|v| v.eq_ignore_ascii_case(value))
        || value.bytes().all(|b| b == b'*')
    {
        return None;
    }
    Some((start, end))
}

fn skip_blanks(bytes: &[u8], at: &mut usize) {
    while bytes.get(*at).is_some_and(|b| matches!(b, b' ' | b'\t')) {
        *at += 1;
    }
}

/// Where the quoted value starting at `start` ends: its unescaped closing
/// quote, else the end of the line.
fn closing_quote(bytes: &[u8], start: usize, quote: u8) -> usize {
    let limit = bytes.len().min(start.saturating_add(MAX_VALUE));
    let mut at = start;
    while at < limit {
        match bytes[at] {
            b'\\' => at += 2,
            b if b == quote => return at,
            b'\n' if quote != b'`' => return at,
            _ => at += 1,
        }
    }
    at.min(limit)
}

fn line_end(bytes: &[u8], start: usize) -> usize {
    let limit = bytes.len().min(start.saturating_add(MAX_VALUE));
    memchr::memchr2(b'\n', b'\r', &bytes[start..limit]).map_or(limit, |i| start + i)
}

/// An unquoted value: one word, after an authorization scheme the word
/// after it, and for cookie and authorization headers the rest of the line.
fn unquoted(bytes: &[u8], at: usize, name: &str) -> (usize, usize) {
    let word_end = |from: usize| {
        let limit = bytes.len().min(from.saturating_add(MAX_VALUE));
        let mut end = from;
        while end < limit
            && !bytes[end].is_ascii_whitespace()
            && !matches!(
                bytes[end],
                b',' | b';' | b'&' | b'"' | b'\'' | b'`' | b')' | b']' | b'}' | b'<' | b'>'
            )
        {
            end += 1;
        }
        end
    };
    let mut start = at;
    let first_end = word_end(at);
    let first = &bytes[at..first_end];
    if SCHEMES
        .iter()
        .any(|s| s.as_bytes().eq_ignore_ascii_case(first))
        && bytes.get(first_end) == Some(&b' ')
    {
        start = first_end + 1;
    }
    let whole_line = WHOLE_LINE.iter().any(|h| h.eq_ignore_ascii_case(name));
    let end = if whole_line {
        let line = line_end(bytes, start);
        memchr::memchr3(b'"', b'\'', b'`', &bytes[start..line]).map_or(line, |i| start + i)
    } else {
        word_end(start)
    };
    (start, end.max(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let lower = text.to_ascii_lowercase();
        for keyword in crate::names::KEYWORDS {
            for (at, _) in lower.match_indices(keyword) {
                assignment(text, at, at + keyword.len(), &mut out);
            }
        }
        let mut found: Vec<&str> = out.iter().map(|f| &text[f.start..f.end]).collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    #[test]
    fn values_of_sensitive_names_are_found_in_every_syntax() {
        for (text, value) in [
            ("DB_PASSWORD=hunter22", "hunter22"),
            ("export GITHUB_TOKEN=abc123def", "abc123def"),
            ("password: correct horse", "correct"),
            (
                r#"{"password": "correct horse battery"}"#,
                "correct horse battery",
            ),
            (r#"{\"password\":\"s3cr3t\"}"#, "s3cr3t"),
            ("--password hunter22 --verbose", "hunter22"),
            ("--token=abc.def", "abc.def"),
            ("https://x/cb?access_token=zzz&state=1", "zzz"),
            ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
            ("Cookie: a=1; b=2", "a=1; b=2"),
            ("client_secret := 'q w e'", "q w e"),
            ("api_key => k1", "k1"),
        ] {
            assert_eq!(values(text), vec![value], "{text}");
        }
    }

    #[test]
    fn non_assignments_and_placeholders_are_left_alone() {
        for text in [
            "the password was reset",
            "token == expected",
            "auth::token::Issuer",
            "password: null",
            "token_id: tok_01jd8x5k2m3n4p5q6r7s8t9v0w",
            "password=[redacted:secret]",
            "password: ****",
            "--password --verbose",
        ] {
            assert_eq!(values(text), Vec::<&str>::new(), "{text}");
        }
    }
}
