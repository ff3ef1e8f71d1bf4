//! The refresh protocol, across processes: docs/design.md "Tokens always fresh", steps 2–4.
//!
//! 1. Read the row. A token that does not need refreshing is returned as it is.
//! 2. Take the row's lease (one owner across every process, fenced). If someone else holds it,
//!    wait for their commit (or hand out the current token while it is still valid).
//! 3. Under the lease: re-check (another instance may have just refreshed), record the refresh
//!    token about to be sent, call Kit, and commit the new tokens with a compare-and-swap that
//!    also releases the lease — before any caller sees them.
//! 4. Classify failures: transient ones keep the tokens and start a cooldown; `invalid_grant`
//!    ends the grant with the same fenced compare-and-swap, so only a grant nobody else rotated
//!    becomes "reinstall needed" (a rotation elsewhere moved the version on).
//!
//! This module runs steps 1–3 and calls Kit; `settle` writes what the answer means (the commit
//! of step 3, and step 4).

use std::future::Future;
use std::time::Duration;

use kit_oauth_core::{
    AccessToken, AccountLookup, ConnectionId, ConnectionRecord, ConnectionStore,
    ConnectionStoreExt as _, Due, EndpointError, Freshness, Grant, InFlight, Lease, LeaseOutcome,
    Sha256Hash, StoreError, StoredConnection, Timestamp, TokenEndpoint, TokenSet,
};

use crate::early_retry::Cooldown;
use crate::error::ManagerError;
use crate::events::{LeaseWaitOutcome, RefreshOutcome, observe_lease_wait, observe_refresh};
use crate::manager::{Inner, ended};

/// Why a caller runs the protocol, which decides whether a refresh is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// A token outside its refresh margin.
    Token,
    /// The background schedule: refresh once `next_refresh_at` has passed.
    Scheduled,
    /// Replace the token with this fingerprint (Kit refused it, or an operator forced it).
    Replace(Sha256Hash),
    /// Replace the expired token with this fingerprint so that its grant can be revoked
    /// (`removal.rs`): one real attempt even while the refresh cools down, because an
    /// operator's removal must not wait out a backoff that can reach an hour.
    Revoke(Sha256Hash),
}

impl Want {
    /// What makes the grant due for this caller: the flow decides ([`Connection::observe_for`]).
    fn due(self, record: &ConnectionRecord) -> Due {
        match self {
            Self::Token => Due::Margin,
            Self::Scheduled => Due::Scheduled {
                next_refresh_at: record.next_refresh_at,
            },
            Self::Replace(stale) | Self::Revoke(stale) => Due::Replacing(stale),
        }
    }

    /// The same decision on a row read without its typed form (the unleased first look).
    fn needs_refresh(self, record: &ConnectionRecord, tokens: &TokenSet, now: Timestamp) -> bool {
        self.due(record).holds(tokens, now)
    }

    /// Whether the current token may be handed out while a refresh is impossible right now
    /// (cooling down, or another instance is refreshing).
    fn accepts_current(self, tokens: &TokenSet, now: Timestamp) -> bool {
        match self {
            Self::Token | Self::Scheduled => now < tokens.expires_at(),
            Self::Replace(_) | Self::Revoke(_) => false,
        }
    }

    /// Whether a cooldown stops this caller (see [`Self::Revoke`]).
    fn respects_cooldown(self) -> bool {
        !matches!(self, Self::Revoke(_))
    }
}

/// How long to sleep between polls of a row that another instance is refreshing, at most.
const MAX_WAIT_SLICE: Duration = Duration::from_secs(5);

/// How long after a lease's recorded end a waiter tries to take it over (clock granularity).
const LAPSE_MARGIN: Duration = Duration::from_millis(20);

