//! Tuning of the refresh protocol. The defaults are what a production app on Kit wants; tests
//! shorten them.

use std::time::Duration;

/// Timings of the refresh protocol.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// How long a refresh lease lasts unless its holder renews it. Short, so that the leases
    /// of an instance that died mid-refresh stop blocking the others within seconds; a live
    /// holder renews every `lease_heartbeat` while its call to Kit runs, however slow (up to
    /// the request timeout), so it never loses the lease to a waiter.
    pub lease_ttl: Duration,
    /// How often a holder renews its lease while its call to Kit runs. A fraction of
    /// `lease_ttl`, leaving room for a few slow or failed renewals before the lease lapses.
    pub lease_heartbeat: Duration,
    /// How long a caller waits for another instance's refresh before giving up (transient).
    pub wait_timeout: Duration,
    /// The first cooldown after a failed refresh; doubles with each consecutive failure.
    pub cooldown_base: Duration,
    /// The cooldown of a young failure streak stops growing at this length. Most failures at
    /// Kit are momentary; a connection whose token has expired meanwhile must not wait out a
    /// long backoff when Kit answered again a second later.
    pub quick_cooldown_max: Duration,
    /// How many consecutive failures count as a young streak (see `quick_cooldown_max`).
    /// After them the cooldown doubles again, from `quick_cooldown_max` up to `cooldown_max`.
    pub quick_retries: u32,
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
    /// The most access tokens this process keeps in memory (default 100,000: the broker's RSS
    /// grew by about 43 MiB filling it, measured with `kit-oauth-bench million`). Beyond it, entries that can no longer be served go first, then
    /// arbitrary ones; an evicted connection costs its next caller one database read. Memory
    /// is bounded by this setting, not by the number of connections ever read.
    pub cache_capacity: usize,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(4),
            lease_heartbeat: Duration::from_secs(1),
            wait_timeout: Duration::from_secs(30),
            cooldown_base: Duration::from_secs(2),
            quick_cooldown_max: Duration::from_secs(8),
            quick_retries: 6,
            cooldown_max: Duration::from_secs(3600),
            commit_attempts: 8,
            completed_install_ttl: Duration::from_secs(600),
            cache_max_age: Duration::from_secs(15),
            cache_capacity: 100_000,
        }
    }
}

impl ManagerConfig {
    /// The cooldown after `failures` consecutive failures (≥ 1), before jitter. A young streak
    /// (up to `quick_retries` failures) doubles from `cooldown_base` but stays at most
    /// `quick_cooldown_max`; after that it doubles from there, capped at `cooldown_max`. With
    /// the defaults: 2, 4, 8, 8, 8, 8, 16, 32, … 2048, 3600 s — a connection that fails forever
    /// costs 14 upstream calls in its first hour and one an hour after that.
    #[must_use]
    pub fn cooldown(&self, failures: u32) -> Duration {
        let failures = failures.max(1);
        let doubled = |from: Duration, times: u32| from.saturating_mul(1u32 << times.min(31));
        let young = failures.min(self.quick_retries.max(1));
        let quick = doubled(self.cooldown_base, young - 1).min(self.quick_cooldown_max);
        doubled(quick, failures - young).min(self.cooldown_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_doubles_then_caps() {
        let c = ManagerConfig::default();
        let secs = |f| c.cooldown(f).as_secs();
        let young: Vec<u64> = (1..=6).map(secs).collect();
        assert_eq!(
            young,
            [2, 4, 8, 8, 8, 8],
            "a young streak retries within 8 s"
        );
        assert_eq!(secs(0), 2);
        assert_eq!(secs(7), 16);
        assert_eq!(secs(14), 2048);
        assert_eq!(secs(15), 3600);
        assert_eq!(secs(u32::MAX), 3600);
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
        assert_eq!(calls, 14);
    }
}
