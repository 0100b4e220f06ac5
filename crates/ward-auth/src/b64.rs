//! Strict unpadded base64url (RFC 7515 §2) used for every JOSE segment.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as base64url without padding.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding, rejecting `=`, `+`, `/`, whitespace
/// and non-canonical trailing bits. The error says which character or rule
/// failed, without echoing the whole input.
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, String> {
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "contains `{}`, which is not allowed in unpadded base64url",
            bad.escape_default()
        ));
    }
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| format!("is not canonical unpadded base64url ({e})"))
}
