//! Kit bulk requests the broker started and is waiting for (issue 16): above 100 items Kit
//! answers `202 {}` and later POSTs the result to the request's `callback_url`, unsigned. The
//! callback URL carries an unguessable token; only its SHA-256 is stored, so a database reader
//! cannot forge a completion. Several broker instances share the database, so the callback may
//! reach any of them: the pending request and its result live here, and completing is one
//! conditional UPDATE, which exactly one callback wins (a replay changes nothing).
//!
//! Results may hold subscriber emails — customer data, not secrets — so they are bounded
//! ([`BULK_RESULT_MAX_BYTES`]) and purged with the audit trail's retention
//! ([`SeaOrmStore::purge_bulk`]).

use kit_oauth_core::{ConnectionId, Sha256Hash, StoreError, TenantName, Timestamp};

use crate::sql::{Params, get, parse_tenant, tenant_column, ts};
use crate::store::SeaOrmStore;

/// The largest result stored: Kit's bulk limit is 100 000 items per request, but a result
/// larger than this is refused rather than kept in full.
pub const BULK_RESULT_MAX_BYTES: usize = 4 * 1024 * 1024;

/// A bulk request to record before it is sent to Kit.
#[derive(Debug, Clone)]
pub struct NewBulkRequest {
    /// The id apps read it back by (`GET /v1/bulk/{id}`); not a secret.
    pub id: String,
    /// SHA-256 of the callback URL's token.
    pub callback_hash: Sha256Hash,
    /// The connection it was sent for.
    pub connection: ConnectionId,
    /// Its tenant, so a tenant-scoped key sees only its own.
    pub tenant: Option<TenantName>,
    /// The Kit endpoint under `/v4/bulk/` (`subscribers`, `tags/subscribers`, …).
    pub kind: String,
    /// When it was sent.
    pub created_at: Timestamp,
}

/// A stored bulk request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkRecord {
    /// Its id.
    pub id: String,
    /// The connection it was sent for.
    pub connection: ConnectionId,
    /// Its tenant.
    pub tenant: Option<TenantName>,
    /// The Kit endpoint under `/v4/bulk/`.
    pub kind: String,
    /// When it was sent.
    pub created_at: Timestamp,
    /// When its result arrived.
    pub completed_at: Option<Timestamp>,
    /// Kit's result (JSON text), once it arrived.
    pub result: Option<String>,
}

/// What a callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkCompletion {
    /// This callback completed the request: emit `bulk_completed` once, for this.
    Completed(BulkRecord),
    /// The request had its result already (a replayed or duplicated callback).
    AlreadyCompleted,
    /// No pending request has this token (forged, or purged).
    Unknown,
}

const COLUMNS: &str = "id, connection_id, tenant_name, kind, created_at, completed_at, result";

fn record(row: &sea_orm::QueryResult) -> Result<BulkRecord, StoreError> {
    let connection: String = get(row, "connection_id")?;
    let tenant: String = get(row, "tenant_name")?;
    Ok(BulkRecord {
        id: get(row, "id")?,
        connection: ConnectionId::parse(&connection)
            .map_err(|e| StoreError::Corrupt(format!("bulk request's connection id: {e}")))?,
        tenant: parse_tenant(&tenant)?,
        kind: get(row, "kind")?,
        created_at: Timestamp::from_unix_millis(get(row, "created_at")?),
        completed_at: ts(get(row, "completed_at")?),
        result: get(row, "result")?,
    })
}

impl SeaOrmStore {
    /// Records a bulk request before it is sent, so that a callback reaching any instance
    /// finds it.
    ///
    /// # Errors
    /// A database error (an id or token already recorded included).
    pub async fn insert_bulk(&self, request: &NewBulkRequest) -> Result<(), StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "INSERT INTO bulk_requests \
             (id, callback_hash, connection_id, tenant_name, kind, created_at) \
             VALUES ({}, {}, {}, {}, {}, {})",
            p.push(request.id.as_str()),
            p.push(request.callback_hash.to_string()),
            p.push(request.connection.as_str()),
            p.push(tenant_column(request.tenant.as_ref())),
            p.push(request.kind.as_str()),
            p.push(request.created_at.unix_millis()),
        );
        self.exec(sql, p).await.map(drop)
    }

    /// Stores the result Kit POSTed for the callback token hashing to `callback_hash`, if the
    /// request is still pending: exactly one of concurrent or repeated callbacks completes it.
    ///
    /// # Errors
    /// [`StoreError::Backend`] for a result above [`BULK_RESULT_MAX_BYTES`]; a database error.
    pub async fn complete_bulk(
        &self,
        callback_hash: &Sha256Hash,
        result: &str,
        at: Timestamp,
    ) -> Result<BulkCompletion, StoreError> {
        if result.len() > BULK_RESULT_MAX_BYTES {
            return Err(StoreError::Backend(format!(
                "bulk result of {} bytes is above the {BULK_RESULT_MAX_BYTES}-byte bound",
                result.len()
            )));
        }
        let hash = callback_hash.to_string();
        let mut p = Params::new();
        let sql = format!(
            "UPDATE bulk_requests SET result = {}, completed_at = {} \
             WHERE callback_hash = {} AND completed_at IS NULL",
            p.push(result),
            p.push(at.unix_millis()),
            p.push(hash.as_str()),
        );
        let won = self.exec(sql, p).await? == 1;
        let mut p = Params::new();
        let sql = format!(
            "SELECT {COLUMNS} FROM bulk_requests WHERE callback_hash = {}",
            p.push(hash)
        );
        match (won, self.query_one(sql, p).await?) {
            (_, None) => Ok(BulkCompletion::Unknown),
            (true, Some(row)) => record(&row).map(BulkCompletion::Completed),
            (false, Some(_)) => Ok(BulkCompletion::AlreadyCompleted),
        }
    }

    /// The bulk request `id`, pending or completed.
    ///
    /// # Errors
    /// A database error.
    pub async fn bulk_request(&self, id: &str) -> Result<Option<BulkRecord>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT {COLUMNS} FROM bulk_requests WHERE id = {}",
            p.push(id)
        );
        self.query_one(sql, p)
            .await?
            .as_ref()
            .map(record)
            .transpose()
    }

    /// Deletes the bulk requests sent before `cutoff`, with their results; returns how many.
    ///
    /// # Errors
    /// A database error.
    pub async fn purge_bulk(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "DELETE FROM bulk_requests WHERE created_at < {}",
            p.push(cutoff.unix_millis())
        );
        self.exec(sql, p).await
    }
}
