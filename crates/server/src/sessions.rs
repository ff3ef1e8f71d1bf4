//! Dashboard sessions: a random cookie value, kept server-side only as a hash, with the CSRF
//! token that every dashboard form must echo.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kit_oauth::core::{Sha256Hash, constant_time_eq};
use rand::RngCore as _;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kit_oauth_session";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most (oldest dropped first), so anonymous visitors cannot grow memory.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    signed_in: bool,
    expires: Instant,
}

/// A session as a handler sees it.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// The CSRF token to put in forms.
    pub csrf: String,
    /// Whether the visitor signed in with the admin key.
    pub signed_in: bool,
}

/// The in-memory session table (per process; a restart signs everyone out).
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    table: Arc<Mutex<HashMap<Sha256Hash, Session>>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Sessions {
    /// Starts a session; returns the cookie value and the view.
    pub fn create(&self, signed_in: bool) -> (String, SessionView) {
        let cookie = random_token();
        let session = Session {
            csrf: random_token(),
            signed_in,
            expires: Instant::now() + SESSION_TTL,
        };
        let view = SessionView {
            csrf: session.csrf.clone(),
            signed_in,
        };
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        table.retain(|_, s| s.expires > now);
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            table.remove(&oldest);
        }
        table.insert(Sha256Hash::of(cookie.as_bytes()), session);
        (cookie, view)
    }

    /// The live session behind a cookie value.
    #[must_use]
    pub fn get(&self, cookie: &str) -> Option<SessionView> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table
            .get(&Sha256Hash::of(cookie.as_bytes()))
            .filter(|s| s.expires > Instant::now())
            .map(|s| SessionView {
                csrf: s.csrf.clone(),
                signed_in: s.signed_in,
            })
    }

    /// Whether `csrf` is the token of the session behind `cookie` (constant time).
    #[must_use]
    pub fn check_csrf(&self, cookie: &str, csrf: &str) -> bool {
        self.get(cookie)
            .is_some_and(|s| constant_time_eq(&s.csrf, csrf))
    }

    /// Ends a session.
    pub fn remove(&self, cookie: &str) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.remove(&Sha256Hash::of(cookie.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_belongs_to_its_session_only() {
        let sessions = Sessions::default();
        let (a, va) = sessions.create(true);
        let (b, vb) = sessions.create(false);
        assert!(sessions.check_csrf(&a, &va.csrf));
        assert!(!sessions.check_csrf(&a, &vb.csrf));
        assert!(!sessions.check_csrf(&b, ""));
        assert!(sessions.get(&b).is_some_and(|s| !s.signed_in));
        sessions.remove(&a);
        assert!(!sessions.check_csrf(&a, &va.csrf));
    }
}
