//! How much of the account's FilterLogEvents quota the tail may use, and how it backs off.
//!
//! FilterLogEvents allows 25 calls per second per account in us-east-1 (where Route53
//! writes query logs), not adjustable, shared with every other tool of the account. The
//! tail spends at most `query_log_calls_per_second` of it (default 2.5, a tenth) from a
//! token bucket: head reads first (a player may be waiting), sweep pages only from what
//! is left. A throttled or failing read backs off per log group (see [`crate::backoff`]).
//!
//! Time here is monotonic (`Instant`, passed in): a wall-clock step must not refill the
//! bucket.


use tokio::time::Instant;

/// A token bucket of calls.
#[derive(Debug, Clone)]
pub struct Budget {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Budget {
    /// A full bucket refilling at `per_second`, holding at most two seconds' worth (at
    /// least 2 calls).
    pub fn new(per_second: f64, now: Instant) -> Self {
        let burst = (per_second * 2.0).max(2.0);
        Self { per_second, burst, tokens: burst, at: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.at = now;
    }

    /// Takes one call if the bucket has one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.take_leaving(now, 0.0)
    }

    /// Takes one call only if `reserve` calls remain after it (the sweep leaves the next
    /// head reads their calls).
    pub fn take_leaving(&mut self, now: Instant, reserve: f64) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 + reserve {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn the_bucket_allows_its_rate_and_keeps_a_reserve_for_heads() {
        let t0 = Instant::now();
        let mut b = Budget::new(2.5, t0);
        let taken = (0..10).filter(|_| b.take(t0)).count();
        assert_eq!(taken, 5, "a full bucket holds two seconds' worth");
        let t1 = t0 + Duration::from_secs(2);
        assert!(!b.take_leaving(t1, 5.0), "5 refilled, none spare beyond a reserve of 5");
        assert!(b.take_leaving(t1, 1.0));
        let per_minute = (0..600).filter(|i| b.take(t1 + Duration::from_millis(100 * i))).count();
        assert!((150..=154).contains(&per_minute), "{per_minute} calls in a minute at 2.5/s: 150, plus the 4 left in the bucket");
    }

}
