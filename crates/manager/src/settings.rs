//! Configuration from the environment (docs/design.md "Configuration"): one place that every binary
//! reads, so the server and the CLI accept exactly the same variables and refuse bad values
//! with the same one-line message naming the variable.

use std::fmt;

use kit_oauth_core::{ClientId, ClientSecret, RedirectAllowlist, Url};
use kit_oauth_http::TokenBody;
use thiserror::Error;

/// The variables, as names (also the CLI flags' `env` names).
pub mod vars {
    /// The app's OAuth client id.
    pub const CLIENT_ID: &str = "KIT_CLIENT_ID";
    /// The app's OAuth client secret (absent = public client, PKCE only).
    pub const CLIENT_SECRET: &str = "KIT_CLIENT_SECRET";
    /// The registered callback URL.
    pub const REDIRECT_URI: &str = "KIT_REDIRECT_URI";
    /// Base URL for Kit's endpoints and API.
    pub const OAUTH_BASE: &str = "KIT_OAUTH_BASE";
    /// Authorize endpoint override.
    pub const AUTHORIZE_URL: &str = "KIT_AUTHORIZE_URL";
    /// Token endpoint override.
    pub const TOKEN_URL: &str = "KIT_TOKEN_URL";
    /// Revoke endpoint override.
    pub const REVOKE_URL: &str = "KIT_REVOKE_URL";
    /// `json` or `form`.
    pub const TOKEN_BODY: &str = "KIT_TOKEN_BODY";
    /// Allowed prefixes of the `redirect` back to Kit.
    pub const REDIRECT_ALLOW: &str = "KIT_REDIRECT_ALLOW";
    /// SQLite file or PostgreSQL URL.
    pub const DATABASE_URL: &str = "DATABASE_URL";
    /// `id:base64key,...` (first = current) or a bare base64 key.
    pub const ENCRYPTION_KEY: &str = "KIT_OAUTH_ENCRYPTION_KEY";
}

/// Kit's documented base URL.
pub const DEFAULT_BASE: &str = "https://api.kit.com";
/// The embedded default database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://kit-oauth.db?mode=rwc";

/// A configuration value that is missing or malformed; `Display` is the one line to print.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The variable (or flag) at fault.
    pub variable: &'static str,
    /// What is wrong, in plain words.
    pub problem: String,
}

impl ConfigError {
    /// An error about `variable`.
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// Everything the library needs to talk to Kit and to its database.
#[derive(Clone)]
pub struct KitOAuthConfig {
    /// The app's client id.
    pub client_id: ClientId,
    /// The app's client secret; `None` for a public client.
    pub client_secret: Option<ClientSecret>,
    /// The registered callback URL.
    pub redirect_uri: Url,
    /// Base URL of Kit (endpoints and API v4).
    pub base: Url,
    /// The authorize endpoint.
    pub authorize_url: Url,
    /// The token endpoint.
    pub token_url: Url,
    /// The revoke endpoint.
    pub revoke_url: Url,
    /// Token request body encoding.
    pub token_body: TokenBody,
    /// Where a `redirect` back to Kit may point.
    pub redirect_allow: RedirectAllowlist,
    /// The database URL.
    pub database_url: String,
    /// The encryption key ring, as configured (parsed by the store).
    pub encryption_key: Option<EncryptionKeySetting>,
}

/// The raw key ring setting; its `Debug` never prints the keys.
#[derive(Clone)]
pub struct EncryptionKeySetting(pub secrecy::SecretString);

impl fmt::Debug for EncryptionKeySetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKeySetting([redacted])")
    }
}

impl fmt::Debug for KitOAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KitOAuthConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("authorize_url", &self.authorize_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field("revoke_url", &self.revoke_url.as_str())
            .field("token_body", &self.token_body)
            .field("redirect_allow", &self.redirect_allow)
            .field("database_url", &redact_url_password(&self.database_url))
            .field("encryption_key", &self.encryption_key)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
#[must_use]
pub fn redact_url_password(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.into()
        }
        _ => url.to_owned(),
    }
}

