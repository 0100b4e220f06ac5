//! People signing in with the company's OpenID provider: discovery, a
//! cached JWKS refreshed when an unknown key id shows up, token checks
//! (signature, `iss`, `aud`, `exp`, `nbf`), and the mapping of a group claim
//! to Ward roles per tenant.
//!
//! Group values name a tenant and a role: `ward:<tenant>:<role>`, e.g.
//! `ward:acme:approver` (the prefix is configurable).

use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;
use ward_auth::AuthError;
use ward_auth::issuer::{IssuerKeys, peek_header, verify_issuer_jwt};
use ward_model::roles::Role;

/// How the server trusts an OpenID provider.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// Issuer URL, exactly as in the tokens' `iss`.
    pub issuer: String,
    /// Audience the tokens must carry in `aud`.
    pub audience: String,
    /// Claim holding the groups (a string array).
    pub groups_claim: String,
    /// Prefix of group values that grant Ward roles.
    pub group_prefix: String,
    /// An `acr` value that counts as multi-factor, besides `amr` holding `mfa`.
    pub mfa_acr: Option<String>,
    /// Public client id `ward login` uses.
    pub cli_client_id: String,
    /// Clock skew allowed on `exp`/`nbf`, seconds.
    pub leeway_secs: i64,
    /// Shortest time between two JWKS fetches triggered by unknown key ids,
    /// so tokens with made-up key ids cannot make the server hammer the
    /// provider.
    pub jwks_min_refresh: Duration,
    /// How long fetched keys are trusted before they are fetched again, so
    /// a key the provider retired stops verifying.
    pub jwks_max_age: Duration,
    /// Accepted values of the token header's `typ`: access tokens only
    /// (RFC 9068 `at+jwt`), so an ID token is never a bearer credential.
    pub accepted_typ: Vec<String>,
}

/// A verified person.
#[derive(Clone, Debug)]
pub struct Identity {
    /// `sub`.
    pub subject: String,
    /// `email`, if present.
    pub email: Option<String>,
    /// `email`, lowercased, only when the provider marks it verified.
    pub verified_email: Option<String>,
    /// Roles per tenant name, from the group claim.
    pub roles: BTreeMap<String, Vec<Role>>,
    /// Whether the sign-in used multi-factor authentication.
    pub mfa: bool,
}

impl Identity {
    /// The name recorded as the actor: the email, else the subject.
    pub fn name(&self) -> &str {
        self.email.as_deref().unwrap_or(&self.subject)
    }
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The token failed a check.
    #[error("{0}")]
    Rejected(String),
    /// The provider could not be reached or answered nonsense.
    #[error("the OpenID provider is unavailable: {0}")]
    Unavailable(String),
}

struct Keys {
    keys: IssuerKeys,
    jwks_uri: String,
    fetched: Instant,
}

/// Verifies tokens of one provider.
pub struct OidcVerifier {
    config: OidcConfig,
    http: reqwest::Client,
    keys: RwLock<Option<Keys>>,
    /// When keys were last fetched (or tried), and whether it worked.
    last_attempt: std::sync::Mutex<Option<(Instant, bool)>>,
    /// One fetch at a time; the others wait for it and use its result.
    refresh_lock: tokio::sync::Mutex<()>,
}

/// Cached keys are refused after this many times `jwks_max_age` without a
/// successful refresh: a retired key must not live forever because the
/// provider is unreachable.
const HARD_MAX_AGE_FACTOR: u32 = 12;

