//! An expired connection must be refreshed before its access token is used.
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

fn take(expired: Connection<Expired>) {
    let clock = clock();
    let _ = expired.access_token(&clock);
}

fn main() {}
