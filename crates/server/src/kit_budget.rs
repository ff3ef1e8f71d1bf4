//! `KIT_OAUTH_KIT_RATE_LIMIT`: this instance's share of Kit's per-connection limit. Each
//! process keeps its own budget (the proxy and the library share it), so instances that call
//! for the same connections divide Kit's 600 per rolling 60 s between them: three instances
//! behind one load balancer run with 200 each. The window stays Kit's.

use kit_oauth::ConfigError;
use kit_oauth::http::kit_api::{KIT_LIMIT, KIT_WINDOW, RateBudget};

/// The variable.
pub const KIT_RATE_LIMIT_VAR: &str = "KIT_OAUTH_KIT_RATE_LIMIT";

/// The budget for `raw` (whole requests per rolling 60 s per connection, 1 to Kit's 600);
/// `None` when unset, which is Kit's whole limit.
///
/// # Errors
/// `raw` is not a whole number from 1 to 600.
pub fn parse_kit_rate_limit(raw: Option<&str>) -> Result<Option<RateBudget>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    raw.parse::<u32>()
        .ok()
        .filter(|n| (1..=KIT_LIMIT).contains(n))
        .map(|n| Some(RateBudget::new(n, KIT_WINDOW)))
        .ok_or_else(|| {
            ConfigError::new(
                KIT_RATE_LIMIT_VAR,
                format!(
                    "must be a whole number of Kit requests per 60 s per connection from 1 to \
                     {KIT_LIMIT} (this instance's share of Kit's limit), not {raw:?}"
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use kit_oauth::core::ConnectionId;

    use super::*;

    #[test]
    fn a_share_of_kits_limit_from_one_to_600() {
        assert!(parse_kit_rate_limit(None).unwrap().is_none());
        // 200 a minute: a sixth as burst, as for Kit's 600 (see RateBudget).
        let budget = parse_kit_rate_limit(Some("200")).unwrap().unwrap();
        let id = ConnectionId::generate(&mut rand::rngs::OsRng);
        let burst = (0..1000)
            .take_while(|_| budget.try_acquire(&id).is_ok())
            .count();
        assert_eq!(burst, 33);
        for raw in ["0", "601", "-1", "1.5", "lots"] {
            let error = parse_kit_rate_limit(Some(raw)).err().unwrap();
            assert_eq!(error.variable, KIT_RATE_LIMIT_VAR, "{raw}");
        }
    }
}
