//! `GET /v4/account`: whose Kit account a token belongs to, and what a 401 there says.

use kit_oauth_core::{AccessToken, AccountLookup, KitAccount, KitAccountId, LookupError};
use serde::Deserialize;

use crate::kit_errors::{TokenRejection, classify_401};
use crate::oauth::KitOAuthClient;
use crate::redact::excerpt;
use crate::token_http::is_busy;
use crate::transport::{RawResponse, TransportError, execute, retry_after};

#[derive(Deserialize)]
struct AccountEnvelope {
    account: AccountBody,
}

#[derive(Deserialize)]
struct AccountBody {
    id: serde_json::Value,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    primary_email_address: Option<String>,
}

/// Parses `GET /v4/account`'s body into the core's account.
pub(crate) fn parse_account(body: &[u8], known: &[&str]) -> Result<KitAccount, String> {
    let envelope: AccountEnvelope = serde_json::from_slice(body).map_err(|e| {
        format!(
            "{} ({})",
            excerpt(body, known),
            excerpt(e.to_string().as_bytes(), known)
        )
    })?;
    let id = match &envelope.account.id {
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(KitAccountId::from)
            .ok_or_else(|| "account.id is not a non-negative integer".to_owned())?,
        serde_json::Value::String(s) => {
            KitAccountId::parse(s).map_err(|e| format!("account.id: {e}"))?
        }
        _ => return Err("account.id is neither a number nor a string".to_owned()),
    };
    Ok(KitAccount {
        id,
        name: envelope.account.name.unwrap_or_default(),
        primary_email: envelope.account.primary_email_address,
    })
}

/// Classifies an answer of `GET /v4/account`.
pub(crate) fn account_from_raw(
    raw: &RawResponse,
    known: &[&str],
) -> Result<KitAccount, LookupError> {
    let status = raw.status.as_u16();
    if raw.status.is_success() {
        return parse_account(&raw.body, known).map_err(|excerpt| LookupError::Protocol {
            status: Some(status),
            excerpt,
        });
    }
    if status == 401 {
        return Err(match classify_401(&raw.body, known) {
            TokenRejection::Expired => LookupError::TokenExpired,
            TokenRejection::Refused(message) => LookupError::Unauthorized { message },
        });
    }
    if is_busy(raw.status) {
        return Err(LookupError::Transient {
            retry_after: retry_after(&raw.headers),
            reason: format!("the account endpoint answered HTTP {status}"),
        });
    }
    Err(LookupError::Protocol {
        status: Some(status),
        excerpt: excerpt(&raw.body, known),
    })
}

impl AccountLookup for KitOAuthClient {
    async fn account(&self, access_token: &AccessToken) -> Result<KitAccount, LookupError> {
        let request = self
            .http
            .get(self.endpoints.account_url())
            .bearer_auth(access_token.expose_secret())
            .header(http::header::ACCEPT, "application/json");
        let known = [access_token.expose_secret()];
        let raw = execute(
            request,
            self.endpoints.request_timeout(),
            crate::kit_client::DEFAULT_MAX_API_RESPONSE_BYTES,
        )
        .await
        .map_err(|e| match e {
            TransportError::BodyTooLarge { status, .. } => LookupError::Protocol {
                status: Some(status),
                excerpt: e.to_string(),
            },
            other => LookupError::Transient {
                retry_after: None,
                reason: other.to_string(),
            },
        })?;
        account_from_raw(&raw, &known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_number_or_string() -> Result<(), String> {
        let a = parse_account(
            br#"{"user":{"email":"x@y","id":1},"account":{"id":4817263,"name":"Acme","primary_email_address":"a@b.c"}}"#,
            &[],
        )?;
        assert_eq!(a.id.as_str(), "4817263");
        assert_eq!(a.primary_email.as_deref(), Some("a@b.c"));
        let b = parse_account(br#"{"account":{"id":"acct_1","name":"B"}}"#, &[])?;
        assert_eq!(b.id.as_str(), "acct_1");
        assert!(parse_account(br#"{"account":{"id":-1}}"#, &[]).is_err());
        assert!(parse_account(br#"{"account":{"id":[1]}}"#, &[]).is_err());
        assert!(parse_account(b"{", &[]).is_err());
        Ok(())
    }
}
