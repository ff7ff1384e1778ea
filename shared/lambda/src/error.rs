//! This crate's errors and their mapping onto the runtime's `Diagnostic` (what the Lambda
//! console shows as `errorType` / `errorMessage`).

use lambda_runtime::Diagnostic;

/// Result of this crate's functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a handler or the container's setup failed. Messages never carry secret values: the
/// adapters' errors name secrets by reference only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An environment variable is missing or wrong.
    #[error("invalid lambda environment: {0}")]
    Env(String),
    /// The flows file cannot be read or is invalid.
    #[error("invalid flows configuration:\n{0}")]
    Flows(#[source] mlc_config::ConfigError),
    /// The AWS context could not be built.
    #[error("aws setup failed")]
    Aws(#[from] mlc_aws::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the http client")]
    Http(#[source] reqwest::Error),
    /// The event names a flow that is not configured (or not for this destination).
    #[error("unknown flow {0:?}")]
    UnknownFlow(String),
    /// A flow's source or sink could not be built from its configuration.
    #[error("flow {flow}: {what}")]
    Wiring {
        /// The flow.
        flow: String,
        /// What failed.
        what: String,
    },
    /// The event has the wrong shape.
    #[error("invalid event: {0}")]
    Event(String),
    /// A poll, sink pass or replay failed.
    #[error("pipeline step failed")]
    Engine(#[from] mlc_engine::EngineError),
}

impl Error {
    /// A short, stable name for `errorType`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Env(_) => "mlc.Environment",
            Error::Flows(_) => "mlc.FlowsConfig",
            Error::Aws(_) => "mlc.AwsSetup",
            Error::Http(_) => "mlc.HttpClient",
            Error::UnknownFlow(_) => "mlc.UnknownFlow",
            Error::Wiring { .. } => "mlc.Wiring",
            Error::Event(_) => "mlc.InvalidEvent",
            Error::Engine(_) => "mlc.Pipeline",
        }
    }
}

/// The error and its whole `source` chain, `: `-separated, on one line where possible.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        // Wrappers that print their source themselves would repeat it.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

impl From<Error> for Diagnostic {
    fn from(e: Error) -> Self {
        Diagnostic {
            error_type: e.kind().to_string(),
            error_message: chain(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_carry_the_chain_and_a_stable_type() {
        let e = Error::Engine(mlc_engine::EngineError::LeaseHeld("acme-sf".into()));
        let d: Diagnostic = e.into();
        assert_eq!(d.error_type, "mlc.Pipeline");
        assert_eq!(
            d.error_message,
            "pipeline step failed: flow acme-sf: another poll holds the lease"
        );
    }
}
