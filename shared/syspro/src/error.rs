//! Errors of building a [`crate::SysproSource`]. Reads return [`mlc_core::ports::SourceError`],
//! already classified (auth / transient / rejected).

/// Result of this crate's constructors.
pub type Result<T> = std::result::Result<T, SysproError>;

/// A configuration problem found before any request is made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysproError {
    /// The base URL does not parse.
    #[error("invalid SYSPRO base url {url:?}")]
    InvalidUrl {
        /// The URL, without its query string.
        url: String,
        /// Why it does not parse.
        #[source]
        source: url::ParseError,
    },
    /// Plain `http://` to a host that is not loopback, or another scheme.
    #[error(
        "SYSPRO base url {0:?} must use https (plain http is only allowed for loopback hosts)"
    )]
    Insecure(String),
    /// Another configuration problem.
    #[error("invalid SYSPRO connection: {0}")]
    Config(String),
}
