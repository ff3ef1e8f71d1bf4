//! The manager and install flow behind one object-safe trait, so that the router and its
//! handlers are not generic over the adapters (one copy of the handlers, whatever the store).

use std::future::Future;
use std::pin::Pin;

use kit_oauth::core::{
    AccessToken, AccountLookup, ConnectionId, ConnectionStore, ListQuery, TenantName, TokenEndpoint,
};
use kit_oauth::{
    ConnectionStatus, InstallError, InstallFlow, InstallStarted, Installed, IssuedToken,
    ManagerError, TokenManager,
};

/// A boxed, `Send` future (what the trait below returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether a caller may see a connection of this tenant (a key's [`crate::Scope`]).
pub type Visibility<'a> = &'a (dyn Fn(Option<&TenantName>) -> bool + Send + Sync);

/// What the HTTP layer needs from the library: the install flow and the token manager.
///
/// Implemented for every `(TokenManager<E, S>, InstallFlow<E, S>)` pair by [`Engine`].
pub trait BrokerOps: Send + Sync {
    /// [`InstallFlow::begin`].
    fn begin<'a>(
        &'a self,
        redirect: &'a str,
        tenant: Option<&'a str>,
        binding: Option<&'a str>,
    ) -> BoxFuture<'a, Result<InstallStarted, InstallError>>;
    /// [`InstallFlow::complete`].
    fn complete<'a>(
        &'a self,
        query: &'a str,
        binding: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Installed, InstallError>>;
    /// [`TokenManager::access_token`].
    fn access_token<'a>(
        &'a self,
        id: &'a ConnectionId,
    ) -> BoxFuture<'a, Result<AccessToken, ManagerError>>;
    /// [`TokenManager::access_token_for`]: the token and its expiry, `NotFound` unless
    /// `visible` allows the connection's tenant (checked before any refresh).
    fn access_token_for<'a>(
        &'a self,
        id: &'a ConnectionId,
        visible: Visibility<'a>,
    ) -> BoxFuture<'a, Result<IssuedToken, ManagerError>>;
    /// [`TokenManager::force_refresh`].
    fn force_refresh<'a>(
        &'a self,
        id: &'a ConnectionId,
        stale: Option<&'a AccessToken>,
    ) -> BoxFuture<'a, Result<AccessToken, ManagerError>>;
    /// [`TokenManager::revoke`].
    fn revoke<'a>(&'a self, id: &'a ConnectionId) -> BoxFuture<'a, Result<(), ManagerError>>;
    /// [`TokenManager::remove`].
    fn remove<'a>(&'a self, id: &'a ConnectionId) -> BoxFuture<'a, Result<(), ManagerError>>;
    /// [`TokenManager::status`].
    fn status<'a>(
        &'a self,
        id: &'a ConnectionId,
    ) -> BoxFuture<'a, Result<ConnectionStatus, ManagerError>>;
    /// [`TokenManager::list`].
    fn list<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<ConnectionStatus>, ManagerError>>;
    /// [`TokenManager::verify_refused`]: `true` when the grant is dead.
    fn report_rejected<'a>(
        &'a self,
        id: &'a ConnectionId,
        rejected: &'a AccessToken,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<bool, ManagerError>>;
}

/// The library's manager and install flow, as [`BrokerOps`].
#[derive(Debug)]
pub struct Engine<E, S> {
    manager: TokenManager<E, S>,
    install: InstallFlow<E, S>,
}

impl<E, S> Engine<E, S> {
    /// Pairs a manager with the install flow storing into it.
    pub fn new(manager: TokenManager<E, S>, install: InstallFlow<E, S>) -> Self {
        Self { manager, install }
    }
}

impl<E, S> BrokerOps for Engine<E, S>
where
    E: TokenEndpoint + AccountLookup + 'static,
    S: ConnectionStore + 'static,
{
    fn begin<'a>(
        &'a self,
        redirect: &'a str,
        tenant: Option<&'a str>,
        binding: Option<&'a str>,
    ) -> BoxFuture<'a, Result<InstallStarted, InstallError>> {
        Box::pin(self.install.begin(redirect, tenant, binding))
    }
    fn complete<'a>(
        &'a self,
        query: &'a str,
        binding: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Installed, InstallError>> {
        Box::pin(self.install.complete(query, binding))
    }
    fn access_token<'a>(
        &'a self,
        id: &'a ConnectionId,
    ) -> BoxFuture<'a, Result<AccessToken, ManagerError>> {
        Box::pin(self.manager.access_token(id))
    }
    fn access_token_for<'a>(
        &'a self,
        id: &'a ConnectionId,
        visible: Visibility<'a>,
    ) -> BoxFuture<'a, Result<IssuedToken, ManagerError>> {
        Box::pin(self.manager.access_token_for(id, visible))
    }
    fn force_refresh<'a>(
        &'a self,
        id: &'a ConnectionId,
        stale: Option<&'a AccessToken>,
    ) -> BoxFuture<'a, Result<AccessToken, ManagerError>> {
        Box::pin(self.manager.force_refresh(id, stale))
    }
    fn revoke<'a>(&'a self, id: &'a ConnectionId) -> BoxFuture<'a, Result<(), ManagerError>> {
        Box::pin(self.manager.revoke(id))
    }
    fn remove<'a>(&'a self, id: &'a ConnectionId) -> BoxFuture<'a, Result<(), ManagerError>> {
        Box::pin(self.manager.remove(id))
    }
    fn status<'a>(
        &'a self,
        id: &'a ConnectionId,
    ) -> BoxFuture<'a, Result<ConnectionStatus, ManagerError>> {
        Box::pin(self.manager.status(id))
    }
    fn list<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<ConnectionStatus>, ManagerError>> {
        Box::pin(self.manager.list(query))
    }
    fn report_rejected<'a>(
        &'a self,
        id: &'a ConnectionId,
        rejected: &'a AccessToken,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<bool, ManagerError>> {
        Box::pin(self.manager.verify_refused(id, rejected, reason))
    }
}
