//! Small shared helpers: random ids and secrets, hashing, clocks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::ApiError;

pub use ward_model::timestamp::rfc3339;

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

/// Parses an RFC 3339 time into the canonical stored form.
pub fn parse_rfc3339(text: &str) -> Option<String> {
    ward_model::timestamp::parse_rfc3339(text).map(rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_into_the_stored_form() {
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
