//! Configuration of the binaries: every variable of docs/design.md's table is also a flag, and
//! every problem is one line naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use kit_oauth::{ConfigError, KitOAuthConfig, RefresherConfig, vars};
use secrecy::SecretString;

use crate::client_addr::TrustedProxies;
use crate::install_link::INSTALL_LINK_SECRET_VAR;
use crate::keys::{API_KEYS_VAR, ApiKeys};
use crate::sign_in::SIGNING_SECRET_VAR;
use crate::telemetry::LogFormat;

mod values;
use values::{parse_event_retention, parse_refresh_interval, parse_refresh_rate};

/// Listen address variable.
pub const BIND_VAR: &str = "KIT_OAUTH_BIND";
/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Dashboard admin key variable.
pub const ADMIN_KEY_VAR: &str = "KIT_OAUTH_ADMIN_KEY";
/// Webhook receiver variable.
pub const WEBHOOK_URL_VAR: &str = "KIT_OAUTH_WEBHOOK_URL";
/// Webhook signing secret variable.
pub const WEBHOOK_SECRET_VAR: &str = "KIT_OAUTH_WEBHOOK_SECRET";
/// Log format variable.
pub const LOG_FORMAT_VAR: &str = "KIT_OAUTH_LOG_FORMAT";
/// The background refresher's pause between scans for due tokens.
pub const REFRESH_INTERVAL_VAR: &str = "KIT_OAUTH_REFRESH_INTERVAL";
/// The background refresher's most refreshes started per second.
pub const REFRESH_RATE_VAR: &str = "KIT_OAUTH_REFRESH_RATE";
/// Reverse proxies whose `X-Forwarded-For` is believed.
pub const TRUSTED_PROXIES_VAR: &str = "KIT_OAUTH_TRUSTED_PROXIES";
/// How long audit-trail events are kept.
pub const EVENT_RETENTION_VAR: &str = "KIT_OAUTH_EVENT_RETENTION";
/// How often the dashboard's live pages reload themselves while unused.
pub const DASHBOARD_RELOAD_VAR: &str = "KIT_OAUTH_DASHBOARD_RELOAD";
/// The longest dashboard reload period accepted, in seconds (an hour).
pub const MAX_DASHBOARD_RELOAD_SECS: u64 = 3_600;
/// The longest retention accepted, in days (ten years).
pub const MAX_EVENT_RETENTION_DAYS: u64 = 3_650;
/// The shortest scan interval accepted (each scan is a query on the connections table).
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);
/// The longest scan interval accepted: well inside the 15-minute refresh margin of Kit's
/// two-day tokens, so a token nobody asks for is still renewed before it expires.
pub const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// The highest refresh rate accepted.
pub const MAX_REFRESH_RATE: u32 = 1_000;

/// The library's variables, as flags (shared by `kit-oauth-server` and `kit-oauth`).
#[derive(Debug, Clone, Default, Args)]
pub struct KitArgs {
    /// The app's OAuth client id.
    #[arg(long, env = "KIT_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The app's OAuth client secret (absent: public client, PKCE only).
    #[arg(long, env = "KIT_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// The registered callback URL (…/kit/oauth/callback).
    #[arg(long, env = "KIT_REDIRECT_URI")]
    pub redirect_uri: Option<String>,
    /// Base URL of Kit's endpoints and API [default: https://api.kit.com].
    #[arg(long, env = "KIT_OAUTH_BASE")]
    pub oauth_base: Option<String>,
    /// Authorize endpoint [default: base + /v4/oauth/authorize].
    #[arg(long, env = "KIT_AUTHORIZE_URL")]
    pub authorize_url: Option<String>,
    /// Token endpoint [default: base + /v4/oauth/token].
    #[arg(long, env = "KIT_TOKEN_URL")]
    pub token_url: Option<String>,
    /// Revoke endpoint [default: base + /v4/oauth/revoke].
    #[arg(long, env = "KIT_REVOKE_URL")]
    pub revoke_url: Option<String>,
    /// Token request body: json or form [default: json].
    #[arg(long, env = "KIT_TOKEN_BODY")]
    pub token_body: Option<String>,
    /// Prefixes a redirect back to Kit may start with [default: https://app.kit.com/].
    #[arg(long, env = "KIT_REDIRECT_ALLOW")]
    pub redirect_allow: Option<String>,
    /// SQLite file or postgres:// URL [default: sqlite://kit-oauth.db?mode=rwc].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Encryption key ring: base64 32-byte key, or id:key,id:key (first = current).
    #[arg(long, env = "KIT_OAUTH_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
}

