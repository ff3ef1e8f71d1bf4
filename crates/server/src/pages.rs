//! Server-rendered HTML (maud escapes every interpolated value).

use kit_oauth::ConnectionStatus;
use kit_oauth::core::{StateName, Timestamp, UnauthorizedReason};
use kit_oauth::store::FleetFilter;
use std::time::Duration;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::DemoInfo;
use crate::web::relative;

const STYLE: &str = "\
:root{color-scheme:light dark}\
body{font-family:system-ui,-apple-system,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;line-height:1.45}\
h1{font-size:1.4rem}\
.card{border:1px solid #8884;border-radius:10px;padding:1rem;margin:.75rem 0}\
.state{font-weight:700;padding:.1rem .5rem;border-radius:999px;display:inline-block}\
.authorized{background:#1f6f4333;color:inherit}.expired{background:#f3a71233}.unauthorized{background:#a0000033}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;margin:.5rem 0}dt{opacity:.7}dd{margin:0;overflow-wrap:anywhere}\
form.inline{display:inline}button,.button{font-size:1rem;padding:.45rem 1rem;border-radius:6px;border:1px solid #555;cursor:pointer;text-decoration:none;display:inline-block;margin:.2rem .3rem .2rem 0}\
.primary{background:#1f6f43;color:#fff}.danger{background:#a00000;color:#fff}\
.error{color:#c00000}code{overflow-wrap:anywhere}pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#8881;padding:.5rem;border-radius:6px}\
input[type=password]{font-size:1rem;padding:.4rem;width:100%;max-width:24rem;box-sizing:border-box}\
a{color:#0b57b0}a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,summary:focus-visible{outline:3px solid #0b57b0;outline-offset:2px}\
nav a{margin-right:1rem}form.search{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end;margin:.75rem 0}\
form.search label{display:flex;flex-direction:column;font-size:.9rem}form.search input,form.search select{font-size:1rem;padding:.35rem}\
.pager{display:flex;gap:1rem;margin:1rem 0}table{border-collapse:collapse}th,td{text-align:left;padding:.2rem .6rem;border-bottom:1px solid #8884}\
ol.timeline{list-style:none;padding:0}ol.timeline li{border-left:3px solid #8888;padding:.2rem .8rem;margin:.4rem 0}\
ol.timeline li.bad{border-color:#a00000}ol.timeline li.good{border-color:#1f6f43}";

/// Updates every `[data-expires]` countdown once a second and, when the page has a reload
/// period, reloads it so a person watching sees the refresher at work. A reload throws away
/// focus and typed text, so it never happens while any element has focus or once the person
/// has pressed a key, typed or clicked in the page (WCAG 2.2.1: the page is theirs, and a
/// keyboard user would be sent back to the top); the `#auto-reload` button turns it off (or on
/// again) for every page of this browser (`localStorage`). Without JavaScript nothing reloads
/// and the button stays hidden.
const SCRIPT: &str = "\
function tick(){var now=Date.now()/1000;document.querySelectorAll('[data-expires]').forEach(function(e){\
var d=Math.round(e.dataset.expires-now),a=Math.abs(d),s=a<60?a+' s':Math.floor(a/60)+' min '+(a%60)+' s';\
if(a>=3600){s=Math.floor(a/3600)+' h '+Math.floor((a%3600)/60)+' min'}e.textContent=d>=0?'in '+s:s+' ago';});}\
setInterval(tick,1000);tick();\
(function(){var box=document.getElementById('auto-reload-box'),button=document.getElementById('auto-reload');\
if(!box||!button)return;var period=Number(box.dataset.reloadMs),used=false,off=false,KEY='kit-oauth-auto-reload';\
try{off=localStorage.getItem(KEY)==='off'}catch(e){}\
['keydown','input','pointerdown'].forEach(function(t){document.addEventListener(t,function(e){if(e.target!==button)used=true},true)});\
function show(){button.textContent=off?'Turn auto-refresh on':'Turn auto-refresh off';\
document.getElementById('auto-reload-state').textContent=off?'Auto-refresh is off.':'This page refreshes itself every '+Math.round(period/1000)+' s while you are not using it.'}\
button.addEventListener('click',function(){off=!off;try{localStorage.setItem(KEY,off?'off':'on')}catch(e){}show()});\
show();box.hidden=false;\
setInterval(function(){var f=document.activeElement;\
if(!off&&!used&&(!f||f===document.body||f===document.documentElement))location.reload()},period)})();";

/// Which script a page runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Script {
    /// None: the page is static.
    None,
    /// The countdowns, and a reload every period when there is one (`None`: never).
    Live(Option<Duration>),
}

