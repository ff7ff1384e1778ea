//! Errors of the Monday.com client.

/// Result of this crate.
pub type Result<T> = std::result::Result<T, MondayError>;

/// A Monday.com client error that is not about one record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MondayError {
    /// The flow's configuration cannot drive a Monday.com sink.
    #[error("monday configuration error: {0}")]
    Config(String),
    /// The HTTP client could not be used (bad URL, TLS set-up).
    #[error("monday transport error: {message}")]
    Transport {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The token could not be read.
    #[error("monday token could not be read: {0}")]
    Secret(#[source] mlc_core::PortError),
}
