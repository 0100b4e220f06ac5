//! Personal data without a keyword, found by single-pass byte scanners:
//! emails (from each `@`), payment card and phone numbers (groups of
//! digits), IBANs (two capitals and two digits at a word start).

use crate::{Finding, Kind};

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

fn is_local_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-')
}

/// Emails: `local@domain.tld` with a dot-atom local part, at least two
/// domain labels and an alphabetic top-level label of two or more letters.
/// `user:password@host` after `://` is a URL's userinfo, not an email.
pub(crate) fn emails(text: &str, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    for at in memchr::memchr_iter(b'@', bytes) {
        let mut start = at;
        while start > 0 && is_local_byte(bytes[start - 1]) && at - start < 64 {
            start -= 1;
        }
        while start < at && bytes[start] == b'.' {
            start += 1;
        }
        if start == at || (start > 0 && is_local_byte(bytes[start - 1])) {
            continue;
        }
        let mut end = at + 1;
        while end < bytes.len() && is_domain_byte(bytes[end]) && end - at < 256 {
            end += 1;
        }
        while end > at + 1 && matches!(bytes[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if !is_domain(&bytes[at + 1..end]) || in_url_userinfo(bytes, start) {
            continue;
        }
        out.push(Finding {
            kind: Kind::Email,
            start,
            end,
        });
    }
}

fn is_domain(domain: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty() || label.first() == Some(&b'-') || label.last() == Some(&b'-') {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
}

/// Whether the local part starting at `start` is a URL's user
/// (`scheme://user@`) or password (`scheme://user:password@`).
fn in_url_userinfo(bytes: &[u8], start: usize) -> bool {
    if bytes[..start].ends_with(b"://") {
        return true;
    }
    if start == 0 || bytes[start - 1] != b':' {
        return false;
    }
    let mut at = start - 1;
    while at >= 3 && !bytes[at - 1].is_ascii_whitespace() && start - at < 512 {
        if &bytes[at - 3..at] == b"://" {
            return true;
        }
        at -= 1;
    }
    false
}

/// One run of digits in a cluster.
#[derive(Clone, Copy, Debug)]
struct Group {
    start: usize,
    end: usize,
    /// Right after a `+`.
    plus: bool,
    /// In parentheses.
    paren: bool,
    /// The separator before the next group (`b' '`, `b'-'`, `b'.'`), 0 for the last.
    sep: u8,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
    /// Where the group's text starts, with its `+` or `(`.
    fn text_start(&self) -> usize {
        self.start - usize::from(self.plus || self.paren)
    }
    /// Where the group's text ends, with its `)`.
    fn text_end(&self) -> usize {
        self.end + usize::from(self.paren)
    }
}

/// The bytes a number can start with: a digit, `+` or `(`.
static NUMBER_START: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_digit() || b == b'+' || b == b'(';
        byte += 1;
    }
    table
};

/// The most groups in a cluster; a longer cluster is cut and scanning
/// resumes after it (a card or phone has at most 7).
const MAX_GROUPS: usize = 12;

/// Card and phone numbers: clusters of digit groups joined by single
/// spaces, dashes or dots (a group may follow a `+` or sit in
/// parentheses), starting after a non-word byte. Every window of groups
/// is checked, so a number next to other numbers is still found.
pub(crate) fn numbers(text: &str, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    let mut groups: Vec<Group> = Vec::with_capacity(MAX_GROUPS);
    let mut at = 0;
    while at < bytes.len() {
        // Skip to the next digit, `+` or `(`.
        while at < bytes.len() && !NUMBER_START[usize::from(bytes[at])] {
            at += 1;
        }
        if at == bytes.len() {
            break;
        }
        if at > 0 && is_word_byte(bytes[at - 1]) {
            at += 1;
            continue;
        }
        groups.clear();
        let end = cluster(bytes, at, &mut groups);
        if !groups.is_empty() && !after_iban_head(bytes, at) {
            // A cluster glued to a word (`555-1234abc`, a date before `T`)
            // loses its last group; a closing `)` is not glue.
            if bytes.get(end).is_some_and(|&b| is_word_byte(b))
                && !groups.last().is_some_and(|g| g.paren)
            {
                groups.pop();
            }
            // Fewer than 9 digits is neither a phone nor a card.
            if groups.iter().map(Group::len).sum::<usize>() >= 9 {
                cards(bytes, &groups, out);
                phones(bytes, &groups, out);
            }
        }
        at = end.max(at + 1);
    }
}

/// Whether the cluster at `at` follows an IBAN's head (`DE89 `): the digits
/// of an IBAN, valid or not, are neither a phone nor a card.
fn after_iban_head(bytes: &[u8], at: usize) -> bool {
    at >= 5
        && bytes[at - 1] == b' '
        && bytes[at - 5].is_ascii_uppercase()
        && bytes[at - 4].is_ascii_uppercase()
        && bytes[at - 3].is_ascii_digit()
        && bytes[at - 2].is_ascii_digit()
        && (at == 5 || !bytes[at - 6].is_ascii_alphanumeric())
}

/// Reads the cluster starting at `at` into `groups`; returns where it ends.
fn cluster(bytes: &[u8], mut at: usize, groups: &mut Vec<Group>) -> usize {
    loop {
        let plus = bytes.get(at) == Some(&b'+');
        let paren = bytes.get(at) == Some(&b'(');
        let start = at + usize::from(plus || paren);
        let mut end = start;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        if end == start || (paren && bytes.get(end) != Some(&b')')) {
            return groups.last().map_or(at + 1, |g| g.text_end());
        }
        let text_end = end + usize::from(paren);
        groups.push(Group {
            start,
            end,
            plus,
            paren,
            sep: 0,
        });
        if groups.len() == MAX_GROUPS {
            return text_end;
        }
        // `(555) 123` or `(555)123`: the paren is its own separator.
        let sep = match bytes.get(text_end) {
            Some(&b) if matches!(b, b' ' | b'-' | b'.') => b,
            _ if paren => b' ',
            _ => return text_end,
        };
        let next = text_end + usize::from(bytes.get(text_end) == Some(&sep));
        let continues = match bytes.get(next) {
            Some(b) if b.is_ascii_digit() => true,
            Some(b'(') => sep == b' ',
            _ => false,
        };
        if !continues {
            return text_end;
        }
        if let Some(last) = groups.last_mut() {
            last.sep = sep;
        }
        at = next;
    }
}

/// The digits of `groups` in order.
fn digits<'a>(bytes: &'a [u8], groups: &'a [Group]) -> impl DoubleEndedIterator<Item = u8> + 'a {
    groups
        .iter()
        .flat_map(move |g| bytes[g.start..g.end].iter().map(|d| d - b'0'))
}

/// Whether the separators between `groups` are all `sep`-like (one kind).
fn uniform(groups: &[Group]) -> Option<u8> {
    let (_, inner) = groups.split_last()?;
    let first = inner.first().map_or(0, |g| g.sep);
    inner.iter().all(|g| g.sep == first).then_some(first)
}

/// Card numbers: 13 to 19 digits starting with 2 to 6 that pass Luhn, one
/// group, or a first group of 4, middle groups of 3 to 6 and a last of 1
/// to 6 (`4000 1000 0000 5`), split by spaces or by dashes.
fn cards(bytes: &[u8], groups: &[Group], out: &mut Vec<Finding>) {
    for a in 0..groups.len() {
        let mut total = 0;
        for b in a..groups.len() {
            total += groups[b].len();
            if total > 19 {
                break;
            }
            let window = &groups[a..=b];
            // A parenthesised group is a phone's area code beside others,
            // but a card number on its own: `(4000000000000002)`.
            if total < 13 || (window.len() > 1 && window.iter().any(|g| g.paren)) {
                continue;
            }
            let (last, middle) = window.split_last().unwrap_or((&window[0], &[]));
            let shaped = window.len() == 1
                || (window[0].len() == 4
                    && middle.iter().skip(1).all(|g| (3..=6).contains(&g.len()))
                    && (1..=6).contains(&last.len())
                    && matches!(uniform(window), Some(b' ' | b'-')));
            let first = bytes[window[0].start];
            if shaped && (b'2'..=b'6').contains(&first) && luhn(digits(bytes, window)) {
                out.push(Finding {
                    kind: Kind::CardNumber,
                    start: window[0].start,
                    end: window[window.len() - 1].end,
                });
            }
        }
    }
}

/// The Luhn check over `digits` (most significant first).
pub(crate) fn luhn(digits: impl DoubleEndedIterator<Item = u8>) -> bool {
    let mut any = false;
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| {
            any = true;
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    any && sum.is_multiple_of(10)
}

/// Phone numbers, 9 to 15 digits: after `+` (any separators), with an area
/// code in parentheses, North American `555-123-4567` / `555.123.4567`
/// (optionally after a `1`), or national with a trunk `0` in groups split
/// by spaces or dashes (`030 1234 5678`, `07700 900123`).
fn phones(bytes: &[u8], groups: &[Group], out: &mut Vec<Finding>) {
    for a in 0..groups.len() {
        let mut total = 0;
        for b in a..groups.len() {
            total += groups[b].len();
            if total > 15 {
                break;
            }
            let window = &groups[a..=b];
            if total < 9 {
                continue;
            }
            let lens = |expected: &[usize]| {
                window.len() == expected.len()
                    && window.iter().zip(expected).all(|(g, &len)| g.len() == len)
            };
            let first = &window[0];
            let plus = first.plus && window[1..].iter().all(|g| !g.plus);
            let area_code = first.paren && first.len() == 3 && window.len() >= 2;
            let nanp = (lens(&[3, 3, 4]) || lens(&[1, 3, 3, 4]))
                && matches!(uniform(window), Some(b'-' | b'.'));
            let trunk = bytes[first.start] == b'0'
                && (2..=5).contains(&first.len())
                && window.len() >= 2
                && total <= 13
                && matches!(uniform(window), Some(b' ' | b'-'));
            let plain = !window.iter().any(|g| g.plus || g.paren);
            if plus || area_code || (plain && (nanp || trunk)) {
                out.push(Finding {
                    kind: Kind::Phone,
                    start: first.text_start(),
                    end: window[window.len() - 1].text_end(),
                });
            }
        }
    }
}

/// IBAN lengths by country (the ISO 13616 registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

/// The IBAN length of a country code, if it has IBANs.
pub(crate) fn iban_length(country: &[u8]) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(code, _)| code.as_slice() == country)
        .map(|&(_, len)| len)
}