pub(crate) fn layout(title: &str, body: &Markup, script: Script) -> Markup {
    let reload_ms = match script {
        Script::Live(Some(period)) => Some(period.as_millis().max(1)),
        _ => None,
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · kit-oauth" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav aria-label="Dashboard" {
                    a href="/" { "Connections" }
                    a href="/overview" { "Overview" }
                }
                @if let Some(ms) = reload_ms {
                    // Shown by the script: without JavaScript the page never reloads.
                    p id="auto-reload-box" data-reload-ms=(ms) hidden {
                        span id="auto-reload-state" {} " "
                        button id="auto-reload" type="button" { "Turn auto-refresh off" }
                    }
                }
                main { (body) }
                @if let Script::Live(_) = script { script { (PreEscaped(SCRIPT)) } }
            }
        }
    }
}

/// A small error page with a link to start again.
#[must_use]
pub fn error_page(title: &str, message: &str, start_again: &str) -> Markup {
    layout(
        title,
        &html! {
            h1 { (title) }
            p.error role="alert" { (message) }
            p { "Nothing was saved. " a href=(start_again) { "Start the install again" } "." }
        },
        Script::None,
    )
}

/// The sign-in form.
#[must_use]
pub fn login_page(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        &html! {
            h1 { "kit-oauth dashboard" }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/login" {
                label for="key" { "Admin key" }
                br;
                input type="password" id="key" name="key" autocomplete="current-password" required;
                p { button.primary type="submit" { "Sign in" } }
            }
        },
        Script::None,
    )
}

/// What the list page shows besides the connections: the search, and the pager.
#[derive(Debug, Default)]
pub struct ListView {
    /// The search text.
    pub q: String,
    /// The state filter.
    pub filter: Option<FleetFilter>,
    /// The next page's address, when there is one.
    pub next: Option<String>,
    /// Whether this is a later page (a link back to the first is shown).
    pub paged: bool,
    /// How often the page reloads itself while unused (`None`: never).
    pub reload: Option<Duration>,
}

/// The dashboard page: the search form, one page of connections (each with its reconnect link
/// when it needs one) and the pager.
#[must_use]
pub fn dashboard(
    rows: &[(ConnectionStatus, Option<String>)],
    view: &ListView,
    now: Timestamp,
    csrf: &str,
    signed_in: bool,
    demo: Option<&DemoInfo>,
    notice: Option<&str>,
) -> Markup {
    let filters = [
        FleetFilter::Active,
        FleetFilter::Failing,
        FleetFilter::NeedsReauth,
        FleetFilter::Revoked,
    ];
    layout(
        "Connections",
        &html! {
            h1 { "Kit connections" }
            @if let Some(notice) = notice { p role="status" { (notice) } }
            @if let Some(demo) = demo {
                section.card {
                    p { "Demo mode: a local Kit sandbox at " code { (demo.sandbox_url) } " stands in for Kit; tokens live two minutes, so you can watch them being refreshed." }
                    p { a.button.primary id="install" href=(demo.app_store_install_url) { "Install from the Kit App Store (sandbox)" } }
                    details {
                        summary { "Use the broker API" }
                        pre { "curl -H 'Authorization: Bearer " (demo.api_key) "' \\\n  http://HOST/v1/connections" }
                        p { "The API is described at " a href="/openapi.json" { "/openapi.json" } "." }
                    }
                }
            }
            form.search method="get" action="/" role="search" {
                label for="q" {
                    "Account name, connection id, Kit account id or tenant"
                    input type="search" id="q" name="q" value=(view.q) size="40";
                }
                label for="state" {
                    "State"
                    select id="state" name="state" {
                        option value="" selected[view.filter.is_none()] { "Any" }
                        @for f in filters {
                            option value=(f.as_str()) selected[view.filter == Some(f)] { (filter_label(f)) }
                        }
                    }
                }
                button type="submit" { "Search" }
            }
            @if rows.is_empty() {
                p id="empty" {
                    @if view.q.is_empty() && view.filter.is_none() && !view.paged { "No connections yet." }
                    @else { "No connection matches." }
                }
            }
            @for (row, reconnect) in rows {
                (connection_card(row, reconnect.as_deref(), now, csrf))
            }
            nav.pager aria-label="Pages" {
                @if view.paged { a href=(list_href(view, None)) { "First page" } }
                @if let Some(next) = &view.next { a id="next-page" href=(next) rel="next" { "Next page" } }
            }
            @if signed_in {
                form.inline method="post" action="/logout" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Sign out" }
                }
            }
        },
        Script::Live(view.reload),
    )
}

