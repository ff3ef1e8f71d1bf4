//! Token sets and when to refresh them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::TokenError;
use crate::secret::{AccessToken, RefreshToken};

/// What a token endpoint answered, already parsed leniently by the HTTP adapter
/// (docs/kit-protocol.md §4: `token_type` in any case or absent, `scope` absent, `created_at` absent
/// on other RFC 6749 servers, extra fields ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The new access token.
    pub access_token: AccessToken,
    /// The new refresh token; servers that do not rotate may omit it.
    pub refresh_token: Option<RefreshToken>,
    /// Lifetime of the access token in seconds.
    pub expires_in: Option<u64>,
    /// Kit's issue instant (Unix seconds); absent elsewhere.
    pub created_at: Option<i64>,
    /// The granted scope, when sent.
    pub scope: Option<String>,
}

impl TokenResponse {
    /// How far Kit's `created_at` is from `received_at` (positive: Kit's clock is ahead),
    /// when the response carries one. Only for a warning: expiry never depends on it.
    #[must_use]
    pub fn clock_skew(&self, received_at: Timestamp) -> Option<i64> {
        self.created_at
            .map(|created| created.saturating_sub(received_at.unix_seconds()))
    }
}

/// An access token, the refresh token that renews it, and when it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    access: AccessToken,
    refresh: RefreshToken,
    scope: Option<String>,
    issued_at: Timestamp,
    expires_at: Timestamp,
}

impl TokenSet {
    /// Builds a token set from a token response.
    ///
    /// `issued_at` is `received_at`, the instant the response arrived by the local clock, and
    /// `expires_at = received_at + expires_in`: `expires_in` is a lifetime counted from the
    /// response (RFC 6749 §5.1), so Kit's clock never moves our schedule. Kit's `created_at`
    /// is not used here; with a Kit clock ahead it would hand out dead tokens, with one behind
    /// every token would arrive already due (see [`TokenResponse::clock_skew`], which the
    /// adapter logs). A lifetime is never guessed.
    /// When the response carries no refresh token, `previous_refresh` is kept (servers that do
    /// not rotate); Kit always rotates.
    ///
    /// # Errors
    /// [`TokenError`] for a missing refresh token (with none to keep), a missing or zero
    /// lifetime, or an empty token.
    pub fn from_response(
        response: TokenResponse,
        received_at: Timestamp,
        previous_refresh: Option<RefreshToken>,
    ) -> Result<Self, TokenError> {
        let expires_in = response.expires_in.ok_or(TokenError::MissingExpiry)?;
        if expires_in == 0 {
            return Err(TokenError::UnusableLifetime { expires_in });
        }
        let refresh = response
            .refresh_token
            .or(previous_refresh)
            .ok_or(TokenError::MissingRefreshToken)?;
        if response.access_token.expose_secret().is_empty() || refresh.expose_secret().is_empty() {
            return Err(TokenError::EmptyToken);
        }
        let issued_at = received_at;
        let expires_at = issued_at.saturating_add(Duration::from_secs(expires_in));
        Ok(Self {
            access: response.access_token,
            refresh,
            scope: response.scope,
            issued_at,
            expires_at,
        })
    }

    /// Assembles a token set from stored parts.
    #[must_use]
    pub fn from_parts(
        access: AccessToken,
        refresh: RefreshToken,
        scope: Option<String>,
        issued_at: Timestamp,
        expires_at: Timestamp,
    ) -> Self {
        Self {
            access,
            refresh,
            scope,
            issued_at,
            expires_at,
        }
    }

    /// The access token.
    #[must_use]
    pub fn access(&self) -> &AccessToken {
        &self.access
    }

    /// The refresh token.
    #[must_use]
    pub fn refresh(&self) -> &RefreshToken {
        &self.refresh
    }

    /// The granted scope, when the server said.
    #[must_use]
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// When the response that carried the token arrived (the local clock).
    #[must_use]
    pub fn issued_at(&self) -> Timestamp {
        self.issued_at
    }

    /// When the access token stops working.
    #[must_use]
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// The access token's whole lifetime.
    #[must_use]
    pub fn lifetime(&self) -> Duration {
        self.expires_at.duration_since(self.issued_at)
    }

    /// The instant from which the token is due for refresh: `expires_at - refresh_margin`.
    #[must_use]
    pub fn due_at(&self) -> Timestamp {
        self.expires_at
            .saturating_sub(refresh_margin(self.lifetime()))
    }

    /// Whether the token is inside its refresh margin (or past expiry) at `now`.
    #[must_use]
    pub fn is_due(&self, now: Timestamp) -> bool {
        now >= self.due_at()
    }

    /// When a background refresher should renew this token: [`TokenSet::due_at`] moved earlier
    /// by a random amount of up to a quarter of the margin, so that tokens issued together do
    /// not all come due in the same second.
    pub fn next_refresh_at(&self, jitter: &mut impl Jitter) -> Timestamp {
        let spread = refresh_margin(self.lifetime()) / 4;
        let offset = jitter.sample(spread).min(spread);
        self.due_at().saturating_sub(offset)
    }
}

