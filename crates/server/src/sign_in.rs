//! The optional sign-in hook of `GET /kit/oauth`, for apps whose users must be signed in before
//! they install: the app (where its user is signed in) sends the browser to
//! `/kit/oauth?redirect=…&user=<signed user>`, and the broker learns which of the app's users
//! completed the install.
//!
//! ## The signed `user` parameter
//!
//! `v1.<user id, base64url without padding>.<expiry, Unix seconds>.<signature>` where the
//! signature is the lowercase hex HMAC-SHA256, keyed with `KIT_OAUTH_USER_SIGNING_SECRET`, of
//! everything before the last dot (`v1.<user>.<expiry>`). It is refused when the signature is
//! wrong (403), when it has expired or expires more than [`MAX_LIFETIME`] ahead (400). Apps sign
//! with a lifetime of a few minutes; [`SignIn::sign`] is the reference implementation.
//!
//! `v2.<user>.<tenant, base64url without padding>.<expiry>.<signature>` also names the app's
//! tenant the install belongs to ([`SignIn::sign_with_tenant`]); a connection's tenant comes
//! only from such a signed source (see [`crate::install_link`]). `v1` stays valid, for
//! installs without a tenant.
//!
//! ## An embedding app's own extractor
//!
//! An app that mounts [`crate::router`] in its own axum server already knows its signed-in
//! user from its session: [`SignIn::user_from`] takes a function from the request headers to the
//! user id, tried before the `user` parameter.
//!
//! ## Binding to the pending install
//!
//! The verified user is bound to *this* install's `state` with a second HttpOnly cookie,
//! `b1.<user>.<hex SHA-256 of the state>.<HMAC of the rest>` (a different prefix, so a `user`
//! parameter can never pass for a binding). The callback checks it before the code is redeemed:
//! a callback whose state is not the one the signed-in user started is refused (403) and
//! nothing is stored. Stateless, so it works with several instances behind one load balancer.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use kit_oauth::core::{ConnectionId, KitAccount, TenantName, constant_time_eq};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest as _, Sha256};

/// The query parameter of `GET /kit/oauth`.
pub const USER_PARAM: &str = "user";
/// The cookie binding the signed-in user to the pending install.
pub const USER_COOKIE: &str = "kit_oauth_user";
/// The variable holding the signing secret.
pub const SIGNING_SECRET_VAR: &str = "KIT_OAUTH_USER_SIGNING_SECRET";
/// How far in the future a `user` parameter may expire, at most: a leaked link dies soon.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest user id accepted, in bytes.
pub const MAX_USER_LEN: usize = 256;

/// Why a `user` parameter or binding was refused. Never carries the secret or the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// No `user` parameter while the hook is on.
    #[error("the user parameter is missing")]
    Missing,
    /// Not `v1.<user>.<expiry>.<signature>`, or the user id is empty, too long or not UTF-8.
    #[error("the user parameter is malformed")]
    Malformed,
    /// The signature does not match (forged or altered, or signed with another secret).
    #[error("the user parameter's signature is invalid")]
    Forged,
    /// Past its expiry.
    #[error("the user parameter has expired")]
    Expired,
    /// Expires further ahead than [`MAX_LIFETIME`].
    #[error("the user parameter lives too long")]
    TooLong,
    /// The callback's state is not the install this user started (or the cookie is gone).
    #[error("this install was not started by the signed-in user in this browser")]
    NotBound,
}

/// Who installed: handed to [`SignIn::on_installed`] after a successful install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledBy {
    /// The app's user id, as signed by the app.
    pub user: String,
    /// The connection.
    pub connection_id: ConnectionId,
    /// The tenant.
    pub tenant: Option<TenantName>,
    /// The Kit account.
    pub account: KitAccount,
}

/// A callback told about every install completed by a signed-in user. Must not block.
pub type InstalledHook = Arc<dyn Fn(&InstalledBy) + Send + Sync>;

