//! Instants and the `Clock` port.
//!
//! Every decision about expiry goes through a [`Clock`], so tests (and the sandbox's clock
//! control) can move time without sleeping, and so the core never reads the system time behind
//! the caller's back.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An instant, in milliseconds since the Unix epoch (UTC).
///
/// A plain integer rather than `OffsetDateTime`: it is `Copy`, totally ordered, round-trips
/// losslessly through every storage backend as a `BIGINT`, and Kit speaks Unix seconds anyway.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);

    /// From milliseconds since the Unix epoch.
    #[must_use]
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// From whole seconds since the Unix epoch (what Kit's `created_at` carries).
    #[must_use]
    pub const fn from_unix_seconds(seconds: i64) -> Self {
        Self(seconds.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    #[must_use]
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch, rounded down.
    #[must_use]
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// `self + span`, saturating at the end of time.
    #[must_use]
    pub fn saturating_add(self, span: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(span)))
    }

    /// `self - span`, saturating at the beginning of time.
    #[must_use]
    pub fn saturating_sub(self, span: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(span)))
    }

    /// The span from `earlier` to `self`, or zero when `earlier` is later.
    #[must_use]
    pub fn duration_since(self, earlier: Self) -> Duration {
        let millis = self.0.saturating_sub(earlier.0);
        Duration::from_millis(u64::try_from(millis).unwrap_or(0))
    }

    /// This instant as a calendar date-time in UTC, for display.
    #[must_use]
    pub fn to_offset_date_time(self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).ok()
    }
}

/// Milliseconds in `span`, saturating at `i64::MAX`.
fn duration_millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, or the raw millisecond count when out of the calendar's range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let formatted = self.to_offset_date_time().and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
        match formatted {
            Some(text) => f.write_str(&text),
            None => write!(f, "@{}ms", self.0),
        }
    }
}

/// The port through which the core learns the time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The wall clock. Reading it is the one concession to the outside world this crate makes:
/// without it every consumer would write the same three lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        Timestamp(i64::try_from(nanos).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// For tests, and for keeping a client's clock in step with the sandbox's `/_sandbox/clock`.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start`.
    #[must_use]
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }

    /// Moves the clock forward by `span`.
    pub fn advance(&self, span: Duration) {
        self.0.fetch_add(duration_millis(span), Ordering::SeqCst);
    }

    /// Sets the clock to `instant`.
    pub fn set(&self, instant: Timestamp) {
        self.0.store(instant.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_millis_agree() {
        let t = Timestamp::from_unix_seconds(1_710_270_147);
        assert_eq!(t.unix_millis(), 1_710_270_147_000);
        assert_eq!(t.unix_seconds(), 1_710_270_147);
        assert_eq!(t.to_string(), "2024-03-12T19:02:27Z");
    }

    #[test]
    fn arithmetic_saturates_instead_of_overflowing() {
        let end = Timestamp::from_unix_millis(i64::MAX);
        assert_eq!(end.saturating_add(Duration::from_secs(10)), end);
        let start = Timestamp::from_unix_millis(i64::MIN);
        assert_eq!(start.saturating_sub(Duration::from_secs(10)), start);
        assert_eq!(start.duration_since(end), Duration::ZERO);
    }

    #[test]
    fn manual_clock_clones_share_time() {
        let clock = ManualClock::new(Timestamp::from_unix_seconds(100));
        let other = clock.clone();
        clock.advance(Duration::from_secs(5));
        assert_eq!(other.now(), Timestamp::from_unix_seconds(105));
    }
}
