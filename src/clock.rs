//! Time as epoch milliseconds, and the daemon's own timeline.
//!
//! Decisions take `now` as an argument, never read the clock themselves, so unit tests
//! drive them with any time they like. The workers read it from a [`Timeline`]: wall-clock
//! time that advances with the monotonic clock, so a step of the system clock (an hour
//! back: cache refreshes freeze and old query-log lines look new; an hour forward: the
//! tail reads a window nothing is in yet) does not move it.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch: the unit of CloudWatch Logs event timestamps.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// This instant plus `ms` milliseconds (saturating).
    pub fn plus_ms(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// This instant minus `ms` milliseconds (saturating).
    pub fn minus_ms(self, ms: i64) -> Self {
        Self(self.0.saturating_sub(ms))
    }

    /// Milliseconds from `earlier` to this instant (negative if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// RFC 3339 text for logs and alerts.
    pub fn rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// A time read from AWS (a query-log line, an ingestion time) may be this much ahead of
/// ours and still be believed: clocks differ a little. Beyond it, it is not.
pub const CLOCK_SKEW_MS: i64 = 60 * 1000;

/// The current wall-clock time.
pub fn now() -> Timestamp {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Where a [`Timeline`] reads time: the system, or a test.
pub trait Source: Send + Sync {
    /// The wall clock.
    fn wall(&self) -> Timestamp;
    /// A monotonic clock, in milliseconds from any fixed origin.
    fn mono_ms(&self) -> i64;
}

/// The system's clocks. The monotonic one is `CLOCK_BOOTTIME`, which keeps counting
/// while the machine is suspended (a paused VM, a laptop lid): waking up is then not
/// mistaken for a step of the wall clock.
#[derive(Debug)]
pub struct System {
    origin: std::time::Instant,
}

impl Source for System {
    fn wall(&self) -> Timestamp {
        now()
    }
    fn mono_ms(&self) -> i64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec that we own.
        if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut ts) } == 0 {
            return ts.tv_sec.saturating_mul(1000).saturating_add(ts.tv_nsec / 1_000_000);
        }
        i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}

/// The system clock may drift this far from the monotonic prediction and is followed;
/// beyond it, it stepped, and the timeline keeps its own time.
pub const FOLLOW_MS: i64 = 2_000;

/// Wall-clock time that never steps: it follows the system clock while that advances as
/// the monotonic clock does (NTP slewing, drift), and otherwise extrapolates from the last
/// agreement, saying once that the system clock stepped. AWS's own times (the ingestion
/// time of query-log lines) can move it forward: ours was behind.
pub struct Timeline {
    source: Box<dyn Source>,
    anchor: std::sync::Mutex<Anchor>,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    wall: Timestamp,
    mono: i64,
    /// The step last reported, so that it is reported once.
    stepped_ms: i64,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeline").field("anchor", &*self.lock()).finish_non_exhaustive()
    }
}

impl Timeline {
    /// A timeline over the system's clocks.
    pub fn system() -> Self {
        Self::with(Box::new(System { origin: std::time::Instant::now() }))
    }

    /// A timeline over any source (tests).
    pub fn with(source: Box<dyn Source>) -> Self {
        let anchor = Anchor { wall: source.wall(), mono: source.mono_ms(), stepped_ms: 0 };
        Self { source, anchor: std::sync::Mutex::new(anchor) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Anchor> {
        self.anchor.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        let (wall, mono) = (self.source.wall(), self.source.mono_ms());
        let mut a = self.lock();
        let predicted = a.wall.plus_ms(mono - a.mono);
        let step = wall.since(predicted);
        if step.abs() <= FOLLOW_MS {
            *a = Anchor { wall, mono, stepped_ms: 0 };
            return wall;
        }
        if (step - a.stepped_ms).abs() > FOLLOW_MS {
            a.stepped_ms = step;
            tracing::warn!(step_ms = step, system = %wall, kept = %predicted, "the system clock stepped; the daemon keeps its own time (from the monotonic clock)");
        }
        // Re-anchor on the prediction, so that later readings extrapolate from here.
        a.wall = predicted;
        a.mono = mono;
        predicted
    }

    /// A time AWS stamped (when it ingested a line): if it is ahead of ours by more than
    /// the skew, our clock was behind all along, and the timeline moves forward to it.
    pub fn observe_aws(&self, aws: Timestamp) {
        let now = self.now();
        if aws.since(now) > CLOCK_SKEW_MS {
            let mut a = self.lock();
            tracing::warn!(behind_ms = aws.since(now), "AWS's clock is ahead of ours; moving the daemon's time forward");
            a.wall = aws;
            a.mono = self.source.mono_ms();
        }
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both are small and positive by construction (day 1-31, month 1-12).
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A clock a test sets: wall and monotonic time move separately.
    #[derive(Default)]
    pub struct Fake {
        pub wall: AtomicI64,
        pub mono: AtomicI64,
    }

    impl Source for Arc<Fake> {
        fn wall(&self) -> Timestamp {
            Timestamp(self.wall.load(Ordering::SeqCst))
        }
        fn mono_ms(&self) -> i64 {
            self.mono.load(Ordering::SeqCst)
        }
    }

    impl Fake {
        pub fn advance(&self, ms: i64) {
            self.wall.fetch_add(ms, Ordering::SeqCst);
            self.mono.fetch_add(ms, Ordering::SeqCst);
        }
    }

    fn timeline() -> (Arc<Fake>, Timeline) {
        let fake = Arc::new(Fake { wall: AtomicI64::new(1_795_428_000_000), mono: AtomicI64::new(0) });
        (Arc::clone(&fake), Timeline::with(Box::new(fake)))
    }

    #[test]
    fn regression_a_step_back_of_an_hour_does_not_move_the_timeline_back() {
        let (fake, t) = timeline();
        let before = t.now();
        fake.wall.fetch_sub(3_600_000, Ordering::SeqCst);
        fake.advance(1_000);
        assert_eq!(t.now(), before.plus_ms(1_000), "keeps advancing with the monotonic clock");
        fake.advance(5_000);
        assert_eq!(t.now(), before.plus_ms(6_000));
    }

    #[test]
    fn regression_a_step_forward_of_an_hour_does_not_blind_the_tail() {
        let (fake, t) = timeline();
        let before = t.now();
        fake.wall.fetch_add(3_600_000, Ordering::SeqCst);
        fake.advance(1_000);
        assert_eq!(t.now(), before.plus_ms(1_000));
    }

    #[test]
    fn drift_and_slewing_are_followed() {
        let (fake, t) = timeline();
        let before = t.now();
        fake.advance(10_000);
        fake.wall.fetch_add(500, Ordering::SeqCst); // NTP slewed half a second
        assert_eq!(t.now(), before.plus_ms(10_500));
    }

    #[test]
    fn aws_times_ahead_of_ours_move_the_timeline_forward() {
        let (_fake, t) = timeline();
        let before = t.now();
        t.observe_aws(before.plus_ms(30_000));
        assert_eq!(t.now(), before, "within the skew: delivery timing, not our clock");
        t.observe_aws(before.plus_ms(600_000));
        assert_eq!(t.now(), before.plus_ms(600_000));
    }

    #[test]
    fn formats_and_round_trips_dates() {
        let t = Timestamp((days_from_civil(2017, 12, 13) * 86_400 + 8 * 3600 + 15 * 60 + 50) * 1000 + 235);
        assert_eq!(t.rfc3339(), "2017-12-13T08:15:50.235Z");
        assert_eq!(Timestamp(0).rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(days_from_civil(2024, 2, 29) + 1, days_from_civil(2024, 3, 1));
    }
}
