//! `/v4/account/…` besides the account itself (docs/kit-api-v4.md §2): colors, creator
//! profile, email stats and growth stats. The stats are computed from the account's state in
//! the sandbox (broadcasts sent, subscribers created and cancelled); the sandbox records no
//! opens or clicks, so those are 0.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::Api;
use super::broadcasts::sent_between;
use super::support::{Caller, Fail, Query, Reply, body, parse_time, reply};

/// Kit's documented maximum of colors per account.
const MAX_COLORS: usize = 10;
/// The stats window when no dates are given: Kit's "last 90 days".
const DEFAULT_DAYS: i64 = 90;
const DAY_MS: i64 = 86_400_000;
/// The sandbox accounts' time zone (`GET /v4/account` says `America/New_York`, `-05:00`);
/// growth stats are reported in it, as at Kit.
const ZONE_OFFSET_MS: i64 = -5 * 3_600_000;
const ZONE_SUFFIX: &str = "-05:00";

pub(crate) async fn colors(State(api): State<Arc<Api>>, caller: Caller) -> Reply {
    let colors = api.with(caller.account, |d, _| d.colors.clone());
    reply(StatusCode::OK, json!({ "colors": colors }))
}

#[derive(Deserialize)]
struct ColorsBody {
    #[serde(default)]
    colors: Vec<String>,
}

/// `#rgb` or `#rrggbb`.
fn hex_color(c: &str) -> bool {
    c.strip_prefix('#').is_some_and(|hex| {
        (hex.len() == 3 || hex.len() == 6) && hex.chars().all(|ch| ch.is_ascii_hexdigit())
    })
}

pub(crate) async fn set_colors(State(api): State<Arc<Api>>, caller: Caller, raw: Bytes) -> Reply {
    let b: ColorsBody = body(&raw)?;
    if let Some(bad) = b.colors.iter().find(|c| !hex_color(c)) {
        return Err(Fail::invalid(format!(
            "Colors {bad} is not a valid hex color code."
        )));
    }
    if b.colors.len() > MAX_COLORS {
        return Err(Fail::invalid(format!(
            "Colors can't have more than {MAX_COLORS} colors"
        )));
    }
    let colors = api.with(caller.account, |d, _| {
        d.colors.clone_from(&b.colors);
        d.colors.clone()
    });
    reply(StatusCode::OK, json!({ "colors": colors }))
}

pub(crate) async fn creator_profile(State(api): State<Arc<Api>>, caller: Caller) -> Reply {
    if !api.creator_profiles.load(Ordering::Relaxed) {
        return Err(Fail::not_found());
    }
    let account = caller.account;
    reply(
        StatusCode::OK,
        json!({"profile": {
            "name": format!("Creator {account}"),
            "byline": "Writes a newsletter",
            "bio": "A creator profile served by kit-sandbox.",
            "image_url": format!("https://sandbox.invalid/profiles/{account}.png"),
            "profile_url": format!("https://sandbox.invalid/profiles/{account}"),
        }}),
    )
}

pub(crate) async fn email_stats(State(api): State<Arc<Api>>, caller: Caller) -> Reply {
    let stats = api.with(caller.account, |d, now| {
        let starting = now - DEFAULT_DAYS * DAY_MS;
        let sent = sent_between(d, starting, now, now);
        json!({
            "sent": sent, "clicked": 0, "opened": 0,
            "email_stats_mode": "last_90",
            "open_tracking_enabled": true, "click_tracking_enabled": true,
            "starting": iso_zoned(starting), "ending": iso_zoned(now),
            "open_rate": 0.0, "click_rate": 0.0,
        })
    });
    reply(StatusCode::OK, json!({ "stats": stats }))
}

/// A `starting`/`ending` date as the start of that day in the account's zone (UTC ms).
fn day_param(q: &Query, name: &str, label: &str) -> Result<Option<i64>, Fail> {
    q.get(name)
        .map(|v| {
            parse_time(v)
                .map(|utc_day| utc_day - ZONE_OFFSET_MS)
                .ok_or_else(|| {
                    Fail::invalid(format!(
                        "{label} date is incorrectly formatted. Use YYYY-MM-DD."
                    ))
                })
        })
        .transpose()
}

/// `2023-02-17T00:00:00-05:00` for an instant, in the account's zone.
fn iso_zoned(ms: i64) -> String {
    let utc = super::support::iso(ms + ZONE_OFFSET_MS);
    format!("{}{ZONE_SUFFIX}", utc.trim_end_matches('Z'))
}

pub(crate) async fn growth_stats(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let starting = day_param(&q, "starting", "Starting")?;
    let ending = day_param(&q, "ending", "Ending")?;
    let stats = api.with(caller.account, |d, now| {
        // `ending` names a whole day: up to its last second.
        let end = ending.map_or(now, |e| e + DAY_MS - 1000);
        let start = starting.unwrap_or(end - DEFAULT_DAYS * DAY_MS);
        let in_range = |t: i64| t >= start && t <= end;
        let new = d.subscribers.values().filter(|s| in_range(s.created_at));
        let new_subscribers = new.count();
        let cancellations = d
            .subscribers
            .values()
            .filter(|s| s.canceled_at.is_some_and(in_range))
            .count();
        let subscribers = d
            .subscribers
            .values()
            .filter(|s| s.created_at <= end && s.canceled_at.is_none_or(|c| c > end))
            .count();
        let net = i64::try_from(new_subscribers).unwrap_or(i64::MAX)
            - i64::try_from(cancellations).unwrap_or(i64::MAX);
        json!({
            "cancellations": cancellations,
            "net_new_subscribers": net,
            "new_subscribers": new_subscribers,
            "subscribers": subscribers,
            "starting": iso_zoned(start),
            "ending": iso_zoned(end),
        })
    });
    reply(StatusCode::OK, json!({ "stats": stats }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colors_are_hex_codes() {
        assert!(hex_color("#008000"));
        assert!(hex_color("#fff"));
        assert!(!hex_color("#123_not_a_code"));
        assert!(!hex_color("008000"));
    }

    #[test]
    fn zoned_times_carry_the_accounts_offset() {
        let midnight_ny = parse_time("2023-02-17").unwrap() - ZONE_OFFSET_MS;
        assert_eq!(iso_zoned(midnight_ny), "2023-02-17T00:00:00-05:00");
    }
}
