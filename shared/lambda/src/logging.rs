//! JSON logs, one object per line (CloudWatch Logs parses them; the functions' log format is
//! JSON in the IaC). Engine events carry `flow`, `entity` and `key` fields; nothing here logs a
//! secret (they are `SecretString`s, redacted even in `Debug`).

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber: level from `RUST_LOG` (default `info`), event fields at the top
/// level, no ANSI colours. Safe to call twice (the second call does nothing).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}
