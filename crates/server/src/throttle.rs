//! Throttling of the dashboard's sign-in form, per client address and per presented key, so
//! the admin key cannot be guessed at network speed. Keyed GCRA limiters from `governor`.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use kit_oauth::core::Sha256Hash;

/// Sign-in attempts allowed per minute (and in a burst), from one address and with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Attempts per minute from one client address.
    pub per_address: NonZeroU32,
    /// Attempts per minute presenting one key (whatever the address).
    pub per_key: NonZeroU32,
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self {
            per_address: NonZeroU32::MIN.saturating_add(9),
            per_key: NonZeroU32::MIN.saturating_add(4),
        }
    }
}

/// The limiters behind [`SignInLimits`]. Keys are kept as hashes, never as presented.
#[derive(Clone)]
pub struct SignInThrottle {
    by_address: Arc<DefaultKeyedRateLimiter<Option<IpAddr>>>,
    by_key: Arc<DefaultKeyedRateLimiter<Sha256Hash>>,
}

impl std::fmt::Debug for SignInThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInThrottle").finish_non_exhaustive()
    }
}

/// Addresses and keys remembered at most before idle ones are forgotten.
const RETAIN_ABOVE: usize = 10_000;

fn check<K: Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), Duration> {
    if limiter.len() > RETAIN_ABOVE {
        limiter.retain_recent();
    }
    limiter
        .check_key(key)
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

impl SignInThrottle {
    /// Limiters allowing `limits`.
    #[must_use]
    pub fn new(limits: SignInLimits) -> Self {
        Self {
            by_address: Arc::new(RateLimiter::keyed(Quota::per_minute(limits.per_address))),
            by_key: Arc::new(RateLimiter::keyed(Quota::per_minute(limits.per_key))),
        }
    }

    /// Counts one attempt from `address` with `key`.
    ///
    /// # Errors
    /// How long to wait when either limit is reached (the attempt is then not checked at all).
    pub fn attempt(&self, address: Option<IpAddr>, key: &str) -> Result<(), Duration> {
        check(&self.by_address, &address)?;
        check(&self.by_key, &Sha256Hash::of(key.as_bytes()))
    }
}

impl Default for SignInThrottle {
    fn default() -> Self {
        Self::new(SignInLimits::default())
    }
}