/// IBANs: a country code with IBANs, two check digits and the country's
/// number of uppercase letters and digits, compact or with single spaces,
/// at word boundaries, valid mod 97.
pub(crate) fn ibans(text: &str, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    if bytes.len() < 15 {
        return;
    }
    let mut chars = [0u8; 34];
    let last = bytes.len() - 3;
    let mut next = 0;
    while let Some(offset) = bytes[next..last].iter().position(u8::is_ascii_uppercase) {
        let at = next + offset;
        next = at + 1;
        if !(bytes[at + 1].is_ascii_uppercase()
            && bytes[at + 2].is_ascii_digit()
            && bytes[at + 3].is_ascii_digit())
            || (at > 0 && bytes[at - 1].is_ascii_alphanumeric())
        {
            continue;
        }
        let Some(length) = iban_length(&bytes[at..at + 2]) else {
            continue;
        };
        let mut count = 0;
        let mut end = at;
        while count < length && end < bytes.len() {
            let byte = bytes[end];
            if byte.is_ascii_uppercase() || byte.is_ascii_digit() {
                chars[count] = byte;
                count += 1;
                end += 1;
            } else if byte == b' '
                && count > 0
                && bytes
                    .get(end + 1)
                    .is_some_and(|b| b.is_ascii_alphanumeric())
            {
                end += 1;
            } else {
                break;
            }
        }
        if count == length
            && !bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric())
            && mod97(&chars[..length]) == 1
        {
            out.push(Finding {
                kind: Kind::Iban,
                start: at,
                end,
            });
        }
    }
}

/// The IBAN remainder: the first four characters moved to the end,
/// letters as 10 to 35, the number mod 97.
pub(crate) fn mod97(iban: &[u8]) -> u32 {
    let (head, tail) = iban.split_at(4.min(iban.len()));
    let mut remainder = 0u32;
    for &c in tail.iter().chain(head) {
        let value = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c.to_ascii_uppercase() - b'A') + 10
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_mod97_agree_with_known_numbers() {
        let d = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>().into_iter();
        assert!(luhn(d("4111111111111111")));
        assert!(luhn(d("378282246310005")));
        assert!(!luhn(d("4111111111111112")));
        let mut found = Vec::new();
        numbers(" (4000000000000002)A", &mut found);
        assert!(
            found.iter().any(|f| f.kind == Kind::CardNumber),
            "a card number in parentheses"
        );
        assert_eq!(mod97(b"DE89370400440532013000"), 1);
        assert_eq!(mod97(b"GB82WEST12345698765432"), 1);
        assert_ne!(mod97(b"DE89370400440532013001"), 1);
    }
}
