//! The Platform API's rate limit as Heroku documents it: a pool of tokens per account (4,500),
//! refilled continuously at about 75 a minute, one token per call, and a 429 `rate_limit`
//! when the pool is empty. `GET /account/rate-limits` reads it without spending.
//!
//! Pure bookkeeping: the caller passes `now`, so the refill is a plain unit test. Written by
//! hand because the rule is three lines and no crate models Heroku's exact pool.

use std::time::{Duration, Instant};

/// Heroku's pool size per account.
pub const POOL_TOKENS: u32 = 4500;
/// Heroku's refill rate.
pub const REFILL_PER_MINUTE: f64 = 75.0;

#[derive(Debug, Clone)]
pub struct TokenPool {
    capacity: f64,
    tokens: f64,
    refill_per_second: f64,
    updated: Instant,
}

impl TokenPool {
    /// A full pool of `capacity` tokens.
    pub fn new(capacity: u32, now: Instant) -> Self {
        TokenPool {
            capacity: capacity as f64,
            tokens: capacity as f64,
            refill_per_second: REFILL_PER_MINUTE / 60.0,
            updated: now,
        }
    }

    /// A full pool of `capacity` tokens refilled at `per_second` (Fly's per-Machine limits).
    pub fn refilling(capacity: u32, per_second: f64, now: Instant) -> Self {
        TokenPool {
            refill_per_second: per_second,
            ..TokenPool::new(capacity, now)
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated);
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() * self.refill_per_second).min(self.capacity);
        self.updated = now;
    }

    /// Whole tokens left, as `RateLimit-Remaining` shows them.
    pub fn remaining(&mut self, now: Instant) -> u32 {
        self.refill(now);
        self.tokens.floor() as u32
    }

    /// Spends one token and returns the whole tokens left, or `None` when the pool is empty
    /// (the call is refused and spends nothing).
    pub fn spend(&mut self, now: Instant) -> Option<u32> {
        self.refill(now);
        if self.tokens < 1.0 {
            return None;
        }
        self.tokens -= 1.0;
        Some(self.tokens.floor() as u32)
    }

    /// Sets the tokens left (for tests and the sandbox's admin API), within the capacity.
    pub fn set_remaining(&mut self, remaining: u32, now: Instant) {
        self.refill(now);
        self.tokens = (remaining as f64).min(self.capacity);
    }

    /// How long until one more whole token is in the pool.
    pub fn time_to_next_token(&mut self, now: Instant) -> Duration {
        self.refill(now);
        let missing = (self.tokens.floor() + 1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.refill_per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_spends_one_token_and_an_empty_pool_refuses() {
        let start = Instant::now();
        let mut pool = TokenPool::new(3, start);
        assert_eq!(pool.spend(start), Some(2));
        assert_eq!(pool.spend(start), Some(1));
        assert_eq!(pool.spend(start), Some(0));
        assert_eq!(pool.spend(start), None);
        assert_eq!(pool.remaining(start), 0);
    }

    #[test]
    fn the_pool_refills_at_75_a_minute_up_to_its_capacity() {
        let start = Instant::now();
        let mut pool = TokenPool::new(POOL_TOKENS, start);
        pool.set_remaining(0, start);
        assert_eq!(pool.remaining(start + Duration::from_secs(60)), 75);
        assert_eq!(pool.remaining(start + Duration::from_secs(120)), 150);
        assert_eq!(
            pool.remaining(start + Duration::from_secs(24 * 3600)),
            POOL_TOKENS,
            "never above the capacity"
        );
    }

    #[test]
    fn the_next_token_comes_after_0_8_seconds_from_empty() {
        let start = Instant::now();
        let mut pool = TokenPool::new(10, start);
        pool.set_remaining(0, start);
        let wait = pool.time_to_next_token(start);
        assert!((wait.as_secs_f64() - 0.8).abs() < 0.001, "{wait:?}");
        assert_eq!(pool.spend(start + wait + Duration::from_millis(1)), Some(0));
    }
}
