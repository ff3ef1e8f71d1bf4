//! A fleet of connections seeded straight into the broker's database, for the dashboard's
//! scale tests and screenshots: active grants through the store's own install upsert (their
//! tokens sealed with the broker's key), ended ones (no tokens) by multi-row INSERTs, plus an
//! audit trail for the overview's 24 hours and one connection's timeline.
#![allow(
    unreachable_pub,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation
)]

use std::time::Duration;

use kit_oauth::core::{
    AccessToken, Callback, Clock as _, Connection, ConnectionId, ConnectionStore as _, CsrfState,
    Event, EventId, EventKind, InstallStart, Installed, KitAccount, KitAccountId, KitRedirect,
    PkceVerifier, RedirectAllowlist, RefreshToken, SystemClock, TenantName, Timestamp, TokenSet,
    Unauthorized,
};
use kit_oauth::store::{KeyRing, SeaOrmStore};
use sea_orm::{ConnectionTrait as _, Database};

use crate::support::ENCRYPTION_KEY;

const FIRST: [&str; 16] = [
    "Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "June", "Kai", "Lena", "Milo",
    "Nora", "Omar", "Pia",
];
const TRADE: [&str; 12] = [
    "Bakery", "Studio", "Press", "Garden", "Cycles", "Letters", "Kitchen", "Podcast", "Pottery",
    "Yoga", "Books", "Audio",
];

/// Refreshes per hour of the day (UTC), in proportion: the creators' day.
const DAY: [usize; 24] = [
    50, 40, 34, 30, 30, 34, 44, 58, 74, 90, 104, 114, 120, 124, 126, 124, 118, 110, 100, 90, 80,
    72, 64, 56,
];

/// The account name of the `i`-th seeded connection.
pub fn name(i: usize) -> String {
    format!(
        "{} {} {i:05}",
        FIRST[i % FIRST.len()],
        TRADE[(i / FIRST.len()) % TRADE.len()]
    )
}

/// What was seeded.
pub struct Seeded {
    /// The active connections' ids, in seeding order.
    pub active: Vec<ConnectionId>,
    /// The first few ended (needs reinstall) connections' ids.
    pub ended: Vec<ConnectionId>,
    /// How many of each: active (of which failing), needing a reinstall, revoked.
    pub counts: [usize; 4],
}

fn store_clock_now() -> Timestamp {
    SystemClock.now()
}

async fn active(store: &SeaOrmStore, i: usize) -> ConnectionId {
    let clock = SystemClock;
    let now = clock.now();
    let tokens = TokenSet::from_parts(
        AccessToken::new(format!("seed-access-{i}")),
        RefreshToken::new(format!("seed-refresh-{i}")),
        Some("public".into()),
        now,
        now.saturating_add(Duration::from_secs(172_800 - (i as u64 % 7_200))),
    );
    let start = InstallStart {
        state: CsrfState::new("s"),
        verifier: PkceVerifier::generate(&mut rand::rngs::OsRng),
        kit_redirect: KitRedirect::parse("https://app.kit.com/", &RedirectAllowlist::default())
            .unwrap(),
    };
    let connection = Connection::<Unauthorized>::new(Some(
        TenantName::parse(&format!("tenant-{}", i % 200)).unwrap(),
    ))
    .begin(start, &clock)
    .callback(Callback::from_query("code=c&state=s").unwrap(), &clock)
    .unwrap()
    .authorize(
        ConnectionId::generate(&mut rand::rngs::OsRng),
        KitAccount {
            id: KitAccountId::from(100_000 + i as u64),
            name: name(i),
            primary_email: None,
        },
        tokens.clone(),
    );
    store
        .upsert_installed(&Installed::new(&connection, tokens.due_at(), now))
        .await
        .unwrap()
        .id
}

