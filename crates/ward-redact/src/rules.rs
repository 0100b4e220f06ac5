//! The rule table of keyed detectors and the one keyword automaton over it.
//!
//! Every keyed detector names the keywords it needs (lowercase, matched
//! without regard to ASCII case). One Aho-Corasick automaton over all of
//! them scans the text once; each hit runs only the detector that owns the
//! keyword, on the token around the hit. To add an API-key format, add a
//! [`KeyRule`] to [`KEY_RULES`]; a new kind of detector adds a [`Hook`].

use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;
use std::sync::{Arc, LazyLock};

use crate::{Finding, Kind, assign, keyed};

/// An API-key format: its keywords (each a prefix the key starts with) and
/// a regex for the whole key, anchored at the keyword (it starts with `^`).
/// After a match the key is extended over any further `[A-Za-z0-9_-]`, so
/// a longer variant never leaves a visible tail.
pub(crate) struct KeyRule {
    /// gitleaks' rule id where there is one.
    pub id: &'static str,
    /// Lowercase prefixes; a hit must start a word (no letter or digit before).
    pub keywords: &'static [&'static str],
    /// The key, anchored at the keyword.
    pub pattern: &'static str,
}

/// The API-key formats (gitleaks' rule set is the reference).
pub(crate) const KEY_RULES: &[KeyRule] = &[
    KeyRule {
        id: "aws-access-token",
        keywords: &["akia", "asia", "abia", "acca"],
        pattern: r"^(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}",
    },
    KeyRule {
        id: "github-pat",
        keywords: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        pattern: r"^gh[pousr]_[0-9A-Za-z]{36}",
    },
    KeyRule {
        id: "github-fine-grained-pat",
        keywords: &["github_pat_"],
        pattern: r"^github_pat_[0-9A-Za-z_]{22,}",
    },
    KeyRule {
        id: "gitlab-pat",
        keywords: &["glpat-", "glptt-", "gldt-"],
        pattern: r"^gl(?:pat|ptt|dt)-[0-9A-Za-z_-]{20,}",
    },
    KeyRule {
        id: "slack-token",
        keywords: &["xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-", "xapp-"],
        pattern: r"^(?:xox[baprs]|xapp)-[0-9A-Za-z-]{10,}",
    },
    KeyRule {
        id: "stripe-access-token",
        keywords: &["sk_live_", "rk_live_", "sk_test_", "rk_test_"],
        pattern: r"^[rs]k_(?:live|test)_[0-9A-Za-z]{10,}",
    },
    KeyRule {
        id: "anthropic-api-key",
        keywords: &["sk-ant-"],
        pattern: r"^sk-ant-[0-9A-Za-z_-]{20,}",
    },
    KeyRule {
        id: "openai-api-key",
        keywords: &["sk-"],
        pattern: r"^sk-[0-9A-Za-z_-]{20,}",
    },
    KeyRule {
        id: "gcp-api-key",
        keywords: &["aiza"],
        pattern: r"^AIza[0-9A-Za-z_-]{35}",
    },
    KeyRule {
        id: "npm-access-token",
        keywords: &["npm_"],
        pattern: r"^npm_[0-9A-Za-z]{36}",
    },
    KeyRule {
        id: "pypi-upload-token",
        keywords: &["pypi-"],
        pattern: r"^pypi-[0-9A-Za-z_-]{50,}",
    },
    KeyRule {
        id: "sendgrid-api-token",
        keywords: &["sg."],
        pattern: r"^SG\.[0-9A-Za-z_-]{16,32}\.[0-9A-Za-z_-]{16,64}",
    },
    KeyRule {
        id: "huggingface-access-token",
        keywords: &["hf_"],
        pattern: r"^hf_[0-9A-Za-z]{30,}",
    },
    KeyRule {
        id: "twilio-api-key",
        keywords: &["sk"],
        pattern: r"^SK[0-9a-fA-F]{32}",
    },
    KeyRule {
        id: "digitalocean-access-token",
        keywords: &["dop_v1_", "doo_v1_", "dor_v1_"],
        pattern: r"^do[opr]_v1_[0-9a-f]{64}",
    },
    KeyRule {
        id: "shopify-token",
        keywords: &["shpat_", "shpss_", "shpca_", "shppa_"],
        pattern: r"^shp(?:at|ss|ca|pa)_[0-9a-fA-F]{32}",
    },
    KeyRule {
        id: "age-secret-key",
        keywords: &["age-secret-key-1"],
        pattern: r"^AGE-SECRET-KEY-1[0-9A-Z]{58}",
    },
    // Ward's bootstrap (`ward_bt_`), API (`ward_at_`) and enrolment
    // (`ward_et_`) secrets: `ward-control`'s `new_secret`, 32 random bytes
    // in base64url. Any two-letter kind is covered for secrets added later.
    KeyRule {
        id: "ward-secret",
        keywords: &["ward_"],
        pattern: r"^ward_[a-z]{2}_[0-9A-Za-z_-]{20,}",
    },
];

/// How many bytes after a keyword an API-key regex reads (the longest
/// format, a PyPI token, is about 200).
const KEY_WINDOW: usize = 512;

/// The keywords of the hand-written keyed detectors.
const PRIVATE_KEY_KEYWORDS: &[&str] = &["-----begin"];
const JWT_KEYWORDS: &[&str] = &["eyj"];
const URL_KEYWORDS: &[&str] = &["://"];
const BEARER_KEYWORDS: &[&str] = &["bearer"];

