//! `InstallFlow`: from Kit's App Store to a stored connection.
//!
//! The install `state` is 32 random bytes, stored only as a hash, bound to the browser by a
//! cookie, consumed exactly once and only by that browser (a stranger's request to the callback
//! URL is refused and leaves the install usable), and dead after ten minutes (docs/design.md failure
//! mode 6).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kit_oauth_core::{
    AccountLookup, AuthorizeRequest, Callback, CallbackError, Connection, ConnectionId,
    ConnectionStore, ConnectionStoreExt as _, CsrfState, EventKind, InstallStart, KitAccount,
    KitRedirect, PendingRecord, PendingTake, PkceVerifier, RedirectAllowlist, Sha256Hash,
    TenantName, Timestamp, TokenEndpoint, TokenSet, Unauthorized, Url,
};

use crate::error::InstallError;
use crate::manager::TokenManager;
use crate::single_flight::{SingleFlight, TaskFailed};

/// How often expired pending installs are purged, at most.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// An install that has begun: send the browser to `authorize_url` and set the cookie.
#[derive(Debug)]
pub struct InstallStarted {
    /// Kit's authorize URL with this install's `state` and PKCE challenge.
    pub authorize_url: Url,
    /// The browser-binding cookie value to set (HttpOnly, Secure, SameSite=Lax). The same
    /// value must come back with the callback.
    pub browser_binding: CsrfState,
}

/// A completed install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The connection (the existing id when this tenant and account were connected before).
    pub connection_id: ConnectionId,
    /// Where to send the browser back to on Kit.
    pub kit_redirect: KitRedirect,
    /// The Kit account that was connected.
    pub account: KitAccount,
    /// The tenant.
    pub tenant: Option<TenantName>,
}

impl TaskFailed for InstallError {
    fn task_failed(reason: String) -> Self {
        Self::Store(kit_oauth_core::StoreError::Backend(reason))
    }
}

/// Fingerprints that identify one exact callback request: the same state, code and browser.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CallbackKey {
    state: Sha256Hash,
    code: Sha256Hash,
    binding: Option<Sha256Hash>,
}

/// The install half of the library.
pub struct InstallFlow<E, S> {
    pub(crate) manager: TokenManager<E, S>,
    allow: RedirectAllowlist,
    scope: Option<String>,
    /// Completed installs by callback, so that a double-submitted callback gets the same answer
    /// without redeeming the code twice.
    completed: Arc<Mutex<HashMap<CallbackKey, (Timestamp, Installed)>>>,
    flights: SingleFlight<CallbackKey, Installed, InstallError>,
    last_purge: Arc<AtomicI64>,
}

impl<E, S> Clone for InstallFlow<E, S> {
    fn clone(&self) -> Self {
        Self {
            manager: self.manager.clone(),
            allow: self.allow.clone(),
            scope: self.scope.clone(),
            completed: Arc::clone(&self.completed),
            flights: self.flights.clone(),
            last_purge: Arc::clone(&self.last_purge),
        }
    }
}

