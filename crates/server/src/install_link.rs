//! Signed install links: how an app says which of its tenants an install belongs to.
//!
//! The tenant of a connection decides which tenant-scoped API keys see it, so it must come
//! from the app, never from whoever opens `GET /kit/oauth`. The app (where its tenant's admin
//! is signed in) hands out `/kit/oauth?tenant=<link>` with
//!
//! `t1.<tenant name, base64url without padding>.<expiry, Unix seconds>.<signature>`
//!
//! where the signature is the lowercase hex HMAC-SHA256, keyed with
//! `KIT_OAUTH_INSTALL_LINK_SECRET`, of everything before the last dot. Kit's App Store adds its
//! `redirect` to the link as to any Authorization URL. A link lives at most [`MAX_LIFETIME`]
//! (a week: long enough for an email to a tenant's admin). [`InstallLinks::sign`] is the
//! reference implementation.
//!
//! A dedicated secret rather than `KIT_OAUTH_USER_SIGNING_SECRET`: that one turns on the
//! sign-in hook (every install then needs a signed-in user), which a multi-tenant app does not
//! necessarily want, and a link lives days where a user token lives minutes, so the two are
//! rotated on different schedules. Apps that use the sign-in hook can instead put the tenant
//! in the signed `user` parameter itself ([`crate::SignIn::sign_with_tenant`]).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kit_oauth::core::{TenantName, constant_time_eq};
use secrecy::{ExposeSecret, SecretString};

use crate::sign_in::{mac, unix_now};

/// The variable holding the secret.
pub const INSTALL_LINK_SECRET_VAR: &str = "KIT_OAUTH_INSTALL_LINK_SECRET";
/// How far in the future a link may expire, at most.
pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a tenant was refused. Never carries the secret or the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantRefused {
    /// A plain tenant name (or any unsigned value): anyone could have typed it.
    #[error("the tenant is not signed by the app")]
    Unsigned,
    /// The signature does not match.
    #[error("the install link's signature is invalid")]
    Forged,
    /// Past its expiry, or expiring further ahead than [`MAX_LIFETIME`].
    #[error("the install link has expired or lives too long")]
    Expired,
    /// The signed name is not a valid tenant name.
    #[error("the signed tenant name is invalid")]
    Invalid,
    /// Two signed sources name different tenants.
    #[error("the signed user and the install link name different tenants")]
    Conflict,
}

/// The verifier (and, for apps in Rust, the signer) of install links.
#[derive(Clone)]
pub struct InstallLinks {
    secret: SecretString,
}

impl std::fmt::Debug for InstallLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallLinks").finish_non_exhaustive()
    }
}

impl InstallLinks {
    /// Links signed with `secret` (at least 16 characters; the binary checks it).
    #[must_use]
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }

    /// The `tenant` parameter for `tenant`, valid until `expires_unix`.
    #[must_use]
    pub fn sign(&self, tenant: &str, expires_unix: i64) -> String {
        let body = format!("t1.{}.{expires_unix}", URL_SAFE_NO_PAD.encode(tenant));
        let signature = mac(self.secret.expose_secret(), &body);
        format!("{body}.{signature}")
    }

    /// The tenant of a valid link.
    ///
    /// # Errors
    /// [`TenantRefused`] saying why.
    pub fn verify(&self, link: &str) -> Result<TenantName, TenantRefused> {
        self.verify_at(link, unix_now())
    }

    fn verify_at(&self, link: &str, now: i64) -> Result<TenantName, TenantRefused> {
        let (body, signature) = link.rsplit_once('.').ok_or(TenantRefused::Unsigned)?;
        let mut parts = body.split('.');
        let (Some("t1"), Some(tenant), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TenantRefused::Unsigned);
        };
        if !constant_time_eq(&mac(self.secret.expose_secret(), body), signature) {
            return Err(TenantRefused::Forged);
        }
        let expires: i64 = expires.parse().map_err(|_| TenantRefused::Forged)?;
        let ahead = expires - now;
        if ahead <= 0 || u64::try_from(ahead).unwrap_or(u64::MAX) > MAX_LIFETIME.as_secs() {
            return Err(TenantRefused::Expired);
        }
        let name = URL_SAFE_NO_PAD
            .decode(tenant)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(TenantRefused::Invalid)?;
        TenantName::parse(&name).map_err(|_| TenantRefused::Invalid)
    }
}

/// The tenant of an install: from the signed link in `param` and the tenant signed with the
/// user (`signed`), which must agree when both are given; `None` when neither names one.
///
/// # Errors
/// [`TenantRefused`] for an unsigned or invalid link (always, when no link secret is set).
pub(crate) fn tenant_of(
    links: Option<&InstallLinks>,
    param: Option<&str>,
    signed: Option<&str>,
) -> Result<Option<String>, TenantRefused> {
    let linked = match param {
        None => None,
        Some(link) => Some(
            links
                .ok_or(TenantRefused::Unsigned)?
                .verify(link)?
                .as_str()
                .to_owned(),
        ),
    };
    match (linked, signed) {
        (Some(linked), Some(signed)) if linked != signed => Err(TenantRefused::Conflict),
        (Some(linked), _) => Ok(Some(linked)),
        (None, signed) => Ok(signed.map(str::to_owned)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> InstallLinks {
        InstallLinks::new(SecretString::from("install-link-secret-0123456789"))
    }

    #[test]
    fn a_link_round_trips_and_nothing_unsigned_passes() {
        let now = 1_700_000_000;
        let link = links().sign("acme", now + 600);
        assert_eq!(links().verify_at(&link, now).unwrap().as_str(), "acme");
        for unsigned in ["acme", "victim-co", "", "t1.YWNtZQ.1700000600"] {
            assert_eq!(
                links().verify_at(unsigned, now),
                Err(TenantRefused::Unsigned),
                "{unsigned}"
            );
        }
        let other = InstallLinks::new(SecretString::from("another-secret-0123456789"));
        assert_eq!(other.verify_at(&link, now), Err(TenantRefused::Forged));
        let moved = link.replacen(
            &URL_SAFE_NO_PAD.encode("acme"),
            &URL_SAFE_NO_PAD.encode("victim-co"),
            1,
        );
        assert_eq!(links().verify_at(&moved, now), Err(TenantRefused::Forged));
        assert_eq!(
            links().verify_at(&link, now + 600),
            Err(TenantRefused::Expired)
        );
        let forever = links().sign("acme", now + 8 * 24 * 3600);
        assert_eq!(
            links().verify_at(&forever, now),
            Err(TenantRefused::Expired)
        );
    }
}