/// An embedding app's way to read its signed-in user (or tenant) from a request. Must not block.
pub type UserExtractor = Arc<dyn Fn(&http::HeaderMap) -> Option<String> + Send + Sync>;

/// A verified signed-in user, and the tenant the app signed with it (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUser {
    /// The app's user id.
    pub user: String,
    /// The app's tenant for this install, as the app signed (or extracted) it.
    pub tenant: Option<String>,
}

/// The sign-in hook: the secret, and what to do when a signed-in user's install completes.
#[derive(Clone)]
pub struct SignIn {
    secret: SecretString,
    on_installed: Option<InstalledHook>,
    extractor: Option<UserExtractor>,
    tenant_extractor: Option<UserExtractor>,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("on_installed", &self.on_installed.is_some())
            .field("extractor", &self.extractor.is_some())
            .finish_non_exhaustive()
    }
}

pub(crate) fn mac(secret: &str, message: &str) -> String {
    // HMAC accepts keys of any length; the `else` is never taken.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn decode_user(encoded: &str) -> Result<String, SignInError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| SignInError::Malformed)?;
    let user = String::from_utf8(bytes).map_err(|_| SignInError::Malformed)?;
    if user.is_empty() || user.len() > MAX_USER_LEN {
        return Err(SignInError::Malformed);
    }
    Ok(user)
}

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

impl SignIn {
    /// The hook with this signing secret (at least 16 characters; the binary checks it).
    #[must_use]
    pub fn new(secret: SecretString) -> Self {
        Self {
            secret,
            on_installed: None,
            extractor: None,
            tenant_extractor: None,
        }
    }

    /// Reads the signed-in user from the request (the embedding app's session) before looking
    /// for a `user` parameter. The secret still signs the binding cookie.
    #[must_use]
    pub fn user_from(
        mut self,
        extractor: impl Fn(&http::HeaderMap) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.extractor = Some(Arc::new(extractor));
        self
    }

    /// Reads the tenant of the install from the request (the embedding app's session), beside
    /// [`SignIn::user_from`]: a tenant the app vouches for, like a signed one.
    #[must_use]
    pub fn tenant_from(
        mut self,
        extractor: impl Fn(&http::HeaderMap) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.tenant_extractor = Some(Arc::new(extractor));
        self
    }

    /// The signed-in user of a `GET /kit/oauth` request: the extractor's (with the tenant
    /// extractor's tenant), else the verified `user` parameter (with its signed tenant).
    ///
    /// # Errors
    /// [`SignInError`] when there is neither, or the parameter is refused.
    pub fn user_of(
        &self,
        headers: &http::HeaderMap,
        param: Option<&str>,
    ) -> Result<SignedUser, SignInError> {
        if let Some(user) = self.extractor.as_ref().and_then(|extract| extract(headers)) {
            if user.is_empty() || user.len() > MAX_USER_LEN {
                return Err(SignInError::Malformed);
            }
            let tenant = self
                .tenant_extractor
                .as_ref()
                .and_then(|extract| extract(headers));
            return Ok(SignedUser { user, tenant });
        }
        self.verify_signed(param.ok_or(SignInError::Missing)?, unix_now())
    }

    /// Calls `hook` after each install completed by a signed-in user (embedding apps record the
    /// user → connection link here).
    #[must_use]
    pub fn on_installed(mut self, hook: impl Fn(&InstalledBy) + Send + Sync + 'static) -> Self {
        self.on_installed = Some(Arc::new(hook));
        self
    }

    /// A `user` parameter for `user`, valid until `expires_unix` (what the app computes).
    #[must_use]
    pub fn sign(&self, user: &str, expires_unix: i64) -> String {
        let body = format!("v1.{}.{expires_unix}", URL_SAFE_NO_PAD.encode(user));
        let signature = mac(self.secret.expose_secret(), &body);
        format!("{body}.{signature}")
    }

