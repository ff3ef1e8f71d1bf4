//! Kit's rate limit as a budget, not only a reaction (docs/kit-api-v4.md §0): at most 600
//! requests per rolling 60 s per OAuth token, and Kit's 429 is plain text `Retry later`
//! without `Retry-After`. One [`RateBudget`] per process, shared (it is cheap to clone) by every
//! task, keeps each connection under its limit before Kit has to refuse anything.
//!
//! The limiter is `governor`'s GCRA, keyed by connection. A GCRA with burst `B` and one cell
//! per `T` admits at most `B + W/T` calls in any window `W`, so the quota is split: a sixth of
//! the limit as burst, the rest spread over the window (600/60 s → 100 at once, then one per
//! 120 ms). Each process has its own budget: instances sharing a connection must divide the
//! limit between them ([`RateBudget::new`] with a share of it).
//!
//! A [`crate::KitClient`] given a budget ([`crate::KitClient::with_rate_budget`]) takes one
//! request from it before every attempt — the first and each retry — and waits
//! [`RateBudget::backoff_after_429`] after a 429 without `Retry-After`, within its retry policy:
//! the one retry loop there is. The facade's client has `RateBudget::kit()`, and the broker's
//! proxy shares that same budget.
//!
//! The keyed state grows with every connection ever called, so it is swept: once more than
//! [`SWEEP_ABOVE`] connections are tracked, the next acquire drops those whose budget is full
//! again (idle for a window — forgetting them loses nothing, a fresh key has the same room)
//! and the next sweep waits until twice as many as survived are tracked, so sweeps stay rare
//! even when most connections are busy. The state is then bounded by the connections called
//! within one window, not by all connections ever called.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use kit_oauth_core::ConnectionId;
use rand::Rng as _;

/// Kit's limit for OAuth tokens.
pub const KIT_LIMIT: u32 = 600;
/// Kit's window.
pub const KIT_WINDOW: Duration = Duration::from_secs(60);
/// Tracked connections above which idle ones are swept out (see the module docs).
pub const SWEEP_ABOVE: usize = 10_000;

type Limiter<C> = RateLimiter<
    ConnectionId,
    HashMapStateStore<ConnectionId>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// A per-connection request budget shared by every task of the process.
#[derive(Debug)]
pub struct RateBudget<C: Clock = DefaultClock> {
    limiter: Arc<Limiter<C>>,
    clock: C,
    /// Tracked connections past which the next acquire sweeps; shared by clones.
    sweep_at: Arc<AtomicUsize>,
    sweep_floor: usize,
}

impl<C: Clock + Clone> Clone for RateBudget<C> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            clock: self.clock.clone(),
            sweep_at: self.sweep_at.clone(),
            sweep_floor: self.sweep_floor,
        }
    }
}

impl RateBudget {
    /// How long to wait after the `attempt`-th 429 in a row (0-based): Kit's window resets
    /// within 60 s and it sends no `Retry-After`, so 2 s (as Kit's WordPress library waits),
    /// doubling, capped at 60 s, drawn uniformly from the upper half of the step.
    #[must_use]
    pub fn backoff_after_429(attempt: u32) -> Duration {
        let step = Duration::from_secs(2)
            .saturating_mul(1u32.checked_shl(attempt.min(5)).unwrap_or(32))
            .min(KIT_WINDOW);
        let hi = u64::try_from(step.as_millis()).unwrap_or(60_000);
        Duration::from_millis(rand::thread_rng().gen_range(hi / 2..=hi))
    }

    /// Kit's budget: 600 requests per 60 s per connection.
    #[must_use]
    pub fn kit() -> Self {
        Self::new(KIT_LIMIT, KIT_WINDOW)
    }

    /// `limit` requests per rolling `window` per connection (`limit` at least 1).
    #[must_use]
    pub fn new(limit: u32, window: Duration) -> Self {
        Self::with_clock(limit, window, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateBudget<C> {
    /// As [`RateBudget::new`] on another clock (tests use `governor`'s fake clock).
    #[must_use]
    pub fn with_clock(limit: u32, window: Duration, clock: C) -> Self {
        let limit = limit.max(1);
        let burst = (limit / 6).max(1);
        let spread = limit.saturating_sub(burst).max(1);
        let period = window / spread;
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: Arc::new(RateLimiter::hashmap_with_clock(quota, clock.clone())),
            clock,
            sweep_at: Arc::new(AtomicUsize::new(SWEEP_ABOVE)),
            sweep_floor: SWEEP_ABOVE,
        }
    }

    /// Sweeps idle connections once more than `n` are tracked, instead of [`SWEEP_ABOVE`]
    /// (tests use a small `n`).
    #[must_use]
    pub fn sweep_above(mut self, n: usize) -> Self {
        self.sweep_floor = n.max(1);
        self.sweep_at = Arc::new(AtomicUsize::new(self.sweep_floor));
        self
    }

    /// Connections whose budget state is held now.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }

    /// Drops the connections whose budget is full again, when more than the threshold are
    /// tracked; then waits for twice the survivors (at least the floor) before the next sweep.
    fn sweep_if_due(&self) {
        let due = self.sweep_at.load(Ordering::Relaxed);
        if self.limiter.len() <= due {
            return;
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let next = self.limiter.len().saturating_mul(2).max(self.sweep_floor);
        self.sweep_at.store(next, Ordering::Relaxed);
    }

    /// Takes one request from the connection's budget now, or says how long until one is free.
    ///
    /// # Errors
    /// The wait until the budget has room again.
    pub fn try_acquire(&self, connection: &ConnectionId) -> Result<(), Duration> {
        self.sweep_if_due();
        self.limiter
            .check_key(connection)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Waits until the connection's budget has room and takes one request from it. Waiters
    /// add up to 10 ms of jitter so they do not all wake at the same instant.
    pub async fn acquire(&self, connection: &ConnectionId) {
        while let Err(wait) = self.try_acquire(connection) {
            let jitter = Duration::from_micros(rand::thread_rng().gen_range(0..10_000));
            tokio::time::sleep(wait + jitter).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_after_429_stays_in_its_step() {
        for attempt in 0..10 {
            let step = Duration::from_secs(2u64 << attempt.min(5)).min(KIT_WINDOW);
            let d = RateBudget::backoff_after_429(attempt);
            assert!(d >= step / 2 && d <= step, "{attempt}: {d:?}");
        }
    }
}