/// A filter as the state menu names it.
fn filter_label(filter: FleetFilter) -> &'static str {
    match filter {
        FleetFilter::Active => "Active",
        FleetFilter::Failing => "Active, last refresh failed",
        FleetFilter::NeedsReauth => "Needs reinstall",
        FleetFilter::Revoked => "Revoked",
    }
}

/// The list's address with the same search, starting after `after`.
#[must_use]
pub fn list_href(view: &ListView, after: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if !view.q.is_empty() {
        query.append_pair("q", &view.q);
    }
    if let Some(filter) = view.filter {
        query.append_pair("state", filter.as_str());
    }
    if let Some(after) = after {
        query.append_pair("after", after);
    }
    let query = query.finish();
    if query.is_empty() {
        "/".to_owned()
    } else {
        format!("/?{query}")
    }
}

fn state_label(row: &ConnectionStatus) -> (&'static str, &'static str) {
    match (row.state, &row.ended) {
        (StateName::Authorized, _) => ("Authorized", "authorized"),
        (StateName::Expired, _) => ("Expired (refresh due)", "expired"),
        (StateName::Pending, _) => ("Pending", "expired"),
        (StateName::Unauthorized, Some(UnauthorizedReason::Revoked)) => ("Revoked", "unauthorized"),
        (StateName::Unauthorized, _) => ("Needs reinstall", "unauthorized"),
    }
}

pub(crate) fn connection_card(
    row: &ConnectionStatus,
    reconnect: Option<&str>,
    now: Timestamp,
    csrf: &str,
) -> Markup {
    let (label, class) = state_label(row);
    let id = row.id.as_str();
    html! {
        article.card data-connection=(id) {
            div {
                span class={"state " (class)} data-state=(row.state.as_str()) { (label) }
                " "
                strong { a href={"/connections/" (id)} { (row.account.name) } }
            }
            dl {
                dt { "Tenant" } dd { (row.tenant.as_ref().map_or("—", |t| t.as_str())) }
                dt { "Kit account" } dd { (row.account.id.as_str()) }
                dt { "Connection" } dd { code { (id) } }
                dt { "Expires" }
                dd {
                    @if let Some(at) = row.expires_at {
                        span data-expires=(at.unix_seconds()) { (relative(at, now)) }
                    } @else { "—" }
                }
                dt { "Last refresh" }
                dd { (row.last_refresh_at.map_or_else(|| "never".to_owned(), |at| relative(at, now))) }
                dt { "Last error" }
                dd { (row.last_error.as_deref().unwrap_or("none")) }
            }
            @if row.state != StateName::Unauthorized {
                form.inline method="post" action={"/connections/" (id) "/refresh"} {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Refresh" }
                }
                form.inline method="post" action={"/connections/" (id) "/revoke"} {
                    input type="hidden" name="csrf" value=(csrf);
                    button.danger type="submit" { "Revoke" }
                }
            }
            @if let Some(href) = reconnect {
                p {
                    a.button.primary.reconnect href=(href) { "Reconnect" }
                    " Send this link to the creator: it starts a new install for the same tenant (valid 7 days)."
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(script: Script) -> String {
        layout("T", &html! { p { "body" } }, script).into_string()
    }

    /// The reload is the script's only call of `location.reload`, and it is guarded by the
    /// focus, the person's use of the page and their choice; the control is hidden until the
    /// script runs, so without JavaScript there is no dead button (and no reload).
    #[test]
    fn a_live_page_reloads_only_when_unused_and_offers_a_labelled_off_switch() {
        let live = page(Script::Live(Some(Duration::from_secs(15))));
        assert!(
            live.contains(r#"<p id="auto-reload-box" data-reload-ms="15000" hidden>"#),
            "{live}"
        );
        assert!(
            live.contains(
                r#"<button id="auto-reload" type="button">Turn auto-refresh off</button>"#
            )
        );
        assert_eq!(live.matches("location.reload()").count(), 1);
        assert!(live.contains(
            "if(!off&&!used&&(!f||f===document.body||f===document.documentElement))location.reload()"
        ));
        assert!(live.contains("var f=document.activeElement"));
        assert!(live.contains("['keydown','input','pointerdown']"));

        // Never reloading: the countdowns stay, the switch and reload have nothing to do.
        let still = page(Script::Live(None));
        assert!(!still.contains(r#"id="auto-reload-box""#));
        assert!(still.contains("function tick()"));
        let plain = page(Script::None);
        assert!(!plain.contains("<script>"));
        assert!(!plain.contains(r#"id="auto-reload-box""#));
    }
}
