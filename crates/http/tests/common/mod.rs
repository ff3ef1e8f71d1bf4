//! Shared helpers for the loopback tests against `kit-sandbox`: endpoints, driving consent
//! with auto-approve, a simple `TokenSource`, and a TCP proxy that counts connections.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kit_oauth_core::{
    AccessToken, AccountLookup, AuthorizationCode, AuthorizeRequest, ConnectionId, CsrfState,
    LookupError, PkceVerifier, RefreshToken, TenantName, TokenEndpoint,
};
use kit_oauth_http::{
    KitEndpoints, KitEndpointsBuilder, KitOAuthClient, ReauthReason, TokenBody, TokenSource,
    TokenSourceError,
};
use kit_sandbox::{Rotation, Sandbox, SandboxBuilder, SandboxHandle};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

pub const CLIENT: &str = "kit-http-test-client";
pub const SECRET: &str = "kit-http-test-secret-9f8e7d6c";
pub const REDIRECT: &str = "http://127.0.0.1:9/kit/oauth/callback";
pub const ACCOUNT: &str = "Sandbox Creator";

pub fn confidential() -> SandboxBuilder {
    Sandbox::builder()
        .client_id(CLIENT)
        .client_secret(SECRET)
        .redirect_uri(REDIRECT)
        .auto_approve(true)
        .rotation(Rotation::Strict)
}

pub fn public() -> SandboxBuilder {
    Sandbox::builder()
        .client_id(CLIENT)
        .public_client()
        .redirect_uri(REDIRECT)
        .auto_approve(true)
        .rotation(Rotation::Strict)
}

/// Endpoints for `sb` with the client's secret when `secret` is given.
pub fn endpoints_for(sb: &SandboxHandle, secret: Option<&str>) -> KitEndpointsBuilder {
    let b = KitEndpoints::builder()
        .base_url(sb.base_url())
        .client_id(CLIENT)
        .redirect_uri(REDIRECT)
        .request_timeout(Duration::from_secs(5));
    match secret {
        Some(s) => b.client_secret(s),
        None => b,
    }
}

pub fn oauth(sb: &SandboxHandle, secret: Option<&str>, body: TokenBody) -> KitOAuthClient {
    KitOAuthClient::new(endpoints_for(sb, secret).token_body(body).build().unwrap()).unwrap()
}

/// A client that never follows redirects, for driving the consent step.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub struct Authorized {
    pub code: AuthorizationCode,
    pub verifier: PkceVerifier,
    pub authorize_url: url::Url,
}

/// Builds the authorize URL with the adapter, follows it like a browser with auto-approve, and
/// returns the code from the redirect (checking `state` came back).
pub async fn authorize(
    client: &KitOAuthClient,
    tenant: Option<&str>,
    scope: Option<&str>,
) -> Authorized {
    let mut rng = rand::rngs::OsRng;
    let state = CsrfState::generate(&mut rng);
    let verifier = PkceVerifier::generate(&mut rng);
    let challenge = verifier.challenge();
    let tenant = tenant.map(|t| TenantName::parse(t).unwrap());
    let url = client.authorize_url(&AuthorizeRequest {
        state: &state,
        challenge: &challenge,
        tenant: tenant.as_ref(),
        scope,
    });
    let response = browser().get(url.clone()).send().await.unwrap();
    assert!(
        response.status().is_redirection(),
        "authorize answered {}",
        response.status()
    );
    let location = response.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let location = url::Url::parse(&location).unwrap();
    assert!(location.as_str().starts_with(REDIRECT), "{location}");
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some(state.expose_secret()));
    let code = param("code").unwrap_or_else(|| panic!("no code in {location}"));
    Authorized {
        code: AuthorizationCode::new(code),
        verifier,
        authorize_url: url,
    }
}

pub fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Asserts that neither the Display nor the Debug form of `error` contains any of `secrets`.
pub fn assert_secret_free(error: &dyn std::fmt::Debug, display: &str, secrets: &[&str]) {
    let debug = format!("{error:?}");
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !display.contains(secret),
            "Display leaks a secret: {display}"
        );
        assert!(!debug.contains(secret), "Debug leaks a secret: {debug}");
    }
}

