//! Errors of the sandbox library.

use std::net::SocketAddr;

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A setting is invalid.
    #[error("invalid {field}: {reason}")]
    Config {
        /// The setting (flag name without dashes, underscores for dashes).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}
