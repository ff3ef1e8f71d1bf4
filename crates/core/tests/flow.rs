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
    let in_time = Connection::<Unauthorized>::new(None).begin(start("s"), &clock);
    let late = Connection::<Unauthorized>::new(None).begin(start("s"), &clock);
    clock.advance(PENDING_TTL - Duration::from_millis(1));
    assert!(
        in_time
            .callback(Callback::from_query("code=c&state=s").unwrap(), &clock)
            .is_ok()
    );
    clock.advance(Duration::from_millis(1));
    let gone = late
        .callback(Callback::from_query("code=c&state=s").unwrap(), &clock)
        .unwrap_err();
    assert_eq!(gone.error, CallbackError::Expired);
    assert_eq!(
        gone.connection.reason(),
        &UnauthorizedReason::InstallExpired
    );
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
    let conn = authorized(&clock);
    let refused = conn.tokens().access().fingerprint();
    let Freshness::Due(expired) = conn.observe_for(Due::Replacing(refused), &clock) else {
        panic!("Kit refused the token it holds: due")
    };
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
fn only_evidence_makes_a_fresh_grant_due() {
    let clock = clock();
    // Replacing a token the connection no longer holds: still fresh.
    let other = AccessToken::new("at-0").fingerprint();
    let Freshness::Fresh(conn) = authorized(&clock).observe_for(Due::Replacing(other), &clock)
    else {
        panic!("another token was refused, not this one")
    };
    // The schedule: due once its instant has passed, even outside the margin.
    let at = clock.now().saturating_add(Duration::from_secs(60));
    let scheduled = Due::Scheduled {
        next_refresh_at: Some(at),
    };
    let Freshness::Fresh(conn) = conn.observe_for(scheduled, &clock) else {
        panic!("schedule not reached")
    };
    clock.advance(Duration::from_secs(60));
    let Freshness::Due(expired) = conn.observe_for(scheduled, &clock) else {
        panic!("schedule reached")
    };
    assert_eq!(expired.refresh_token().expose_secret(), "rt-1");
    let Freshness::Fresh(_) = authorized(&clock).observe(&clock) else {
        panic!("the margin alone does not make it due")
    };
}

#[test]
fn a_refresh_answer_is_applied_by_the_flow() {
    let clock = clock();
    let conn = authorized(&clock);
    clock.advance(Duration::from_secs(7200));
    let Freshness::Due(expired) = conn.observe(&clock) else {
        panic!("due")
    };
    // An unusable answer gives the connection back, its refresh token untouched.
    let unusable = TokenResponse {
        access_token: AccessToken::new("at-2"),
        refresh_token: Some(RefreshToken::new("rt-2")),
        expires_in: None,
        created_at: None,
        scope: None,
    };
    let UnusableAnswer {
        error,
        connection: expired,
    } = *expired.refreshed_with(unusable, clock.now()).unwrap_err();
    assert_eq!(error, TokenError::MissingExpiry);
    assert_eq!(expired.refresh_token().expose_secret(), "rt-1");
    // A server that does not rotate: the refresh token is kept.
    let kept = TokenResponse {
        access_token: AccessToken::new("at-2"),
        refresh_token: None,
        expires_in: Some(7200),
        created_at: None,
        scope: None,
    };
    let renewed = expired.refreshed_with(kept, clock.now()).unwrap();
    assert_eq!(renewed.tokens().access().expose_secret(), "at-2");
    assert_eq!(renewed.tokens().refresh().expose_secret(), "rt-1");
}

#[test]
fn store_records_are_made_from_the_flow_s_values() {
    let clock = clock();
    let pending = Connection::<Unauthorized>::new(None).begin(start("s"), &clock);
    let record = PendingRecord::new(&pending, Sha256Hash::of(b"browser"));
    assert_eq!(record.state_hash, CsrfState::new("s").fingerprint());
    assert_eq!(&record.verifier, pending.verifier());

    let conn = authorized(&clock);
    let row = Installed::new(&conn, conn.tokens().due_at(), clock.now()).row();
    assert_eq!(row.state_name(), StateName::Authorized);
    assert_eq!(row.grant, Grant::Active(conn.tokens().clone()));
    assert_eq!(row.health, RefreshHealth::default());

    clock.advance(Duration::from_secs(7200));
    let Freshness::Due(expired) = conn.observe(&clock) else {
        panic!("due")
    };
    let renewed = expired.refreshed(tokens(2, &clock, 7200));
    let next = Settled::Refreshed {
        connection: &renewed,
        next_refresh_at: renewed.tokens().due_at(),
        at: clock.now(),
    }
    .row()
    .unwrap();
    assert_eq!(next.grant, Grant::Active(renewed.tokens().clone()));
    assert_eq!(next.health.last_refresh_at, Some(clock.now()));
    assert_eq!(next.id, row.id);

    let revoked = renewed.into_connection().revoke();
    let ended = Settled::Ended {
        connection: &revoked,
        health: RefreshHealth::default(),
        at: clock.now(),
    }
    .row()
    .unwrap();
    assert_eq!(ended.grant, Grant::Ended(UnauthorizedReason::Revoked));
    assert_eq!(ended.next_refresh_at, None);
    let removed = revoked.remove().unwrap();
    assert_eq!(removed.id(), &row.id);
    assert!(!removed.grant_left_at_kit());
}

#[test]
fn debug_output_of_whole_connections_has_no_secrets() {
    let clock = clock();
    let conn = authorized(&clock);
    let before = format!("{conn:?}");
    clock.advance(Duration::from_secs(7200));
    let Freshness::Due(expired) = conn.observe(&clock) else {
        panic!("due")
    };
    let text = format!("{before} {expired:?}");
    for secret in ["at-1", "rt-1"] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
    let pending = Connection::<Unauthorized>::new(None).begin(start("state-secret"), &clock);
    assert!(!format!("{pending:?}").contains("state-secret"));
}