/// Seeds `n` connections into `url` (one in `active_every` active, every 25th of those failing;
/// of the ended ones one in 7 revoked), and `refreshes` refresh events spread over the last
/// 24 hours with one failure per 40.
pub async fn seed(url: &str, n: usize, active_every: usize, refreshes: usize) -> Seeded {
    let keys = KeyRing::from_env_value(ENCRYPTION_KEY).unwrap();
    let store = SeaOrmStore::connect(url, keys).await.unwrap();
    let db = Database::connect(url).await.unwrap();
    let now = store_clock_now().unix_millis();
    let mut seeded = Seeded {
        active: Vec::new(),
        ended: Vec::new(),
        counts: [0; 4],
    };
    let mut rows = Vec::new();
    for i in 0..n {
        if i % active_every == 0 {
            seeded.active.push(active(&store, i).await);
            seeded.counts[0] += 1;
            continue;
        }
        let revoked = i % 7 == 0;
        let reason = if revoked {
            r#"{"kind":"revoked"}"#.to_owned()
        } else {
            r#"{"kind":"reauth_required","detail":"invalid_grant: the refresh token was revoked"}"#
                .to_owned()
        };
        seeded.counts[if revoked { 3 } else { 2 }] += 1;
        let id = ConnectionId::generate(&mut rand::rngs::OsRng);
        if !revoked && seeded.ended.len() < 10 {
            seeded.ended.push(id.clone());
        }
        rows.push(format!(
            "('{}', 'tenant-{}', '{}', '{}', 'unauthorized', '{}', 1, {}, {})",
            id.as_str(),
            i % 200,
            100_000 + i,
            name(i),
            reason,
            now - (i as i64) * 1000,
            now - (i as i64) * 1000
        ));
        if rows.len() == 500 || i + 1 == n {
            db.execute_unprepared(&format!(
                "INSERT INTO connections (id, tenant_name, kit_account_id, account_name, state, \
                 ended_reason, version, created_at, updated_at) VALUES {}",
                rows.join(", ")
            ))
            .await
            .unwrap();
            rows.clear();
        }
    }
    if !rows.is_empty() {
        db.execute_unprepared(&format!(
            "INSERT INTO connections (id, tenant_name, kit_account_id, account_name, state, \
             ended_reason, version, created_at, updated_at) VALUES {}",
            rows.join(", ")
        ))
        .await
        .unwrap();
    }
    // Every 25th active grant's last refresh failed.
    for id in seeded.active.iter().step_by(25) {
        db.execute_unprepared(&format!(
            "UPDATE connections SET consecutive_failures = 2, last_error = 'Kit answered 503; \
             retrying after the cooldown' WHERE id = '{}'",
            id.as_str()
        ))
        .await
        .unwrap();
        seeded.counts[1] += 1;
    }
    // Refreshes over the last day, following the creators' day (busier in the UTC afternoon),
    // with an outage three hours ago whose failures were retried.
    let total: usize = DAY.iter().sum();
    let current_hour = now.div_euclid(3_600_000);
    let mut events = Vec::new();
    let mut k = 0;
    for ago in 0..24_i64 {
        let hour = current_hour - ago;
        let share = DAY[usize::try_from(hour.rem_euclid(24)).unwrap()] * refreshes / total;
        let failures = match ago {
            3 => share / 4,
            2 => share / 10,
            _ => share / 100,
        };
        for j in 0..share + failures {
            let id = &seeded.active[k % seeded.active.len()];
            let at = (hour * 3_600_000 + ((j * 7_919) % 3_600_000) as i64).min(now - 1);
            let kind = if j < failures {
                "refresh_failed"
            } else {
                "refreshed"
            };
            events.push(format!(
                "('seed_{k}', '{}', 'tenant-0', NULL, '{kind}', '{{}}', {at})",
                id.as_str()
            ));
            k += 1;
            if events.len() == 500 {
                flush_events(&db, &mut events).await;
            }
        }
    }
    flush_events(&db, &mut events).await;
    seeded
}

/// Gives `id` a realistic history through the store's own `append_event`: installed, refreshed
/// every two days, one transient failure, and finally a dead grant.
pub async fn history(url: &str, id: &ConnectionId) {
    let keys = KeyRing::from_env_value(ENCRYPTION_KEY).unwrap();
    let store = SeaOrmStore::connect(url, keys).await.unwrap();
    let now = store_clock_now().unix_millis();
    let day = 86_400_000;
    let mut kinds = vec![(now - 9 * day, EventKind::Authorized)];
    for d in [7, 5, 3] {
        kinds.push((
            now - d * day,
            EventKind::Refreshed {
                expires_at: Timestamp::from_unix_millis(now - d * day + 2 * day),
            },
        ));
    }
    kinds.push((
        now - 2 * day,
        EventKind::RefreshFailed {
            reason: "Kit answered 503 Service Unavailable".into(),
            failures: 1,
        },
    ));
    kinds.push((
        now - 2 * day + 60_000,
        EventKind::Refreshed {
            expires_at: Timestamp::from_unix_millis(now),
        },
    ));
    kinds.push((
        now - 3_600_000,
        EventKind::ReauthRequired {
            reason: "invalid_grant: the creator uninstalled the app at Kit".into(),
        },
    ));
    for (at, kind) in kinds {
        store
            .append_event(&Event {
                id: EventId::generate(&mut rand::rngs::OsRng),
                at: Timestamp::from_unix_millis(at),
                connection: id.clone(),
                tenant: None,
                account: None,
                kind,
            })
            .await
            .unwrap();
    }
}

async fn flush_events(db: &sea_orm::DatabaseConnection, events: &mut Vec<String>) {
    if events.is_empty() {
        return;
    }
    db.execute_unprepared(&format!(
        "INSERT INTO connection_events (id, connection_id, tenant_name, kit_account_id, kind, \
         detail, at) VALUES {}",
        events.join(", ")
    ))
    .await
    .unwrap();
    events.clear();
}
