//! The two sides of the differential suite behind one interface, and what of an answer must
//! agree: status, `error`, `error_description`, the 401 body, the page's sentence, the token
//! response's shape (token values and timestamps normalised away).

use std::time::Duration;

use kit_oauth_tests::doorkeeper::{CLIENT_ID, CLIENT_SECRET, Peer, PeerRotation, REDIRECT_URI};
use kit_sandbox::SandboxHandle;
use serde_json::Value;

/// RFC 7636 appendix B's S256 pair.
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Doorkeeper's sentences, which its authorize error page shows in a `<pre>`.
const PAGE_SENTENCES: [&str; 4] = [
    "The code challenge method must be plain or S256.",
    "The requested redirect uri is malformed or doesn't match client redirect URI.",
    "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
    "The requested scope is invalid, unknown, or malformed.",
];

/// One side of the comparison.
pub(crate) enum Side {
    Sandbox(SandboxHandle),
    Peer(&'static Peer),
}

pub(crate) struct Target {
    pub(crate) side: Side,
    pub(crate) ttl: u64,
    pub(crate) http: reqwest::Client,
}

/// One answer, normalised to what must agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) shape: String,
    /// The tokens, when it issued some.
    pub(crate) access: String,
    pub(crate) refresh: String,
}

impl Answer {
    pub(crate) async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        // Doorkeeper's pages escape apostrophes; the sentences are compared as text.
        let body = response
            .text()
            .await
            .unwrap_or_default()
            .replace("&#39;", "'")
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        let mut access = String::new();
        let mut refresh = String::new();
        let shape = if let Some(location) = location {
            let url = url::Url::parse(&location).unwrap();
            let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
            format!(
                "redirect to {}://{}{} with {keys:?}",
                url.scheme(),
                url.authority(),
                url.path()
            )
        } else if let Ok(value) = serde_json::from_str::<Value>(&body) {
            if let Some(at) = value["access_token"].as_str() {
                at.clone_into(&mut access);
                value["refresh_token"]
                    .as_str()
                    .unwrap_or_default()
                    .clone_into(&mut refresh);
                let mut keys: Vec<&String> = value.as_object().unwrap().keys().collect();
                keys.sort();
                format!(
                    "tokens {keys:?} token_type={} expires_in={} scope={}",
                    value["token_type"], value["expires_in"], value["scope"]
                )
            } else if value.get("error").is_some() {
                format!(
                    "error={} error_description={}",
                    value["error"], value["error_description"]
                )
            } else if value["account"]["name"].is_string() && value["user"]["email"].is_string() {
                "<the Kit-shaped account JSON>".to_owned()
            } else {
                value.to_string()
            }
        } else if content_type.starts_with("text/html") {
            match PAGE_SENTENCES.iter().find(|s| body.contains(*s)) {
                Some(sentence) => format!("HTML page: {sentence}"),
                None if body.is_empty() => "empty HTML".to_owned(),
                None => format!("HTML page without Doorkeeper's sentence: {body:.160}"),
            }
        } else {
            format!("{content_type}: {body:.160}")
        };
        Self {
            status,
            shape,
            access,
            refresh,
        }
    }
}

