//! Errors of this crate and their mapping onto [`PortError`].
//!
//! SDK errors are classified by their service error code (throttling and 5xx are transient,
//! validation is permanent) so the engine can branch on [`PortError`]'s kind, never on text.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use mlc_core::PortError;

/// Result of this crate's own functions (ports return [`mlc_core::PortResult`]).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong outside a port call (setup, message bodies, Lambda events).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An AWS call failed.
    #[error("{operation} failed: {message}")]
    Aws {
        /// The operation (`DynamoDB.CreateTable` …).
        operation: String,
        /// Code and message from the service, or the transport failure.
        message: String,
        /// True when retrying may help.
        transient: bool,
        /// The SDK error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A message body is not a change batch.
    #[error("sqs message body is not a change batch: {message}")]
    Body {
        /// What is wrong with it.
        message: String,
        /// The decoding error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A change batch that does not fit one SQS message even compressed.
    #[error(
        "change batch of {events} events for stream {stream:?} is {bytes} bytes after compression, over the {limit}-byte sqs message limit: pack smaller batches"
    )]
    TooLarge {
        /// The batch's stream.
        stream: String,
        /// How many events it held.
        events: usize,
        /// Its encoded size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Configuration is missing or wrong (endpoint, queue URL …).
    #[error("invalid aws configuration: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn body(message: impl Into<String>) -> Self {
        Error::Body {
            message: message.into(),
            source: None,
        }
    }
}

impl From<Error> for PortError {
    fn from(e: Error) -> Self {
        match e {
            Error::Aws {
                transient: true, ..
            } => PortError::Transient {
                message: e.to_string(),
                source: Some(Box::new(e)),
            },
            Error::Aws { .. } | Error::Body { .. } | Error::TooLarge { .. } | Error::Config(_) => {
                PortError::Permanent {
                    message: e.to_string(),
                    source: Some(Box::new(e)),
                }
            }
        }
    }
}

/// Service error codes that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "RequestThrottled",
    "KMSThrottlingException",
    "LimitExceededException",
];

/// The service error code of an SDK error, if the service answered.
pub(crate) fn error_code<E, R>(e: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// Classifies an SDK error into this crate's error.
pub(crate) fn sdk_error<E>(operation: &str, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = describe(&e);
    let transient = match &e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or_default();
            TRANSIENT_CODES.contains(&code)
                || code.starts_with("AWS.SimpleQueueService.Unavailable")
                || s.raw().status().as_u16() >= 500
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    };
    Error::Aws {
        operation: operation.to_string(),
        message,
        transient,
        source: Some(Box::new(e)),
    }
}

/// A short description: the service's code and message, or the transport failure. The raw
/// response (headers, body) stays in the source chain, not in the message.
fn describe<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(s) => format!(
            "{} (http {}): {}",
            s.err().code().unwrap_or("unknown error"),
            s.raw().status().as_u16(),
            s.err().message().unwrap_or("no message")
        ),
        other => DisplayErrorContext(other).to_string(),
    }
}

/// Maps an SDK error straight into a [`PortError`]; "not found" codes become `NotFound`.
pub(crate) fn port_error<E>(operation: &str, e: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let not_found = matches!(
        error_code(&e),
        Some(
            "ResourceNotFoundException"
                | "AWS.SimpleQueueService.NonExistentQueue"
                | "QueueDoesNotExist"
        )
    );
    if not_found {
        return PortError::NotFound(format!("{operation}: {}", describe(&e)));
    }
    sdk_error(operation, e).into()
}
