//! The library objects the handlers call: the token manager and the install flow of one
//! [`KitOAuth`] facade.
//!
//! Concrete on purpose: the broker has one storage adapter (`kit-oauth-store`, SQLite and
//! PostgreSQL behind one type) and one Kit client, so a trait here would only box every future
//! to forward to the single implementation.

use kit_oauth::{Install, KitOAuth, Manager};

/// The manager and install flow behind the routes.
#[derive(Clone)]
pub struct Engine {
    pub(crate) manager: Manager,
    pub(crate) install: Install,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Pairs a manager with the install flow storing into it.
    #[must_use]
    pub fn new(manager: Manager, install: Install) -> Self {
        Self { manager, install }
    }

    /// The manager and install flow of a built facade.
    #[must_use]
    pub fn of(kit: &KitOAuth) -> Self {
        Self::new(kit.manager().clone(), kit.install().clone())
    }
}
