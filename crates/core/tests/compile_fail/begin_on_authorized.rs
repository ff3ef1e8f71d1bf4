//! An authorized connection cannot start another install on top of itself.
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

fn again(authorized: Connection<Authorized>) {
    let clock = clock();
    let _ = authorized.begin(start(), &clock);
}

fn main() {}