/// What runs on a keyword hit.
#[derive(Clone, Copy, Debug)]
enum Hook {
    /// `KEY_RULES[i]`.
    Key(usize),
    /// A PEM private key block.
    PrivateKey,
    /// A compact JWS/JWE.
    Jwt,
    /// Userinfo in a URL.
    UrlCredentials,
    /// `Bearer <credential>`.
    Bearer,
    /// A sensitive name followed by a value.
    Name,
}

/// The compiled table: the keyword automaton, what each keyword runs, and
/// the API-key regexes. Cheap to clone (shared inside).
#[derive(Clone)]
pub(crate) struct Compiled {
    keywords: AhoCorasick,
    hooks: Arc<[Hook]>,
    key_rules: Arc<[Regex]>,
}

static COMPILED: LazyLock<Result<Compiled, String>> = LazyLock::new(Compiled::build);

impl Compiled {
    /// The table, compiled once per process.
    #[expect(
        clippy::expect_used,
        reason = "the table is static; the tests compile it, so a broken pattern fails them"
    )]
    pub(crate) fn get() -> Compiled {
        COMPILED
            .as_ref()
            .map(Clone::clone)
            .expect("the static redaction rule table compiles")
    }

    /// How many keywords the automaton holds.
    pub(crate) fn keyword_count(&self) -> usize {
        self.hooks.len()
    }

    fn build() -> Result<Compiled, String> {
        let mut patterns: Vec<&'static str> = Vec::new();
        let mut hooks = Vec::new();
        let mut key_rules = Vec::new();
        for (index, rule) in KEY_RULES.iter().enumerate() {
            for keyword in rule.keywords {
                patterns.push(keyword);
                hooks.push(Hook::Key(index));
            }
            key_rules
                .push(Regex::new(rule.pattern).map_err(|e| format!("rule `{}`: {e}", rule.id))?);
        }
        let hooked: [(&[&'static str], Hook); 5] = [
            (PRIVATE_KEY_KEYWORDS, Hook::PrivateKey),
            (JWT_KEYWORDS, Hook::Jwt),
            (URL_KEYWORDS, Hook::UrlCredentials),
            (BEARER_KEYWORDS, Hook::Bearer),
            (crate::names::KEYWORDS, Hook::Name),
        ];
        for (keywords, hook) in hooked {
            for keyword in keywords {
                patterns.push(keyword);
                hooks.push(hook);
            }
        }
        let keywords = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|e| format!("keyword automaton: {e}"))?;
        Ok(Compiled {
            keywords,
            hooks: hooks.into(),
            key_rules: key_rules.into(),
        })
    }

    /// Runs every keyed detector whose keyword occurs in `text`.
    pub(crate) fn scan(&self, text: &str, out: &mut Vec<Finding>) {
        // Where each detector's last finding ended: a hit inside it is
        // part of what was already found (overlapping keywords such as
        // `sk`, `sk-` and `sk-ant-`, or `pass` inside `password`).
        let mut key_done = [0usize; KEY_RULES.len()];
        let mut done = [0usize; 5];
        for hit in self.keywords.find_overlapping_iter(text) {
            let (start, end) = (hit.start(), hit.end());
            let Some(hook) = self.hooks.get(hit.pattern().as_usize()) else {
                continue;
            };
            match *hook {
                Hook::Key(index) => {
                    let Some(done) = key_done.get_mut(index) else {
                        continue;
                    };
                    if start < *done {
                        continue;
                    }
                    if let Some(found) = self.key(index, text, start) {
                        *done = found.end;
                        out.push(found);
                    }
                }
                hook => {
                    let slot = match hook {
                        Hook::PrivateKey => 0,
                        Hook::Jwt => 1,
                        Hook::UrlCredentials => 2,
                        Hook::Bearer => 3,
                        Hook::Name | Hook::Key(_) => 4,
                    };
                    if start < done[slot] {
                        continue;
                    }
                    let next = match hook {
                        Hook::PrivateKey => keyed::private_key(text, start, out),
                        Hook::Jwt => keyed::jwt(text, start, out),
                        Hook::UrlCredentials => keyed::url_credentials(text, start, end, out),
                        Hook::Bearer => keyed::bearer(text, start, end, out),
                        Hook::Name | Hook::Key(_) => assign::assignment(text, start, end, out),
                    };
                    done[slot] = next;
                }
            }
        }
    }

    /// The API key of rule `index` starting at `start`, if there is one.
    fn key(&self, index: usize, text: &str, start: usize) -> Option<Finding> {
        let bytes = text.as_bytes();
        if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
            return None;
        }
        // The anchored regex reads at most KEY_WINDOW bytes; a longer key
        // is extended below.
        let mut window_end = bytes.len().min(start + KEY_WINDOW);
        while !text.is_char_boundary(window_end) {
            window_end -= 1;
        }
        let found = self
            .key_rules
            .get(index)?
            .find(text.get(start..window_end)?)?;
        let mut end = start + found.end();
        while end < bytes.len() && keyed::is_key_byte(bytes[end]) {
            end += 1;
        }
        Some(Finding {
            kind: Kind::ApiKey,
            start,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_compiles_and_every_keyword_is_lowercase() {
        let compiled = Compiled::build();
        assert!(compiled.is_ok(), "{:?}", compiled.err());
        for rule in KEY_RULES {
            assert!(rule.pattern.starts_with('^'), "{} is not anchored", rule.id);
            for keyword in rule.keywords {
                assert_eq!(*keyword, keyword.to_ascii_lowercase(), "{}", rule.id);
            }
        }
    }
}
