//! AWS adapters for the ports of `mlc-core`: DynamoDB stores, the SQS FIFO change-batch queue
//! and Secrets Manager. They pass the same conformance suites as the SQLite adapters, run
//! against moto (`tests/`).
//!
//! # Use
//! Build one [`AwsContext`] per process (Lambda container) at cold start — it reads the
//! environment (`AWS_ENDPOINT_URL` included) and makes no network call — then the adapters from
//! it: [`DynamoStore::new`], [`SqsQueue::new`], [`SecretsManagerSecrets::new`]. The sink
//! handlers turn SQS event records into deliveries with [`delivery_from_lambda_record`] (or
//! decode a body with [`parse_sqs_body`]).
//!
//! Tests build their context with [`AwsContext::for_tests`] (moto at `MLC_TEST_AWS_ENDPOINT`;
//! missing = panic, never a skip). It sends one request at a time, because moto's threaded
//! server does not make conditional writes atomic (see
//! [`AwsContextBuilder::serialize_requests`]).
//!
//! # Module map
//! - [`context`]: `AwsContext` (one `SdkConfig`, clients built once), loopback-only plain HTTP
//! - [`schema`]: table names, key schema, indexes and TTL as constants; `create_tables`
//! - `dynamo`: [`DynamoStore`]: `WatermarkStore`, `RecordStateStore`, `AuditLog`, `Budget`
//! - [`sqs`]: [`SqsQueue`] (`Queue`), `create_fifo_queues`, Lambda event helpers
//! - [`codec`]: message bodies (JSON, gzip+base64 only when needed to fit 256 KiB)
//! - [`secrets`]: [`SecretsManagerSecrets`] (`Secrets`), cached, `#json-key` selection
//! - [`error`]: this crate's `Error` and its mapping onto `PortError`
//!
//! # Table design (three tables, every key a string, on-demand billing)
//! Three tables rather than one because their access patterns, TTL and index needs do not
//! overlap, and separate tables make capacity, backups and alarms readable per concern.
//!
//! | table | partition `pk` | sort `sk` | what |
//! |---|---|---|---|
//! | control | `flow#{flow}` | `run` | lease (`lease_owner`, `lease_expires_ms`), `poll_seq`, start/finish times, pause |
//! | control | `flow#{flow}` | `wm#{entity}` | watermark: `version` (optimistic) + JSON `doc` |
//! | control | `budget#{scope}` | `window#{start}` | budget counter `used`; TTL `expires_at` = window + 2 days |
//! | records | `{flow}#{entity}` | `p#{key}` | poll side: `sent_hash`, `sent_version`, `is_open` |
//! | records | `{flow}#{entity}` | `s#{key}` | sink side: `applied_version`, `applied_hash`, `applied_at`, `dest:{name}` ids |
//! | audit | `{flow}#{key}` | `{time}#{uuid}` | entry JSON, `outcome`, `akey`; TTL `expires_at` (configurable days) |
//!
//! Audit indexes: `by-outcome` (`outcome`, `sk`) for "everything that failed since X" and
//! `by-key` (`akey`, `sk`) for one key's history across flows. The `by-outcome` partition is
//! one value per outcome: fine for the audit's write rate (a poll writes thousands of entries,
//! far under a partition's 1,000 writes/s, and adaptive capacity splits hot keys).
//!
//! Conditions: the lease is one `UpdateItem` that sets the owner and `ADD`s `poll_seq` under
//! `attribute_not_exists(lease_owner) OR lease_expires_ms <= :now OR lease_owner = :me`;
//! watermark saves require `version = :prev` (or absence for version 1); applied marks require
//! the stored applied version (a sortable string: poll sequence then row version, fixed-width
//! hex) to be lower; budget takes `ADD` under `used <= limit - want` and retry for the
//! remainder. Record state keeps the poll and sink sides in separate items so the poll writes
//! with `BatchWriteItem` and the two sides can never clobber each other.

pub mod codec;
pub mod context;
mod dynamo;
pub mod error;
pub mod schema;
pub mod secrets;
pub mod sqs;

pub use codec::parse_sqs_body;
pub use context::{AwsContext, AwsContextBuilder};
pub use dynamo::DynamoStore;
pub use error::{Error, Result};
pub use schema::{create_tables, TableNames};
pub use secrets::SecretsManagerSecrets;
pub use sqs::{
    create_fifo_queues, delivery_from_lambda_record, message_group_id,
    message_group_of_lambda_record, QueueUrls, SqsQueue,
};
