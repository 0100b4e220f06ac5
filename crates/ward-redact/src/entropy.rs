//! High-entropy tokens: runs of base64/base64url characters long enough to
//! be a key, random enough to not be words, and not shaped like the
//! digests and ids Ward itself writes.

use crate::{Finding, Kind};

/// The shortest run considered (a 128-bit secret in base64 is 22, with
/// padding 24; shorter random strings are too often ids).
pub(crate) const MIN_LEN: usize = 24;

/// The lowest Shannon entropy, in bits per character, of a secret. Random
/// base64 of 24 characters is above 3.6 in 99.9 % of draws; dates,
/// repeated characters and short-alphabet strings fall below.
pub(crate) const MIN_ENTROPY: f64 = 3.5;

/// The largest share of a run that may read as words, numbers or
/// digests. Random base64 has a median of about 15 %; identifiers, paths
/// and camelCase names 70 % to 100 %.
pub(crate) const MAX_COVERAGE: f64 = 0.7;

/// Entropy from which a run of 32 or more is a secret whatever its
/// coverage: random base64 of 40 characters is above 4.35 in 99.9 % of
/// draws, long identifiers and paths stay near 4.0 to 4.3.
pub(crate) const SURE_ENTROPY: f64 = 4.5;

/// The coverage up to which [`SURE_ENTROPY`] applies: above it the run is
/// mostly words and ids (a URL path with a Ward id in it), whose variety of
/// characters is not randomness.
pub(crate) const SURE_COVERAGE: f64 = 0.8;

/// Which bytes make up a run: `[A-Za-z0-9+/_-]`.
static RUN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'-');
        byte += 1;
    }
    table
};

fn is_run_byte(byte: u8) -> bool {
    RUN_BYTES[usize::from(byte)]
}

/// Pushes every run of at least [`MIN_LEN`] base64 characters (with any
/// `=` padding) that [`is_secret_like`].
pub(crate) fn scan(text: &str, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if !is_run_byte(bytes[at]) {
            at += 1;
            continue;
        }
        let start = at;
        while at < bytes.len() && is_run_byte(bytes[at]) {
            at += 1;
        }
        let mut end = at;
        while end < bytes.len() && bytes[end] == b'=' {
            end += 1;
        }
        if at - start >= MIN_LEN && is_secret_like(&bytes[start..at]) {
            out.push(Finding {
                kind: Kind::HighEntropy,
                start,
                end,
            });
        }
        at = end;
    }
}

/// Whether a run of base64 characters looks like a secret: at least
/// [`MIN_LEN`] long, not hexadecimal (with dashes: digests, commits, UUIDs,
/// trace ids), Shannon entropy at least [`MIN_ENTROPY`], and at most
/// [`MAX_COVERAGE`] of it reading as words, numbers, digests or ids (or,
/// from 32 characters, entropy of at least [`SURE_ENTROPY`] and coverage up
/// to [`SURE_COVERAGE`]).
pub(crate) fn is_secret_like(run: &[u8]) -> bool {
    if run.len() < MIN_LEN
        || run.iter().all(|&b| b.is_ascii_hexdigit() || b == b'-')
        || is_path_like(run)
    {
        return false;
    }
    // Coverage first: it is cheaper, and ids and words end here.
    let coverage = coverage(run);
    if coverage <= MAX_COVERAGE {
        entropy(run) >= MIN_ENTROPY
    } else {
        run.len() >= 32 && coverage <= SURE_COVERAGE && entropy(run) >= SURE_ENTROPY
    }
}

/// Whether `run` reads as a file path or URL path: three or more
/// `/`-separated segments, two of them whole lowercase words of 4 letters
/// or more (`claude`, `settings`), so a random directory name among them
/// (`/tmp/.tmpkbcJZ2/claude/settings`) does not make the path a secret.
/// Random base64 almost never has two such segments; a segment that is
/// secret-like on its own keeps the whole run secret-like.
fn is_path_like(run: &[u8]) -> bool {
    if !run.contains(&b'/') {
        return false;
    }
    let mut segments = 0;
    let mut words = 0;
    for segment in run.split(|&b| b == b'/').filter(|s| !s.is_empty()) {
        // A secret as one of the path's segments is still a secret.
        if segment.len() >= MIN_LEN && is_secret_like(segment) {
            return false;
        }
        segments += 1;
        if segment.len() >= 4
            && segment.iter().all(u8::is_ascii_lowercase)
            && is_word_shaped(segment)
        {
            words += 1;
        }
    }
    segments >= 3 && words >= 2
}

/// Shannon entropy of `run` in bits per byte.
pub(crate) fn entropy(run: &[u8]) -> f64 {
    // Runs are ASCII, so 128 counters; H = log2(n) - Σ c·log2(c) / n.
    let mut counts = [0u32; 128];
    for &b in run {
        counts[usize::from(b & 0x7f)] += 1;
    }
    let n = run.len() as f64;
    let sum: f64 = counts
        .iter()
        .filter(|&&c| c > 1)
        .map(|&c| {
            let c = f64::from(c);
            c * c.log2()
        })
        .sum();
    n.log2() - sum / n
}

