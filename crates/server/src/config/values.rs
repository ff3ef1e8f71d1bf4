//! The refresher's value parsers: each accepts one written form and refuses anything else
//! with one line naming its variable (docs/design.md's configuration table).

use std::time::Duration;

use kit_oauth::ConfigError;

use super::{
    EVENT_RETENTION_VAR, MAX_EVENT_RETENTION_DAYS, MAX_REFRESH_INTERVAL, MAX_REFRESH_RATE,
    MIN_REFRESH_INTERVAL, REFRESH_INTERVAL_VAR, REFRESH_RATE_VAR,
};

/// `5`, `0.5`, `5s` (seconds) or `500ms`, within [`MIN_REFRESH_INTERVAL`] and
/// [`MAX_REFRESH_INTERVAL`].
pub(super) fn parse_refresh_interval(raw: &str) -> Result<Duration, ConfigError> {
    let problem = || {
        ConfigError::new(
            REFRESH_INTERVAL_VAR,
            format!(
                "must be a duration from 100ms to 300s, in seconds (5, 0.5, 5s) or \
                 milliseconds (500ms), not {raw:?}"
            ),
        )
    };
    let (number, unit) = match raw.strip_suffix("ms") {
        Some(number) => (number, 0.001),
        None => (raw.strip_suffix('s').unwrap_or(raw), 1.0),
    };
    // Plain decimal digits only: no sign, exponent, `inf` or `NaN`.
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(problem());
    }
    let seconds = number.parse::<f64>().map_err(|_| problem())? * unit;
    let interval = Duration::try_from_secs_f64(seconds).map_err(|_| problem())?;
    if (MIN_REFRESH_INTERVAL..=MAX_REFRESH_INTERVAL).contains(&interval) {
        Ok(interval)
    } else {
        Err(problem())
    }
}

/// A whole number of refreshes per second, 1 to [`MAX_REFRESH_RATE`].
pub(super) fn parse_refresh_rate(raw: &str) -> Result<u32, ConfigError> {
    raw.parse::<u32>()
        .ok()
        .filter(|rate| (1..=MAX_REFRESH_RATE).contains(rate))
        .ok_or_else(|| {
            ConfigError::new(
                REFRESH_RATE_VAR,
                format!(
                    "must be a whole number of refreshes per second from 1 to \
                     {MAX_REFRESH_RATE}, not {raw:?}"
                ),
            )
        })
}

/// Whole days (`30` or `30d`): retention is about weeks, and a day is the floor anyway
/// (`kit_oauth::MIN_EVENT_RETENTION`).
pub(super) fn parse_event_retention(raw: &str) -> Result<Duration, ConfigError> {
    raw.strip_suffix('d')
        .unwrap_or(raw)
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|days| (1..=MAX_EVENT_RETENTION_DAYS).contains(days))
        .map(|days| Duration::from_secs(days * 24 * 3600))
        .ok_or_else(|| {
            ConfigError::new(
                EVENT_RETENTION_VAR,
                format!(
                    "must be a whole number of days from 1 to {MAX_EVENT_RETENTION_DAYS} \
                     (`30` or `30d`), not {raw:?}"
                ),
            )
        })
}
