//! One authorization code makes one connection.
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

fn finish(grant: CodeGrant, account: KitAccount, tokens: TokenSet) {
    let id = ConnectionId::parse("a").unwrap();
    let _one = grant.authorize(id.clone(), account.clone(), tokens.clone());
    let _two = grant.authorize(id, account, tokens);
}

fn main() {}