/// The share of `run` that reads as something other than randomness. The
/// run is split at `-`, `_`, `/` and `+`; a segment counts whole when it is
/// all digits, all hexadecimal (4 or more), all capitals (2 or more), or
/// 26 Crockford base32 characters of one case (Ward's ids and ULIDs);
/// otherwise its word-shaped chunks count: `[A-Z]?[a-z]{3,}`, and when
/// longer than 4 only with a vowel (`aeiouy`) per 6 letters and no run of
/// more than 4 consonants (random letters rarely read like that).
pub(crate) fn coverage(run: &[u8]) -> f64 {
    let mut covered = 0usize;
    for segment in run.split(|&b| matches!(b, b'-' | b'_' | b'/' | b'+')) {
        let len = segment.len();
        if len == 0 {
            continue;
        }
        if segment.iter().all(u8::is_ascii_digit)
            || (len >= 4 && segment.iter().all(u8::is_ascii_hexdigit))
            || (len >= 2 && segment.iter().all(u8::is_ascii_uppercase))
            || is_ulid(segment)
        {
            covered += len;
            continue;
        }
        let mut at = 0;
        while at < len {
            if !segment[at].is_ascii_lowercase() {
                at += 1;
                continue;
            }
            let start = at;
            while at < len && segment[at].is_ascii_lowercase() {
                at += 1;
            }
            if at - start >= 3 {
                let capital = start > 0 && segment[start - 1].is_ascii_uppercase();
                let chunk = &segment[start - usize::from(capital)..at];
                if is_word_shaped(chunk) {
                    covered += chunk.len();
                }
            }
        }
    }
    covered as f64 / run.len() as f64
}

/// Whether a chunk of letters reads like a word: 4 letters or fewer, or a
/// vowel per 6 letters and at most 4 consonants in a row.
fn is_word_shaped(chunk: &[u8]) -> bool {
    if chunk.len() <= 4 {
        return true;
    }
    let mut vowels = 0;
    let mut consonants = 0;
    for &b in chunk {
        if matches!(
            b.to_ascii_lowercase(),
            b'a' | b'e' | b'i' | b'o' | b'u' | b'y'
        ) {
            vowels += 1;
            consonants = 0;
        } else {
            consonants += 1;
            if consonants > 4 {
                return false;
            }
        }
    }
    vowels * 6 >= chunk.len()
}

/// 26 Crockford base32 characters in one case: the random part of Ward's
/// ids (`agt_…`, `corr_…`) and of ULIDs.
fn is_ulid(segment: &[u8]) -> bool {
    let crockford = |b: u8, lower: bool| {
        b.is_ascii_digit()
            || (if lower {
                b.is_ascii_lowercase()
            } else {
                b.is_ascii_uppercase()
            } && !matches!(b.to_ascii_lowercase(), b'i' | b'l' | b'o' | b'u'))
    };
    segment.len() == 26
        && (segment.iter().all(|&b| crockford(b, true))
            || segment.iter().all(|&b| crockford(b, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*), so the measured
    /// rates are the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn string(&mut self, alphabet: &[u8], len: usize) -> Vec<u8> {
            (0..len)
                .map(|_| alphabet[((self.next() >> 32) % alphabet.len() as u64) as usize])
                .collect()
        }
    }

    const URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const STD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    fn miss_rate(alphabet: &[u8], len: usize) -> f64 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ len as u64);
        let draws = 20_000;
        let missed = (0..draws)
            .filter(|_| !is_secret_like(&rng.string(alphabet, len)))
            .count();
        missed as f64 / f64::from(draws)
    }

    #[test]
    fn random_base64_is_caught_at_the_documented_rates() {
        for alphabet in [URL, STD] {
            assert!(
                miss_rate(alphabet, 24) < 0.002,
                "24: {}",
                miss_rate(alphabet, 24)
            );
            assert!(
                miss_rate(alphabet, 32) < 0.0002,
                "32: {}",
                miss_rate(alphabet, 32)
            );
            for len in [40, 43, 64, 88] {
                assert_eq!(miss_rate(alphabet, len), 0.0, "{len}");
            }
        }
    }

    #[test]
    fn identifiers_paths_digests_and_ids_are_not_secret_like() {
        for run in [
            "AbstractSingletonProxyFactoryBean",
            "/home/alice/projects/ward/crates/ward-redact/src",
            "x86_64-unknown-linux-gnu",
            "HTTP_PROXY_AUTHORIZATION_HEADER",
            "getUserAccountSettingsByIdentifier",
            "ThisIsAVeryLongCamelCaseIdentifierName",
            "org/apache/commons/lang3/StringUtils",
            "com_github_ward_control_plane_v1",
            "SomeModule_Function_Name_With_Words",
            "node_modules/react-dom/index",
            "test_redact_catches_jwt_in_json_field_v2",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "123e4567-e89b-12d3-a456-426614174000",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "agt_01jd8x5k2m3n4p5q6r7s8t9v0w",
            "corr_01jd8x5k2m3n4p5q6r7s8t9v0w",
            "01JD8X5K2M3N4P5Q6R7S8T9V0W",
            "/v1/agents/agt_01jd8x5k2m3n4p5q6r7s8t9v0w/heartbeat",
            "repos/ward/commits/da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "/v1/events/123e4567-e89b-12d3-a456-426614174000/ack",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "1234567890123456789012345678",
            "tmpkbcJZ2/claude/settings",
            "home/alice/.cache/x8Kq2LmZ9pQ/build/output",
        ] {
            assert!(!is_secret_like(run.as_bytes()), "{run}");
        }
    }

    #[test]
    fn real_looking_secrets_are_secret_like() {
        for run in [
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "q0Vz3hX9-LmT2wKp_8sYdR4nB7cF1gJ6aE5uZ0oN3iM",
            "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEA",
            "aGVsbG8gd29ybGQgdGhpcyBpcyBhIHRlc3Q",
            // A token as a segment of a path is still found.
            "data/user/q0Vz3hX9LmT2wKp8sYdR4nB7cF1gJ6aE5uZ0",
        ] {
            assert!(is_secret_like(run.as_bytes()), "{run}");
        }
    }
}
