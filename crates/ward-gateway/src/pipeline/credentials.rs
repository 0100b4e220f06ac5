//! The credentials stage: the `DPoP` access token (signature with the
//! followed JWKS, `typ`, claims, scopes, tenant; verified tokens cached by
//! their text), its proof (`htm`, `htu`, `iat`, `ath`, key = `cnf.jkt`,
//! `jti` replay), then what the followed state says of it: revocation
//! rules, kill switches, the route's flag, the scope the route needs,
//! staleness and approval; and spending single-use tokens. Knows nothing
//! about bodies or the upstream.

use http::header::{self, HeaderMap};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ward_model::scope::Scope;

use crate::config::Route;
use crate::error::GatewayError;
use crate::follower::ControlClient;
use crate::state::{ControlState, Mode, TokenFacts};

/// Unknown `kid`s trigger at most one JWKS fetch per this interval.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(1);
/// Verified tokens and decoded keys kept at most; past it a cache starts over.
const CACHE_CAPACITY: usize = 100_000;

/// The claims of a Ward access token the gateway uses.
#[derive(Debug, Deserialize)]
pub struct Claims {
    /// The agent id.
    pub sub: String,
    /// The token id.
    pub jti: String,
    /// When the token was issued, Unix seconds.
    pub iat: i64,
    /// The agent's tenant.
    pub tenant: String,
    /// The person the agent acts for.
    #[serde(default)]
    pub owner: String,
    /// The enrolled device.
    #[serde(default)]
    pub device_id: String,
    /// The agent's version, as enrolled (kill switches may name it).
    #[serde(default)]
    pub agent_version: String,
    /// The granted scopes, as written.
    pub scopes: Vec<String>,
    /// `scopes`, parsed once when the token is first verified.
    #[serde(skip)]
    pub granted: Vec<Scope>,
    cnf: Cnf,
    /// The approval an approval-bound token was issued under.
    #[serde(default)]
    pub approval_id: Option<String>,
    /// The hash of the one action an action-bound token allows.
    #[serde(default)]
    pub action_hash: Option<String>,
    /// Whether the token is spent by its first use.
    #[serde(default)]
    pub single_use: bool,
    /// When the token expires, Unix seconds.
    pub exp: i64,
}

#[derive(Debug, Deserialize)]
struct Cnf {
    jkt: String,
}

/// What verifies credentials, with its caches and the followed state.
pub struct Verifier {
    state: Arc<ControlState>,
    control: ControlClient,
    /// The URL clients address, without a trailing `/` (proofs' `htu`).
    public_url: String,
    /// The one tenant served, when the stream covers only one.
    tenant: Option<String>,
    skew: i64,
    proof_max_age: i64,
    /// When this process started (Unix seconds): proofs and single-use
    /// tokens dated up to it plus the clock skew cannot be checked against
    /// the in-memory records of what was used (`run` waits that long
    /// before serving).
    started: i64,
    last_jwks_refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Tokens whose signature and claims were verified, by their exact
    /// text: an agent presents the same token on many calls, and its
    /// signature cannot change. Expiry is re-checked on every use;
    /// revocations and switches are checked per request regardless.
    verified: Mutex<HashMap<String, Arc<Claims>>>,
    /// Device keys already decoded, by thumbprint (`cnf.jkt`).
    device_keys: Mutex<HashMap<String, (ward_auth::Jwk, ward_auth::VerifyingKey)>>,
}

/// The settings of a [`Verifier`].
pub struct Settings {
    /// The URL clients address.
    pub public_url: String,
    /// The one tenant served, when the stream covers only one.
    pub tenant: Option<String>,
    /// Tolerated clock difference, seconds.
    pub skew: i64,
    /// How old a proof may be, seconds.
    pub proof_max_age: i64,
    /// When this process started, Unix seconds.
    pub started: i64,
}

impl Verifier {
    /// A verifier with empty caches.
    pub fn new(state: Arc<ControlState>, control: ControlClient, settings: Settings) -> Verifier {
        Verifier {
            state,
            control,
            public_url: settings.public_url.trim_end_matches('/').to_owned(),
            tenant: settings.tenant,
            skew: settings.skew,
            proof_max_age: settings.proof_max_age,
            started: settings.started,
            last_jwks_refresh: tokio::sync::Mutex::new(None),
            verified: Mutex::new(HashMap::new()),
            device_keys: Mutex::new(HashMap::new()),
        }
    }

