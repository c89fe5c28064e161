//! Back-off with jitter, for whatever AWS throttles or fails: one query-log group's reads,
//! one SNS topic's publishes. Doubling from a second up to a ceiling (a minute unless the
//! user sets another: the query log's is shorter, a player may be waiting), each wait
//! times a random factor in [0.5, 1.5) so that two daemons (or a daemon and a script) do
//! not retry in step. Time is monotonic (`Instant`, passed in): a wall-clock step must not
//! end a back-off early or make it last an hour.

use std::time::Duration;

use tokio::time::Instant;

/// The longest back-off after repeated failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The first back-off after a failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// A small xorshift generator for jitter; seeded once per process. Not for secrets.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and the pid, so two daemons started together differ.
    pub fn from_entropy() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        #[allow(clippy::cast_possible_truncation, reason = "only the low bits are wanted for a seed")]
        let seed = (nanos as u64) ^ (u64::from(std::process::id()) << 32) | 1;
        Self(seed)
    }

    /// A fixed seed, for tests.
    pub fn seeded(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A factor in [0.5, 1.5).
    pub fn factor(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        #[allow(clippy::cast_precision_loss, reason = "53 bits of randomness are plenty for jitter")]
        let unit = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        0.5 + unit
    }
}

/// Back-off of one log group's reads, or one topic's publishes.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// Failures in a row.
    pub failures: u32,
    /// No read before this.
    pub until: Option<Instant>,
    /// The longest wait before jitter.
    ceiling: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::up_to(MAX_BACKOFF)
    }
}

impl Backoff {
    /// A back-off whose waits stop doubling at `ceiling`.
    pub fn up_to(ceiling: Duration) -> Self {
        Self { failures: 0, until: None, ceiling }
    }

    /// True while reads must wait.
    pub fn waiting(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// A read failed: wait 1 s, 2 s, 4 s ... up to the ceiling, times a jitter factor.
    pub fn failed(&mut self, now: Instant, jitter: &mut Jitter) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doubled = FIRST_BACKOFF.saturating_mul(1 << self.failures.saturating_sub(1).min(16));
        let wait = doubled.min(self.ceiling).mul_f64(jitter.factor());
        self.until = Some(now + wait);
        wait
    }

    /// A read succeeded: no more waiting.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_a_minute_and_resets() {
        let t0 = Instant::now();
        let mut jitter = Jitter::seeded(42);
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..10).map(|_| b.failed(t0, &mut jitter)).collect();
        assert!(waits[0] >= Duration::from_millis(500) && waits[0] < Duration::from_millis(1500), "{waits:?}");
        assert!(waits[3] >= Duration::from_secs(4) && waits[3] < Duration::from_secs(12), "{waits:?}");
        assert!(waits.iter().all(|w| *w < Duration::from_secs(90)), "{waits:?}");
        assert!(b.waiting(t0 + Duration::from_millis(100)));
        b.succeeded();
        assert!(!b.waiting(t0));
    }

    #[test]
    fn regression_a_lower_ceiling_bounds_the_wait_after_a_long_outage() {
        // Before: the query log's back-off reached a minute times up to 1.5, so a wake
        // could wait 90 s after AWS answered again.
        let mut jitter = Jitter::seeded(7);
        let mut b = Backoff::up_to(Duration::from_secs(15));
        let longest = (0..30).map(|_| b.failed(Instant::now(), &mut jitter)).max().unwrap();
        assert!(longest < Duration::from_millis(22_500), "{longest:?}");
    }

    #[test]
    fn jitter_spreads_and_two_seeds_differ() {
        let (mut a, mut b) = (Jitter::seeded(1), Jitter::seeded(2));
        let xs: Vec<f64> = (0..100).map(|_| a.factor()).collect();
        assert!(xs.iter().all(|x| (0.5..1.5).contains(x)));
        assert!(xs.iter().any(|x| *x < 0.8) && xs.iter().any(|x| *x > 1.2));
        assert_ne!(a.factor().to_bits(), b.factor().to_bits());
    }
}
