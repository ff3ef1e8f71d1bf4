//! The harness's one error type: every failure is a line for the operator, never a panic.

/// Why a scenario could not run, or a count it promises was violated.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file, pipe or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP exchange with the sandbox, a server or the bare handler failed.
    #[error("{context}: {source}")]
    Http {
        /// What was being done.
        context: String,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// Something the harness orchestrates misbehaved (a process died, an answer was wrong).
    #[error("{0}")]
    Setup(String),
    /// A count the scenario promises (zero duplicates, zero lost, …) was violated.
    #[error("{0}")]
    Violated(String),
}

impl BenchError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// An HTTP error with what was being done.
    pub fn http(context: impl Into<String>) -> impl FnOnce(reqwest::Error) -> Self {
        let context = context.into();
        move |source| Self::Http { context, source }
    }

    /// A setup failure.
    pub fn setup(message: impl Into<String>) -> Self {
        Self::Setup(message.into())
    }
}

/// The harness's result type.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
