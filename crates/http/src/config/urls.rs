//! The rules every URL setting obeys (absolute, `https` or loopback `http`, no credentials, no
//! fragment), and how an endpoint path is joined onto a base that may carry a prefix.

use url::Url;

use super::ConfigError;

/// Parses and vets one URL setting.
pub(crate) fn parse_url(setting: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim()).map_err(|e| ConfigError::InvalidUrl {
        setting,
        reason: format!("is not an absolute URL ({e})"),
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err(ConfigError::InsecureUrl { setting }),
        _ => {
            return Err(ConfigError::InvalidUrl {
                setting,
                reason: "must be an http(s) URL".into(),
            });
        }
    }
    if url.host().is_none() {
        return Err(ConfigError::InvalidUrl {
            setting,
            reason: "has no host".into(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::InvalidUrl {
            setting,
            reason: "must not contain user information".into(),
        });
    }
    if url.fragment().is_some() {
        return Err(ConfigError::InvalidUrl {
            setting,
            reason: "must not contain a fragment".into(),
        });
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `base` with `suffix` appended to its path (a base may carry a path prefix).
pub(crate) fn join_path(base: &Url, suffix: &str) -> Url {
    let mut url = base.clone();
    let path = format!("{}{suffix}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url
}
