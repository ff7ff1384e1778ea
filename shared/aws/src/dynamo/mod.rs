//! [`DynamoStore`]: the watermark store, record-state store, audit log and budget on DynamoDB.
//!
//! One store value implements the four ports over the three tables of [`TableNames`]; it is a
//! cheap `Clone` (the SDK client is a shared handle).

mod audit;
mod budget;
mod state;
mod watermark;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, WriteRequest};
use chrono::{DateTime, SecondsFormat, Utc};
use mlc_core::{PortError, PortResult, SourceVersion};

use crate::context::AwsContext;
use crate::error::port_error;
use crate::schema::{TableNames, PK, SK};

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// BatchGetItem takes at most 100 keys per request.
const BATCH_GET_MAX: usize = 100;
/// BatchWriteItem takes at most 25 requests per call.
const BATCH_WRITE_MAX: usize = 25;
/// How often unprocessed keys/items are retried (with backoff) before giving up.
const UNPROCESSED_RETRIES: u32 = 8;

/// The DynamoDB-backed stores. See the crate doc for the table design.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    tables: Arc<TableNames>,
    audit_ttl: Option<chrono::Duration>,
}

impl DynamoStore {
    /// A store over `tables`, with the context's DynamoDB client. Audit entries keep no TTL
    /// until [`DynamoStore::with_audit_ttl_days`] sets one.
    pub fn new(ctx: &AwsContext, tables: TableNames) -> Self {
        DynamoStore {
            client: ctx.dynamodb().clone(),
            tables: Arc::new(tables),
            audit_ttl: None,
        }
    }

    /// Audit entries expire (DynamoDB TTL) this many days after their time; `None` keeps them.
    pub fn with_audit_ttl_days(mut self, days: Option<u32>) -> Self {
        self.audit_ttl = days.map(|d| chrono::Duration::days(i64::from(d)));
        self
    }

    /// The table names.
    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// Reads many items by key: chunks of 100, retrying unprocessed keys with backoff.
    pub(crate) async fn batch_get(&self, table: &str, keys: Vec<Item>) -> PortResult<Vec<Item>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| PortError::permanent("building BatchGetItem", e))?,
            );
            let mut attempt = 0;
            while let Some(ka) = pending.take() {
                if attempt > 0 {
                    if attempt > UNPROCESSED_RETRIES {
                        return Err(PortError::Transient {
                            message: format!(
                                "DynamoDB.BatchGetItem on {table}: keys still unprocessed after {UNPROCESSED_RETRIES} retries"
                            ),
                            source: None,
                        });
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                attempt += 1;
                let resp = self
                    .client
                    .batch_get_item()
                    .request_items(table, ka)
                    .send()
                    .await
                    .map_err(|e| port_error("DynamoDB.BatchGetItem", e))?;
                if let Some(items) = resp.responses().and_then(|r| r.get(table)) {
                    out.extend(items.iter().cloned());
                }
                pending = resp
                    .unprocessed_keys()
                    .and_then(|u| u.get(table))
                    .filter(|ka| !ka.keys().is_empty())
                    .cloned();
            }
        }
        Ok(out)
    }

    /// Writes many items: chunks of 25, retrying unprocessed items with backoff. Callers make
    /// sure one chunk never holds one key twice (DynamoDB refuses that).
    pub(crate) async fn batch_put(&self, table: &str, items: Vec<Item>) -> PortResult<()> {
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            let put = aws_sdk_dynamodb::types::PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| PortError::permanent("building BatchWriteItem", e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > 0 {
                    if attempt > UNPROCESSED_RETRIES {
                        return Err(PortError::Transient {
                            message: format!(
                                "DynamoDB.BatchWriteItem on {table}: {} items still unprocessed after {UNPROCESSED_RETRIES} retries",
                                pending.len()
                            ),
                            source: None,
                        });
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                attempt += 1;
                let resp = self
                    .client
                    .batch_write_item()
                    .request_items(table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| port_error("DynamoDB.BatchWriteItem", e))?;
                pending = resp
                    .unprocessed_items()
                    .and_then(|u| u.get(table))
                    .cloned()
                    .unwrap_or_default();
            }
        }
        Ok(())
    }

    /// Runs a query to the end (or until `limit` items), following `LastEvaluatedKey`.
    pub(crate) async fn query_all(
        &self,
        build: impl Fn() -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        limit: Option<usize>,
    ) -> PortResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut req = build().set_exclusive_start_key(start.take());
            if let Some(l) = limit {
                let want = l.saturating_sub(out.len()).clamp(1, 1000);
                req = req.limit(i32::try_from(want).unwrap_or(1000));
            }
            let resp = req
                .send()
                .await
                .map_err(|e| port_error("DynamoDB.Query", e))?;
            out.extend(resp.items().iter().cloned());
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        if let Some(l) = limit {
            out.truncate(l);
        }
        Ok(out)
    }
}

