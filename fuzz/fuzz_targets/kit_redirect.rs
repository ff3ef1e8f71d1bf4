//! `KitRedirect::parse` under a `RedirectAllowlist`: the `redirect` Kit passes to the app's
//! Authorization URL, where the browser is sent at the end of an install.
//!
//! Properties: an accepted redirect is an absolute http(s) URL without user information whose
//! scheme, host, port and path prefix match one allowed prefix (for Kit's default allowlist:
//! `https` on `app.kit.com:443`), never comes from raw text with whitespace, control characters
//! or backslashes, and is a fixed point: parsing its own rendering, or its serde form, gives it
//! back. Allowlists that parse re-parse from their own rendering to the same list.
//!
//! Input (UTF-8): the `redirect` alone, checked against Kit's default allowlist; or a
//! `KIT_REDIRECT_ALLOW` value, a newline, then the `redirect`.
#![no_main]

use kit_oauth::core::{DEFAULT_REDIRECT_PREFIX, KitRedirect, RedirectAllowlist, Url};
use libfuzzer_sys::fuzz_target;

struct Input {
    /// `None`: Kit's default allowlist; otherwise a `KIT_REDIRECT_ALLOW` value.
    allow: Option<String>,
    redirect: String,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let input = match text.split_once('\n') {
        Some((allow, redirect)) => Input {
            allow: Some(allow.to_owned()),
            redirect: redirect.to_owned(),
        },
        None => Input {
            allow: None,
            redirect: text.to_owned(),
        },
    };
    let allow = match &input.allow {
        None => RedirectAllowlist::default(),
        Some(list) => match RedirectAllowlist::from_comma_separated(list) {
            Ok(allow) => {
                let again = RedirectAllowlist::new(allow.prefixes())
                    .expect("an accepted allowlist re-parses from its rendering");
                assert_eq!(again, allow);
                allow
            }
            Err(_) => return,
        },
    };
    let Ok(redirect) = KitRedirect::parse(&input.redirect, &allow) else {
        return;
    };
    let raw = &input.redirect;
    assert!(raw.len() <= KitRedirect::MAX_LEN);
    assert!(
        !raw.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\'),
        "accepted a redirect with whitespace, control characters or a backslash: {raw:?}"
    );
    let url = redirect.url();
    assert!(matches!(url.scheme(), "https" | "http"));
    assert!(url.username().is_empty() && url.password().is_none());
    let allowed_by = |prefix: &str| {
        let prefix = Url::parse(prefix).expect("allowlist prefixes are URLs");
        prefix.scheme() == url.scheme()
            && prefix.host_str() == url.host_str()
            && prefix.port_or_known_default() == url.port_or_known_default()
            && url.path().starts_with(prefix.path())
    };
    assert!(
        allow.prefixes().any(allowed_by),
        "{url} is outside the allowlist"
    );
    if input.allow.is_none() {
        assert_eq!(url.scheme(), "https");
        assert_eq!(url.host_str(), Some("app.kit.com"));
        assert_eq!(url.port_or_known_default(), Some(443));
        assert!(redirect.as_str().starts_with(DEFAULT_REDIRECT_PREFIX));
    }
    // Fixed point: what we store and send back is accepted again, unchanged.
    assert_eq!(
        KitRedirect::parse(redirect.as_str(), &allow).as_ref(),
        Ok(&redirect),
        "the rendering of {raw:?} does not re-parse to itself"
    );
    let json = serde_json::to_string(&redirect).expect("a redirect serializes");
    let back: KitRedirect = serde_json::from_str(&json).expect("its serde form deserializes");
    assert_eq!(back, redirect);
});
