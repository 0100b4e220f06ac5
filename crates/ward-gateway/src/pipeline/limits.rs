//! The limits stage: the per-address limit, each route's per-agent and
//! per-user GCRA limits (`RateLimit-*` headers on the answer) and its
//! daily quota per agent, turned into refusals. The algorithms are in
//! [`crate::ratelimit`]; this knows nothing about tokens beyond the ids
//! it counts by.

use http::header::HeaderValue;
use http::{Response, StatusCode};
use std::time::Instant;

use super::response::Body;
use crate::config::RouteConfig;
use crate::error::GatewayError;
use crate::ratelimit::{Limiter, Quota};

/// The `RateLimit-*` headers of the per-agent limit, for the answer.
pub type RateHeaders = Vec<(&'static str, String)>;

/// The limits of one route.
pub struct RouteLimits {
    agent: Option<Limiter>,
    user: Option<Limiter>,
    quota: Option<Quota>,
}

impl RouteLimits {
    /// The limits `route` configures.
    pub fn new(route: &RouteConfig) -> RouteLimits {
        RouteLimits {
            agent: route.rate_limit.map(Limiter::new),
            user: route.user_rate_limit.map(Limiter::new),
            quota: route.daily_quota.map(Quota::new),
        }
    }

    /// Counts the request against the agent's, then the user's limit;
    /// with a per-agent limit, the headers to answer with.
    pub fn check(&self, agent: &str, user: &str) -> Result<Option<RateHeaders>, GatewayError> {
        let rate = match &self.agent {
            Some(limiter) => Some(rate_limit(limiter, agent, "this agent")?),
            None => None,
        };
        if let Some(limiter) = &self.user {
            rate_limit(limiter, user, "this user's agents")?;
        }
        Ok(rate)
    }

    /// Takes one request of the agent's daily quota, if the route has one.
    pub fn take_quota(&self, agent: &str, now: i64) -> Result<(), GatewayError> {
        match &self.quota {
            Some(quota) => take_quota(quota, agent, now),
            None => Ok(()),
        }
    }
}

/// Adds the `RateLimit-*` headers of the per-agent limit to the answer.
pub fn with_headers(mut response: Response<Body>, rate: Option<RateHeaders>) -> Response<Body> {
    if let Some(headers) = rate {
        for (name, value) in headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

/// Counts a request against a limit keyed by `key`; on success the
/// `RateLimit-*` headers to send.
pub fn rate_limit<K, Q>(
    limiter: &Limiter<K>,
    key: &Q,
    whose: &str,
) -> Result<RateHeaders, GatewayError>
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    let decision = limiter.check(key, Instant::now());
    let headers = vec![
        ("ratelimit-limit", limiter.burst().to_string()),
        ("ratelimit-remaining", decision.remaining.to_string()),
        (
            "ratelimit-reset",
            decision.reset.as_secs_f64().ceil().to_string(),
        ),
    ];
    if decision.allowed {
        return Ok(headers);
    }
    let mut error = GatewayError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests from {whose}; retry after the time in `Retry-After`"),
    );
    error.retry_after = Some(decision.retry_after.as_secs_f64().ceil().max(1.0) as u64);
    error.headers = headers;
    Err(error)
}

fn take_quota(quota: &Quota, agent: &str, now: i64) -> Result<(), GatewayError> {
    quota.take(agent, now).map(|_| ()).map_err(|until_tomorrow| {
        let mut error = GatewayError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            format!(
                "this agent has used its {} requests for today on this route; the quota resets at 00:00 UTC",
                quota.limit()
            ),
        );
        error.retry_after = Some(until_tomorrow);
        error
    })
}