impl KitArgs {
    /// The value for a variable name of [`vars`].
    #[must_use]
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match name {
            vars::CLIENT_ID => &self.client_id,
            vars::CLIENT_SECRET => &self.client_secret,
            vars::REDIRECT_URI => &self.redirect_uri,
            vars::OAUTH_BASE => &self.oauth_base,
            vars::AUTHORIZE_URL => &self.authorize_url,
            vars::TOKEN_URL => &self.token_url,
            vars::REVOKE_URL => &self.revoke_url,
            vars::TOKEN_BODY => &self.token_body,
            vars::REDIRECT_ALLOW => &self.redirect_allow,
            vars::DATABASE_URL => &self.database_url,
            vars::ENCRYPTION_KEY => &self.encryption_key,
            _ => &None,
        };
        value.clone().filter(|v| !v.trim().is_empty())
    }

    /// Whether nothing that identifies an app is configured (then `cargo run` is the demo).
    #[must_use]
    pub fn is_unconfigured(&self) -> bool {
        self.get(vars::CLIENT_ID).is_none() && self.get(vars::REDIRECT_URI).is_none()
    }

    /// The library configuration, requiring the encryption key.
    ///
    /// # Errors
    /// The first missing or malformed variable.
    pub fn library_config(&self) -> Result<KitOAuthConfig, ConfigError> {
        let config = KitOAuthConfig::from_lookup(|name| self.get(name))?;
        if config.encryption_key.is_none() {
            return Err(ConfigError::new(
                vars::ENCRYPTION_KEY,
                "is required (tokens are encrypted at rest): a base64 32-byte key, e.g. from `openssl rand -base64 32`",
            ));
        }
        Ok(config)
    }
}

/// The server's own flags and variables.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// Listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "KIT_OAUTH_BIND")]
    pub bind: Option<String>,
    /// Broker API keys: KEY or TENANT=KEY, comma-separated (or sha256:HEX instead of KEY).
    #[arg(long, env = "KIT_OAUTH_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,
    /// Dashboard sign-in key [default: any unscoped API key].
    #[arg(long, env = "KIT_OAUTH_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Where to POST connection events.
    #[arg(long, env = "KIT_OAUTH_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// The secret that signs webhook deliveries.
    #[arg(long, env = "KIT_OAUTH_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Log format: pretty or json.
    #[arg(long, env = "KIT_OAUTH_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Turns on the sign-in hook: `GET /kit/oauth` then requires a `user` parameter signed with
    /// this secret (HMAC-SHA256; see the README's Deploy section).
    #[arg(long, env = "KIT_OAUTH_USER_SIGNING_SECRET", hide_env_values = true)]
    pub user_signing_secret: Option<String>,
    /// Accepts install links naming a tenant (`/kit/oauth?tenant=<signed link>`), signed with
    /// this secret (HMAC-SHA256; see the README). Without it a `tenant` parameter is refused.
    #[arg(long, env = "KIT_OAUTH_INSTALL_LINK_SECRET", hide_env_values = true)]
    pub install_link_secret: Option<String>,
    /// Pause between the background refresher's scans for due tokens, jittered ±20 %: seconds
    /// (`5`, `0.5`, `5s`) or milliseconds (`500ms`), from 100 ms to 300 s [default: 5s].
    #[arg(long, env = "KIT_OAUTH_REFRESH_INTERVAL")]
    pub refresh_interval: Option<String>,
    /// Most refreshes the background refresher starts per second, 1 to 1000 [default: 50].
    #[arg(long, env = "KIT_OAUTH_REFRESH_RATE")]
    pub refresh_rate: Option<String>,
    /// Days audit-trail events are kept (`30`, `30d`), 1 to 3650 [default: 30].
    #[arg(long, env = "KIT_OAUTH_EVENT_RETENTION")]
    pub event_retention: Option<String>,
    /// Reverse proxies in front of the broker, comma-separated addresses or networks
    /// (`10.0.0.0/8, ::1`): from them, `X-Forwarded-For` names the client whose dashboard
    /// sign-ins are counted [default: none, the TCP peer is the client].
    #[arg(long, env = "KIT_OAUTH_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// This instance's Kit requests per rolling 60 s per connection, 1 to 600: its share of
    /// Kit's limit when several instances call for the same connections [default: 600].
    #[arg(long, env = "KIT_OAUTH_KIT_RATE_LIMIT")]
    pub kit_rate_limit: Option<String>,
    /// Seconds between the dashboard list's and timelines' reloads while nobody uses the page
    /// (never while something has focus or after a key or click), 1 to 3600, or 0 for never;
    /// each person can also turn it off on the page [default: 15].
    #[arg(long, env = "KIT_OAUTH_DASHBOARD_RELOAD")]
    pub dashboard_reload: Option<String>,
}

