//! Edge redaction: finds secrets and personal data in text and JSON and
//! replaces each with a typed marker such as `[redacted:email]`.
//!
//! The desktop runtime runs a [`Redactor`] on every event before it enters
//! the spool; the control plane can run the same library on what it
//! receives. The crate is pure: no I/O, no clock, no async, and it knows
//! nothing about events, the spool or the wire format.
//!
//! # How it finds things
//!
//! One Aho-Corasick automaton holds the keywords of every keyed detector
//! (`ghp_`, `AKIA`, `eyJ`, `-----BEGIN`, `://`, `bearer`, `password`,
//! `token`, ...; the table is in `rules.rs`). A scan of the text reports
//! each keyword hit, and only the detector that owns the keyword runs, and
//! only on the token around the hit: the API-key rules run their regex
//! anchored at the hit, the others are hand-written parsers. Detectors
//! without a natural keyword are single-pass byte scanners: emails (from
//! each `@`), card and phone numbers (digit groups), IBANs (two capitals
//! and two digits at a word start) and high-entropy tokens (long runs of
//! base64 characters). No regex ever runs over the whole text, and every
//! regex is from the `regex` crate (linear time), so the cost is linear in
//! the input with a small constant.
//!
//! Findings may overlap (a JWT inside an `Authorization` header); they are
//! merged into their union, marked with the most specific kind
//! ([`Kind::rank`]), so nothing found is ever left partly visible.
//!
//! # What is caught
//!
//! - [`Kind::PrivateKey`]: PEM blocks whose label ends in `PRIVATE KEY`
//!   (PKCS#1/8, `RSA`, `EC`, `DSA`, `OPENSSH`, `ENCRYPTED`) and
//!   `PGP PRIVATE KEY BLOCK`, from `-----BEGIN` to the matching `-----END`;
//!   a block with no end is redacted to the end of the text.
//! - [`Kind::Jwt`]: `eyJ…` with at least three base64url parts (JWS, JWE),
//!   or two when both look like JSON (an unsigned claim set).
//! - [`Kind::ApiKey`]: the key formats of gitleaks' rule set for AWS, GitHub,
//!   GitLab, Slack, Stripe, OpenAI, Anthropic, Google, npm, PyPI, SendGrid,
//!   Hugging Face, Twilio, DigitalOcean, Shopify and age; Ward's own
//!   bootstrap, API and enrolment secrets (`ward_bt_`, `ward_at_`,
//!   `ward_et_` + 43 base64url characters); and the credential after
//!   `Bearer`.
//! - [`Kind::SecretAssignment`]: the value in `NAME=value`, `NAME: value`,
//!   `"name": "value"`, `export NAME=value`, `--name value`, `--name=value`,
//!   query strings and headers (`Authorization`, `Cookie`, `Set-Cookie` to the
//!   end of the line or a quote) when the name is sensitive (see
//!   [`is_sensitive_name`]);
//!   and the values given to [`Redactor::with_secret_values`].
//! - [`Kind::HighEntropy`]: runs of 24 or more base64/base64url characters
//!   with Shannon entropy of at least 3.5 bits per character that do not read
//!   as words: at most 70 % of the run is made of word-shaped chunks
//!   (`Factory`, `proxy`, `HTTP`, with vowels where words have them), numbers,
//!   hexadecimal or Ward ids; from 32 characters an entropy of 4.5 is enough
//!   up to 80 %. For random base64 the miss rate measured by a test is under
//!   0.2 % at 24 characters, under 0.02 % at 32, and nil in 20,000 draws from
//!   40 (a 256-bit secret is 43).
//! - [`Kind::UrlCredentials`]: the password in `scheme://user:password@host`.
//! - [`Kind::Email`], [`Kind::Phone`] (E.164 with `+`, `(555) 123-4567`,
//!   `555-123-4567`, `555.123.4567`, national numbers starting with a trunk
//!   `0` such as `030 1234 5678`; 9 to 15 digits), [`Kind::CardNumber`] (13 to
//!   19 digits starting with 2 to 6, plain or in groups separated by spaces
//!   or dashes, Luhn-valid), [`Kind::Iban`] (a known country's length,
//!   valid mod 97, compact or grouped by spaces).
//!
//! # What is deliberately left alone
//!
//! These appear in Ward's own events and are not secrets, so no detector
//! fires on them: hexadecimal strings of any length (git commits, SHA-256
//! digests in audit records and policy hashes, trace ids), UUIDs, Ward's ids
//! (`agt_`, `tok_`, `corr_`, … followed by 26 base32 characters) and bare
//! ULIDs, dates and times, version strings, IPv4 addresses, numbers without
//! separators or `+` (except Luhn-valid card numbers), the digits of an
//! IBAN-shaped string that fails mod 97, and the names of metadata
//! about secrets (`token_id`, `max_tokens`, `password_file`,
//! `secret_name`, `expires_at`).
//!
//! # What is not caught, and why
//!
//! - A secret split across two events or two JSON strings: each string is
//!   redacted on its own.
//! - A secret with no known prefix, no sensitive name next to it and low
//!   entropy or fewer than 24 characters (`hunter2` in free prose, a
//!   dictionary passphrase), and secrets written only in hexadecimal or
//!   only in lowercase letters without a sensitive name: telling them from
//!   digests and words needs context the text does not carry. Pass the values
//!   the process knows to [`Redactor::with_secret_values`].
//! - JWK thumbprints and Ed25519 public keys (43 base64url characters) *are*
//!   redacted as high entropy: do not run the redactor over identity fields
//!   such as a device id that are such thumbprints.
//! - Object keys in JSON are kept (only their values are redacted), and a
//!   secret in a key survives.
//! - Secrets encoded (base64 of a `user:password`, percent-encoded, split
//!   by escapes) are found only when the encoded form itself matches.
//! - An unquoted value after `NAME:` or `NAME=` is one word: in
//!   `password: correct horse`, `horse` stays (quoted values are whole). A
//!   value longer than 64 KiB is redacted up to there.
//! - Phone numbers in formats other than those above (space-separated
//!   without `+` or a trunk `0`), emails with quoted local parts or
//!   internationalised domains, lowercase IBANs, card numbers starting with 1,
//!   7, 8 or 9, and passwords containing `/`, `?` or `#` in URLs (not valid
//!   unencoded there).