    pub async fn verify_token(&self, token: &str, now: i64) -> Result<Arc<Claims>, GatewayError> {
        let cached = self
            .verified
            .lock()
            .ok()
            .and_then(|cache| cache.get(token).cloned());
        if let Some(claims) = cached {
            if now < claims.exp.saturating_add(self.skew) {
                return Ok(claims);
            }
            if let Ok(mut cache) = self.verified.lock() {
                cache.remove(token);
            }
        }
        let claims = Arc::new(self.verify_token_fully(token, now).await?);
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(token.to_owned(), Arc::clone(&claims));
        }
        Ok(claims)
    }

    async fn verify_token_fully(&self, token: &str, now: i64) -> Result<Claims, GatewayError> {
        let verify = || ward_auth::verify_jwt(token, now, self.skew, |kid| self.state.key(kid));
        let (header, claims) = match verify() {
            Err(ward_auth::AuthError::UnknownKey(_)) if self.refresh_jwks().await => verify()?,
            other => other?,
        };
        if header.get("typ").and_then(Value::as_str) != Some("at+jwt") {
            return Err(GatewayError::unauthorized(
                "malformed_token",
                "the token's header `typ` must be `at+jwt`; present a Ward access token",
            ));
        }
        let mut claims: Claims = serde_json::from_value(claims).map_err(|e| {
            GatewayError::unauthorized(
                "malformed_token",
                format!("the token's claims are not those of a Ward access token: {e}"),
            )
        })?;
        // Every scope must parse: the parser refuses the separators
        // (whitespace, `,`) that would let one scope forge another in the
        // `X-Ward-Scopes` header.
        claims.granted = claims
            .scopes
            .iter()
            .map(|s| s.parse::<Scope>())
            .collect::<Result<_, _>>()
            .map_err(|e| {
                GatewayError::unauthorized(
                    "malformed_token",
                    format!("the token carries an invalid scope: {e}"),
                )
            })?;
        if let Some(tenant) = &self.tenant
            && *tenant != claims.tenant
        {
            return Err(GatewayError::forbidden(
                "wrong_tenant",
                "this gateway serves another tenant",
            ));
        }
        Ok(claims)
    }

    /// Fetches the JWKS once per interval; true if it was fetched.
    async fn refresh_jwks(&self) -> bool {
        let mut last = self.last_jwks_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < JWKS_MIN_REFRESH) {
            return false;
        }
        *last = Some(Instant::now());
        match self.control.jwks().await {
            Ok(jwks) => {
                self.state.set_keys(&jwks);
                true
            }
            Err(_) => false,
        }
    }

    pub fn verify_proof(
        &self,
        proof: &str,
        token: &str,
        method: &Method,
        path: &str,
        claims: &Claims,
        now: i64,
    ) -> Result<(), GatewayError> {
        let htu = format!("{}{path}", self.public_url);
        let expectations = ward_auth::ProofExpectations {
            htm: method.as_str(),
            htu: &htu,
            now,
            max_age_secs: self.proof_max_age,
            max_future_secs: self.skew,
            access_token: Some(token),
        };
        let known = self
            .device_keys
            .lock()
            .ok()
            .and_then(|keys| keys.get(&claims.cnf.jkt).cloned());
        let verified = match &known {
            // A proof naming another key is checked in full and then fails
            // the thumbprint comparison below.
            Some((jwk, key)) => {
                ward_auth::dpop::verify_proof_known(proof, &expectations, jwk, key)?
            }
            None => ward_auth::dpop::verify_proof(proof, &expectations)?,
        };
        if known.is_none()
            && verified.jkt == claims.cnf.jkt
            && let Ok(key) = verified.jwk.verifying_key()
            && let Ok(mut keys) = self.device_keys.lock()
        {
            if keys.len() >= CACHE_CAPACITY {
                keys.clear();
            }
            keys.insert(verified.jkt.clone(), (verified.jwk.clone(), key));
        }
        if verified.jkt != claims.cnf.jkt {
            return Err(GatewayError::unauthorized(
                "dpop_key_mismatch",
                "the dpop proof is signed by another key than the one the token is bound to (`cnf.jkt`)",
            ));
        }
        // The replay cache starts empty: a proof made before this process
        // started may have been used with the previous one.
        if verified.iat <= self.started.saturating_add(self.skew) {
            return Err(GatewayError::unauthorized(
                "dpop_proof_stale",
                "the dpop proof predates the gateway's start and cannot be checked for replay; send a fresh proof",
            ));
        }
        let expires = verified
            .iat
            .saturating_add(self.proof_max_age)
            .saturating_add(self.skew)
            .saturating_add(1);
        if !self
            .state
            .first_use(format!("{}:{}", verified.jkt, verified.jti), now, expires)
        {
            return Err(GatewayError::unauthorized(
                "dpop_replay",
                "this dpop proof was already used; send a fresh proof with a new `jti` for every request",
            ));
        }
        Ok(())
    }

    pub fn authorize(
        &self,
        route: &Route,
        required: &Scope,
        claims: &Claims,
        method: &Method,
    ) -> Result<(), GatewayError> {
        if let Some(reason) = self.state.revoked(&TokenFacts {
            tenant: &claims.tenant,
            jti: &claims.jti,
            agent: &claims.sub,
            scopes: &claims.scopes,
            iat: claims.iat,
        }) {
            return Err(GatewayError::unauthorized(
                "token_revoked",
                format!("{reason}; request a new token"),
            ));
        }
        match self
            .state
            .mode_for(&claims.tenant, &claims.sub, &claims.agent_version)
        {
            (Mode::Offline, reason) => {
                return Err(GatewayError::forbidden(
                    "kill_switch_offline",
                    format!("a kill switch has taken this agent offline: {reason}"),
                ));
            }
            (Mode::ReadOnly, reason) if !(is_safe(method) && required.is_read()) => {
                return Err(GatewayError::forbidden(
                    "kill_switch_read_only",
                    format!(
                        "a kill switch allows this agent only reads with safe methods: {reason}"
                    ),
                ));
            }
            _ => {}
        }
        if let Some(flag) = &route.config.flag
            && self.state.flag_off(flag, &claims.tenant)
        {
            return Err(GatewayError::forbidden(
                "feature_disabled",
                format!("feature flag `{flag}` is off"),
            ));
        }
        let covered = claims
            .granted
            .iter()
            .any(|granted| granted.covers(required));
        if !covered {
            return Err(GatewayError::forbidden(
                "insufficient_scope",
                format!("the token has no scope covering `{required}`; request a token with it"),
            ));
        }
        let high_risk = self.state.is_high_risk(required);
        if (route.config.sensitive || high_risk)
            && let Some(stale) = self.state.stale_for()
        {
            let what = if route.config.sensitive {
                "this route"
            } else {
                "a high-risk scope"
            };
            let mut error = GatewayError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "state_stale",
                format!(
                    "{what} needs current revocation state and the control plane has been unreachable for {} s; try again later",
                    stale.as_secs()
                ),
            );
            error.retry_after = Some(5);
            return Err(error);
        }
        if route.config.sensitive && claims.approval_id.is_none() {
            return Err(GatewayError::forbidden(
                "approval_required",
                "this route needs an approval-bound token; request one with an approved `approval_id`",
            ));
        }
        Ok(())
    }

    /// Refuses a single-use token minted before this process started: the
    /// record of spent tokens starts empty with the process, so it may
    /// have been spent.
    pub fn refuse_single_use_from_before_start(&self, claims: &Claims) -> Result<(), GatewayError> {
        if claims.single_use && claims.iat <= self.started.saturating_add(self.skew) {
            return Err(GatewayError::unauthorized(
                "token_used",
                "this single-use token predates the gateway's start and may have been used; request a new approval",
            ));
        }
        Ok(())
    }

    /// Spends a single-use token; refuses one already spent.
    pub fn spend_single_use(&self, claims: &Claims, now: i64) -> Result<(), GatewayError> {
        if claims.single_use
            && !self.state.first_use(
                format!("token:{}", claims.jti),
                now,
                claims.exp.saturating_add(self.skew).saturating_add(1),
            )
        {
            return Err(GatewayError::unauthorized(
                "token_used",
                "this single-use token was already used; request a new approval",
            ));
        }
        Ok(())
    }
}

