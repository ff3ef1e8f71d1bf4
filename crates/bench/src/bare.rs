//! The baseline `steady` compares the broker with: a bare axum handler in its own process that
//! answers every `POST` with a constant JSON body of the broker's answer size. The ratio of the
//! two throughputs is what the broker's authentication, storage lookup and cache cost.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

use crate::error::{BenchError, Result};

/// A JSON object of exactly `bytes` bytes (at least 32).
#[must_use]
pub fn constant_body(bytes: usize) -> String {
    let prefix = "{\"access_token\":\"";
    let suffix = "\",\"expires_at\":null}";
    let fill = bytes.saturating_sub(prefix.len() + suffix.len()).max(1);
    format!("{prefix}{}{suffix}", "x".repeat(fill))
}

/// Serves the bare handler on `127.0.0.1:0` and prints `bare listening on http://ADDR`.
///
/// # Errors
/// The port cannot be bound.
pub async fn serve(bytes: usize) -> Result<()> {
    let body: &'static str = Box::leak(constant_body(bytes).into_boxed_str());
    let app = Router::new().route(
        "/v1/connections/{id}/token",
        post(move || async move {
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(BenchError::io("binding the bare handler"))?;
    let addr = listener
        .local_addr()
        .map_err(BenchError::io("reading the bare handler's address"))?;
    println!("bare listening on http://{addr}");
    axum::serve(listener, app)
        .await
        .map_err(BenchError::io("serving the bare handler"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_the_requested_size_and_is_json() {
        for n in [64, 100, 257] {
            let body = constant_body(n);
            assert_eq!(body.len(), n);
            assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
        }
    }
}