impl KitOAuthConfig {
    /// Reads the process environment.
    ///
    /// # Errors
    /// The first missing or malformed variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (the environment, a test's map, CLI flags). Empty
    /// values count as unset.
    ///
    /// # Errors
    /// The first missing or malformed variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let client_id = get(vars::CLIENT_ID)
            .ok_or_else(|| {
                ConfigError::new(vars::CLIENT_ID, "is required (the app's OAuth client id)")
            })
            .and_then(|raw| {
                ClientId::parse(raw.trim())
                    .map_err(|e| ConfigError::new(vars::CLIENT_ID, e.to_string()))
            })?;
        let client_secret = get(vars::CLIENT_SECRET).map(ClientSecret::new);
        let redirect_uri = get(vars::REDIRECT_URI)
            .ok_or_else(|| {
                ConfigError::new(
                    vars::REDIRECT_URI,
                    "is required (the callback URL registered with Kit, e.g. https://example.com/kit/oauth/callback)",
                )
            })
            .and_then(|raw| parse_http_url(vars::REDIRECT_URI, &raw))?;
        let base = match get(vars::OAUTH_BASE) {
            Some(raw) => parse_http_url(vars::OAUTH_BASE, &raw)?,
            None => parse_http_url(vars::OAUTH_BASE, DEFAULT_BASE)?,
        };
        let endpoint = |variable: &'static str, path: &str| -> Result<Url, ConfigError> {
            match get(variable) {
                Some(raw) => parse_http_url(variable, &raw),
                None => base
                    .join(path)
                    .map_err(|e| ConfigError::new(vars::OAUTH_BASE, e.to_string())),
            }
        };
        let authorize_url = endpoint(vars::AUTHORIZE_URL, "/v4/oauth/authorize")?;
        let token_url = endpoint(vars::TOKEN_URL, "/v4/oauth/token")?;
        let revoke_url = endpoint(vars::REVOKE_URL, "/v4/oauth/revoke")?;
        let token_body = match get(vars::TOKEN_BODY).as_deref().map(str::trim) {
            None => TokenBody::Json,
            Some(v) if v.eq_ignore_ascii_case("json") => TokenBody::Json,
            Some(v) if v.eq_ignore_ascii_case("form") => TokenBody::Form,
            Some(other) => {
                return Err(ConfigError::new(
                    vars::TOKEN_BODY,
                    format!("must be `json` or `form`, not {other:?}"),
                ));
            }
        };
        let redirect_allow = match get(vars::REDIRECT_ALLOW) {
            Some(raw) => RedirectAllowlist::from_comma_separated(&raw)
                .map_err(|e| ConfigError::new(vars::REDIRECT_ALLOW, e.to_string()))?,
            None => RedirectAllowlist::default(),
        };
        let database_url =
            get(vars::DATABASE_URL).unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                vars::DATABASE_URL,
                "must be a sqlite:… or postgres://… URL",
            ));
        }
        let encryption_key = get(vars::ENCRYPTION_KEY)
            .map(|raw| EncryptionKeySetting(secrecy::SecretString::from(raw)));
        Ok(Self {
            client_id,
            client_secret,
            redirect_uri,
            base,
            authorize_url,
            token_url,
            revoke_url,
            token_body,
            redirect_allow,
            database_url,
            encryption_key,
        })
    }
}