impl OidcVerifier {
    /// A verifier for `config`; discovery happens on first use, so the
    /// server starts even while the provider is down.
    pub fn new(config: OidcConfig) -> Result<OidcVerifier, OidcError> {
        // One crypto library for the binary: ring, also used for token checks.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| OidcError::Unavailable(e.to_string()))?;
        Ok(OidcVerifier {
            config,
            http,
            keys: RwLock::new(None),
            last_attempt: std::sync::Mutex::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Verifies `token` and maps its groups to roles.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Identity, OidcError> {
        // Shape, algorithm and type first: garbage never causes a fetch.
        let header =
            peek_header(token).map_err(|e| OidcError::Rejected(format!("token refused: {e}")))?;
        let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
        if !self
            .config
            .accepted_typ
            .iter()
            .any(|t| t.eq_ignore_ascii_case(typ))
        {
            return Err(OidcError::Rejected(format!(
                "token refused: type `{typ}` is not an access token (expected `{}`); ID tokens are not credentials",
                self.config.accepted_typ.join("` or `")
            )));
        }
        let age = self.keys.read().await.as_ref().map(|k| k.fetched.elapsed());
        if age.is_none_or(|age| age >= self.config.jwks_max_age)
            && let Err(error) = self.refresh().await
        {
            let hard_max = self.config.jwks_max_age * HARD_MAX_AGE_FACTOR;
            match age {
                Some(age) if age < hard_max => {
                    // Keep serving on the cached keys while the provider is down.
                    tracing::warn!(%error, "cannot refresh the OpenID provider's keys; using the cached ones");
                }
                _ => return Err(error),
            }
        }
        let result = self.check(token, now).await;
        let claims = match result {
            Err(OidcError::Rejected(message)) if message.contains("unknown signing key") => {
                // The provider may have rotated its keys: fetch them again
                // (at most once per `jwks_min_refresh`).
                self.refresh().await?;
                self.check(token, now).await?
            }
            other => other?,
        };
        self.identity(&claims)
    }

    async fn check(&self, token: &str, now: i64) -> Result<Value, OidcError> {
        let guard = self.keys.read().await;
        let keys = guard
            .as_ref()
            .map(|k| &k.keys)
            .ok_or_else(|| OidcError::Unavailable("no signing keys fetched yet".into()))?;
        verify_issuer_jwt(token, keys, now, self.config.leeway_secs)
            .map(|(_, claims)| claims)
            .map_err(|e| match e {
                AuthError::UnknownKey(kid) => {
                    OidcError::Rejected(format!("token refused: unknown signing key `{kid}`"))
                }
                other => OidcError::Rejected(format!("token refused: {other}")),
            })
    }

    fn identity(&self, claims: &Value) -> Result<Identity, OidcError> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("iss") != Some(self.config.issuer.as_str()) {
            return Err(OidcError::Rejected(format!(
                "token refused: issuer `{}` is not the configured `{}`",
                text("iss").unwrap_or(""),
                self.config.issuer
            )));
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.config.audience,
            Some(Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str() == Some(&self.config.audience)),
            _ => false,
        };
        for marker in ["nonce", "at_hash", "c_hash"] {
            if claims.get(marker).is_some() {
                return Err(OidcError::Rejected(format!(
                    "token refused: it carries `{marker}`, so it is an ID token, not an access token"
                )));
            }
        }
        let names_cli = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.config.cli_client_id,
            Some(Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str() == Some(&self.config.cli_client_id)),
            _ => false,
        };
        if names_cli {
            return Err(OidcError::Rejected(
                "token refused: its audience is the command-line client, so it is an ID token"
                    .into(),
            ));
        }
        if !audience_ok {
            return Err(OidcError::Rejected(format!(
                "token refused: audience is not `{}`",
                self.config.audience
            )));
        }
        let subject = text("sub")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| OidcError::Rejected("token refused: no `sub`".into()))?
            .to_owned();
        let mut roles: BTreeMap<String, Vec<Role>> = BTreeMap::new();
        let prefix = format!("{}:", self.config.group_prefix);
        if let Some(groups) = claims
            .get(&self.config.groups_claim)
            .and_then(Value::as_array)
        {
            for group in groups.iter().filter_map(Value::as_str) {
                let Some(rest) = group.strip_prefix(&prefix) else {
                    continue;
                };
                let Some((tenant, role)) = rest.rsplit_once(':') else {
                    continue;
                };
                if let Ok(role) = role.parse::<Role>() {
                    let entry = roles.entry(tenant.to_owned()).or_default();
                    if !entry.contains(&role) {
                        entry.push(role);
                    }
                }
            }
        }
        let amr_mfa = claims
            .get("amr")
            .and_then(Value::as_array)
            .is_some_and(|amr| amr.iter().any(|m| m.as_str() == Some("mfa")));
        let acr_mfa = self
            .config
            .mfa_acr
            .as_deref()
            .is_some_and(|wanted| text("acr") == Some(wanted));
        Ok(Identity {
            subject,
            email: text("email").map(str::to_owned),
            verified_email: text("email")
                .filter(|_| claims.get("email_verified").and_then(Value::as_bool) == Some(true))
                .map(str::to_lowercase),
            roles,
            mfa: amr_mfa || acr_mfa,
        })
    }

    /// Fetches discovery (first time) and the JWKS. One fetch runs at a
    /// time, and none within `jwks_min_refresh` of the previous attempt
    /// (whose outcome is reused), so tokens with made-up key ids or a down
    /// provider cannot turn requests into a flood of fetches.
    async fn refresh(&self) -> Result<(), OidcError> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        let previous = *self
            .last_attempt
            .lock()
            .map_err(|_| OidcError::Unavailable("lock poisoned".into()))?;
        if let Some((at, worked)) = previous
            && at.elapsed() < self.config.jwks_min_refresh
        {
            return if worked {
                Ok(())
            } else {
                Err(OidcError::Unavailable(
                    "the provider could not be reached moments ago".into(),
                ))
            };
        }
        let result = self.fetch().await;
        if let Ok(mut last) = self.last_attempt.lock() {
            *last = Some((Instant::now(), result.is_ok()));
        }
        result
    }

    async fn fetch(&self) -> Result<(), OidcError> {
        let jwks_uri = match self.keys.read().await.as_ref() {
            Some(keys) => keys.jwks_uri.clone(),
            None => self.discover().await?,
        };
        let jwks = self.get_json(&jwks_uri).await?;
        let keys =
            IssuerKeys::from_jwks(&jwks).map_err(|e| OidcError::Unavailable(e.to_string()))?;
        tracing::info!(issuer = %self.config.issuer, keys = keys.len(), "fetched the OpenID provider's signing keys");
        *self.keys.write().await = Some(Keys {
            keys,
            jwks_uri,
            fetched: Instant::now(),
        });
        Ok(())
    }

    async fn discover(&self) -> Result<String, OidcError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let document = self.get_json(&url).await?;
        if document.get("issuer").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(OidcError::Unavailable(format!(
                "discovery at `{url}` names another issuer; check --oidc-issuer"
            )));
        }
        document
            .get("jwks_uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                OidcError::Unavailable(format!("discovery at `{url}` has no `jwks_uri`"))
            })
    }

    async fn get_json(&self, url: &str) -> Result<Value, OidcError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(format!("`{url}`: {e}")))?;
        if !response.status().is_success() {
            return Err(OidcError::Unavailable(format!(
                "`{url}` answered {}",
                response.status()
            )));
        }
        response
            .json()
            .await
            .map_err(|e| OidcError::Unavailable(format!("`{url}`: {e}")))
    }

    /// Seconds since the keys were fetched, if they were.
    pub async fn keys_age(&self) -> Option<u64> {
        self.keys
            .read()
            .await
            .as_ref()
            .map(|k| k.fetched.elapsed().as_secs())
    }
}
