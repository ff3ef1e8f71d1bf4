//! How hard [`crate::KitClient`] tries on 429, 5xx and network failures.

use std::time::Duration;

use rand::Rng as _;

/// How hard [`KitClient`] tries on 429, 5xx and network failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (the forced-refresh retry on 401 is extra, and single).
    pub max_retries: u32,
    /// First backoff step when the server gave no `Retry-After`.
    pub base_delay: Duration,
    /// Largest single backoff step.
    pub max_delay: Duration,
    /// The total time spent waiting between attempts never exceeds this; a `Retry-After`
    /// beyond what is left ends the retries at once.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_total_wait: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries at all (the forced refresh on an expired token still happens).
    #[must_use]
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Exponential backoff with jitter: uniform in `[step/2, step]`, `step = base · 2^retry`
    /// capped at `max_delay`.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        let step = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let hi = u64::try_from(step.as_micros()).unwrap_or(u64::MAX);
        let micros = if hi == 0 {
            0
        } else {
            rand::thread_rng().gen_range(hi / 2..=hi)
        };
        Duration::from_micros(micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        let p = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_total_wait: Duration::from_secs(10),
        };
        for retry in 0..40 {
            let step = Duration::from_millis(100)
                .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
                .min(Duration::from_secs(1));
            let d = p.backoff(retry);
            assert!(
                d >= step / 2 && d <= step,
                "retry {retry}: {d:?} vs {step:?}"
            );
        }
    }
}
