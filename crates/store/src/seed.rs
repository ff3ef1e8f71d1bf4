//! Bulk seeding: many connection rows in a few statements, sealed exactly as every other writer
//! seals them (the `codec`'s grant columns, bound to row, version and column), so a seeded row
//! is indistinguishable from an installed one. For load harnesses and tests that need a large
//! table without a million installs; a production path writes rows one at a time through the
//! install flow.
//!
//! **A bench and test seeding path, not a write of the store port.** It is the one place that
//! writes a hand-built [`ConnectionRecord`], and it is deliberately outside
//! [`kit_oauth_core::ConnectionStore`] (whose writes take only what the flow's transitions made,
//! see `kit_oauth_core::writes`): an inherent method of [`SeaOrmStore`] that nothing in the
//! broker, the manager or the CLI calls.

use std::time::Duration;

use kit_oauth_core::{
    AccessToken, ConnectionId, ConnectionRecord, Grant, KitAccount, KitAccountId, RefreshHealth,
    RefreshToken, StoreError, StoreError as E, TenantName, Timestamp, TokenSet, UnauthorizedReason,
    Version,
};

use crate::sql::{Params, millis, tenant_column, to_i64};
use crate::store::SeaOrmStore;

/// Rows per `INSERT`: 24 parameters each, well under SQLite's 32,766 and PostgreSQL's 65,535
/// bound parameters per statement.
pub const SEED_BATCH: usize = 1000;

const SEED_COLUMNS: &str = "id, tenant_name, kit_account_id, account_name, account_email, state, \
     ended_reason, key_id, access_token_nonce, access_token_ct, refresh_token_nonce, \
     refresh_token_ct, scope, issued_at, expires_at, next_refresh_at, version, \
     consecutive_failures, cooldown_until, early_retry_after, last_error, last_refresh_at, \
     created_at, updated_at";

/// A token's lifetime at Kit (two days): what every seeded active grant was issued for.
const LIFETIME: Duration = Duration::from_secs(2 * 24 * 3600);
/// The refresh margin of such a token (15 minutes).
const MARGIN: Duration = Duration::from_secs(15 * 60);

/// The `n`th of a realistic population of connections at `now`, the same for the same `n`:
/// per hundred, one is due (inside its refresh margin, its scheduled refresh passed: what the
/// refresher's scan finds), four are ended (three `reauth_required`, one revoked), and 95 are
/// active with expiries spread over the next two days and their refresh scheduled ahead. Ids
/// are scrambled (not in `n` order, as random ids are not), tenants spread over 100 names.
///
/// # Errors
/// Never for a `n` below 2^60 (the id and account would not parse otherwise).
pub fn seed_record(n: u64, now: Timestamp) -> Result<ConnectionRecord, StoreError> {
    let corrupt = |e: kit_oauth_core::IdError| E::Backend(format!("seed {n}: {e}"));
    let id = ConnectionId::parse(&format!("s{:021x}", scramble(n))).map_err(corrupt)?;
    let account = KitAccount {
        id: KitAccountId::parse(&format!("{}", 10_000_000 + n)).map_err(corrupt)?,
        name: format!("Seeded account {n}"),
        primary_email: Some(format!("owner{n}@seed.example")),
    };
    let tenant = Some(TenantName::parse(&format!("tenant-{:02}", n % 100)).map_err(corrupt)?);
    let bucket = n % 100;
    let spread_ms = scramble(n ^ 0x5eed) % (LIFETIME - MARGIN * 2).as_secs() * 1000;
    let (grant, next_refresh_at) = match bucket {
        0 => {
            // Due: five minutes into the margin; the refresher's turn came two minutes ago.
            let expires_at = now.saturating_add(MARGIN - Duration::from_secs(300));
            let tokens = tokens(n, expires_at.saturating_sub(LIFETIME), expires_at);
            (
                Grant::Active(tokens),
                Some(now.saturating_sub(Duration::from_secs(120))),
            )
        }
        1..=3 => (
            Grant::Ended(UnauthorizedReason::ReauthRequired {
                detail: "invalid_grant: the refresh token was revoked".to_owned(),
            }),
            None,
        ),
        4 => (Grant::Ended(UnauthorizedReason::Revoked), None),
        _ => {
            let expires_at = now.saturating_add(MARGIN * 2 + Duration::from_millis(spread_ms));
            let tokens = tokens(n, expires_at.saturating_sub(LIFETIME), expires_at);
            let next = tokens.due_at().saturating_sub(Duration::from_secs(n % 225));
            (Grant::Active(tokens), Some(next))
        }
    };
    let created_at = now.saturating_sub(Duration::from_secs(86_400 * (n % 365) + 3600));
    let health = match bucket {
        1..=3 => RefreshHealth {
            last_error: Some("invalid_grant".to_owned()),
            ..RefreshHealth::default()
        },
        _ => RefreshHealth {
            last_refresh_at: Some(now.saturating_sub(Duration::from_secs(n % 86_400))),
            ..RefreshHealth::default()
        },
    };
    Ok(ConnectionRecord {
        id,
        tenant,
        account,
        grant,
        version: Version(1 + n % 40),
        health,
        next_refresh_at,
        created_at,
        updated_at: now,
    })
}

