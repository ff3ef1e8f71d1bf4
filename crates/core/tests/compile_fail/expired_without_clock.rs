//! Expired is reached through a clock (observe), never built by hand.
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

fn forge(id: ConnectionId, account: KitAccount, tokens: TokenSet) -> Connection<Expired> {
    Connection::<Expired>::restore(id, None, account, tokens)
}

fn main() {}
