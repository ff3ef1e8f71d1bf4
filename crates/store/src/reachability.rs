//! Whether this store has been in touch with its database long enough for a lapsed refresh
//! lease to mean that its holder died.
//!
//! A lease lapses when its holder stops renewing it. While the database is unreachable *nobody*
//! can renew, so a lease that lapsed during an outage says nothing about its holder: it may be
//! alive, holding Kit's answer (new tokens Kit has already rotated to) and retrying its commit.
//! Taking that lease over the moment the database comes back would resend a spent refresh token
//! (a strict Kit answers `invalid_grant`, and with reuse detection ends the grant) and race the
//! holder's commit. So a takeover waits until this store has been reachable for one lease TTL:
//! time for a live holder to renew or commit, after which a lapse is evidence again
//! (docs/refresh-protocol.md, "A database outage is not a death").
//!
//! What counts as "cut off" is a lost or refused connection (`error::cuts_off`), never a busy
//! or locked database, which is reachable and only contended. PostgreSQL's `LISTEN` connection
//! reports a restart at once even in a process that had no query running.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Last cut-off and first contact after it, as milliseconds since `origin` plus one (0: never).
#[derive(Debug)]
pub(crate) struct Reachability {
    origin: Instant,
    /// Set on every cut-off; cleared (to 0) by the first success after it.
    down_since: AtomicU64,
    /// The first success after the latest cut-off.
    back_since: AtomicU64,
}

impl Reachability {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            down_since: AtomicU64::new(0),
            back_since: AtomicU64::new(0),
        }
    }

    fn stamp(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// The database could not be reached (a connection lost or refused).
    pub(crate) fn cut_off(&self) {
        let _ =
            self.down_since
                .compare_exchange(0, self.stamp(), Ordering::AcqRel, Ordering::Acquire);
    }

    /// A statement completed: if the store was cut off, it is back from now on. One atomic
    /// load on the common path.
    pub(crate) fn reached(&self) {
        let down = self.down_since.load(Ordering::Acquire);
        if down != 0 {
            // `back_since` first: a reader that sees `down_since` cleared also sees it.
            self.back_since.store(self.stamp(), Ordering::Release);
            let _ = self
                .down_since
                .compare_exchange(down, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// How much longer a lapsed lease must be left to its holder: `None` when this store has
    /// been reachable for at least `ttl` (or was never cut off); the rest of `ttl` otherwise,
    /// all of it while the store is still cut off.
    pub(crate) fn hold_back(&self, ttl: Duration) -> Option<Duration> {
        if self.down_since.load(Ordering::Acquire) != 0 {
            return Some(ttl);
        }
        let back = self.back_since.load(Ordering::Acquire);
        if back == 0 {
            return None;
        }
        let since = Duration::from_millis(self.stamp().saturating_sub(back));
        let left = ttl.saturating_sub(since);
        (!left.is_zero()).then_some(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_never_cut_off_holds_nothing_back() {
        let r = Reachability::new();
        r.reached();
        assert_eq!(r.hold_back(Duration::from_secs(4)), None);
    }

    #[test]
    fn a_cut_off_holds_back_a_whole_ttl_until_reached_then_the_rest_of_it() {
        let r = Reachability::new();
        r.cut_off();
        assert_eq!(
            r.hold_back(Duration::from_secs(4)),
            Some(Duration::from_secs(4))
        );
        r.reached();
        let left = r.hold_back(Duration::from_secs(4)).expect("just reached");
        assert!(left <= Duration::from_secs(4) && left > Duration::from_secs(3));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(r.hold_back(Duration::from_millis(20)), None);
    }
}
