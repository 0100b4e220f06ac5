//! Small shared helpers: random ids and secrets, hashing, clocks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok(bytes)
}

/// A new id: `prefix`, `_`, then 26 base32 characters: 10 of milliseconds
/// since the epoch and 16 of randomness (80 bits), like a ULID. Ids made
/// later sort later, so index inserts append instead of landing on random
/// pages.
pub fn new_id(prefix: &str) -> Result<String, ApiError> {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let random = random_bytes::<10>()?;
    let mut value: u128 = u128::from(now_ms().max(0) as u64 & ((1 << 50) - 1)) << 80;
    for (index, byte) in random.iter().enumerate() {
        value |= u128::from(*byte) << (8 * (9 - index));
    }
    let mut id = String::with_capacity(prefix.len() + 27);
    id.push_str(prefix);
    id.push('_');
    for position in (0..26).rev() {
        id.push(char::from(
            ALPHABET[((value >> (5 * position)) & 31) as usize],
        ));
    }
    Ok(id)
}

/// A new bearer secret: `prefix` followed by 256 bits of base64url randomness.
pub fn new_secret(prefix: &str) -> Result<String, ApiError> {
    Ok(format!(
        "{prefix}_{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
    ))
}

/// The stored form of a secret: hex SHA-256. Secrets carry 256 bits of
/// entropy, so a plain hash is not open to guessing.
pub fn secret_hash(secret: &str) -> String {
    ward_model::audit::hex(&Sha256::digest(secret.as_bytes()))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-26T02:20:39.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return String::from("1970-01-01T00:00:00.000Z");
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Parses an RFC 3339 time into the canonical stored form.
pub fn parse_rfc3339(text: &str) -> Option<String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|at| rfc3339((at.unix_timestamp_nanos() / 1_000_000) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_sortably_and_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_123_639_123), "2025-11-26T02:20:39.123Z");
        assert_eq!(
            parse_rfc3339("2025-11-26T03:20:39.123+01:00").as_deref(),
            Some("2025-11-26T02:20:39.123Z")
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn ids_have_their_prefix_and_differ() -> Result<(), ApiError> {
        let a = new_id("agt")?;
        let b = new_id("agt")?;
        assert!(a.starts_with("agt_") && a.len() == 4 + 26, "{a}");
        assert_ne!(a, b);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = new_id("agt")?;
        assert!(later > a && later > b, "{later} sorts after {a} and {b}");
        Ok(())
    }
}
