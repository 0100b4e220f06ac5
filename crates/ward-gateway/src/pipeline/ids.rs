//! Request ids: the correlation id (taken from a well-formed
//! `X-Correlation-Id` or made), W3C `traceparent` values, and the
//! per-thread generator behind them. Knows nothing about routes, tokens or
//! the upstream.

use http::HeaderMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The request's well-formed `X-Correlation-Id`, or a new one.
pub fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| ward_model::audit::valid_correlation_id(v))
        .map_or_else(new_correlation_id, str::to_owned)
}

/// A valid incoming `traceparent` continued with a new parent id.
pub fn next_traceparent(value: &str) -> Option<String> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let [version, trace, parent, flags] = parts.as_slice() else {
        return None;
    };
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let valid = *version == "00"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then(|| format!("00-{trace}-{}-{flags}", random_hex(8)))
}

pub fn new_traceparent() -> String {
    format!("00-{}-{}-01", random_hex(16), random_hex(8))
}

/// `bytes` random bytes in lower-case hex, from a per-thread SplitMix64
/// generator seeded by the OS once per thread: correlation and trace ids
/// are not secrets and only need to be unlikely to collide, and a
/// `getrandom` system call per id was measurable under load.
fn random_hex(bytes: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes * 2);
    let mut left = bytes;
    while left > 0 {
        let word = next_random().to_le_bytes();
        for b in word.iter().take(left) {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        left = left.saturating_sub(word.len());
    }
    out
}

thread_local! {
    static RANDOM_STATE: std::cell::Cell<u64> = std::cell::Cell::new(random_seed());
}

fn next_random() -> u64 {
    RANDOM_STATE.with(|state| {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn random_seed() -> u64 {
    let mut seed = [0u8; 8];
    if getrandom::fill(&mut seed).is_ok() {
        return u64::from_le_bytes(seed);
    }
    // No OS randomness: the time and the thread still make ids unlikely
    // to collide.
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    std::thread::current().id().hash(&mut hasher);
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(1)
        .hash(&mut hasher);
    hasher.finish()
}

fn new_correlation_id() -> String {
    format!("corr_{}", random_hex(12))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued_and_a_bad_one_replaced() {
        let next =
            next_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert!(next.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!next.contains("00f067aa0ba902b7"));
        assert_eq!(next_traceparent("00-0000-00f067aa0ba902b7-01"), None);
        assert_eq!(new_traceparent().len(), 55);
    }
}
