//! Example-based tests of every transition of the typestate flow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kit_oauth_core::*;

fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_unix_seconds(1_700_000_000))
}

fn start(state: &str) -> InstallStart {
    InstallStart {
        state: CsrfState::new(state),
        verifier: PkceVerifier::parse(&"v".repeat(43)).unwrap(),
        kit_redirect: KitRedirect::parse(
            "https://app.kit.com/apps/1?success=true",
            &RedirectAllowlist::default(),
        )
        .unwrap(),
    }
}

fn tokens(n: u32, clock: &ManualClock, lifetime: u64) -> TokenSet {
    TokenSet::from_response(
        TokenResponse {
            access_token: AccessToken::new(format!("at-{n}")),
            refresh_token: Some(RefreshToken::new(format!("rt-{n}"))),
            expires_in: Some(lifetime),
            created_at: Some(clock.now().unix_seconds()),
            scope: Some("public".into()),
        },
        clock.now(),
        None,
    )
    .unwrap()
}

fn account() -> KitAccount {
    KitAccount {
        id: KitAccountId::from(7),
        name: "Acme".into(),
        primary_email: Some("owner@acme.test".into()),
    }
}

fn authorized(clock: &ManualClock) -> Connection<Authorized> {
    let pending = Connection::<Unauthorized>::new(None).begin(start("s"), clock);
    let grant = pending
        .callback(Callback::from_query("code=c&state=s").unwrap(), clock)
        .unwrap();
    grant.authorize(
        ConnectionId::parse("conn1").unwrap(),
        account(),
        tokens(1, clock, 7200),
    )
}

#[test]
fn begin_sets_a_ten_minute_deadline_and_keeps_the_tenant() {
    let clock = clock();
    let tenant = TenantName::parse("acme").unwrap();
    let pending = Connection::<Unauthorized>::new(Some(tenant.clone())).begin(start("s"), &clock);
    assert_eq!(pending.deadline(), clock.now().saturating_add(PENDING_TTL));
    assert_eq!(pending.tenant(), Some(&tenant));
    assert_eq!(pending.reinstall_of(), None);
    assert_eq!(pending.verifier().challenge().as_str().len(), 43);
}

#[test]
fn callback_with_a_foreign_state_is_refused() {
    let clock = clock();
    let pending = Connection::<Unauthorized>::new(None).begin(start("right"), &clock);
    let rejected = pending
        .callback(Callback::from_query("code=c&state=wrong").unwrap(), &clock)
        .unwrap_err();
    assert_eq!(rejected.error, CallbackError::StateMismatch);
    assert!(matches!(
        rejected.connection.reason(),
        UnauthorizedReason::InstallFailed { .. }
    ));
}

#[test]
fn callback_after_the_deadline_is_refused() {
    let clock = clock();
    let pending = Connection::<Unauthorized>::new(None).begin(start("s"), &clock);
    clock.advance(PENDING_TTL);
    let rejected = pending
        .callback(Callback::from_query("code=c&state=s").unwrap(), &clock)
        .unwrap_err();
    assert_eq!(rejected.error, CallbackError::Expired);
    assert_eq!(
        rejected.connection.reason(),
        &UnauthorizedReason::InstallExpired
    );
}

#[test]
fn denial_and_provider_errors() {
    let clock = clock();
    let denied = Connection::<Unauthorized>::new(None)
        .begin(start("s"), &clock)
        .callback(
            Callback::from_query("error=access_denied&error_description=no&state=s").unwrap(),
            &clock,
        )
        .unwrap_err();
    assert_eq!(
        denied.error,
        CallbackError::AccessDenied {
            description: Some("no".into())
        }
    );
    assert_eq!(denied.connection.reason(), &UnauthorizedReason::Denied);

    let other = Connection::<Unauthorized>::new(None)
        .begin(start("s"), &clock)
        .callback(
            Callback::from_query("error=server_error&state=s").unwrap(),
            &clock,
        )
        .unwrap_err();
    assert!(
        matches!(other.error, CallbackError::Provider { ref error, .. } if error == "server_error")
    );
}