/// A simple `TokenSource`: one connection's tokens in memory, refreshed through the adapter.
pub struct SimpleSource {
    pub oauth: KitOAuthClient,
    pub tokens: tokio::sync::Mutex<(AccessToken, RefreshToken)>,
    pub access_calls: AtomicUsize,
    pub force_refresh_calls: AtomicUsize,
    /// `token_refused` calls.
    pub refused_calls: AtomicUsize,
    /// `GET /v4/account` checks made by `token_refused`.
    pub account_checks: AtomicUsize,
    /// Grants `token_refused` confirmed dead.
    pub reauth_calls: AtomicUsize,
    pub last_reauth: std::sync::Mutex<Option<ReauthReason>>,
    /// Misbehave: hand the stale token back from `force_refresh` without refreshing.
    pub broken_refresh: bool,
}

impl SimpleSource {
    pub fn new(oauth: KitOAuthClient, access: AccessToken, refresh: RefreshToken) -> Arc<Self> {
        Arc::new(Self {
            oauth,
            tokens: tokio::sync::Mutex::new((access, refresh)),
            access_calls: AtomicUsize::new(0),
            force_refresh_calls: AtomicUsize::new(0),
            refused_calls: AtomicUsize::new(0),
            account_checks: AtomicUsize::new(0),
            reauth_calls: AtomicUsize::new(0),
            last_reauth: std::sync::Mutex::new(None),
            broken_refresh: false,
        })
    }
}

impl TokenSource for SimpleSource {
    async fn access_token(&self, _: &ConnectionId) -> Result<AccessToken, TokenSourceError> {
        self.access_calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.tokens.lock().await.0.clone())
    }

    async fn force_refresh(
        &self,
        _: &ConnectionId,
        stale: &AccessToken,
    ) -> Result<AccessToken, TokenSourceError> {
        self.force_refresh_calls.fetch_add(1, Ordering::SeqCst);
        if self.broken_refresh {
            return Ok(stale.clone());
        }
        let mut tokens = self.tokens.lock().await;
        if &tokens.0 != stale {
            return Ok(tokens.0.clone());
        }
        let fresh =
            self.oauth
                .refresh(&tokens.1)
                .await
                .map_err(|e| TokenSourceError::Unavailable {
                    reason: e.to_string(),
                    retry_after: None,
                })?;
        tokens.0 = fresh.access_token.clone();
        if let Some(r) = fresh.refresh_token {
            tokens.1 = r;
        }
        Ok(tokens.0.clone())
    }

    /// Verifies the stored token with `GET /v4/account`, as the manager does.
    async fn token_refused(
        &self,
        _: &ConnectionId,
        refused: &AccessToken,
        reason: &ReauthReason,
    ) -> Result<AccessToken, TokenSourceError> {
        self.refused_calls.fetch_add(1, Ordering::SeqCst);
        let stored = self.tokens.lock().await.0.clone();
        if &stored != refused {
            return Ok(stored);
        }
        self.account_checks.fetch_add(1, Ordering::SeqCst);
        match self.oauth.account(&stored).await {
            Ok(_) => Ok(stored),
            Err(LookupError::Unauthorized { message }) => {
                self.reauth_calls.fetch_add(1, Ordering::SeqCst);
                *self.last_reauth.lock().unwrap() = Some(reason.clone());
                Err(TokenSourceError::ReauthRequired { reason: message })
            }
            Err(e) => Err(TokenSourceError::Unavailable {
                reason: e.to_string(),
                retry_after: None,
            }),
        }
    }
}

pub fn connection_id() -> ConnectionId {
    ConnectionId::generate(&mut rand::rngs::OsRng)
}

/// A loopback TCP proxy in front of `target` that counts accepted connections and keeps the
/// first 16 KiB the clients sent (to see headers and bodies).
pub struct CountingProxy {
    pub base_url: String,
    pub accepted: Arc<AtomicUsize>,
    pub first_request: Arc<std::sync::Mutex<Vec<u8>>>,
}

pub async fn counting_proxy(target: std::net::SocketAddr) -> CountingProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let first_request = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (acc, first) = (accepted.clone(), first_request.clone());
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            acc.fetch_add(1, Ordering::SeqCst);
            let first = first.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    return;
                };
                let (mut in_read, mut in_write) = inbound.into_split();
                let (mut out_read, mut out_write) = outbound.into_split();
                // Client → server, recording the first 16 KiB the client ever sent.
                let upstream = async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let n = match in_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        {
                            let mut f = first.lock().unwrap();
                            let room = (16 * 1024usize).saturating_sub(f.len());
                            f.extend_from_slice(&buf[..n.min(room)]);
                        }
                        if out_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = out_write.shutdown().await;
                };
                let downstream = async move {
                    let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
                    let _ = in_write.shutdown().await;
                };
                tokio::join!(upstream, downstream);
            });
        }
    });
    CountingProxy {
        base_url: format!("http://{addr}"),
        accepted,
        first_request,
    }
}
