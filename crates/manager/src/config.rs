//! Tuning of the refresh protocol. The defaults are what a production app on Kit wants; tests
//! shorten them.

use std::time::Duration;

/// Timings of the refresh protocol.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// How long a refresh lease lasts if its holder dies. Must comfortably exceed the token
    /// endpoint's request timeout, so that a live holder never loses its lease mid-refresh.
    pub lease_ttl: Duration,
    /// How long a caller waits for another instance's refresh before giving up (transient).
    pub wait_timeout: Duration,
    /// The first cooldown after a failed refresh; doubles with each consecutive failure.
    pub cooldown_base: Duration,
    /// The longest cooldown: a failing connection costs at most one upstream call this often.
    pub cooldown_max: Duration,
    /// How many times a refreshed token set is offered to the database when it is unavailable
    /// (the tokens exist nowhere else: Kit has already rotated).
    pub commit_attempts: u32,
    /// How long a completed install is remembered, so that a double-submitted callback gets the
    /// same answer.
    pub completed_install_ttl: Duration,
    /// How long this process serves a token from memory before reading its row again. Other
    /// instances' revocations, removals and reinstalls reach this one within this time; the
    /// cost is one database read per hot connection per period.
    pub cache_max_age: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(60),
            wait_timeout: Duration::from_secs(30),
            cooldown_base: Duration::from_secs(2),
            cooldown_max: Duration::from_secs(3600),
            commit_attempts: 8,
            completed_install_ttl: Duration::from_secs(600),
            cache_max_age: Duration::from_secs(15),
        }
    }
}

impl ManagerConfig {
    /// The cooldown after `failures` consecutive failures (≥ 1), before jitter:
    /// `base * 2^(failures-1)`, capped at `cooldown_max`. With the defaults a connection that
    /// fails forever costs 11 upstream calls in its first hour (12 at most with jitter) and one an hour after that.
    #[must_use]
    pub fn cooldown(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(31);
        self.cooldown_base
            .saturating_mul(1u32 << exponent)
            .min(self.cooldown_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_doubles_then_caps() {
        let c = ManagerConfig::default();
        assert_eq!(c.cooldown(1), Duration::from_secs(2));
        assert_eq!(c.cooldown(2), Duration::from_secs(4));
        assert_eq!(c.cooldown(11), Duration::from_secs(2048));
        assert_eq!(c.cooldown(12), Duration::from_secs(3600));
        assert_eq!(c.cooldown(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn a_failing_connection_is_bounded_per_hour() {
        let c = ManagerConfig::default();
        let mut elapsed = Duration::ZERO;
        let mut calls = 0u32;
        while elapsed < Duration::from_secs(3600) {
            calls += 1;
            elapsed += c.cooldown(calls);
        }
        assert_eq!(calls, 11);
    }
}
