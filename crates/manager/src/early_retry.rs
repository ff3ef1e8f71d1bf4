//! Ending a cooldown early once Kit answers again.
//!
//! A connection's cooldown doubles with each failure so that an outage at Kit costs few calls
//! per connection. But the cooldown reached at the end of a long outage would outlive it: a
//! connection that failed for an hour would wait up to another hour after Kit came back. So
//! this process remembers when Kit last answered a refresh (of any connection), and a caller
//! whose token has expired may retry before its cooldown ends if Kit has answered since that
//! connection's failure. Kit being up for others is the evidence; without it (every attempt
//! failing, or nobody else refreshing) the cooldown runs its course.
//!
//! Two limits keep the guarantee that a failing connection costs a bounded number of calls:
//! an early retry that fails does not allow another one (its cooldown runs its course), and a
//! failure Kit answered with `Retry-After` is never cut short.

use std::sync::atomic::{AtomicI64, Ordering};

use kit_oauth_core::{EndpointError, RefreshHealth, Timestamp};

/// When this process last had an answer from Kit's token endpoint: tokens, or a refusal that
/// proves Kit is up (`invalid_grant`).
#[derive(Debug)]
pub(crate) struct KitAnswers {
    /// Unix milliseconds of the latest answer; `i64::MIN` before the first.
    last: AtomicI64,
}

impl KitAnswers {
    pub(crate) const fn new() -> Self {
        Self {
            last: AtomicI64::new(i64::MIN),
        }
    }

    /// Kit answered at `at`.
    pub(crate) fn record(&self, at: Timestamp) {
        self.last.fetch_max(at.unix_millis(), Ordering::Relaxed);
    }

    /// Where `health`'s cooldown stands at `now`.
    pub(crate) fn cooldown(&self, health: &RefreshHealth, now: Timestamp) -> Cooldown {
        match health.cooldown_until {
            Some(until) if now < until => {
                if self.ends_cooldown(health) {
                    Cooldown::EndedEarly
                } else {
                    Cooldown::Holds(until)
                }
            }
            _ => Cooldown::Over,
        }
    }

    /// Whether `health`'s cooldown may end now: it allows an early retry, and Kit has answered
    /// after the failure that started it.
    fn ends_cooldown(&self, health: &RefreshHealth) -> bool {
        health
            .early_retry_after
            .is_some_and(|failed_at| self.last.load(Ordering::Relaxed) > failed_at.unix_millis())
    }
}

/// Where a connection's cooldown stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cooldown {
    /// None was set, or it has passed.
    Over,
    /// It has not passed, but Kit has answered since the failure: a caller that needs a new
    /// token may try now.
    EndedEarly,
    /// No refresh before this instant.
    Holds(Timestamp),
}

/// The `early_retry_after` to store with a failure at `now`: `None` when the attempt was itself
/// an early retry, when Kit asked for a `Retry-After`, or when the failure is not an outage
/// (Kit refused our client: only an operator fixes that).
pub(crate) fn early_retry_after(
    error: &EndpointError,
    was_early: bool,
    now: Timestamp,
) -> Option<Timestamp> {
    let outage = matches!(
        error,
        EndpointError::Transient {
            retry_after: None,
            ..
        } | EndpointError::Protocol { .. }
    );
    (outage && !was_early).then_some(now)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_millis(secs * 1000)
    }

    fn transient(retry_after: Option<Duration>) -> EndpointError {
        EndpointError::Transient {
            reason: "503".into(),
            retry_after,
        }
    }

    #[test]
    fn a_cooldown_ends_only_after_an_answer_later_than_the_failure() {
        let answers = KitAnswers::new();
        let health = RefreshHealth {
            early_retry_after: Some(at(100)),
            ..RefreshHealth::default()
        };
        assert!(!answers.ends_cooldown(&health), "no answer yet");
        answers.record(at(99));
        assert!(
            !answers.ends_cooldown(&health),
            "an answer before the failure"
        );
        answers.record(at(100));
        assert!(!answers.ends_cooldown(&health), "at the same instant");
        answers.record(at(101));
        assert!(answers.ends_cooldown(&health));
        answers.record(at(50));
        assert!(
            answers.ends_cooldown(&health),
            "an older answer never moves it back"
        );
        assert!(
            !answers.ends_cooldown(&RefreshHealth::default()),
            "a cooldown that allows no early retry"
        );
    }

    #[test]
    fn a_cooldown_is_over_holds_or_ended_early() {
        let answers = KitAnswers::new();
        let mut health = RefreshHealth {
            cooldown_until: Some(at(200)),
            ..RefreshHealth::default()
        };
        assert_eq!(
            answers.cooldown(&RefreshHealth::default(), at(150)),
            Cooldown::Over
        );
        assert_eq!(answers.cooldown(&health, at(200)), Cooldown::Over);
        assert_eq!(answers.cooldown(&health, at(150)), Cooldown::Holds(at(200)));
        answers.record(at(120));
        assert_eq!(
            answers.cooldown(&health, at(150)),
            Cooldown::Holds(at(200)),
            "no early retry allowed"
        );
        health.early_retry_after = Some(at(100));
        assert_eq!(answers.cooldown(&health, at(150)), Cooldown::EndedEarly);
    }

    #[test]
    fn only_an_outage_failure_on_a_regular_attempt_allows_an_early_retry() {
        let now = at(7);
        assert_eq!(early_retry_after(&transient(None), false, now), Some(now));
        let malformed = EndpointError::Protocol {
            status: Some(200),
            excerpt: "{".into(),
        };
        assert_eq!(early_retry_after(&malformed, false, now), Some(now));
        assert_eq!(early_retry_after(&transient(None), true, now), None);
        let throttled = transient(Some(Duration::from_secs(120)));
        assert_eq!(early_retry_after(&throttled, false, now), None);
        let refused = EndpointError::InvalidClient {
            description: "bad secret".into(),
        };
        assert_eq!(early_retry_after(&refused, false, now), None);
    }
}