/// The refresh margin for a token of the given lifetime: `min(max(10% of lifetime, 60 s), 15 min)`,
/// and never more than half the lifetime (so that a very short-lived token is not "due" from the
/// moment it is issued, which would refresh it on every call).
///
/// ```
/// use std::time::Duration;
/// use kit_oauth_core::refresh_margin;
/// assert_eq!(refresh_margin(Duration::from_secs(172_800)), Duration::from_secs(900));
/// assert_eq!(refresh_margin(Duration::from_secs(7_200)), Duration::from_secs(720));
/// assert_eq!(refresh_margin(Duration::from_secs(300)), Duration::from_secs(60));
/// ```
#[must_use]
pub fn refresh_margin(lifetime: Duration) -> Duration {
    const FLOOR: Duration = Duration::from_secs(60);
    const CEILING: Duration = Duration::from_secs(15 * 60);
    let margin = (lifetime / 10).max(FLOOR).min(CEILING);
    margin.min(lifetime / 2)
}

/// The injected source of randomness for refresh scheduling.
pub trait Jitter {
    /// A duration in `[0, max]`.
    fn sample(&mut self, max: Duration) -> Duration;
}

/// No jitter: deterministic schedules for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJitter;

impl Jitter for NoJitter {
    fn sample(&mut self, _max: Duration) -> Duration {
        Duration::ZERO
    }
}

/// Uniform jitter from any random number generator.
impl<R: rand_core::RngCore> Jitter for R {
    fn sample(&mut self, max: Duration) -> Duration {
        let max_millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        if max_millis == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.next_u64() % (max_millis + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(expires_in: Option<u64>, created_at: Option<i64>) -> TokenResponse {
        TokenResponse {
            access_token: AccessToken::new("at"),
            refresh_token: Some(RefreshToken::new("rt")),
            expires_in,
            created_at,
            scope: Some("public".into()),
        }
    }

    /// Kit's clock 3 h ahead or behind ours: the lifetime still counts from arrival, and the
    /// skew is reported for the warning.
    #[test]
    fn expiry_counts_from_arrival_whatever_kits_clock_says() {
        let received = Timestamp::from_unix_seconds(2_000_000_000);
        for skew in [3 * 3600, -3 * 3600, 0] {
            let created = 2_000_000_000 + skew;
            let r = response(Some(3600), Some(created));
            assert_eq!(r.clock_skew(received), Some(skew));
            let set = TokenSet::from_response(r, received, None).unwrap();
            assert_eq!(set.issued_at(), received);
            assert_eq!(
                set.expires_at(),
                Timestamp::from_unix_seconds(2_000_000_000 + 3600)
            );
            assert_eq!(set.lifetime(), Duration::from_secs(3600));
        }
        assert_eq!(response(Some(1), None).clock_skew(received), None);
    }

    #[test]
    fn expiry_counts_from_arrival_without_created_at() {
        let received = Timestamp::from_unix_seconds(1_000);
        let set = TokenSet::from_response(response(Some(7200), None), received, None).unwrap();
        assert_eq!(set.expires_at(), Timestamp::from_unix_seconds(8_200));
        assert_eq!(set.scope(), Some("public"));
    }

    #[test]
    fn lifetimes_are_never_guessed() {
        let now = Timestamp::from_unix_seconds(1);
        assert_eq!(
            TokenSet::from_response(response(None, None), now, None),
            Err(TokenError::MissingExpiry)
        );
        assert_eq!(
            TokenSet::from_response(response(Some(0), None), now, None),
            Err(TokenError::UnusableLifetime { expires_in: 0 })
        );
    }

    #[test]
    fn a_missing_refresh_token_keeps_the_previous_one() {
        let now = Timestamp::from_unix_seconds(1);
        let mut r = response(Some(60), None);
        r.refresh_token = None;
        assert_eq!(
            TokenSet::from_response(r.clone(), now, None),
            Err(TokenError::MissingRefreshToken)
        );
        let kept = TokenSet::from_response(r, now, Some(RefreshToken::new("old"))).unwrap();
        assert_eq!(kept.refresh(), &RefreshToken::new("old"));
    }

    #[test]
    fn margin_formula() {
        let s = Duration::from_secs;
        assert_eq!(refresh_margin(s(172_800)), s(900)); // Kit code exchange: capped at 15 min
        assert_eq!(refresh_margin(s(7_200)), s(720)); // Kit refresh: 10 %
        assert_eq!(refresh_margin(s(600)), s(60)); // floor
        assert_eq!(refresh_margin(s(60)), s(30)); // never more than half the lifetime
        assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
    }

    /// A misbehaving jitter source: returns ten times the maximum.
    struct Max;
    impl Jitter for Max {
        fn sample(&mut self, max: Duration) -> Duration {
            max * 10
        }
    }

    #[test]
    fn due_and_next_refresh() {
        let issued = Timestamp::from_unix_seconds(0);
        let set = TokenSet::from_parts(
            AccessToken::new("a"),
            RefreshToken::new("r"),
            None,
            issued,
            Timestamp::from_unix_seconds(7200),
        );
        assert_eq!(set.due_at(), Timestamp::from_unix_seconds(7200 - 720));
        assert!(!set.is_due(Timestamp::from_unix_seconds(6479)));
        assert!(set.is_due(Timestamp::from_unix_seconds(6480)));
        assert_eq!(set.next_refresh_at(&mut NoJitter), set.due_at());
        // A misbehaving source is clamped to a quarter of the margin.
        assert_eq!(
            set.next_refresh_at(&mut Max),
            Timestamp::from_unix_seconds(7200 - 720 - 180)
        );
    }

    #[test]
    fn rng_jitter_stays_in_range() {
        let mut rng = rand::rngs::OsRng;
        for _ in 0..1000 {
            assert!(rng.sample(Duration::from_millis(50)) <= Duration::from_millis(50));
        }
        assert_eq!(rng.sample(Duration::ZERO), Duration::ZERO);
    }
}