impl Target {
    fn base(&self) -> String {
        match &self.side {
            Side::Sandbox(s) => s.base_url().to_owned(),
            Side::Peer(p) => p.base_url().to_owned(),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// Lets the access tokens issued so far expire: the sandbox's clock moves, Doorkeeper's
    /// is the wall clock.
    pub(crate) async fn expire(&self) {
        match &self.side {
            Side::Sandbox(s) => s.advance_clock(self.ttl + 1),
            Side::Peer(_) => tokio::time::sleep(Duration::from_secs(self.ttl + 1)).await,
        }
    }

    pub(crate) async fn authorize_raw(&self, pairs: &[(&str, &str)]) -> Answer {
        let mut url = url::Url::parse(&self.url("/v4/oauth/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(pairs);
        Answer::from(self.http.get(url).send().await.unwrap()).await
    }

    /// The signed-in creator's consent is skipped: authorize answers with the code.
    pub(crate) async fn code(&self, pkce: bool) -> String {
        let mut url = url::Url::parse(&self.url("/v4/oauth/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("response_type", "code")
            .append_pair("scope", "public")
            .append_pair("state", "differential");
        if pkce {
            url.query_pairs_mut()
                .append_pair("code_challenge", CHALLENGE)
                .append_pair("code_challenge_method", "S256");
        }
        let response = self.http.get(url).send().await.unwrap();
        let Some(location) = response.headers().get("location") else {
            return String::new();
        };
        let location = url::Url::parse(location.to_str().unwrap()).unwrap();
        location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    }

    pub(crate) fn code_pairs<'a>(
        code: &'a str,
        verifier: Option<&'a str>,
    ) -> Vec<(&'a str, &'a str)> {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("redirect_uri", REDIRECT_URI),
        ];
        if let Some(v) = verifier {
            pairs.push(("code_verifier", v));
        }
        pairs
    }

    pub(crate) async fn token_form_at(&self, path: &str, pairs: &[(&str, &str)]) -> Answer {
        Answer::from(
            self.http
                .post(self.url(path))
                .form(pairs)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub(crate) async fn token_form(&self, pairs: &[(&str, &str)]) -> Answer {
        self.token_form_at("/v4/oauth/token", pairs).await
    }

    pub(crate) async fn token_json(&self, body: &Value) -> Answer {
        Answer::from(
            self.http
                .post(self.url("/v4/oauth/token"))
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub(crate) async fn exchange(&self, code: &str, verifier: Option<&str>) -> Answer {
        self.token_form(&Self::code_pairs(code, verifier)).await
    }

    /// A fresh grant: authorize with PKCE and exchange the code.
    pub(crate) async fn grant(&self) -> Answer {
        let code = self.code(true).await;
        self.exchange(&code, Some(VERIFIER)).await
    }

    pub(crate) async fn refresh(&self, refresh_token: &str) -> Answer {
        self.token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await
    }

    pub(crate) async fn account(&self, access_token: Option<&str>) -> Answer {
        let mut request = self.http.get(self.url("/v4/account"));
        if let Some(token) = access_token {
            request = request.bearer_auth(token);
        }
        Answer::from(request.send().await.unwrap()).await
    }

    pub(crate) async fn revoke(&self, token: &str, credentials: Credentials) -> Answer {
        let mut pairs = vec![("token", token)];
        let mut request = self.http.post(self.url("/v4/oauth/revoke"));
        match credentials {
            Credentials::Form(secret) => {
                pairs.push(("client_id", CLIENT_ID));
                pairs.push(("client_secret", secret));
            }
            Credentials::Basic(secret) => request = request.basic_auth(CLIENT_ID, Some(secret)),
            Credentials::None => {}
        }
        Answer::from(request.form(&pairs).send().await.unwrap()).await
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Credentials {
    Form(&'static str),
    Basic(&'static str),
    None,
}

/// The answers of one run of a script, with the status the observed table gives for each.
#[derive(Default)]
pub(crate) struct Log {
    pub(crate) steps: Vec<(String, u16, Answer)>,
}

impl Log {
    /// Records a step; `expected` is the observed Doorkeeper's status.
    pub(crate) fn step(&mut self, label: &str, expected: u16, answer: &Answer) {
        self.steps
            .push((label.to_owned(), expected, answer.clone()));
    }

    /// As [`Log::step`], with the observed status differing by mode.
    pub(crate) fn step_by(
        &mut self,
        label: &str,
        mode: PeerRotation,
        [ru, strict]: [u16; 2],
        a: &Answer,
    ) {
        let expected = match mode {
            PeerRotation::RevokeOnUse => ru,
            PeerRotation::Strict => strict,
        };
        self.step(label, expected, a);
    }
}
