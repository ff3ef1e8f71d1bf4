//! After a refresh, the spent refresh token is no longer reachable.
use kit_oauth_core::*;

fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_unix_seconds(0))
}

fn start() -> InstallStart {
    InstallStart {
        state: CsrfState::new("s"),
        verifier: PkceVerifier::new("v"),
        kit_redirect: KitRedirect::parse("https://app.kit.com/a", &RedirectAllowlist::default()).unwrap(),
    }
}

fn refresh(expired: Connection<Expired>, tokens: TokenSet) {
    let spent = expired.refresh_token();
    let _renewed = expired.refreshed(tokens);
    let _ = spent.expose_secret();
}

fn main() {}
