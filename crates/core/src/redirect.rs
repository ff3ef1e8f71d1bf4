//! The Kit `redirect`: where the browser goes back to at the end of an install.
//!
//! Kit passes it to the app's Authorization URL, un-encoded in its own documentation
//! (`?redirect=https://app.kit.com/apps/1?success=true`). Anything that is not under an allowed
//! prefix is an open redirect and is refused. The check compares parsed components (scheme, host,
//! port, path prefix), never raw string prefixes, so `https://app.kit.com.evil.com/` and
//! `https://app.kit.com@evil.com/` fail.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::RedirectError;

/// Kit's documented host for the post-install redirect.
pub const DEFAULT_REDIRECT_PREFIX: &str = "https://app.kit.com/";

/// The prefixes a `redirect` back to Kit may start with (`KIT_REDIRECT_ALLOW`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectAllowlist {
    prefixes: Vec<Url>,
}

impl Default for RedirectAllowlist {
    /// Only `https://app.kit.com/`.
    fn default() -> Self {
        Self {
            prefixes: vec![
                // A constant known to parse; `parse_prefix` is not needed for it.
                Url::parse(DEFAULT_REDIRECT_PREFIX).unwrap_or_else(|_| unreachable_url()),
            ],
        }
    }
}

/// Never called: `DEFAULT_REDIRECT_PREFIX` is a valid URL, checked by a unit test.
#[allow(clippy::panic)]
fn unreachable_url() -> Url {
    panic!("DEFAULT_REDIRECT_PREFIX is not a URL")
}

impl RedirectAllowlist {
    /// Builds an allowlist from prefixes such as `https://app.kit.com/` or, for the sandbox,
    /// `http://127.0.0.1:4000/apps/`.
    ///
    /// # Errors
    /// [`RedirectError::InvalidPrefix`] when an entry is not an absolute `http`/`https` URL with
    /// a host, carries user information, a query or a fragment, or its path does not end in `/`
    /// (without the slash, `/apps` would also allow `/appsevil`).
    pub fn new<I, S>(prefixes: I) -> Result<Self, RedirectError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let prefixes = prefixes
            .into_iter()
            .map(|p| parse_prefix(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if prefixes.is_empty() {
            return Err(RedirectError::InvalidPrefix {
                prefix: String::new(),
                reason: "at least one prefix is required",
            });
        }
        Ok(Self { prefixes })
    }

    /// Parses a comma-separated list, as `KIT_REDIRECT_ALLOW` holds.
    ///
    /// # Errors
    /// As [`RedirectAllowlist::new`].
    pub fn from_comma_separated(list: &str) -> Result<Self, RedirectError> {
        Self::new(list.split(',').map(str::trim).filter(|p| !p.is_empty()))
    }

    /// The prefixes, as text.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.prefixes.iter().map(Url::as_str)
    }

    fn allows(&self, candidate: &Url) -> bool {
        self.prefixes.iter().any(|prefix| {
            prefix.scheme() == candidate.scheme()
                && prefix.host_str() == candidate.host_str()
                && prefix.port_or_known_default() == candidate.port_or_known_default()
                && candidate.path().starts_with(prefix.path())
        })
    }
}