impl<E, S> Inner<E, S>
where
    E: TokenEndpoint + AccountLookup,
    S: ConnectionStore,
{
    pub(crate) async fn obtain(
        &self,
        id: &ConnectionId,
        want: Want,
    ) -> Result<AccessToken, ManagerError> {
        let give_up_at = tokio::time::Instant::now() + self.config.wait_timeout;
        loop {
            let record = self.read(id).await?;
            let tokens = active(&record)?;
            let now = self.clock.now();
            if !want.needs_refresh(&record, tokens, now) {
                self.cache
                    .put(id, tokens, record.version, record.next_refresh_at, now);
                return Ok(tokens.access().clone());
            }
            let cooldown = self.kit_answers.cooldown(&record.health, now);
            if cooldown != Cooldown::Over && want.accepts_current(tokens, now) {
                return Ok(tokens.access().clone());
            }
            if let Cooldown::Holds(until) = cooldown
                && want.respects_cooldown()
            {
                return Err(ManagerError::Unavailable {
                    reason: format!(
                        "refresh is cooling down after {} failures: {}",
                        record.health.consecutive_failures,
                        record
                            .health
                            .last_error
                            .as_deref()
                            .unwrap_or("unknown error")
                    ),
                    retry_at: Some(until),
                });
            }
            let outcome = self
                .store
                .acquire_lease(id, &self.owner, now, self.config.lease_ttl)
                .await
                .map_err(ManagerError::from_store)?;
            match outcome {
                LeaseOutcome::Acquired {
                    lease,
                    record,
                    connection,
                    previous_in_flight,
                } => {
                    match self
                        .refresh_under_lease(&lease, *record, *connection, want, previous_in_flight)
                        .await?
                    {
                        Some(token) => return Ok(token),
                        None => continue,
                    }
                }
                LeaseOutcome::Held { until, .. } => {
                    if want.accepts_current(tokens, now) {
                        return Ok(tokens.access().clone());
                    }
                    let left = give_up_at.saturating_duration_since(tokio::time::Instant::now());
                    if left.is_zero() {
                        observe_lease_wait(LeaseWaitOutcome::GaveUp, self.config.wait_timeout);
                        return Err(ManagerError::Unavailable {
                            reason: "another instance's refresh is taking too long".into(),
                            retry_at: Some(until),
                        });
                    }
                    // A holder that died stops renewing: its lease lapses at `until`, and the
                    // row does not change then, so wake at that moment to take the lease over.
                    let lapses_in = until.duration_since(now) + LAPSE_MARGIN;
                    let waiting = std::time::Instant::now();
                    let waited = self
                        .store
                        .wait_for_change(
                            id,
                            record.version,
                            left.min(MAX_WAIT_SLICE).min(lapses_in),
                        )
                        .await;
                    observe_lease_wait(LeaseWaitOutcome::Woke, waiting.elapsed());
                    waited.map_err(ManagerError::from_store)?;
                }
            }
        }
    }

    /// Refreshes under `lease`. `Ok(None)` means "the row changed under us: start over".
    ///
    /// `previous_in_flight` is the mark an earlier attempt left and never cleared. When it names
    /// the refresh token about to be sent, that attempt's outcome is unknown: its instance may
    /// have been killed after Kit rotated the token, or the answer was lost on the way. Sending
    /// the token again is the only way on; it succeeds only inside a server-side grace window,
    /// and an `invalid_grant` then says why the grant died.
    async fn refresh_under_lease(
        &self,
        lease: &Lease,
        record: ConnectionRecord,
        connection: StoredConnection,
        want: Want,
        previous_in_flight: Option<InFlight>,
    ) -> Result<Option<AccessToken>, ManagerError> {
        let id = &record.id;
        let connection = match connection {
            StoredConnection::Active(connection) => connection,
            StoredConnection::Ended(ended) => {
                self.release(lease, None).await;
                return Err(crate::manager::ended(id, ended.reason()));
            }
        };
        let now = self.clock.now();
        let expired = match connection.observe_for(want.due(&record), &*self.clock) {
            Freshness::Due(expired) => expired,
            // Someone refreshed between our read and our lease: use their tokens.
            Freshness::Fresh(fresh) => {
                self.release(lease, None).await;
                self.cache.put(
                    id,
                    fresh.tokens(),
                    record.version,
                    record.next_refresh_at,
                    now,
                );
                return Ok(Some(fresh.tokens().access().clone()));
            }
        };
        // Another attempt failed between our read and our lease: its cooldown stands, unless
        // Kit has answered since (then this attempt ends it early, and says so if it fails),
        // or this caller makes its one attempt regardless (a revocation). The same test as in
        // `obtain`: a caller let through there must not be turned back here, or it would take
        // and release the lease for ever.
        let early = match self.kit_answers.cooldown(&record.health, now) {
            Cooldown::Holds(_) if !want.respects_cooldown() => false,
            Cooldown::Holds(_) => {
                self.release(lease, None).await;
                return Ok(None);
            }
            Cooldown::EndedEarly => true,
            Cooldown::Over => false,
        };
        if early {
            tracing::info!(connection = %id, failures = record.health.consecutive_failures,
                "Kit has answered since this connection's last failure; retrying before its \
                 cooldown ends");
        }
        let in_flight = InFlight {
            refresh_token: expired.refresh_token().fingerprint(),
            started_at: now,
        };
        let resent = previous_in_flight.is_some_and(|p| p.refresh_token == in_flight.refresh_token);
        if resent {
            tracing::info!(connection = %id,
                "an earlier refresh with this refresh token stored no answer (it failed, its \
                 answer was lost, or its instance stopped mid-refresh); sending it again");
        }
        match self.store.mark_in_flight(lease, &in_flight).await {
            Ok(()) => {}
            Err(StoreError::LeaseLost(_)) => return Ok(None),
            Err(e) => {
                self.release(lease, None).await;
                return Err(ManagerError::from_store(e));
            }
        }

        let started = std::time::Instant::now();
        let answer = self
            .with_heartbeat(lease, self.endpoint.refresh(expired.refresh_token()))
            .await;
        let received_at = self.clock.now();
        // Kit's answer is applied by the flow: a usable token response turns the expired
        // connection into the authorized one to commit; anything else leaves it as it was.
        let result = match answer {
            Ok(response) => expired
                .refreshed_with(response, received_at)
                .map_err(|unusable| {
                    let error = EndpointError::Protocol {
                        status: Some(200),
                        excerpt: unusable.error.to_string(),
                    };
                    (error, unusable.connection)
                }),
            Err(error) => Err((error, expired)),
        };
        let mut still_valid = None;
        let settled = match result {
            Ok(renewed) => {
                self.kit_answers.record(received_at);
                // Not under the heartbeat: the commit holds a pooled connection, and a renewal
                // needing another from the same pool could starve it (the fleet suite stalled
                // so). After a database outage the store's lease rule keeps others off our
                // lapsed lease while the commit retries (docs/refresh-protocol.md).
                self.commit(lease, record, renewed).await.map(Some)
            }
            Err((EndpointError::InvalidGrant { description }, expired)) => {
                self.kit_answers.record(received_at);
                let description = if resent {
                    format!(
                        "{description} (an earlier attempt with this refresh token was never \
                         answered to us: Kit rotated it for an instance that stopped mid-refresh \
                         or whose answer was lost, and Kit has no grace window for it)"
                    )
                } else {
                    description
                };
                self.on_invalid_grant(lease, record, expired, description)
                    .await
            }
            Err((error, expired)) => {
                // Kit failed, but the grant is alive: a caller whose token is merely due (not
                // expired) keeps using it rather than seeing the failure.
                let current = expired.tokens();
                still_valid = want
                    .accepts_current(current, self.clock.now())
                    .then(|| current.access().clone());
                // The grant stays as it was: `expired` is dropped unspent, and the next attempt
                // reads the row (and so the flow's state) again under a new lease.
                Err(self.on_failure(lease, record, &error, early).await)
            }
        };
        observe_refresh(outcome_of(&settled), started.elapsed());
        match (settled, still_valid) {
            (Err(_), Some(token)) => Ok(Some(token)),
            (settled, _) => settled,
        }
    }

    /// Awaits `call` (the request to Kit) while renewing `lease` every `lease_heartbeat`, so the
    /// lease can be short (a dead holder's lapses within seconds) without a slow answer costing
    /// a live holder its lease. The renewals run beside the call, never in its way: a renewal
    /// waiting for the database does not delay noticing Kit's answer. A renewal that finds the
    /// lease taken stops the heartbeat and changes nothing else: the answer is still awaited,
    /// and the fenced commit then decides what it is worth.
    async fn with_heartbeat<F: Future>(&self, lease: &Lease, call: F) -> F::Output {
        let heartbeat = async {
            let mut beat = tokio::time::interval_at(
                tokio::time::Instant::now() + self.config.lease_heartbeat,
                self.config.lease_heartbeat,
            );
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                beat.tick().await;
                let renewed = self
                    .store
                    .renew_lease(lease, self.clock.now(), self.config.lease_ttl)
                    .await;
                match renewed {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(connection = %lease.connection,
                            "the refresh lease lapsed and was taken while Kit was answering");
                        break;
                    }
                    Err(error) => tracing::warn!(connection = %lease.connection, %error,
                        "could not renew a refresh lease; retrying at the next heartbeat"),
                }
            }
            std::future::pending::<()>().await;
        };
        let mut call = std::pin::pin!(call);
        let mut heartbeat = std::pin::pin!(heartbeat);
        loop {
            tokio::select! {
                answer = &mut call => return answer,
                () = &mut heartbeat => {}
            }
        }
    }

    pub(crate) async fn read(&self, id: &ConnectionId) -> Result<ConnectionRecord, ManagerError> {
        self.store
            .get(id)
            .await
            .map_err(ManagerError::from_store)?
            .ok_or_else(|| ManagerError::NotFound(id.clone()))
    }
}

pub(crate) fn active(record: &ConnectionRecord) -> Result<&TokenSet, ManagerError> {
    match &record.grant {
        Grant::Active(tokens) => Ok(tokens),
        Grant::Ended(reason) => Err(ended(&record.id, reason)),
    }
}

/// What a settled refresh attempt means for the observer.
fn outcome_of(settled: &Result<Option<AccessToken>, ManagerError>) -> RefreshOutcome {
    match settled {
        Ok(Some(_)) => RefreshOutcome::Refreshed,
        Ok(None) => RefreshOutcome::Superseded,
        Err(ManagerError::ReauthRequired { .. }) => RefreshOutcome::ReauthRequired,
        Err(ManagerError::InvalidClient(_)) => RefreshOutcome::InvalidClient,
        Err(_) => RefreshOutcome::TransientFailure,
    }
}
