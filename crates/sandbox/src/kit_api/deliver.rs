//! Outgoing POSTs (legacy webhook deliveries, bulk callbacks) over plain HTTP/1.1 with hyper:
//! the sandbox runs beside the app on loopback, so `https://` targets are counted as failed
//! rather than pulling a TLS stack into a test server.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(5);

/// POSTs `body` as JSON to `url`; whether a 2xx came back within the timeout.
pub(crate) async fn post_json(url: &str, body: String) -> bool {
    tokio::time::timeout(TIMEOUT, post(url, body))
        .await
        .unwrap_or(false)
}

async fn post(url: &str, body: String) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    if parsed.scheme() != "http" {
        return false;
    }
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
        return false;
    };
    let Ok(stream) = TcpStream::connect((host, port)).await else {
        return false;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return false;
    };
    tokio::spawn(conn);
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    let authority = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let Ok(request) = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "kit-sandbox")
        .body(Full::new(Bytes::from(body)))
    else {
        return false;
    };
    sender
        .send_request(request)
        .await
        .is_ok_and(|r| r.status().is_success())
}