/// Exponential backoff with full jitter, capped at 2 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let cap_ms = (25u64 << attempt.min(7)).min(2000);
    let jitter = uuid::Uuid::new_v4().as_u128() as u64 % (cap_ms + 1);
    Duration::from_millis(jitter.max(5))
}

/// The primary key of an item.
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(pk.into())),
        (SK.to_string(), AttributeValue::S(sk.into())),
    ])
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn get_time(item: &Item, name: &str) -> PortResult<Option<DateTime<Utc>>> {
    match get_s(item, name) {
        None => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| PortError::permanent(format!("stored time {name} is corrupt"), e)),
    }
}

/// RFC 3339 with as many fraction digits as needed, so times round-trip exactly.
pub(crate) fn time_value(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A fixed-width UTC time that sorts as a string in time order (years 0000–9999).
pub(crate) fn time_sort_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// A [`SourceVersion`] as a string whose byte order is the version order: the poll sequence as
/// 16 hex digits, then `:` and the row version as 16 hex digits when there is one (a missing
/// row version sorts first, as `None < Some(_)` does).
pub(crate) fn version_sort_key(v: SourceVersion) -> String {
    match v.row_version {
        Some(rv) => format!("{:016x}:{rv:016x}", v.poll_seq),
        None => format!("{:016x}", v.poll_seq),
    }
}

/// Parses [`version_sort_key`].
pub(crate) fn parse_version_key(s: &str) -> Option<SourceVersion> {
    let (seq, rv) = match s.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    if seq.len() != 16 || rv.is_some_and(|r| r.len() != 16) {
        return None;
    }
    Some(SourceVersion {
        poll_seq: u64::from_str_radix(seq, 16).ok()?,
        row_version: match rv {
            Some(r) => Some(u64::from_str_radix(r, 16).ok()?),
            None => None,
        },
    })
}

pub(crate) fn is_conditional_failure<E>(e: &aws_sdk_dynamodb::error::SdkError<E>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    crate::error::error_code(e) == Some("ConditionalCheckFailedException")
}

pub(crate) fn corrupt(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> PortError {
    PortError::permanent(format!("stored {what} is corrupt"), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_sort_like_versions() {
        let vs = [
            SourceVersion {
                poll_seq: 1,
                row_version: None,
            },
            SourceVersion {
                poll_seq: 1,
                row_version: Some(0),
            },
            SourceVersion {
                poll_seq: 1,
                row_version: Some(u64::MAX),
            },
            SourceVersion {
                poll_seq: 2,
                row_version: None,
            },
            SourceVersion {
                poll_seq: 2,
                row_version: Some(5),
            },
            SourceVersion {
                poll_seq: 300,
                row_version: Some(1),
            },
        ];
        for a in vs {
            assert_eq!(parse_version_key(&version_sort_key(a)), Some(a));
            for b in vs {
                assert_eq!(
                    a.cmp(&b),
                    version_sort_key(a).cmp(&version_sort_key(b)),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn time_keys_sort_like_times() {
        let a = DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let b = a + chrono::Duration::nanoseconds(1);
        let c = a + chrono::Duration::days(400);
        assert!(time_sort_key(a) < time_sort_key(b));
        assert!(time_sort_key(b) < time_sort_key(c));
        assert_eq!(time_sort_key(a).len(), time_sort_key(c).len());
    }
}