    /// A `user` parameter (format `v2`) for `user` installing for the app's `tenant`.
    #[must_use]
    pub fn sign_with_tenant(&self, user: &str, tenant: &str, expires_unix: i64) -> String {
        let body = format!(
            "v2.{}.{}.{expires_unix}",
            URL_SAFE_NO_PAD.encode(user),
            URL_SAFE_NO_PAD.encode(tenant)
        );
        let signature = mac(self.secret.expose_secret(), &body);
        format!("{body}.{signature}")
    }

    /// The user id of a valid `user` parameter.
    ///
    /// # Errors
    /// [`SignInError`] saying why it is refused.
    pub fn verify(&self, token: &str) -> Result<String, SignInError> {
        self.verify_at(token, unix_now())
    }

    fn verify_at(&self, token: &str, now: i64) -> Result<String, SignInError> {
        self.verify_signed(token, now).map(|signed| signed.user)
    }

    fn verify_signed(&self, token: &str, now: i64) -> Result<SignedUser, SignInError> {
        let (body, signature) = token.rsplit_once('.').ok_or(SignInError::Malformed)?;
        let parts: Vec<&str> = body.split('.').collect();
        let (user, tenant, expires) = match parts.as_slice() {
            ["v1", user, expires] => (*user, None, *expires),
            ["v2", user, tenant, expires] => (*user, Some(*tenant), *expires),
            _ => return Err(SignInError::Malformed),
        };
        // The signature first: nothing about an unsigned value is trusted or reported.
        if !constant_time_eq(&mac(self.secret.expose_secret(), body), signature) {
            return Err(SignInError::Forged);
        }
        let expires: i64 = expires.parse().map_err(|_| SignInError::Malformed)?;
        if expires <= now {
            return Err(SignInError::Expired);
        }
        let ahead = u64::try_from(expires - now).unwrap_or(u64::MAX);
        if ahead > MAX_LIFETIME.as_secs() {
            return Err(SignInError::TooLong);
        }
        Ok(SignedUser {
            user: decode_user(user)?,
            tenant: tenant.map(decode_user).transpose()?,
        })
    }

    /// The cookie value binding `user` to the install whose `state` is given.
    #[must_use]
    pub fn bind(&self, user: &str, state: &str) -> String {
        let body = format!("b1.{}.{}", URL_SAFE_NO_PAD.encode(user), state_hash(state));
        let signature = mac(self.secret.expose_secret(), &body);
        format!("{body}.{signature}")
    }

