//! Monday.com client and sink: boards fed from SYSPRO within every limit.
//!
//! The sink maps change events to board items and writes them as packed GraphQL requests
//! (one request per board holding many aliased `create_item` / `change_multiple_column_values`
//! mutations), deduplicated by a SYSPRO-id column plus the item id kept in record state, inside
//! a per-board mutation budget shared through the `Budget` port. Vendor facts:
//! `../shared/api-notes/monday.md`.
//!
//! Module map:
//! - [`client`]: transport (`POST {api_url}`, raw token, pinned `API-Version`,
//!   `Idempotency-Key`), answers read whole;
//! - [`request_builder`]: pure: records → one GraphQL document plus variables; column value
//!   shapes per type; every document the connector sends ([`request_builder::sample_documents`]);
//! - [`retry`]: reads error bodies (HTTP 200 with errors, legacy format, string errors),
//!   classifies them and finds the server's delay; backoff and jitter;
//! - [`limiter`]: per-board mutation and per-account request budgets over fixed windows of a
//!   configurable length, plus the complexity the server reports;
//! - [`sink`]: [`MondaySink`], the `mlc_core::ports::Sink` implementation; `sink::preview`
//!   shows what `write` would send beside the item's values (nothing written);
//! - [`error`]: [`MondayError`] and the crate `Result`.

pub mod client;
pub mod error;
pub mod limiter;
pub mod request_builder;
pub mod retry;
pub mod sink;

pub use error::{MondayError, Result};
pub use limiter::{Limiter, LimiterConfig};
pub use sink::{MondaySink, SinkOptions};
