//! The consent page driven as a person would, the authorize error page, and the App Store
//! simulation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kit_sandbox::Sandbox;

/// Minimal HTML form reader: the form's action and every `<input>`'s name and value.
fn parse_form(html: &str) -> (String, Vec<(String, String)>) {
    let form_start = html.find("<form").expect("a form");
    let form_end = html[form_start..].find("</form>").unwrap() + form_start;
    let form = &html[form_start..form_end];
    let action = attr(&form[..form.find('>').unwrap()], "action").unwrap();
    let mut inputs = Vec::new();
    let mut rest = form;
    while let Some(i) = rest.find("<input") {
        let tag_end = rest[i..].find('>').unwrap() + i;
        let tag = &rest[i..tag_end];
        if let Some(name) = attr(tag, "name") {
            inputs.push((name, attr(tag, "value").unwrap_or_default()));
        }
        rest = &rest[tag_end..];
    }
    (
        unescape(&action),
        inputs
            .into_iter()
            .map(|(n, v)| (unescape(&n), unescape(&v)))
            .collect(),
    )
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn interactive() -> kit_sandbox::SandboxBuilder {
    confidential().auto_approve(false).app_name("Acme <Forms>")
}

#[tokio::test]
async fn a_person_clicks_allow_on_the_consent_page() {
    let sb = interactive().spawn().await.unwrap();
    let c = challenge(VERIFIER);
    let page = http()
        .get(authorize_url(
            &sb,
            &[
                ("tenant_name", "Shop <b>one</b>"),
                ("code_challenge", &c),
                ("code_challenge_method", "S256"),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    // App and tenant are shown, escaped; the form is labelled and has both buttons.
    assert!(html.contains("Acme &lt;Forms&gt;"));
    assert!(html.contains("Shop &lt;b&gt;one&lt;/b&gt;"));
    assert!(!html.contains("<b>one</b>"));
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("<label for=\"account\">"));
    assert!(html.contains(">Allow</button>") && html.contains(">Deny</button>"));
    let (action, mut fields) = parse_form(&html);
    assert_eq!(action, "/v4/oauth/authorize");
    // The person types an account name and clicks Allow.
    for (name, value) in &mut fields {
        if name == "account" {
            *value = "Jane's Shop".to_owned();
        }
    }
    fields.push(("decision".into(), "allow".into()));
    let resp = http()
        .post(sb.url(&action))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let loc = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.starts_with(REDIRECT));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-123"));
    let code = query_param(&loc, "code").unwrap();
    let (st, t) = post_json(&sb, "/v4/oauth/token", serde_json::json!({"client_id": CLIENT, "client_secret": SECRET, "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER})).await;
    assert_eq!(st, 200, "{t}");
    let g = &sb.grants()[0];
    assert_eq!(g.account_name, "Jane's Shop");
    assert_eq!(g.tenant_name.as_deref(), Some("Shop <b>one</b>"));
    assert_eq!(g.access_token_sha256, sha256_hex(&s(&t, "access_token")));
    assert_eq!(sb.stats().consents_allowed, 1);
    // The account now appears in the page's account list.
    let html = http()
        .get(authorize_url(&sb, &[]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<option value=\"Jane&#39;s Shop\">"));
}

#[tokio::test]
async fn deny_redirects_with_access_denied_and_state() {
    let sb = interactive().spawn().await.unwrap();
    let html = http()
        .get(authorize_url(&sb, &[]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (action, mut fields) = parse_form(&html);
    fields.push(("decision".into(), "deny".into()));
    let resp = http()
        .post(sb.url(&action))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let loc = resp.headers()["location"].to_str().unwrap();
    assert_eq!(query_param(loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(loc, "state").as_deref(), Some("st-123"));
    assert!(query_param(loc, "code").is_none());
    let st = sb.stats();
    assert_eq!((st.consents_denied, st.codes_issued), (1, 0));
    // A tampered form is re-validated: an unregistered redirect URI is never followed.
    let tampered: Vec<(String, String)> = fields
        .into_iter()
        .map(|(n, v)| {
            if n == "redirect_uri" {
                (n, "https://evil.example/cb".into())
            } else {
                (n, v)
            }
        })
        .collect();
    let resp = http()
        .post(sb.url(&action))
        .form(&tampered)
        .send()
        .await
        .unwrap();
    // Doorkeeper's error page: 200, no redirect, its sentence.
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("location"));
    assert!(resp.text().await.unwrap().contains(
        "The requested redirect uri is malformed or doesn&#39;t match client redirect URI."
    ));
}

#[tokio::test]
async fn client_and_redirect_uri_errors_are_shown_never_redirected() {
    let sb = interactive().spawn().await.unwrap();
    let base = sb.url("/v4/oauth/authorize");
    let cases = [
        format!("{base}?response_type=code&redirect_uri={REDIRECT}"),
        format!("{base}?client_id=nope&response_type=code&redirect_uri={REDIRECT}"),
        format!("{base}?client_id={CLIENT}&response_type=code"),
        format!(
            "{base}?client_id={CLIENT}&response_type=code&redirect_uri=https://evil.example/%3Cscript%3E"
        ),
        format!(
            "{base}?client_id={CLIENT}&client_id={CLIENT}&response_type=code&redirect_uri={REDIRECT}"
        ),
        format!("{base}?client_id=%ff&response_type=code&redirect_uri={REDIRECT}"),
    ];
    for (i, url) in cases.iter().enumerate() {
        let resp = http().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "case {i}");
        assert!(!resp.headers().contains_key("location"), "case {i}");
        let html = resp.text().await.unwrap();
        assert!(html.contains("role=\"alert\""), "case {i}");
        assert!(!html.contains("<script>"), "case {i}: escaped");
    }
    // Doorkeeper shows the other errors on its page too, with its own sentences: nothing goes
    // back to the app before the creator has consented.
    for (extra, sentence) in [
        (
            vec![("response_type", "token")],
            "The authorization server does not support this response type.",
        ),
        (
            vec![("scope", "admin")],
            "The requested scope is invalid, unknown, or malformed.",
        ),
        (
            vec![("code_challenge", "abc"), ("code_challenge_method", "S512")],
            "The code challenge method must be plain or S256.",
        ),
        (
            vec![("code_challenge", "abc")],
            "The code challenge method must be plain or S256.",
        ),
    ] {
        let mut url = url::Url::parse(&base).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", CLIENT)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("state", "s1");
        if !extra.iter().any(|(k, _)| *k == "response_type") {
            url.query_pairs_mut().append_pair("response_type", "code");
        }
        for (k, v) in &extra {
            url.query_pairs_mut().append_pair(k, v);
        }
        let resp = http().get(url.as_str()).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{sentence}");
        assert!(!resp.headers().contains_key("location"), "{sentence}");
        let html = resp.text().await.unwrap();
        assert!(html.contains(sentence), "{sentence}: {html}");
    }
    assert_eq!(sb.stats().codes_issued, 0);
}

#[tokio::test]
async fn redirect_uri_must_match_exactly_and_keeps_its_own_query() {
    let registered = "http://127.0.0.1:9/cb?app=1";
    let sb = Sandbox::builder()
        .client_id(CLIENT)
        .client_secret(SECRET)
        .redirect_uri(REDIRECT)
        .redirect_uri(registered)
        .auto_approve(true)
        .spawn()
        .await
        .unwrap();
    let mut url = url::Url::parse(&sb.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", registered);
    let resp = http().get(url.as_str()).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let loc = resp.headers()["location"].to_str().unwrap();
    assert!(
        loc.starts_with("http://127.0.0.1:9/cb?app=1&code="),
        "{loc}"
    );
    // A trailing slash is another URI.
    let resp = http()
        .get(authorize_url(&sb, &[]).replace("callback", "callback%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("location"));
}

#[tokio::test]
async fn app_store_install_redirects_to_the_app_and_shows_installed() {
    let sb = confidential()
        .app_authorization_url("http://127.0.0.1:9/kit/oauth")
        .app_name("Acme")
        .spawn()
        .await
        .unwrap();
    let resp = http().get(sb.url("/apps/42/install")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let loc = resp.headers()["location"].to_str().unwrap().to_owned();
    // Not percent-encoded, exactly like Kit's documented example.
    assert_eq!(
        loc,
        format!(
            "http://127.0.0.1:9/kit/oauth?redirect={}/apps/42?success=true",
            sb.base_url()
        )
    );
    // The app does its OAuth dance, then sends the browser back.
    let _t = tokens(&sb, &[("sandbox_account", "Jane")]).await;
    let back = format!("{}/apps/42?success=true", sb.base_url());
    let resp = http().get(&back).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("<span id=\"install-status\">installed</span>"),
        "{html}"
    );
    assert!(html.contains("<span id=\"install-clicks\">1</span>"));
    assert!(html.contains("<td>Jane</td>"));
    assert!(html.contains("alive"));
    assert_eq!(sb.stats().installs_started, 1);
    // Without a configured Authorization URL the install page explains what to do.
    let sb2 = confidential().spawn().await.unwrap();
    let resp = http()
        .get(sb2.url("/apps/42/install"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("--app-authorization-url")
    );
    let html = http()
        .get(sb2.url("/apps/7"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<span id=\"install-status\">not installed</span>"));
}

#[tokio::test]
async fn install_link_attribution_is_counted_and_only_redirect_goes_to_the_app() {
    let sb = confidential()
        .app_authorization_url("http://127.0.0.1:9/kit/oauth")
        .spawn()
        .await
        .unwrap();
    let expected = format!(
        "http://127.0.0.1:9/kit/oauth?redirect={}/apps/42?success=true",
        sb.base_url()
    );
    for query in ["?k_app_id=k_42", "?k_app_id=k_7", ""] {
        let url = sb.url(&format!("/apps/42/install{query}"));
        let resp = http().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()["location"], expected.as_str(), "{query}");
    }
    let st = sb.stats();
    assert_eq!((st.installs_started, st.installs_attributed), (3, 1));
    let html = http()
        .get(sb.url("/apps/42"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<span id=\"install-clicks\">3</span>"),
        "{html}"
    );
    assert!(
        html.contains("<span id=\"install-attributed\">1</span>"),
        "{html}"
    );
}

/// What the creator sees after Deny: the app's callback gets `error=access_denied` with its
/// `state` (RFC 6749 §4.1.2.1, as Doorkeeper does), no code and no grant; Kit's page for the
/// app, reached without `success=true`, still says "not installed".
#[tokio::test]
async fn deny_from_the_app_store_leaves_the_app_not_installed() {
    let sb = Sandbox::builder()
        .client_id(CLIENT)
        .client_secret(SECRET)
        .redirect_uri(REDIRECT)
        .app_authorization_url("http://127.0.0.1:9/kit/oauth")
        .spawn()
        .await
        .unwrap();
    let resp = http().get(sb.url("/apps/42/install")).send().await.unwrap();
    let to_app = resp.headers()["location"].to_str().unwrap().to_owned();
    let kit_redirect = to_app.split_once("redirect=").unwrap().1.to_owned();
    assert_eq!(
        kit_redirect,
        format!("{}/apps/42?success=true", sb.base_url())
    );
    // The app sends the creator to the consent page; the creator presses Deny.
    let html = http()
        .get(authorize_url(&sb, &[("tenant_name", "shop")]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (action, mut fields) = parse_form(&html);
    fields.push(("decision".into(), "deny".into()));
    let resp = http()
        .post(sb.url(&action))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let callback = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(REDIRECT), "{callback}");
    assert_eq!(
        query_param(&callback, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        query_param(&callback, "error_description").as_deref(),
        Some("The resource owner or authorization server denied the request.")
    );
    assert_eq!(query_param(&callback, "state").as_deref(), Some("st-123"));
    assert!(query_param(&callback, "code").is_none());
    // The app sends the creator back to Kit's page without `success=true`.
    let back = kit_redirect.replace("?success=true", "");
    let page = http()
        .get(&back)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<span id=\"install-status\">not installed</span>"),
        "{page}"
    );
    assert!(page.contains("No grants for this app yet."));
    let st = sb.stats();
    assert_eq!(
        (st.consents_denied, st.codes_issued, st.grants_created),
        (1, 0, 0)
    );
    assert!(sb.grants().is_empty());
}

/// One limit on both sides: the client's `TenantName` takes up to 255 bytes, so does Kit here.
#[tokio::test]
async fn tenant_names_up_to_255_bytes_are_accepted() {
    let sb = confidential().spawn().await.unwrap();
    // 127 two-byte characters and one ASCII: 255 bytes, 128 characters.
    let longest = format!("{}a", "é".repeat(127));
    assert_eq!(longest.len(), 255);
    let t = tokens(&sb, &[("tenant_name", &longest)]).await;
    assert_eq!(get_account(&sb, &s(&t, "access_token")).await.0, 200);
    assert_eq!(
        sb.grants()[0].tenant_name.as_deref(),
        Some(longest.as_str())
    );
    let too_long = format!("{longest}b");
    let resp = http()
        .get(authorize_url(&sb, &[("tenant_name", &too_long)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("location"));
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("tenant_name is longer than 255 bytes."),
        "{page}"
    );
    assert_eq!(sb.stats().codes_issued, 1);
}
