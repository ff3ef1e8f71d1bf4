use super::*;

fn minimal() -> KitEndpointsBuilder {
    KitEndpoints::builder()
        .client_id("app")
        .redirect_uri("https://example.com/cb")
}

#[test]
fn defaults_are_kits_documented_urls() -> Result<(), ConfigError> {
    let e = minimal().build()?;
    assert_eq!(
        e.authorize_url().as_str(),
        "https://api.kit.com/v4/oauth/authorize"
    );
    assert_eq!(e.token_url().as_str(), "https://api.kit.com/v4/oauth/token");
    assert_eq!(
        e.revoke_url().as_str(),
        "https://api.kit.com/v4/oauth/revoke"
    );
    assert_eq!(e.account_url().as_str(), "https://api.kit.com/v4/account");
    assert_eq!(e.token_body(), TokenBody::Json);
    assert!(!e.is_confidential());
    assert_eq!(e.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
    Ok(())
}

#[test]
fn base_with_a_path_prefix_and_legacy_family() -> Result<(), ConfigError> {
    let e = minimal()
        .base_url("http://127.0.0.1:9000/kit/")
        .path_family(PathFamily::Legacy)
        .token_url("http://localhost:1/custom/token")
        .build()?;
    assert_eq!(
        e.authorize_url().as_str(),
        "http://127.0.0.1:9000/kit/oauth/authorize"
    );
    assert_eq!(e.token_url().as_str(), "http://localhost:1/custom/token");
    assert_eq!(
        e.account_url().as_str(),
        "http://127.0.0.1:9000/kit/v4/account"
    );
    Ok(())
}

#[test]
fn each_bad_setting_is_named() {
    assert_eq!(
        KitEndpoints::builder()
            .redirect_uri("https://x/cb")
            .build()
            .err(),
        Some(ConfigError::MissingClientId)
    );
    assert_eq!(
        KitEndpoints::builder().client_id("a").build().err(),
        Some(ConfigError::MissingRedirectUri)
    );
    assert!(matches!(
        minimal().client_id("bad id").build(),
        Err(ConfigError::InvalidClientId(_))
    ));
    assert_eq!(
        minimal().client_secret("").build().err(),
        Some(ConfigError::EmptyClientSecret)
    );
    assert_eq!(
        minimal().base_url("http://api.kit.com").build().err(),
        Some(ConfigError::InsecureUrl {
            setting: "base URL"
        })
    );
    assert!(matches!(
        minimal().token_url("not a url").build(),
        Err(ConfigError::InvalidUrl {
            setting: "token URL",
            ..
        })
    ));
    assert!(matches!(
        minimal().revoke_url("ftp://x/revoke").build(),
        Err(ConfigError::InvalidUrl {
            setting: "revoke URL",
            ..
        })
    ));
    assert!(matches!(
        minimal().authorize_url("https://u:p@x/authorize").build(),
        Err(ConfigError::InvalidUrl {
            setting: "authorize URL",
            ..
        })
    ));
    assert!(matches!(
        minimal().redirect_uri("https://x/cb#frag").build(),
        Err(ConfigError::InvalidUrl {
            setting: "redirect URI",
            ..
        })
    ));
    assert_eq!(
        minimal().request_timeout(Duration::ZERO).build().err(),
        Some(ConfigError::ZeroTimeout {
            setting: "request timeout"
        })
    );
    assert_eq!(
        minimal().max_response_bytes(10).build().err(),
        Some(ConfigError::TinyBodyCap)
    );
}

#[test]
fn token_body_parses_and_secret_never_prints() -> Result<(), ConfigError> {
    assert_eq!("JSON".parse::<TokenBody>()?, TokenBody::Json);
    assert_eq!(" form ".parse::<TokenBody>()?, TokenBody::Form);
    assert!("xml".parse::<TokenBody>().is_err());
    let e = minimal().client_secret("sup3r-s3cret-value").build()?;
    assert!(!format!("{e:?}").contains("sup3r-s3cret-value"));
    let b = minimal().client_secret("sup3r-s3cret-value");
    assert!(!format!("{b:?}").contains("sup3r-s3cret-value"));
    Ok(())
}
