//! Dashboard sessions that hold behind a load balancer without sticky sessions: the cookie
//! *is* the session, signed (HMAC-SHA256) with a key every instance derives from the same
//! configuration, and expiring on its own. Signing out ends every session started before that
//! instant, on every instance, through the one instant the shared database keeps
//! ([`kit_oauth::Store::end_dashboard_sessions`]); nothing else is stored.
//!
//! Cookie: `s1.<issued, Unix ms>.<CSRF token>.<1 signed in | 0 anonymous>.<hex HMAC of the rest>`.
//! The CSRF token rides in the HttpOnly cookie and in the page's forms; a form is accepted when
//! the two agree (a cross-site page can read neither).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use kit_oauth::Store;
use kit_oauth::core::{StoreError, Timestamp, constant_time_eq};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kit_oauth_session";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The key sessions are signed with; the same on every instance of one deployment.
#[derive(Clone)]
pub struct SessionKey(SecretString);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// Derived from a secret of the configuration every instance shares (the binary uses the
    /// encryption key), under a label of its own so the derived key signs nothing else.
    #[must_use]
    pub fn derive(shared_secret: &str) -> Self {
        Self(SecretString::from(mac(
            shared_secret,
            "kit-oauth dashboard sessions v1",
        )))
    }

    /// A key of this process only (an embedding app that sets none): sessions then hold on
    /// this instance alone.
    #[must_use]
    pub fn random() -> Self {
        Self(SecretString::from(random_token()))
    }
}

/// A session as a handler sees it.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// The CSRF token to put in forms.
    pub csrf: String,
    /// Whether the visitor signed in with the admin key.
    pub signed_in: bool,
}

/// Issues and checks session cookies.
#[derive(Debug, Clone)]
pub struct Sessions {
    key: SessionKey,
}

fn mac(key: &str, message: &str) -> String {
    // HMAC accepts keys of any length; the `else` is never taken.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    i64::try_from(now).unwrap_or(i64::MAX)
}

impl Sessions {
    /// Sessions signed with `key`.
    #[must_use]
    pub fn new(key: SessionKey) -> Self {
        Self { key }
    }

    /// Starts a session; returns the cookie value and the view.
    #[must_use]
    pub fn create(&self, signed_in: bool) -> (String, SessionView) {
        self.create_at(signed_in, now_millis())
    }

    fn create_at(&self, signed_in: bool, issued: i64) -> (String, SessionView) {
        let csrf = random_token();
        let body = format!("s1.{issued}.{csrf}.{}", u8::from(signed_in));
        let signature = mac(self.key.0.expose_secret(), &body);
        (
            format!("{body}.{signature}"),
            SessionView { csrf, signed_in },
        )
    }

    /// The session of a cookie value whose signature holds and which has not expired, with
    /// when it was issued (Unix ms); not yet checked against sign-outs.
    fn verify(&self, cookie: &str, now: i64) -> Option<(i64, SessionView)> {
        let (body, signature) = cookie.rsplit_once('.')?;
        if !constant_time_eq(&mac(self.key.0.expose_secret(), body), signature) {
            return None;
        }
        let parts: Vec<&str> = body.split('.').collect();
        let ["s1", issued, csrf, flag] = parts.as_slice() else {
            return None;
        };
        let issued: i64 = issued.parse().ok()?;
        let ttl = i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
        if issued > now || now - issued >= ttl {
            return None;
        }
        Some((
            issued,
            SessionView {
                csrf: (*csrf).to_owned(),
                signed_in: *flag == "1",
            },
        ))
    }

    /// The live session behind a cookie value: signed, unexpired, and started after the last
    /// sign-out that `store` knows of (a database error counts as signed out).
    pub async fn get(&self, store: &Store, cookie: &str) -> Option<SessionView> {
        let (issued, view) = self.verify(cookie, now_millis())?;
        match store.dashboard_sessions_ended_at().await {
            Ok(Some(ended)) if issued <= ended.unix_millis() => None,
            Ok(_) => Some(view),
            Err(error) => {
                tracing::error!(%error, "dashboard sign-outs could not be read");
                None
            }
        }
    }

    /// Ends every session started until now, on every instance.
    ///
    /// # Errors
    /// When the database could not record it.
    pub async fn end_all(&self, store: &Store) -> Result<(), StoreError> {
        store
            .end_dashboard_sessions(Timestamp::from_unix_millis(now_millis()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_holds_only_unaltered_unexpired_and_under_its_key() {
        let sessions = Sessions::new(SessionKey::derive("shared-secret"));
        let now = 1_700_000_000_000;
        let (cookie, view) = sessions.create_at(true, now);
        let (issued, seen) = sessions.verify(&cookie, now + 1).unwrap();
        assert_eq!((issued, seen.csrf, seen.signed_in), (now, view.csrf, true));
        // Another instance of the deployment derives the same key.
        let other = Sessions::new(SessionKey::derive("shared-secret"));
        assert!(other.verify(&cookie, now).is_some());
        // Another deployment, an elevated flag, an expired cookie.
        let stranger = Sessions::new(SessionKey::derive("another-secret"));
        assert!(stranger.verify(&cookie, now).is_none());
        let (anonymous, _) = sessions.create_at(false, now);
        let (body, signature) = anonymous.rsplit_once('.').unwrap();
        let elevated = format!("{}1.{signature}", &body[..body.len() - 1]);
        assert!(sessions.verify(&elevated, now).is_none());
        let ttl = i64::try_from(SESSION_TTL.as_millis()).unwrap();
        assert!(sessions.verify(&cookie, now + ttl).is_none());
        assert!(sessions.verify("garbage", now).is_none());
    }
}
