//! Token revocation (RFC 7009), form-encoded as Kit documents.

use kit_oauth_core::{EndpointError, RevocableToken};
use oauth2::basic::BasicErrorResponse;

use crate::oauth::{KitOAuthClient, classify_oauth_error, transport_to_endpoint};
use crate::redact::excerpt;
use crate::token_http::is_busy;
use crate::transport::{RawResponse, execute};

/// A non-success answer from the revoke endpoint, classified.
fn classify_raw_error(raw: &RawResponse, secrets: &[&str]) -> EndpointError {
    let status = raw.status.as_u16();
    if is_busy(raw.status) {
        return EndpointError::Transient {
            retry_after: raw.retry_after(),
            reason: format!("the endpoint answered HTTP {status}"),
        };
    }
    if let Ok(response) = serde_json::from_slice::<BasicErrorResponse>(&raw.body) {
        let description = response.error_description().map_or_else(
            || response.error().to_string(),
            |d| excerpt(d.as_bytes(), secrets),
        );
        return classify_oauth_error(response.error(), description, Some(status));
    }
    if status == 401 {
        return EndpointError::InvalidClient {
            description: format!("HTTP 401: {}", excerpt(&raw.body, secrets)),
        };
    }
    EndpointError::Protocol {
        status: Some(status),
        excerpt: excerpt(&raw.body, secrets),
    }
}

impl KitOAuthClient {
    /// Form-encoded as Kit documents, with `token_type_hint`.
    ///
    /// Built here rather than through `oauth2::Client::revoke_token`, which refuses any
    /// revocation URL that is not `https` (and so any loopback test server).
    pub(crate) async fn revoke_token(
        &self,
        token: RevocableToken<'_>,
    ) -> Result<(), EndpointError> {
        let (value, hint) = match token {
            RevocableToken::Access(t) => (t.expose_secret(), "access_token"),
            RevocableToken::Refresh(t) => (t.expose_secret(), "refresh_token"),
        };
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", value)
                .append_pair("token_type_hint", hint)
                .append_pair("client_id", self.endpoints.client_id().as_str());
            if let Some(secret) = self.endpoints.client_secret() {
                form.append_pair("client_secret", secret.expose_secret());
            }
            form.finish()
        };
        let request = self
            .http
            .post(self.endpoints.revoke_url().clone())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        let secrets = [value, self.client_secret()];
        let raw = execute(
            request,
            self.endpoints.request_timeout(),
            self.endpoints.max_response_bytes(),
        )
        .await
        .map_err(|e| transport_to_endpoint(&e))?;
        if raw.status.is_success() {
            tracing::debug!(hint, status = raw.status.as_u16(), "token revoked");
            Ok(())
        } else {
            let error = classify_raw_error(&raw, &secrets);
            tracing::warn!(hint, status = raw.status.as_u16(), %error, "revoke failed");
            Err(error)
        }
    }
}
