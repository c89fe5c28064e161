//! The lease's rules, pure: times in, what to do out. Tested with a fake clock.
//!
//! A holder renews every quarter of the lease and stops acting a quarter before the
//! lease it last renewed runs out. It never assumes a renewal it has not seen succeed.
//! So after three failed renewals in a row, it has stopped acting before a standby may
//! take over. That margin also absorbs clock skew between the hosts and a call already
//! in flight. A standby takes the lease once it has expired by its own clock, or once it
//! has been released (expiry 0).

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

    /// Until when a holder whose last successful renewal was sent at `renewed_ms` may act.
    pub fn act_until(self, renewed_ms: i64) -> i64 {
        renewed_ms + self.ttl_ms - self.ttl_ms / 4
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

/// A holder's next step at `now_ms`, its last successful renewal having been sent at
/// `renewed_ms`.
pub fn holder_step(timing: Timing, now_ms: i64, renewed_ms: i64) -> HolderStep {
    if now_ms >= timing.act_until(renewed_ms) {
        HolderStep::StepDown
    } else if now_ms >= renewed_ms + timing.renew_every_ms() {
        HolderStep::Renew
    } else {
        HolderStep::Keep
    }
}

/// Whether a standby may try to take `lease` at `now_ms`: nobody ever held it, it was
/// released or has expired, or it is `me`'s own (a restart of this very process cannot
/// be: `me` carries the pid).
pub fn may_take(lease: Option<&Lease>, me: &str, now_ms: i64) -> bool {
    lease.is_none_or(|l| l.expires_ms < now_ms || l.holder == me)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing { ttl_ms: 20_000 };

    #[test]
    fn a_holder_renews_each_quarter_and_steps_down_a_quarter_before_expiry() {
        assert_eq!(holder_step(T, 1_000, 0), HolderStep::Keep);
        assert_eq!(holder_step(T, 5_000, 0), HolderStep::Renew);
        // Renewals failing: it keeps trying and acting until 15 s, then stops.
        assert_eq!(holder_step(T, 14_999, 0), HolderStep::Renew);
        assert_eq!(holder_step(T, 15_000, 0), HolderStep::StepDown);
        // A renewal sent at 5 s that succeeded moves everything on.
        assert_eq!(holder_step(T, 9_999, 5_000), HolderStep::Keep);
        assert_eq!(holder_step(T, 15_000, 5_000), HolderStep::Renew);
        assert!(T.act_until(5_000) < 5_000 + T.ttl_ms, "it stops before the lease it renewed can expire");
    }

    #[test]
    fn a_standby_takes_only_a_free_expired_or_released_lease() {
        let held = Lease { holder: "a:1".into(), expires_ms: 20_000, fence: 3 };
        assert!(may_take(None, "b:2", 0));
        assert!(!may_take(Some(&held), "b:2", 19_999));
        assert!(!may_take(Some(&held), "b:2", 20_000), "not at the very millisecond it ends");
        assert!(may_take(Some(&held), "b:2", 20_001));
        assert!(may_take(Some(&Lease { expires_ms: 0, ..held.clone() }), "b:2", 1), "released");
        assert!(may_take(Some(&held), "a:1", 1), "its own");
    }

    #[test]
    fn a_standby_looks_often_enough_to_take_a_released_lease_within_a_second() {
        assert_eq!(T.look_every_ms(1_000), 1_000);
        assert_eq!(Timing { ttl_ms: 4_000 }.look_every_ms(1_000), 400);
        assert_eq!(Timing { ttl_ms: 2_000 }.look_every_ms(50), 100);
    }
}
