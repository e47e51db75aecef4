//! The one backoff every caller that waits before trying again uses: the Heroku client's
//! retries, the notifiers' redeliveries and the worker's pause after a refusal.
//!
//! It only says how long to wait after a failure; it must not sleep, count tries, or decide
//! what is worth retrying: each caller keeps those rules, which differ.
//!
//! Written by hand rather than with `backon` or `backoff`: `backon`'s jitter adds up to a whole
//! delay on top (the Heroku client keeps half of each wait fixed), its delays come from an
//! `f32` factor and a stateful iterator, and its randomness cannot be handed in per call, so
//! the callers' tests could not pin their waits; `backoff` is unmaintained. The rule is a few
//! lines.

use std::time::Duration;

/// Capped exponential backoff: `initial × factor^(attempt − 1)`, at most `max`, with optional
/// jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub initial: Duration,
    /// Each further failure multiplies the wait by this.
    pub factor: u32,
    /// The longest wait (before jitter).
    pub max: Duration,
    pub jitter: Jitter,
}

/// How much of each wait is random.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// None: the wait is the backoff.
    #[default]
    None,
    /// Half of the backoff fixed and half random ("equal jitter"): many clients spread out,
    /// and none comes back sooner than half the backoff.
    Equal,
}

impl Backoff {
    /// Doubling from `initial` up to `max`, without jitter.
    pub const fn doubling(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            factor: 2,
            max,
            jitter: Jitter::None,
        }
    }

    /// The same backoff with equal jitter.
    pub const fn with_equal_jitter(self) -> Backoff {
        Backoff {
            jitter: Jitter::Equal,
            ..self
        }
    }

    /// The wait after failure number `attempt` (1 for the first; 0 counts as 1), a random draw
    /// for the jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        match self.jitter {
            Jitter::None => self.delay_with(attempt, 0.0),
            Jitter::Equal => self.delay_with(attempt, fastrand::f64()),
        }
    }

    /// The wait after failure number `attempt`, with `random` (uniform in [0, 1), clamped)
    /// as the jitter's draw, so a test can pin it.
    pub fn delay_with(&self, attempt: u32, random: f64) -> Duration {
        let growth = self.factor.saturating_pow(attempt.saturating_sub(1));
        let backoff = self.initial.saturating_mul(growth).min(self.max);
        match self.jitter {
            Jitter::None => backoff,
            Jitter::Equal => backoff / 2 + backoff.mul_f64(random.clamp(0.0, 1.0) / 2.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_grows_by_the_factor_up_to_the_max() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            factor: 3,
            max: Duration::from_secs(2),
            jitter: Jitter::None,
        };
        let waits: Vec<u64> = (0..=5)
            .map(|attempt| backoff.delay(attempt).as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 100, 300, 900, 2000, 2000]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn equal_jitter_keeps_half_and_randomises_half() {
        let backoff =
            Backoff::doubling(Duration::from_secs(1), Duration::from_secs(8)).with_equal_jitter();
        assert_eq!(backoff.delay_with(3, 0.0), Duration::from_secs(2));
        assert_eq!(backoff.delay_with(3, 0.5), Duration::from_secs(3));
        assert_eq!(backoff.delay_with(3, 7.0), Duration::from_secs(4));
        for _ in 0..100 {
            let wait = backoff.delay(10);
            assert!(wait >= Duration::from_secs(4) && wait <= Duration::from_secs(8));
        }
    }
}