mod assign;
mod entropy;
mod keyed;
mod names;
mod pii;
mod rules;

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

pub use names::is_sensitive_name;

/// What a finding is; its marker is `[redacted:<as_str>]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A PEM or PGP private key block.
    PrivateKey,
    /// A JSON Web Token (JWS or JWE, compact form).
    Jwt,
    /// An API key with a known prefix, or a `Bearer` credential.
    ApiKey,
    /// A random-looking run of base64 or base64url characters.
    HighEntropy,
    /// The value of a sensitively named variable, field, flag or header, or a
    /// value given to [`Redactor::with_secret_values`].
    SecretAssignment,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A payment card number (Luhn-valid).
    CardNumber,
    /// An IBAN (valid mod 97).
    Iban,
    /// The password in a URL's userinfo.
    UrlCredentials,
}

impl Kind {
    /// Every kind, in order of [`Kind::rank`].
    pub const ALL: [Kind; 10] = [
        Kind::PrivateKey,
        Kind::Jwt,
        Kind::ApiKey,
        Kind::UrlCredentials,
        Kind::SecretAssignment,
        Kind::CardNumber,
        Kind::Iban,
        Kind::Email,
        Kind::Phone,
        Kind::HighEntropy,
    ];

    /// The name used in markers: `private_key`, `jwt`, `api_key`,
    /// `high_entropy`, `secret`, `email`, `phone`, `card`, `iban`,
    /// `url_credentials`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PrivateKey => "private_key",
            Kind::Jwt => "jwt",
            Kind::ApiKey => "api_key",
            Kind::HighEntropy => "high_entropy",
            Kind::SecretAssignment => "secret",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::CardNumber => "card",
            Kind::Iban => "iban",
            Kind::UrlCredentials => "url_credentials",
        }
    }

    /// The text that replaces a finding of this kind.
    pub fn marker(self) -> &'static str {
        match self {
            Kind::PrivateKey => "[redacted:private_key]",
            Kind::Jwt => "[redacted:jwt]",
            Kind::ApiKey => "[redacted:api_key]",
            Kind::HighEntropy => "[redacted:high_entropy]",
            Kind::SecretAssignment => "[redacted:secret]",
            Kind::Email => "[redacted:email]",
            Kind::Phone => "[redacted:phone]",
            Kind::CardNumber => "[redacted:card]",
            Kind::Iban => "[redacted:iban]",
            Kind::UrlCredentials => "[redacted:url_credentials]",
        }
    }

    /// How specific the kind is, 0 most: when findings overlap, their union
    /// takes the kind of lowest rank.
    pub fn rank(self) -> u8 {
        match self {
            Kind::PrivateKey => 0,
            Kind::Jwt => 1,
            Kind::ApiKey => 2,
            Kind::UrlCredentials => 3,
            Kind::SecretAssignment => 4,
            Kind::CardNumber => 5,
            Kind::Iban => 6,
            Kind::Email => 7,
            Kind::Phone => 8,
            Kind::HighEntropy => 9,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The prefix every marker starts with; detectors skip values that already
/// start with it, which keeps redaction idempotent.
pub const MARKER_PREFIX: &str = "[redacted:";

/// One thing found: its kind and its byte range in the text (`start..end`,
/// both on character boundaries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Finding {
    /// What was found.
    pub kind: Kind,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// Values shorter than this given to [`Redactor::with_secret_values`] are
/// ignored: redacting every `true` or `admin` would wreck the text.
pub const MIN_SECRET_VALUE_LEN: usize = 8;

/// The redactor: the compiled rule table, built once and shared (it is
/// `Send + Sync`; clone it or put it behind an `Arc`).
#[derive(Clone)]
pub struct Redactor {
    rules: rules::Compiled,
    values: SecretValues,
    /// `false` only for [`Redactor::disabled`].
    enabled: bool,
}

/// The exact values to redact, matched leftmost-longest.
#[derive(Clone, Default)]
struct SecretValues {
    values: Vec<String>,
    automaton: Option<AhoCorasick>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret values themselves.
        f.debug_struct("Redactor")
            .field("keywords", &self.rules.keyword_count())
            .field("secret_values", &self.values.values.len())
            .finish()
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor {
            rules: rules::Compiled::get(),
            values: SecretValues::default(),
            enabled: true,
        }
    }
}

impl Redactor {
    /// The default rule set (same as [`Redactor::default`]).
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// A redactor that finds nothing: the baseline a benchmark measures
    /// redaction's cost against. Never give it data to protect.
    pub fn disabled() -> Redactor {
        Redactor {
            enabled: false,
            ..Redactor::default()
        }
    }

    /// Also redacts these exact values wherever they appear (as
    /// [`Kind::SecretAssignment`]), e.g. the values of the daemon's own
    /// environment variables whose names are sensitive. Values shorter than
    /// [`MIN_SECRET_VALUE_LEN`] bytes, or that occur inside a marker, are
    /// ignored. Calling it again adds to the values already given.
    pub fn with_secret_values(mut self, values: impl IntoIterator<Item = String>) -> Redactor {
        let markers: Vec<&str> = Kind::ALL.iter().map(|k| k.marker()).collect();
        for value in values {
            if value.len() >= MIN_SECRET_VALUE_LEN
                && !markers.iter().any(|m| m.contains(value.as_str()))
                && !self.values.values.contains(&value)
            {
                self.values.values.push(value);
            }
        }
        // Building fails only past the automaton's size limits (hundreds of
        // megabytes of values); the values are then searched one by one.
        self.values.automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&self.values.values)
            .ok();
        self
    }

    /// The text with every finding replaced by its marker; borrowed, and
    /// identical, when nothing is found.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let findings = self.findings(text);
        if findings.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for finding in &findings {
            out.push_str(text.get(at..finding.start).unwrap_or_default());
            out.push_str(finding.kind.marker());
            at = finding.end;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        Cow::Owned(out)
    }

    /// Redacts every string in `value` in place (object keys are kept).
    /// The value of a key that names a secret ([`is_sensitive_name`]:
    /// `password`, `api_key`, `Authorization`, `client-secret`, …) is
    /// replaced whole, whatever its type, by `[redacted:secret]` (`null` is
    /// kept). Integers are checked too (a card number sent as a number
    /// becomes a marker string).
    pub fn redact_json(&self, value: &mut Value) {
        // An explicit stack: a deeply nested value cannot overflow ours.
        let mut stack = vec![value];
        while let Some(value) = stack.pop() {
            match value {
                Value::String(text) => {
                    if let Cow::Owned(redacted) = self.redact(text) {
                        *text = redacted;
                    }
                }
                Value::Number(number) if number.is_u64() || number.is_i64() => {
                    let text = number.to_string();
                    if let Cow::Owned(redacted) = self.redact(&text) {
                        *value = Value::String(redacted);
                    }
                }
                Value::Array(items) => stack.extend(items.iter_mut()),
                Value::Object(map) => {
                    for (key, item) in map.iter_mut() {
                        if is_sensitive_name(key) {
                            let marker = Kind::SecretAssignment.marker();
                            if !item.is_null() && item.as_str() != Some(marker) {
                                *item = Value::String(marker.to_owned());
                            }
                        } else {
                            stack.push(item);
                        }
                    }
                }
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
    }

    /// Everything found in `text`: byte ranges on character boundaries,
    /// sorted, not overlapping (overlapping detections are merged).
    pub fn findings(&self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        if !self.enabled {
            return found;
        }
        self.rules.scan(text, &mut found);
        pii::emails(text, &mut found);
        pii::numbers(text, &mut found);
        pii::ibans(text, &mut found);
        entropy::scan(text, &mut found);
        self.values.scan(text, &mut found);
        merge(text, found)
    }
}

impl SecretValues {
    fn scan(&self, text: &str, out: &mut Vec<Finding>) {
        let finding = |start, end| Finding {
            kind: Kind::SecretAssignment,
            start,
            end,
        };
        match &self.automaton {
            Some(automaton) => {
                out.extend(
                    automaton
                        .find_iter(text)
                        .map(|m| finding(m.start(), m.end())),
                );
            }
            None => {
                for value in &self.values {
                    out.extend(
                        text.match_indices(value.as_str())
                            .map(|(at, v)| finding(at, at + v.len())),
                    );
                }
            }
        }
    }
}

/// Sorts findings and merges overlapping ones into their union, with the
/// kind of lowest rank; widens any range that does not fall on character
/// boundaries (no detector produces one, but a marker must never split a
/// character).
fn merge(text: &str, mut found: Vec<Finding>) -> Vec<Finding> {
    if found.is_empty() {
        return found;
    }
    for finding in &mut found {
        finding.end = finding.end.min(text.len());
        finding.start = finding.start.min(finding.end);
        while !text.is_char_boundary(finding.start) {
            finding.start -= 1;
        }
        while !text.is_char_boundary(finding.end) {
            finding.end += 1;
        }
    }
    found.retain(|f| f.start < f.end);
    found.sort_unstable_by_key(|f| (f.start, f.end));
    let mut merged: Vec<Finding> = Vec::with_capacity(found.len());
    for finding in found {
        match merged.last_mut() {
            Some(last) if finding.start < last.end => {
                last.end = last.end.max(finding.end);
                if finding.kind.rank() < last.kind.rank() {
                    last.kind = finding.kind;
                }
            }
            _ => merged.push(finding),
        }
    }
    // INVARIANT: sorted by start, non-overlapping, non-empty, on char boundaries.
    merged
}

#[cfg(test)]
mod tests;