/// The server's settings, validated.
pub struct ServerSettings {
    /// Where to listen.
    pub bind: SocketAddr,
    /// API keys.
    pub api_keys: ApiKeys,
    /// Dashboard sign-in keys.
    pub admin_keys: ApiKeys,
    /// Webhook receiver and secret.
    pub webhook: Option<(kit_oauth::core::Url, SecretString)>,
    /// Log format.
    pub log_format: LogFormat,
    /// The sign-in hook's secret.
    pub user_signing_secret: Option<SecretString>,
    /// The install links' secret.
    pub install_link_secret: Option<SecretString>,
    /// The background refresher's pace.
    pub refresher: RefresherConfig,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// The per-connection Kit budget (`None`: Kit's 600 per 60 s).
    pub kit_rate_budget: Option<kit_oauth::http::kit_api::RateBudget>,
}

fn non_empty(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl ServerArgs {
    /// The log format (checked first, so that the rest can be logged).
    ///
    /// # Errors
    /// `KIT_OAUTH_LOG_FORMAT` malformed.
    pub fn log_format(&self) -> Result<LogFormat, ConfigError> {
        match non_empty(self.log_format.as_ref()) {
            None => Ok(LogFormat::Pretty),
            Some(raw) => LogFormat::parse(raw).ok_or_else(|| {
                ConfigError::new(
                    LOG_FORMAT_VAR,
                    format!("must be `pretty` or `json`, not {raw:?}"),
                )
            }),
        }
    }

    /// The listen address.
    ///
    /// # Errors
    /// `KIT_OAUTH_BIND` malformed.
    pub fn bind(&self) -> Result<SocketAddr, ConfigError> {
        let raw = non_empty(self.bind.as_ref()).unwrap_or(DEFAULT_BIND);
        raw.parse().map_err(|_| {
            ConfigError::new(
                BIND_VAR,
                format!("must be an address like 127.0.0.1:8080 or 0.0.0.0:8080, not {raw:?}"),
            )
        })
    }

    /// The dashboard's reload period (`None`: never).
    ///
    /// # Errors
    /// `KIT_OAUTH_DASHBOARD_RELOAD` is not whole seconds from 0 to an hour.
    pub fn dashboard_reload(&self) -> Result<Option<Duration>, ConfigError> {
        let Some(raw) = non_empty(self.dashboard_reload.as_ref()) else {
            return Ok(Some(crate::DEFAULT_DASHBOARD_RELOAD));
        };
        let seconds = raw
            .strip_suffix('s')
            .unwrap_or(raw)
            .parse::<u64>()
            .ok()
            .filter(|s| *s <= MAX_DASHBOARD_RELOAD_SECS)
            .ok_or_else(|| {
                ConfigError::new(
                    DASHBOARD_RELOAD_VAR,
                    format!(
                        "must be whole seconds from 1 to {MAX_DASHBOARD_RELOAD_SECS} (`15` or \
                         `15s`), or 0 for never, not {raw:?}"
                    ),
                )
            })?;
        Ok((seconds > 0).then(|| Duration::from_secs(seconds)))
    }

    /// The reverse proxies whose `X-Forwarded-For` is believed (none when unset).
    ///
    /// # Errors
    /// `KIT_OAUTH_TRUSTED_PROXIES` names something that is not an address or a network.
    pub fn trusted_proxies(&self) -> Result<TrustedProxies, ConfigError> {
        TrustedProxies::parse(non_empty(self.trusted_proxies.as_ref()).unwrap_or(""))
            .map_err(|e| ConfigError::new(TRUSTED_PROXIES_VAR, e.to_string()))
    }

    /// The background refresher's pace: `base` with the interval and rate that are set.
    ///
    /// # Errors
    /// `KIT_OAUTH_REFRESH_INTERVAL` or `KIT_OAUTH_REFRESH_RATE` malformed or out of range.
    pub fn refresher(&self, base: RefresherConfig) -> Result<RefresherConfig, ConfigError> {
        let mut config = base;
        if let Some(raw) = non_empty(self.refresh_interval.as_ref()) {
            config.interval = parse_refresh_interval(raw)?;
        }
        if let Some(raw) = non_empty(self.refresh_rate.as_ref()) {
            config.rate_per_second = parse_refresh_rate(raw)?;
        }
        if let Some(raw) = non_empty(self.event_retention.as_ref()) {
            config.event_retention = parse_event_retention(raw)?;
        }
        Ok(config)
    }

    /// Validates everything for a real (non-demo) deployment.
    ///
    /// # Errors
    /// The first missing or malformed variable.
    pub fn settings(&self) -> Result<ServerSettings, ConfigError> {
        let log_format = self.log_format()?;
        let bind = self.bind()?;
        let api_keys = match non_empty(self.api_keys.as_ref()) {
            Some(raw) => ApiKeys::parse(raw)?,
            None => {
                return Err(ConfigError::new(
                    API_KEYS_VAR,
                    "is required: the keys apps use for the broker API (at least 16 characters each)",
                ));
            }
        };
        let admin_keys = match non_empty(self.admin_key.as_ref()) {
            Some(raw) => {
                ApiKeys::parse(raw).map_err(|e| ConfigError::new(ADMIN_KEY_VAR, e.problem))?
            }
            None => api_keys.clone(),
        };
        let webhook = match (
            non_empty(self.webhook_url.as_ref()),
            non_empty(self.webhook_secret.as_ref()),
        ) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    WEBHOOK_SECRET_VAR,
                    "is required when KIT_OAUTH_WEBHOOK_URL is set (it signs every delivery)",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    WEBHOOK_URL_VAR,
                    "is required when KIT_OAUTH_WEBHOOK_SECRET is set",
                ));
            }
            (Some(url), Some(secret)) => {
                let url = kit_oauth::core::Url::parse(url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                    .ok_or_else(|| {
                        ConfigError::new(WEBHOOK_URL_VAR, "must be an http:// or https:// URL")
                    })?;
                if secret.len() < 16 {
                    return Err(ConfigError::new(
                        WEBHOOK_SECRET_VAR,
                        "must be at least 16 characters long",
                    ));
                }
                Some((url, SecretString::from(secret.to_owned())))
            }
        };
        let user_signing_secret = match non_empty(self.user_signing_secret.as_ref()) {
            None => None,
            Some(secret) if secret.len() < 16 => {
                return Err(ConfigError::new(
                    SIGNING_SECRET_VAR,
                    "must be at least 16 characters long",
                ));
            }
            Some(secret) => Some(SecretString::from(secret.to_owned())),
        };
        let install_link_secret = match non_empty(self.install_link_secret.as_ref()) {
            None => None,
            Some(secret) if secret.len() < 16 => {
                return Err(ConfigError::new(
                    INSTALL_LINK_SECRET_VAR,
                    "must be at least 16 characters long",
                ));
            }
            Some(secret) => Some(SecretString::from(secret.to_owned())),
        };
        let refresher = self.refresher(RefresherConfig::default())?;
        let trusted_proxies = self.trusted_proxies()?;
        let kit_rate_budget =
            crate::kit_budget::parse_kit_rate_limit(non_empty(self.kit_rate_limit.as_ref()))?;
        Ok(ServerSettings {
            trusted_proxies,
            kit_rate_budget,
            install_link_secret,
            bind,
            api_keys,
            admin_keys,
            webhook,
            log_format,
            user_signing_secret,
            refresher,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(interval: Option<&str>, rate: Option<&str>) -> ServerArgs {
        ServerArgs {
            refresh_interval: interval.map(str::to_owned),
            refresh_rate: rate.map(str::to_owned),
            ..ServerArgs::default()
        }
    }

    #[test]
    fn dashboard_reload_is_whole_seconds_up_to_an_hour_or_zero_for_never() {
        let with = |raw: Option<&str>| {
            ServerArgs {
                dashboard_reload: raw.map(str::to_owned),
                ..ServerArgs::default()
            }
            .dashboard_reload()
        };
        assert_eq!(with(None).unwrap(), Some(Duration::from_secs(15)));
        assert_eq!(with(Some("2")).unwrap(), Some(Duration::from_secs(2)));
        assert_eq!(
            with(Some("3600s")).unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(with(Some("0")).unwrap(), None);
        for bad in ["3601", "-1", "1.5", "15m", "soon"] {
            let error = with(Some(bad)).unwrap_err();
            assert!(
                error.to_string().contains(DASHBOARD_RELOAD_VAR),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn event_retention_is_whole_days_from_one_to_ten_years() {
        let with = |raw: &str| ServerArgs {
            event_retention: Some(raw.to_owned()),
            ..ServerArgs::default()
        };
        let days = |n: u64| Duration::from_secs(n * 24 * 3600);
        for (raw, expected) in [("30", days(30)), ("1d", days(1)), ("3650", days(3650))] {
            let config = with(raw).refresher(RefresherConfig::default()).unwrap();
            assert_eq!(config.event_retention, expected, "{raw}");
        }
        for raw in ["0", "3651", "12h", "-1", "1.5", "d"] {
            let error = with(raw)
                .refresher(RefresherConfig::default())
                .err()
                .unwrap();
            assert_eq!(error.variable, EVENT_RETENTION_VAR, "{raw}");
        }
        let default = ServerArgs::default()
            .refresher(RefresherConfig::default())
            .unwrap();
        assert_eq!(default.event_retention, days(30));
    }

    #[test]
    fn the_refresher_pace_defaults_and_parses() {
        let defaults = RefresherConfig::default();
        for unset in [args(None, None), args(Some(" "), Some(""))] {
            let config = unset.refresher(defaults.clone()).unwrap();
            assert_eq!(config.interval, Duration::from_secs(5));
            assert_eq!(config.rate_per_second, 50);
        }
        for (raw, expected) in [
            ("5", Duration::from_secs(5)),
            ("2.5", Duration::from_millis(2_500)),
            ("0.1", Duration::from_millis(100)),
            ("30s", Duration::from_secs(30)),
            ("750ms", Duration::from_millis(750)),
            ("300", Duration::from_secs(300)),
            (" 10 ", Duration::from_secs(10)),
        ] {
            let config = args(Some(raw), None).refresher(defaults.clone()).unwrap();
            assert_eq!(config.interval, expected, "{raw}");
            assert_eq!(config.rate_per_second, 50, "{raw}");
        }
        for (raw, expected) in [("1", 1), ("200", 200), ("1000", 1_000)] {
            let config = args(None, Some(raw)).refresher(defaults.clone()).unwrap();
            assert_eq!(config.rate_per_second, expected, "{raw}");
            assert_eq!(config.interval, Duration::from_secs(5), "{raw}");
        }
        // Only what is set replaces the base (the demo's base scans every 2 s).
        let demo = RefresherConfig {
            interval: Duration::from_secs(2),
            ..RefresherConfig::default()
        };
        let config = args(None, Some("10")).refresher(demo).unwrap();
        assert_eq!(config.interval, Duration::from_secs(2));
        assert_eq!(config.rate_per_second, 10);
        assert_eq!(config.batch, defaults.batch);
        assert_eq!(config.concurrency, defaults.concurrency);
    }

    #[test]
    fn a_malformed_refresher_pace_names_its_variable() {
        for raw in [
            "abc",
            "-1",
            "0",
            "0.05",
            "99ms",
            "301",
            "1e2",
            "inf",
            "NaN",
            "5m",
            "ms",
            "s",
            ".",
            "1..2",
            "5 s",
            "18446744073709551616",
        ] {
            let error = args(Some(raw), None)
                .refresher(RefresherConfig::default())
                .unwrap_err();
            assert_eq!(error.variable, REFRESH_INTERVAL_VAR, "{raw}");
            assert!(
                error.to_string().starts_with(REFRESH_INTERVAL_VAR),
                "{error}"
            );
            assert!(!error.to_string().contains('\n'), "{error}");
        }
        for raw in ["abc", "0", "-5", "1001", "2.5", "50/s", "4294967296"] {
            let error = args(None, Some(raw))
                .refresher(RefresherConfig::default())
                .unwrap_err();
            assert_eq!(error.variable, REFRESH_RATE_VAR, "{raw}");
            assert!(error.to_string().contains("from 1 to 1000"), "{error}");
        }
        // The deployment's settings refuse them too.
        let deployment = ServerArgs {
            api_keys: Some("an-api-key-of-some-length".into()),
            refresh_rate: Some("0".into()),
            ..ServerArgs::default()
        };
        let error = deployment.settings().err().unwrap();
        assert_eq!(error.variable, REFRESH_RATE_VAR);
    }
}
