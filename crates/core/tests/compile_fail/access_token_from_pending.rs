//! A pending install has no access token.
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

fn main() {
    let clock = clock();
    let pending = Connection::<Unauthorized>::new(None).begin(start(), &clock);
    let _ = pending.access_token(&clock);
}
