//! The lease's rules, pure: times in, what to do out. Tested with a fake clock.
//!
//! A holder renews every quarter of the lease and stops acting a quarter before the
//! lease it last renewed runs out, timed on its own monotonic clock from when it sent
//! that renewal. It never assumes a renewal it has not seen succeed, and every mutating
//! call it makes is cut off at that moment. A standby takes the lease once it has seen
//! the very same lease (holder, fence, expiry) unchanged for a whole `ttl` on its own
//! monotonic clock, or at once when the lease was released (expiry 0). No wall clock of
//! one host is compared with another's: skew between the hosts cannot make two holders.

use std::time::{Duration, Instant};

use crate::aws::dynamodb::Lease;

/// The lease's timing, from `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a lease lasts.
    pub ttl_ms: i64,
}

impl Timing {
    /// From `[daemon.ha] ttl`.
    pub fn new(ttl: std::time::Duration) -> Self {
        Self { ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX) }
    }

    /// How often a holder renews.
    pub fn renew_every_ms(self) -> i64 {
        self.ttl_ms / 4
    }

    /// The lease's length.
    pub fn ttl(self) -> Duration {
        Duration::from_millis(u64::try_from(self.ttl_ms).unwrap_or(0))
    }

    /// How long before the end of its lease a holder stops acting.
    pub fn margin(self) -> Duration {
        self.ttl() / 4
    }

    /// Until when a holder whose last successful renewal was sent at `renewed` may act.
    pub fn act_until(self, renewed: Instant) -> Instant {
        renewed + self.ttl().saturating_sub(self.margin())
    }

    /// How often a standby looks at the lease: a released lease is taken within this.
    pub fn look_every_ms(self, poll_ms: i64) -> i64 {
        poll_ms.min(self.ttl_ms / 10).max(100)
    }
}

/// What a holder does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderStep {
    /// Keep acting; nothing to do yet.
    Keep,
    /// Renew the lease (and keep acting meanwhile).
    Renew,
    /// Stop acting: the last successful renewal is too old to trust.
    StepDown,
}

/// A holder's next step at `now`, its last successful renewal having been sent at
/// `renewed`.
pub fn holder_step(timing: Timing, now: Instant, renewed: Instant) -> HolderStep {
    if now >= timing.act_until(renewed) {
        HolderStep::StepDown
    } else if now >= renewed + timing.ttl() / 4 {
        HolderStep::Renew
    } else {
        HolderStep::Keep
    }
}

/// Whether a standby may try to take `lease`, having seen it unchanged for
/// `unchanged`: nobody ever held it, it was released, it is `me`'s own (`me` is unique
/// per process), or its holder has not renewed it for a whole `ttl`.
pub fn may_take(timing: Timing, lease: Option<&Lease>, me: &str, unchanged: Duration) -> bool {
    lease.is_none_or(|l| l.expires_ms == 0 || l.holder == me || unchanged >= timing.ttl())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing { ttl_ms: 20_000 };

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn a_holder_renews_each_quarter_and_steps_down_a_quarter_before_expiry() {
        let t0 = Instant::now();
        assert_eq!(holder_step(T, at(t0, 1_000), t0), HolderStep::Keep);
        assert_eq!(holder_step(T, at(t0, 5_000), t0), HolderStep::Renew);
        // Renewals failing: it keeps trying and acting until 15 s, then stops.
        assert_eq!(holder_step(T, at(t0, 14_999), t0), HolderStep::Renew);
        assert_eq!(holder_step(T, at(t0, 15_000), t0), HolderStep::StepDown);
        // A renewal sent at 5 s that succeeded moves everything on.
        assert_eq!(holder_step(T, at(t0, 9_999), at(t0, 5_000)), HolderStep::Keep);
        assert_eq!(holder_step(T, at(t0, 15_000), at(t0, 5_000)), HolderStep::Renew);
        assert!(T.act_until(at(t0, 5_000)) < at(t0, 5_000) + T.ttl(), "it stops before the lease it renewed can expire");
    }

    #[test]
    fn a_standby_takes_only_a_free_released_own_or_unrenewed_lease_whatever_the_clocks_say() {
        let held = Lease { holder: "a:1:x".into(), expires_ms: 20_000, fence: 3 };
        let ms = Duration::from_millis;
        assert!(may_take(T, None, "b:2:y", ms(0)));
        assert!(!may_take(T, Some(&held), "b:2:y", ms(19_999)), "an expiry in the past by this host's clock does not count");
        assert!(may_take(T, Some(&held), "b:2:y", ms(20_000)), "unchanged for a whole ttl");
        assert!(may_take(T, Some(&Lease { expires_ms: 0, ..held.clone() }), "b:2:y", ms(0)), "released");
        assert!(may_take(T, Some(&held), "a:1:x", ms(0)), "its own");
    }

    #[test]
    fn a_standby_looks_often_enough_to_take_a_released_lease_within_a_second() {
        assert_eq!(T.look_every_ms(1_000), 1_000);
        assert_eq!(Timing { ttl_ms: 4_000 }.look_every_ms(1_000), 400);
        assert_eq!(Timing { ttl_ms: 2_000 }.look_every_ms(50), 100);
    }
}