    /// The user bound to the install of `state` by `cookie`.
    ///
    /// # Errors
    /// [`SignInError::NotBound`] when the cookie is missing, altered, or for another install.
    pub fn bound_user(
        &self,
        cookie: Option<&str>,
        state: Option<&str>,
    ) -> Result<String, SignInError> {
        let (Some(cookie), Some(state)) = (cookie, state) else {
            return Err(SignInError::NotBound);
        };
        let (body, signature) = cookie.rsplit_once('.').ok_or(SignInError::NotBound)?;
        if !constant_time_eq(&mac(self.secret.expose_secret(), body), signature) {
            return Err(SignInError::NotBound);
        }
        let mut parts = body.split('.');
        let (Some("b1"), Some(user), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SignInError::NotBound);
        };
        if !constant_time_eq(hash, &state_hash(state)) {
            return Err(SignInError::NotBound);
        }
        decode_user(user).map_err(|_| SignInError::NotBound)
    }

    /// Adds `also` after the current hook (the binary adds the webhook this way).
    #[must_use]
    pub fn also_on_installed(self, also: impl Fn(&InstalledBy) + Send + Sync + 'static) -> Self {
        let first = self.on_installed.clone();
        Self {
            on_installed: Some(Arc::new(move |by: &InstalledBy| {
                if let Some(first) = &first {
                    first(by);
                }
                also(by);
            })),
            ..self
        }
    }

    /// Tells the embedding app (if it asked) who installed.
    pub(crate) fn installed(&self, by: &InstalledBy) {
        if let Some(hook) = &self.on_installed {
            hook(by);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> SignIn {
        SignIn::new(SecretString::from("user-signing-secret-0123456789"))
    }

    #[test]
    fn a_signed_user_round_trips_and_every_alteration_is_refused() {
        let s = hook();
        let now = 1_700_000_000;
        let token = s.sign("user 42 / ünïcode", now + 300);
        assert_eq!(s.verify_at(&token, now).as_deref(), Ok("user 42 / ünïcode"));
        // Another secret, a changed user, a changed expiry, a truncated signature.
        let other = SignIn::new(SecretString::from("another-secret-0123456789"));
        assert_eq!(other.verify_at(&token, now), Err(SignInError::Forged));
        let forged_user = token.replacen(
            &URL_SAFE_NO_PAD.encode("user 42 / ünïcode"),
            &URL_SAFE_NO_PAD.encode("admin"),
            1,
        );
        assert_eq!(s.verify_at(&forged_user, now), Err(SignInError::Forged));
        let later = token.replacen(&(now + 300).to_string(), &(now + 3000).to_string(), 1);
        assert_eq!(s.verify_at(&later, now), Err(SignInError::Forged));
        assert_eq!(
            s.verify_at(&token[..token.len() - 1], now),
            Err(SignInError::Forged)
        );
        assert_eq!(s.verify_at("garbage", now), Err(SignInError::Malformed));
        assert_eq!(s.verify_at("v1.a.b", now), Err(SignInError::Malformed));
    }

    #[test]
    fn a_v2_user_carries_its_tenant_and_v1_stays_valid() {
        let s = hook();
        let now = 1_700_000_000;
        let v2 = s.sign_with_tenant("user-7", "acme", now + 300);
        assert_eq!(
            s.verify_signed(&v2, now),
            Ok(SignedUser {
                user: "user-7".into(),
                tenant: Some("acme".into())
            })
        );
        let moved = v2.replacen(
            &URL_SAFE_NO_PAD.encode("acme"),
            &URL_SAFE_NO_PAD.encode("victim-co"),
            1,
        );
        assert_eq!(s.verify_signed(&moved, now), Err(SignInError::Forged));
        let v1 = s.sign("user-7", now + 300);
        assert_eq!(
            s.verify_signed(&v1, now),
            Ok(SignedUser {
                user: "user-7".into(),
                tenant: None
            })
        );
    }

    #[test]
    fn expiry_is_enforced_both_ways() {
        let s = hook();
        let now = 1_700_000_000;
        assert_eq!(
            s.verify_at(&s.sign("u", now), now),
            Err(SignInError::Expired)
        );
        assert_eq!(
            s.verify_at(&s.sign("u", now - 1), now),
            Err(SignInError::Expired)
        );
        assert_eq!(
            s.verify_at(&s.sign("u", now + 3601), now),
            Err(SignInError::TooLong)
        );
        assert!(s.verify_at(&s.sign("u", now + 3600), now).is_ok());
        assert_eq!(
            s.verify_at(&s.sign("", now + 60), now),
            Err(SignInError::Malformed)
        );
    }

    #[test]
    fn a_binding_holds_only_for_its_own_state() {
        let s = hook();
        let cookie = s.bind("user-7", "state-A");
        assert_eq!(
            s.bound_user(Some(&cookie), Some("state-A")).as_deref(),
            Ok("user-7")
        );
        assert_eq!(
            s.bound_user(Some(&cookie), Some("state-B")),
            Err(SignInError::NotBound)
        );
        assert_eq!(
            s.bound_user(None, Some("state-A")),
            Err(SignInError::NotBound)
        );
        // A user parameter is not a binding, even for the right secret.
        let param = s.sign("user-7", unix_now() + 60);
        assert_eq!(
            s.bound_user(Some(&param), Some("state-A")),
            Err(SignInError::NotBound)
        );
    }
}