/// The `DPoP` access token and the single `DPoP` proof header.
pub fn from_headers(headers: &HeaderMap) -> Result<(&str, &str), GatewayError> {
    let mut authorizations = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(authorization), None) = (authorizations.next(), authorizations.next()) else {
        return Err(GatewayError::unauthorized(
            "missing_token",
            "send exactly one `Authorization: DPoP <access token>` header",
        ));
    };
    let authorization = authorization.to_str().unwrap_or_default();
    let token = match authorization.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("dpop") && !token.trim().is_empty() =>
        {
            token.trim()
        }
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => {
            return Err(GatewayError::unauthorized(
                "dpop_required",
                "tokens are DPoP-bound: use `Authorization: DPoP <token>` with a `DPoP` proof, not `Bearer`",
            ));
        }
        _ => {
            return Err(GatewayError::unauthorized(
                "missing_token",
                "send `Authorization: DPoP <access token>`",
            ));
        }
    };
    let mut proofs = headers.get_all("dpop").iter();
    let (Some(proof), None) = (proofs.next(), proofs.next()) else {
        return Err(GatewayError::unauthorized(
            "invalid_dpop_proof",
            "send exactly one `DPoP` proof header, made for this request",
        ));
    };
    let proof = proof.to_str().map_err(|_| {
        GatewayError::unauthorized("invalid_dpop_proof", "the `DPoP` header is not ASCII")
    })?;
    Ok((token, proof))
}

fn is_safe(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD
}