impl<E, S> std::fmt::Debug for InstallFlow<E, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallFlow")
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl<E, S> InstallFlow<E, S>
where
    E: TokenEndpoint + AccountLookup + 'static,
    S: ConnectionStore + 'static,
{
    /// An install flow storing into `manager`'s store, accepting Kit `redirect`s under `allow`.
    /// `scope` is sent on the authorize request when set (Kit's only scope is `public`).
    #[must_use]
    pub fn new(
        manager: TokenManager<E, S>,
        allow: RedirectAllowlist,
        scope: Option<String>,
    ) -> Self {
        Self {
            manager,
            allow,
            scope,
            completed: Arc::default(),
            flights: SingleFlight::default(),
            last_purge: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }

    /// Starts an install for the `redirect` Kit passed to the app's Authorization URL.
    ///
    /// `browser_binding` is the cookie value the browser already carries, if any (it is reused
    /// so that two tabs do not fight over the cookie); otherwise a new one is minted.
    ///
    /// # Errors
    /// [`InstallError::Redirect`] for a `redirect` that is not Kit's, [`InstallError::Tenant`],
    /// [`InstallError::Store`].
    pub async fn begin(
        &self,
        redirect_from_kit: &str,
        tenant_name: Option<&str>,
        browser_binding: Option<&str>,
    ) -> Result<InstallStarted, InstallError> {
        let kit_redirect = KitRedirect::parse(redirect_from_kit, &self.allow)?;
        let tenant = tenant_name.map(TenantName::parse).transpose()?;
        let mut rng = rand::rngs::OsRng;
        let binding = browser_binding
            .filter(|value| is_binding(value))
            .map_or_else(|| CsrfState::generate(&mut rng), CsrfState::new);
        let inner = &self.manager.inner;
        let pending = Connection::<Unauthorized>::new(tenant).begin(
            InstallStart {
                state: CsrfState::generate(&mut rng),
                verifier: PkceVerifier::generate(&mut rng),
                kit_redirect,
            },
            &*inner.clock,
        );
        inner
            .store
            .insert_pending(&PendingRecord::new(&pending, binding.fingerprint()))
            .await?;
        let challenge = pending.verifier().challenge();
        let authorize_url = inner.endpoint.authorize_url(&AuthorizeRequest {
            state: pending.csrf_state(),
            challenge: &challenge,
            tenant: pending.tenant(),
            scope: self.scope.as_deref(),
        });
        self.purge_now_and_then().await;
        Ok(InstallStarted {
            authorize_url,
            browser_binding: binding,
        })
    }

    /// Completes an install from Kit's callback query string and the browser's binding cookie.
    ///
    /// The state is consumed exactly once, by the browser that started the install, whatever
    /// happens then; a request from another browser is refused without consuming it. A
    /// double-submitted callback (the same state, code and browser) returns the first answer
    /// and redeems the code once.
    ///
    /// # Errors
    /// [`InstallError::Callback`] for malformed, forged, replayed, expired, foreign-browser or
    /// denied callbacks (no token exchange happens for any of them); [`InstallError::Exchange`]
    /// or [`InstallError::Account`] when Kit fails; nothing is stored on any error.
    pub async fn complete(
        &self,
        callback_query: &str,
        browser_binding: Option<&str>,
    ) -> Result<Installed, InstallError> {
        let callback = Callback::from_query(callback_query)?;
        let (code, state) = match &callback {
            Callback::Code { code, state } => (code.clone(), state.clone()),
            Callback::Error {
                error, description, ..
            } => {
                // Consume the pending install (if the state is ours and this is the browser that
                // started it) so it cannot be reused, then report Kit's answer. A stranger's
                // forged error leaves the person's install usable.
                if let Some(state) = callback.state() {
                    let binding = browser_binding.map(|b| Sha256Hash::of(b.as_bytes()));
                    self.manager
                        .inner
                        .store
                        .consume_pending(&state.fingerprint(), binding.as_ref())
                        .await?;
                }
                return Err(InstallError::Callback(if error == "access_denied" {
                    CallbackError::AccessDenied {
                        description: description.clone(),
                    }
                } else {
                    CallbackError::Provider {
                        error: error.clone(),
                        description: description.clone(),
                    }
                }));
            }
        };
        let key = CallbackKey {
            state: state.fingerprint(),
            code: code.fingerprint(),
            binding: browser_binding.map(|b| Sha256Hash::of(b.as_bytes())),
        };
        if let Some(done) = self.completed_for(&key) {
            return Ok(done);
        }
        let flow = self.clone();
        let binding = browser_binding.map(str::to_owned);
        let flight_key = key.clone();
        self.flights
            .run(&key, move || async move {
                let installed = flow.redeem(callback, binding.as_deref()).await?;
                flow.remember(flight_key, installed.clone());
                Ok(installed)
            })
            .await
    }

    async fn redeem(
        &self,
        callback: Callback,
        browser_binding: Option<&str>,
    ) -> Result<Installed, InstallError> {
        let inner = &self.manager.inner;
        let state = callback
            .state()
            .cloned()
            .ok_or(CallbackError::Malformed("state is missing"))?;
        // Only the browser that started the install consumes it: another one is told so and
        // leaves the row for the right browser (the store checks the binding in the same
        // atomic step that removes the row).
        let binding = browser_binding.map(|b| Sha256Hash::of(b.as_bytes()));
        let consumed = match inner
            .store
            .consume_pending(&state.fingerprint(), binding.as_ref())
            .await?
        {
            PendingTake::Taken(consumed) => consumed,
            PendingTake::OtherBrowser => return Err(CallbackError::ForeignBrowser.into()),
            PendingTake::Unknown => return Err(CallbackError::UnknownState.into()),
        };
        let pending = consumed
            .into_pending(state)
            .map_err(|_| CallbackError::UnknownState)?;
        let grant = pending
            .callback(callback, &*inner.clock)
            .map_err(|rejected| rejected.error)?;

        let response = inner
            .endpoint
            .exchange_code(grant.code(), grant.verifier())
            .await
            .map_err(InstallError::Exchange)?;
        let tokens = TokenSet::from_response(response, inner.clock.now(), None)?;
        let account = match inner.endpoint.account(tokens.access()).await {
            Ok(account) => account,
            Err(error) => {
                // Do not leave a grant at Kit that nothing will ever use or revoke.
                self.manager
                    .inner
                    .revoke_orphan(&tokens, "a failed install")
                    .await;
                return Err(error.into());
            }
        };

        let now = inner.clock.now();
        let mut rng = rand::rngs::OsRng;
        let kit_redirect = grant.kit_redirect().clone();
        let connection = grant.authorize(ConnectionId::generate(&mut rng), account, tokens);
        let next = connection.tokens().next_refresh_at(&mut rng);
        let stored = inner
            .store
            .upsert_installed(&kit_oauth_core::writes::Installed::new(
                &connection,
                next,
                now,
            ))
            .await?;
        inner.cache.put(
            &stored.id,
            connection.tokens(),
            stored.version,
            stored.next_refresh_at,
            now,
        );
        inner.emit(&stored, EventKind::Authorized).await;
        Ok(Installed {
            connection_id: stored.id,
            kit_redirect,
            account: stored.account,
            tenant: stored.tenant,
        })
    }

    fn completed_for(&self, key: &CallbackKey) -> Option<Installed> {
        let now = self.manager.inner.clock.now();
        let completed = self
            .completed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        completed
            .get(key)
            .filter(|(until, _)| now < *until)
            .map(|(_, installed)| installed.clone())
    }

    fn remember(&self, key: CallbackKey, installed: Installed) {
        let now = self.manager.inner.clock.now();
        let until = now.saturating_add(self.manager.inner.config.completed_install_ttl);
        let mut completed = self
            .completed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        completed.retain(|_, (expires, _)| now < *expires);
        completed.insert(key, (until, installed));
    }

    async fn purge_now_and_then(&self) {
        let now = self.manager.inner.clock.now();
        let last = self.last_purge.load(Ordering::Relaxed);
        let due = last == i64::MIN
            || now.duration_since(Timestamp::from_unix_millis(last)) >= PURGE_EVERY;
        // One caller per period wins the swap and purges; the others go on.
        let won = due
            && self
                .last_purge
                .compare_exchange(
                    last,
                    now.unix_millis(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if !won {
            return;
        }
        if let Err(error) = self.manager.inner.store.purge_expired_pending(now).await {
            tracing::warn!(%error, "could not purge expired pending installs");
        }
    }
}

/// A browser-binding cookie this library minted: 43 base64url characters.
fn is_binding(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
