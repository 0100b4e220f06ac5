//! The one error type of this crate, with stable codes for the wire.

/// Why a key, token or DPoP proof was rejected.
///
/// Messages are for logs and operators; clients should see [`Self::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is not a well-formed compact JWS or lacks a required member.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The signature does not verify with the key.
    #[error("bad signature: the token was not signed by the expected key or was altered")]
    BadSignature,
    /// The header `alg` is not one the verifier accepts.
    #[error("unsupported algorithm `{alg}`; this verifier accepts {accepted}")]
    UnsupportedAlgorithm {
        /// The `alg` found in the header (shortened for display).
        alg: String,
        /// The algorithms this verifier accepts, in words.
        accepted: &'static str,
    },
    /// No verification key is known for the header `kid`.
    #[error("unknown key id `{0}`; the signing key may have been rotated, request a new token")]
    UnknownKey(String),
    /// The token's `exp` has passed (leeway included).
    #[error("token expired; request a new token")]
    Expired,
    /// The token's `nbf` or `iat` lies in the future (beyond the leeway).
    #[error("token not yet valid; check the clocks of issuer and verifier")]
    NotYetValid,
    /// A DPoP proof's header `typ` is not exactly `dpop+jwt`.
    #[error("dpop proof header `typ` must be exactly `dpop+jwt`")]
    ProofType,
    /// A DPoP proof is missing a claim or header member, or one is malformed.
    #[error("invalid dpop proof: {0}")]
    InvalidProof(String),
    /// The proof's `htm` differs from the request method.
    #[error("dpop proof `htm` is `{got}` but the request method is `{expected}`")]
    ProofMethod {
        /// The method of the request being served.
        expected: String,
        /// The `htm` claim found in the proof.
        got: String,
    },
    /// The proof's `htu` differs from the request URI after normalisation.
    #[error("dpop proof `htu` is `{got}` but the request uri is `{expected}`")]
    ProofUrl {
        /// The normalised URI of the request being served.
        expected: String,
        /// The `htu` claim found in the proof (normalised when possible).
        got: String,
    },
    /// The proof's `iat` lies outside the accepted window.
    #[error(
        "dpop proof `iat` is too old or too far in the future; check the client clock and send a fresh proof"
    )]
    ProofTime,
    /// The proof's `ath` is missing or does not hash the presented access token.
    #[error(
        "dpop proof `ath` is missing or does not match the access token; compute it as base64url(sha-256(access token))"
    )]
    ProofAth,
    /// A JWK is not a usable Ed25519 public key, or carries private material.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The operating system's random number generator failed.
    #[error("random number generator unavailable: {0}")]
    Random(String),
    /// The verifier's own expectations are unusable (for example an expected
    /// `htu` that is not an absolute http(s) URI). A bug in the caller.
    #[error("invalid verifier configuration: {0}")]
    InvalidExpectation(String),
}

impl AuthError {
    /// A stable snake_case code suitable for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_token",
            Self::BadSignature => "bad_signature",
            Self::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            Self::UnknownKey(_) => "unknown_key",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::ProofType | Self::InvalidProof(_) => "invalid_dpop_proof",
            Self::ProofMethod { .. } => "dpop_method_mismatch",
            Self::ProofUrl { .. } => "dpop_url_mismatch",
            Self::ProofTime => "dpop_proof_expired",
            Self::ProofAth => "dpop_ath_mismatch",
            Self::InvalidKey(_) => "invalid_key",
            Self::Random(_) => "random_unavailable",
            Self::InvalidExpectation(_) => "invalid_expectation",
        }
    }
}
