//! Per-key rate limiting with GCRA (the generic cell rate algorithm, a
//! token bucket kept as one timestamp per key), and daily quotas.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimitConfig;

/// The outcome of one request against a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Whether the request may pass.
    pub allowed: bool,
    /// Requests left in the bucket after this one.
    pub remaining: u32,
    /// When refused: how long until one more request is allowed.
    pub retry_after: Duration,
    /// How long until the bucket is full again.
    pub reset: Duration,
}

/// GCRA state for many keys (agent or user ids, client addresses).
pub struct Limiter<K = String> {
    interval: Duration,
    tolerance: Duration,
    burst: u32,
    tats: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq> Limiter<K> {
    /// A limiter for `config`.
    pub fn new(config: RateLimitConfig) -> Limiter<K> {
        let interval = Duration::from_secs_f64(1.0 / config.per_second);
        Limiter {
            interval,
            tolerance: interval.saturating_mul(config.burst.saturating_sub(1)),
            burst: config.burst,
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// The bucket size.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Counts one request for `key` at `now`. A key already seen is
    /// updated in place, without allocating.
    pub fn check<Q>(&self, key: &Q, now: Instant) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let Ok(mut tats) = self.tats.lock() else {
            return Decision {
                allowed: false,
                remaining: 0,
                retry_after: Duration::from_secs(1),
                reset: Duration::from_secs(1),
            };
        };
        if tats.len() > 100_000 {
            // Keys whose bucket is full again carry no information.
            tats.retain(|_, tat| *tat > now);
        }
        let tat = tats.get(key).copied().unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > self.tolerance {
            return Decision {
                allowed: false,
                remaining: 0,
                retry_after: ahead - self.tolerance,
                reset: ahead,
            };
        }
        let new_tat = tat + self.interval;
        match tats.get_mut(key) {
            Some(slot) => *slot = new_tat,
            None => {
                tats.insert(key.to_owned(), new_tat);
            }
        }
        let used = (new_tat - now).as_secs_f64() / self.interval.as_secs_f64();
        let remaining = (f64::from(self.burst) - used.ceil()).max(0.0);
        Decision {
            allowed: true,
            remaining: remaining as u32,
            retry_after: Duration::ZERO,
            reset: new_tat - now,
        }
    }
}

/// A number of requests per key per UTC day, counted in memory (a restart
/// starts the day's count again).
pub struct Quota {
    limit: u64,
    counts: Mutex<HashMap<String, (i64, u64)>>,
}

const DAY_SECS: i64 = 86_400;

impl Quota {
    /// A quota of `limit` requests per day.
    pub fn new(limit: u64) -> Quota {
        Quota {
            limit,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// The daily limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Counts one request for `key` at unix time `now`: `Ok(remaining)`, or
    /// `Err(seconds until the next UTC day)` when the quota is used up.
    pub fn take(&self, key: &str, now: i64) -> Result<u64, u64> {
        let day = now.div_euclid(DAY_SECS);
        let until_tomorrow = u64::try_from((day + 1) * DAY_SECS - now).unwrap_or(1);
        let Ok(mut counts) = self.counts.lock() else {
            return Err(until_tomorrow);
        };
        if counts.len() > 100_000 {
            counts.retain(|_, (d, _)| *d == day);
        }
        let limit = self.limit;
        let count = |entry: &mut (i64, u64)| {
            if entry.0 != day {
                *entry = (day, 0);
            }
            if entry.1 >= limit {
                return Err(until_tomorrow);
            }
            entry.1 += 1;
            Ok(limit - entry.1)
        };
        if let Some(entry) = counts.get_mut(key) {
            return count(entry);
        }
        count(counts.entry(key.to_owned()).or_insert((day, 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_applies() {
        let limiter: Limiter = Limiter::new(RateLimitConfig {
            per_second: 1.0,
            burst: 3,
        });
        let start = Instant::now();
        for left in [2, 1, 0] {
            let decision = limiter.check("a", start);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, left);
        }
        let refused = limiter.check("a", start);
        assert!(!refused.allowed);
        assert!(refused.retry_after <= Duration::from_secs(1));
        assert!(limiter.check("b", start).allowed, "keys are independent");
        assert!(limiter.check("a", start + Duration::from_secs(1)).allowed);
    }

    #[test]
    fn a_daily_quota_resets_at_utc_midnight() {
        let quota = Quota::new(2);
        let evening = 86_400 * 100 + 86_000;
        assert_eq!(quota.take("a", evening), Ok(1));
        assert_eq!(quota.take("a", evening), Ok(0));
        assert_eq!(quota.take("a", evening), Err(400));
        assert_eq!(quota.take("b", evening), Ok(1));
        assert_eq!(quota.take("a", evening + 400), Ok(1));
    }
}
