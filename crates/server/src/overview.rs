//! `GET /overview`: the fleet at a glance — connections by state, and refreshes and failures
//! per hour over the last 24 h as an inline SVG bar chart (no script, no image request), with
//! the same figures as a table for screen readers and for copying.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kit_oauth::store::{FleetCounts, HourCounts};
use maud::{Markup, PreEscaped, html};

use crate::dashboard::{disabled, html as page, session};
use crate::pages::{Script, layout};
use crate::web::see_other;
use crate::{AppState, DashboardAccess};

const HOURS: i64 = 24;
const HOUR_MS: i64 = 3_600_000;
const WIDTH: u64 = 720;
const HEIGHT: u64 = 220;
const LEFT: u64 = 48;
const BOTTOM: u64 = 28;
/// Colors with at least 3:1 contrast on white (WCAG 1.4.11, non-text contrast).
const GOOD: &str = "#1f6f43";
const BAD: &str = "#b00020";

/// The last 24 whole hours, oldest first, zero where nothing happened.
fn last_day(hours: &[HourCounts], now_ms: i64) -> Vec<HourCounts> {
    let current = now_ms.div_euclid(HOUR_MS);
    (current - HOURS + 1..=current)
        .map(|hour| {
            hours
                .iter()
                .find(|h| h.hour == hour)
                .copied()
                .unwrap_or(HourCounts {
                    hour,
                    ..HourCounts::default()
                })
        })
        .collect()
}

fn hour_label(hour: i64) -> String {
    format!("{:02}:00", hour.rem_euclid(24))
}

/// The chart: per hour, a green bar of refreshes and a red bar of failures beside it.
fn chart(day: &[HourCounts]) -> String {
    let peak = day
        .iter()
        .map(|h| h.refreshed.max(h.failed))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_w = WIDTH - LEFT - 8;
    let plot_h = HEIGHT - BOTTOM - 10;
    let slot = plot_w / day.len().max(1) as u64;
    let bar = (slot.saturating_sub(4) / 2).max(1);
    let height = |n: u64| n * plot_h / peak;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg id=\"refresh-chart\" role=\"img\" aria-labelledby=\"chart-title chart-desc\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" style=\"max-width:{WIDTH}px\" \
         xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"chart-title\">Refreshes and failures per hour, last 24 hours</title>\
         <desc id=\"chart-desc\">{} refreshes and {} failures in all; the busiest hour had {peak}.</desc>",
        day.iter().map(|h| h.refreshed).sum::<u64>(),
        day.iter().map(|h| h.failed).sum::<u64>(),
    );
    let base = HEIGHT - BOTTOM;
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#555\"/>\
         <text x=\"{}\" y=\"16\" font-size=\"12\" text-anchor=\"end\" fill=\"#333\">{peak}</text>\
         <text x=\"{}\" y=\"{base}\" font-size=\"12\" text-anchor=\"end\" fill=\"#333\">0</text>",
        WIDTH - 8,
        LEFT - 6,
        LEFT - 6,
    );
    for (i, h) in day.iter().enumerate() {
        let x = LEFT + i as u64 * slot + 2;
        let (ok, failed) = (height(h.refreshed), height(h.failed));
        let label = hour_label(h.hour);
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{ok}\" fill=\"{GOOD}\">\
             <title>{label}: {} refreshed</title></rect>\
             <rect x=\"{}\" y=\"{}\" width=\"{bar}\" height=\"{failed}\" fill=\"{BAD}\">\
             <title>{label}: {} failed</title></rect>",
            base - ok,
            h.refreshed,
            x + bar,
            base - failed,
            h.failed,
        );
        if i % 4 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x}\" y=\"{}\" font-size=\"11\" fill=\"#333\">{label}</text>",
                base + 16
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn counts_table(counts: &FleetCounts) -> Markup {
    html! {
        table id="counts" {
            caption { "Connections by state" }
            tbody {
                tr { th scope="row" { "Active" } td data-count="active" { (counts.active) } }
                tr { th scope="row" { "Active, last refresh failed" } td data-count="failing" { (counts.failing) } }
                tr { th scope="row" { "Needs reinstall" } td data-count="reauth" { (counts.needs_reauth) } }
                tr { th scope="row" { "Revoked" } td data-count="revoked" { (counts.revoked) } }
            }
        }
    }
}

/// The overview page.
pub async fn page_of(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if matches!(state.options.dashboard, DashboardAccess::Disabled) {
        return disabled();
    }
    if session(&state, &headers).await.is_none() {
        return see_other("/");
    }
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let since = (now_ms.div_euclid(HOUR_MS) - HOURS + 1) * HOUR_MS;
    let (counts, hours) = match state
        .engine
        .manager
        .overview(kit_oauth::core::Timestamp::from_unix_millis(since))
        .await
    {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(%error, "dashboard could not read the overview");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "The overview could not be read; try again in a moment.\n",
            )
                .into_response();
        }
    };
    let day = last_day(&hours, now_ms);
    let markup = layout(
        "Overview",
        &html! {
            h1 { "Fleet overview" }
            (counts_table(&counts))
            h2 { "Refreshes per hour (UTC), last 24 hours" }
            p {
                span style={"color:" (GOOD)} { "■" } " refreshed  "
                span style={"color:" (BAD)} { "■" } " failed"
            }
            (PreEscaped(chart(&day)))
            details {
                summary { "The chart's figures" }
                table id="hours" {
                    caption { "Refreshes and failures per hour (UTC)" }
                    thead { tr { th scope="col" { "Hour" } th scope="col" { "Refreshed" } th scope="col" { "Failed" } } }
                    tbody {
                        @for h in &day {
                            tr { td { (hour_label(h.hour)) } td { (h.refreshed) } td { (h.failed) } }
                        }
                    }
                }
            }
        },
        Script::None,
    );
    page(StatusCode::OK, &markup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_one_pair_of_bars_per_hour_scaled_to_the_busiest() {
        let now = 100 * HOUR_MS + 5;
        let day = last_day(
            &[
                HourCounts {
                    hour: 100,
                    refreshed: 10,
                    failed: 2,
                },
                HourCounts {
                    hour: 77,
                    refreshed: 5,
                    failed: 0,
                },
                HourCounts {
                    hour: 50,
                    refreshed: 99,
                    failed: 0,
                },
            ],
            now,
        );
        assert_eq!(day.len(), 24);
        assert_eq!(day[0].hour, 77);
        assert_eq!(day[23].refreshed, 10);
        let svg = chart(&day);
        assert_eq!(svg.matches("<rect").count(), 48);
        assert!(svg.contains("15 refreshes and 2 failures"), "{svg}");
        // The busiest bar fills the plot; an hour of 5 is half of it.
        let full = HEIGHT - BOTTOM - 10;
        assert!(svg.contains(&format!("height=\"{full}\"")), "{svg}");
        assert!(
            svg.contains(&format!("height=\"{}\"", 5 * full / 10)),
            "{svg}"
        );
    }
}