#[test]
fn pending_expires_only_after_its_deadline() {
    let clock = clock();
    let pending = Connection::<Unauthorized>::new(None).begin(start("s"), &clock);
    let PendingCheck::StillPending(pending) = pending.expire(&clock) else {
        panic!("not yet expired")
    };
    clock.advance(PENDING_TTL);
    let PendingCheck::Expired(gone) = pending.expire(&clock) else {
        panic!("expired")
    };
    assert_eq!(gone.reason(), &UnauthorizedReason::InstallExpired);
}

#[test]
fn authorized_hands_out_its_token_until_the_margin_then_becomes_expired() {
    let clock = clock();
    let conn = authorized(&clock);
    assert_eq!(conn.access_token(&clock).unwrap().expose_secret(), "at-1");
    // 7200 s lifetime: margin 720 s.
    clock.advance(Duration::from_secs(7200 - 721));
    assert!(conn.access_token(&clock).is_ok());
    clock.advance(Duration::from_secs(1));
    assert!(conn.access_token(&clock).is_err());
    let Freshness::Due(expired) = conn.observe(&clock) else {
        panic!("due")
    };
    assert_eq!(expired.refresh_token().expose_secret(), "rt-1");
    let renewed = expired.refreshed(tokens(2, &clock, 7200));
    assert_eq!(
        renewed.access_token(&clock).unwrap().expose_secret(),
        "at-2"
    );
    assert_eq!(renewed.id().as_str(), "conn1");
    assert_eq!(renewed.account(), &account());
}

#[test]
fn dead_grants_and_revocation_keep_identity_for_reinstall() {
    let clock = clock();
    let expired = authorized(&clock).expire_now();
    let dead = expired.reauth_required("invalid_grant".into());
    assert_eq!(dead.id().map(ConnectionId::as_str), Some("conn1"));
    assert_eq!(dead.account(), Some(&account()));
    assert!(matches!(
        dead.reason(),
        UnauthorizedReason::ReauthRequired { .. }
    ));
    // A reinstall remembers which connection it replaces.
    let pending = dead.begin(start("again"), &clock);
    assert_eq!(
        pending.reinstall_of().map(ConnectionId::as_str),
        Some("conn1")
    );

    let revoked = authorized(&clock).revoke();
    assert_eq!(revoked.reason(), &UnauthorizedReason::Revoked);
}

#[test]
fn any_connection_round_trips_every_state_through_json() {
    let clock = clock();
    let states: Vec<AnyConnection> = vec![
        Connection::<Unauthorized>::new(Some(TenantName::parse("t").unwrap())).into(),
        Connection::<Unauthorized>::new(None)
            .begin(start("s"), &clock)
            .into(),
        authorized(&clock).into(),
        authorized(&clock).expire_now().into(),
        authorized(&clock).revoke().into(),
    ];
    for any in states {
        let json = serde_json::to_string(&any).unwrap();
        let back: AnyConnection = serde_json::from_str(&json).unwrap();
        assert_eq!(back, any);
    }
}

#[test]
fn store_records_round_trip_pending_and_authorized() {
    let clock = clock();
    let pending = Connection::<Unauthorized>::new(None).begin(start("s"), &clock);
    let record = PendingRecord::new(&pending, Sha256Hash::of(b"browser"));
    assert_eq!(record.state_hash, CsrfState::new("s").fingerprint());
    let restored = record.into_pending(CsrfState::new("s"));
    assert_eq!(restored, pending);

    let conn = authorized(&clock);
    let row = ConnectionRecord::authorized(&conn, conn.tokens().due_at(), clock.now());
    assert_eq!(row.state_name(), StateName::Authorized);
    assert_eq!(row.authorized_connection().unwrap(), conn);
    assert_eq!(row.to_connection(), AnyConnection::from(conn));
}

#[test]
fn debug_output_of_whole_connections_has_no_secrets() {
    let clock = clock();
    let conn = authorized(&clock);
    let text = format!("{conn:?} {:?}", conn.clone().expire_now());
    for secret in ["at-1", "rt-1"] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
    let pending = Connection::<Unauthorized>::new(None).begin(start("state-secret"), &clock);
    assert!(!format!("{pending:?}").contains("state-secret"));
}