fn tokens(n: u64, issued_at: Timestamp, expires_at: Timestamp) -> TokenSet {
    TokenSet::from_parts(
        AccessToken::new(format!(
            "seed-access-{:016x}{:016x}",
            scramble(n),
            scramble(!n)
        )),
        RefreshToken::new(format!("seed-refresh-{:016x}{:016x}", scramble(n + 1), n)),
        Some("public".to_owned()),
        issued_at,
        expires_at,
    )
}

/// splitmix64's finalizer: a bijection on `u64`, so distinct `n` give distinct ids.
fn scramble(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SeaOrmStore {
    /// Bench and test seeding only (see the module documentation): inserts `records` as they
    /// are (each at its own `version`, no lease), [`SEED_BATCH`] rows per multi-row `INSERT`,
    /// bypassing the typed flow. Returns how many rows were inserted.
    ///
    /// # Errors
    /// A database error, or a row that would break a unique key (an id, or a tenant and
    /// account pair, already stored): the batch holding it is not inserted.
    pub async fn seed_connections(&self, records: &[ConnectionRecord]) -> Result<u64, StoreError> {
        let mut inserted = 0;
        for batch in records.chunks(SEED_BATCH) {
            let mut p = Params::new();
            let mut values = Vec::with_capacity(batch.len());
            for record in batch {
                values.push(self.seed_values(record, &mut p)?);
            }
            let sql = format!(
                "INSERT INTO connections ({SEED_COLUMNS}) VALUES {}",
                values.join(", ")
            );
            inserted += self.exec(sql, p).await?;
        }
        Ok(inserted)
    }

    fn seed_values(&self, r: &ConnectionRecord, p: &mut Params) -> Result<String, StoreError> {
        let g = self.seal_grant(&r.grant, r.id.as_str(), r.version.0)?;
        let h = &r.health;
        let columns = [
            p.push(r.id.as_str()),
            p.push(tenant_column(r.tenant.as_ref())),
            p.push(r.account.id.as_str()),
            p.push(r.account.name.clone()),
            p.push(r.account.primary_email.clone()),
            p.push(g.state),
            p.push(g.ended_reason),
            p.push(g.key_id),
            p.push(g.access_nonce),
            p.push(g.access_ct),
            p.push(g.refresh_nonce),
            p.push(g.refresh_ct),
            p.push(g.scope),
            p.push(g.issued_at),
            p.push(g.expires_at),
            p.push(millis(r.next_refresh_at)),
            p.push(to_i64(r.version.0, "version")?),
            p.push(i64::from(h.consecutive_failures)),
            p.push(millis(h.cooldown_until)),
            p.push(millis(h.early_retry_after)),
            p.push(h.last_error.clone()),
            p.push(millis(h.last_refresh_at)),
            p.push(r.created_at.unix_millis()),
            p.push(r.updated_at.unix_millis()),
        ];
        Ok(format!("({})", columns.join(", ")))
    }
}