fn parse_prefix(raw: &str) -> Result<Url, RedirectError> {
    let invalid = |reason| RedirectError::InvalidPrefix {
        prefix: raw.to_owned(),
        reason,
    };
    let url = Url::parse(raw).map_err(|_| invalid("not an absolute URL"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid("scheme must be https (or http for local testing)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("a host is required"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("user information is not allowed"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a prefix cannot have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        return Err(invalid("the path must end with '/'"));
    }
    Ok(url)
}

/// A validated URL on Kit to send the browser back to after the install.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct KitRedirect(Url);

impl KitRedirect {
    /// Longer than any URL Kit sends; bounds what an attacker can make us store.
    pub const MAX_LEN: usize = 2048;

    /// Validates the `redirect` Kit passed to the app's Authorization URL.
    ///
    /// # Errors
    /// A [`RedirectError`] saying what is wrong: missing, too long, malformed (relative,
    /// whitespace, control characters or backslashes), user information, or not under an
    /// allowed prefix.
    ///
    /// ```
    /// use kit_oauth_core::{KitRedirect, RedirectAllowlist};
    /// let allow = RedirectAllowlist::default();
    /// // Kit's own, un-encoded example.
    /// assert!(KitRedirect::parse("https://app.kit.com/apps/1?success=true", &allow).is_ok());
    /// assert!(KitRedirect::parse("https://app.kit.com.evil.com/apps/1", &allow).is_err());
    /// ```
    pub fn parse(raw: &str, allow: &RedirectAllowlist) -> Result<Self, RedirectError> {
        if raw.is_empty() {
            return Err(RedirectError::Missing);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(RedirectError::TooLong { max: Self::MAX_LEN });
        }
        // Browsers and URL parsers disagree about these; refuse rather than normalise.
        if raw
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return Err(RedirectError::Malformed);
        }
        // Must be absolute with an authority: no `//evil.com`, no `/path`, no `javascript:`.
        let lower = raw.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(RedirectError::Malformed);
        }
        let url = Url::parse(raw).map_err(|_| RedirectError::Malformed)?;
        // Parsing percent-encodes non-ASCII (up to 3 bytes per byte): bound what is stored.
        if url.as_str().len() > Self::MAX_LEN {
            return Err(RedirectError::TooLong { max: Self::MAX_LEN });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectError::UserInfo);
        }
        if !allow.allows(&url) {
            return Err(RedirectError::NotAllowed {
                allowed: allow.prefixes().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(Self(url))
    }

    /// The URL to redirect to.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL.
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Debug for KitRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KitRedirect({:?})", self.0.as_str())
    }
}

impl fmt::Display for KitRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl From<KitRedirect> for String {
    fn from(redirect: KitRedirect) -> String {
        redirect.0.into()
    }
}

/// Deserializing re-checks shape (not the allowlist, which may have changed since storing).
impl TryFrom<String> for KitRedirect {
    type Error = RedirectError;
    fn try_from(raw: String) -> Result<Self, RedirectError> {
        let url = Url::parse(&raw).map_err(|_| RedirectError::Malformed)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectError::UserInfo);
        }
        Ok(Self(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kit() -> RedirectAllowlist {
        RedirectAllowlist::default()
    }

    #[test]
    fn default_prefix_parses() {
        assert_eq!(
            kit().prefixes().collect::<Vec<_>>(),
            vec![DEFAULT_REDIRECT_PREFIX]
        );
    }

    #[test]
    fn accepts_kits_documented_unencoded_example() {
        let r = KitRedirect::parse("https://app.kit.com/apps/1?success=true", &kit()).unwrap();
        assert_eq!(r.as_str(), "https://app.kit.com/apps/1?success=true");
        assert_eq!(r.url().query(), Some("success=true"));
    }

    #[test]
    fn accepts_host_in_any_case_and_explicit_default_port() {
        assert!(KitRedirect::parse("https://APP.KIT.COM/apps/1", &kit()).is_ok());
        assert!(KitRedirect::parse("https://app.kit.com:443/apps/1", &kit()).is_ok());
    }

    #[test]
    fn refuses_open_redirects() {
        let cases = [
            "https://app.kit.com.evil.com/apps/1",
            "https://evil.com/?https://app.kit.com/",
            "https://evil.com/app.kit.com/",
            "https://app.kit.com@evil.com/",
            "https://user:pass@app.kit.com/apps/1",
            "http://app.kit.com/apps/1",
            "https://app.kit.com:8443/apps/1",
            "//app.kit.com/apps/1",
            "/apps/1",
            "javascript:alert(1)//https://app.kit.com/",
            "data:text/html,https://app.kit.com/",
            "https://app.kit.com\\@evil.com/",
            "https://app.kit.com/\nLocation: https://evil.com",
            " https://app.kit.com/apps/1",
            "https://sub.app.kit.com/apps/1",
            "https://kit.com/apps/1",
            "ftp://app.kit.com/",
        ];
        for case in cases {
            assert!(
                KitRedirect::parse(case, &kit()).is_err(),
                "{case} must be refused"
            );
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(KitRedirect::parse("", &kit()), Err(RedirectError::Missing));
        assert_eq!(
            KitRedirect::parse("https://u@app.kit.com/", &kit()),
            Err(RedirectError::UserInfo)
        );
        assert!(matches!(
            KitRedirect::parse("https://evil.com/", &kit()),
            Err(RedirectError::NotAllowed { allowed }) if allowed == "https://app.kit.com/"
        ));
        let long = format!("https://app.kit.com/{}", "a".repeat(3000));
        assert_eq!(
            KitRedirect::parse(&long, &kit()),
            Err(RedirectError::TooLong { max: 2048 })
        );
    }

    #[test]
    fn path_prefix_respects_segment_boundary() {
        let allow = RedirectAllowlist::new(["http://127.0.0.1:4000/apps/"]).unwrap();
        assert!(KitRedirect::parse("http://127.0.0.1:4000/apps/7?success=true", &allow).is_ok());
        assert!(KitRedirect::parse("http://127.0.0.1:4000/appsevil/7", &allow).is_err());
        assert!(KitRedirect::parse("http://127.0.0.1:4001/apps/7", &allow).is_err());
        assert!(KitRedirect::parse("https://127.0.0.1:4000/apps/7", &allow).is_err());
    }

    #[test]
    fn invalid_prefixes_are_refused() {
        for bad in [
            "app.kit.com",
            "https://app.kit.com/apps",
            "ftp://app.kit.com/",
            "https://u@app.kit.com/",
            "https://app.kit.com/?x=1",
        ] {
            assert!(
                RedirectAllowlist::new([bad]).is_err(),
                "{bad} must be refused"
            );
        }
        assert!(RedirectAllowlist::new(Vec::<String>::new()).is_err());
        let two =
            RedirectAllowlist::from_comma_separated("https://app.kit.com/, http://localhost:9/")
                .unwrap();
        assert_eq!(two.prefixes().count(), 2);
    }
}