fn parse_http_url(variable: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| ConfigError::new(variable, format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(
            variable,
            "must be an http:// or https:// URL with a host",
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<KitOAuthConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        KitOAuthConfig::from_lookup(|name| map.get(name).cloned())
    }

    const MINIMAL: [(&str, &str); 2] = [
        ("KIT_CLIENT_ID", "app"),
        ("KIT_REDIRECT_URI", "https://example.com/kit/oauth/callback"),
    ];

    #[test]
    fn defaults_are_kits_documented_urls() {
        let c = config(&MINIMAL).unwrap();
        assert_eq!(
            c.authorize_url.as_str(),
            "https://api.kit.com/v4/oauth/authorize"
        );
        assert_eq!(c.token_url.as_str(), "https://api.kit.com/v4/oauth/token");
        assert_eq!(c.revoke_url.as_str(), "https://api.kit.com/v4/oauth/revoke");
        assert_eq!(c.token_body, TokenBody::Json);
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert!(c.client_secret.is_none());
    }

    #[test]
    fn each_endpoint_is_overridable_and_the_base_moves_the_rest() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("KIT_OAUTH_BASE", "http://127.0.0.1:9000"));
        pairs.push(("KIT_TOKEN_URL", "http://127.0.0.1:9000/oauth/token"));
        pairs.push(("KIT_TOKEN_BODY", "FORM"));
        let c = config(&pairs).unwrap();
        assert_eq!(
            c.authorize_url.as_str(),
            "http://127.0.0.1:9000/v4/oauth/authorize"
        );
        assert_eq!(c.token_url.as_str(), "http://127.0.0.1:9000/oauth/token");
        assert_eq!(c.token_body, TokenBody::Form);
    }

    #[test]
    fn every_problem_names_its_variable() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                vec![("KIT_REDIRECT_URI", "https://e.com/cb")],
                "KIT_CLIENT_ID",
            ),
            (vec![("KIT_CLIENT_ID", "app")], "KIT_REDIRECT_URI"),
            (
                vec![
                    ("KIT_CLIENT_ID", "a b"),
                    ("KIT_REDIRECT_URI", "https://e.com/cb"),
                ],
                "KIT_CLIENT_ID",
            ),
            (
                vec![("KIT_CLIENT_ID", "a"), ("KIT_REDIRECT_URI", "not a url")],
                "KIT_REDIRECT_URI",
            ),
            (
                vec![
                    ("KIT_CLIENT_ID", "a"),
                    ("KIT_REDIRECT_URI", "ftp://e.com/cb"),
                ],
                "KIT_REDIRECT_URI",
            ),
            (
                vec![
                    ("KIT_CLIENT_ID", "a"),
                    ("KIT_REDIRECT_URI", "https://e.com/cb"),
                    ("KIT_TOKEN_BODY", "xml"),
                ],
                "KIT_TOKEN_BODY",
            ),
            (
                vec![
                    ("KIT_CLIENT_ID", "a"),
                    ("KIT_REDIRECT_URI", "https://e.com/cb"),
                    ("KIT_REDIRECT_ALLOW", "evil"),
                ],
                "KIT_REDIRECT_ALLOW",
            ),
            (
                vec![
                    ("KIT_CLIENT_ID", "a"),
                    ("KIT_REDIRECT_URI", "https://e.com/cb"),
                    ("DATABASE_URL", "mysql://x"),
                ],
                "DATABASE_URL",
            ),
            (
                vec![
                    ("KIT_CLIENT_ID", "a"),
                    ("KIT_REDIRECT_URI", "https://e.com/cb"),
                    ("KIT_OAUTH_BASE", "nope"),
                ],
                "KIT_OAUTH_BASE",
            ),
        ];
        for (pairs, variable) in cases {
            let err = config(&pairs).unwrap_err();
            assert_eq!(err.variable, variable, "{err}");
            assert!(err.to_string().starts_with(variable));
        }
    }

    #[test]
    fn debug_hides_the_secret_key_and_database_password() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("KIT_CLIENT_SECRET", "client-secret-value"));
        pairs.push(("KIT_OAUTH_ENCRYPTION_KEY", "k1:c2VjcmV0LWtleS1ieXRlcw=="));
        pairs.push(("DATABASE_URL", "postgres://u:dbpass@localhost/db"));
        let text = format!("{:?}", config(&pairs).unwrap());
        for secret in ["client-secret-value", "c2VjcmV0LWtleS1ieXRlcw", "dbpass"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
