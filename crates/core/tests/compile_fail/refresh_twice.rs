//! An expired grant cannot be duplicated, so its refresh token cannot be spent twice.
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

fn twice(expired: Connection<Expired>, a: TokenSet, b: TokenSet) {
    let copy = expired.clone();
    let _one = expired.refreshed(a);
    let _two = copy.refreshed(b);
}

fn main() {}
