//! The audit trail (audit table).
//!
//! One item per entry: partition `{flow}#{key}`, sort `{time}#{uuid}` (fixed-width UTC time, so
//! string order is time order; the uuid keeps two entries of one instant apart, so nothing is
//! ever overwritten). Attributes: `outcome` and `akey` (the key's identity) feed the two
//! indexes, `entry` holds the entry as JSON, `expires_at` (TTL) when configured.
//! - `history(Some(flow), key)`: Query on the table partition (strongly consistent);
//! - `history(None, key)`: Query on index `by-key` (`akey`, `sk`): every flow of one key;
//! - `by_outcome`: Query on index `by-outcome` (`outcome`, `sk >= since`), ascending, limited.
//!
//! Index reads are eventually consistent on DynamoDB (immediately visible on moto).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mlc_core::outcome::SyncOutcome;
use mlc_core::ports::AuditLog;
use mlc_core::{AuditEntry, PortError, PortResult};

use super::{corrupt, get_s, key, n, s, time_sort_key, DynamoStore, Item};
use crate::schema::{AUDIT_BY_KEY, AUDIT_BY_OUTCOME, PK, SK, TTL_ATTRIBUTE};

fn decode(item: &Item) -> PortResult<AuditEntry> {
    let doc =
        get_s(item, "entry").ok_or_else(|| PortError::invalid("stored audit item has no entry"))?;
    serde_json::from_str(doc).map_err(|e| corrupt("audit entry", e))
}

#[async_trait]
impl AuditLog for DynamoStore {
    async fn append(&self, entries: &[AuditEntry]) -> PortResult<()> {
        let mut items = Vec::with_capacity(entries.len());
        for e in entries {
            let doc = serde_json::to_string(e)
                .map_err(|err| PortError::permanent("encoding audit entry", err))?;
            let sk = format!("{}#{}", time_sort_key(e.at), uuid::Uuid::new_v4().simple());
            let mut item = key(format!("{}#{}", e.flow, e.key), sk);
            item.insert(AUDIT_BY_OUTCOME.partition_key.into(), s(e.outcome.as_str()));
            item.insert(AUDIT_BY_KEY.partition_key.into(), s(&e.key));
            item.insert("entry".into(), s(doc));
            if let Some(ttl) = self.audit_ttl {
                if let Some(t) = e.at.checked_add_signed(ttl) {
                    item.insert(TTL_ATTRIBUTE.into(), n(t.timestamp()));
                }
            }
            items.push(item);
        }
        self.batch_put(&self.tables.audit, items).await
    }

    async fn history(&self, flow: Option<&str>, key: &str) -> PortResult<Vec<AuditEntry>> {
        let items = match flow {
            Some(f) => {
                let pk = format!("{f}#{key}");
                self.query_all(
                    || {
                        self.client
                            .query()
                            .table_name(&self.tables.audit)
                            .key_condition_expression("#pk = :pk")
                            .expression_attribute_names("#pk", PK)
                            .expression_attribute_values(":pk", s(&pk))
                            .consistent_read(true)
                    },
                    None,
                )
                .await?
            }
            None => {
                self.query_all(
                    || {
                        self.client
                            .query()
                            .table_name(&self.tables.audit)
                            .index_name(AUDIT_BY_KEY.name)
                            .key_condition_expression("#k = :k")
                            .expression_attribute_names("#k", AUDIT_BY_KEY.partition_key)
                            .expression_attribute_values(":k", s(key))
                    },
                    None,
                )
                .await?
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            let e = decode(item)?;
            // `flow#key` is ambiguous when a flow name holds '#': keep only exact matches.
            if e.key == key && flow.is_none_or(|f| e.flow == f) {
                out.push(e);
            }
        }
        Ok(out)
    }

    async fn by_outcome(
        &self,
        outcome: SyncOutcome,
        since: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<AuditEntry>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let since_key = time_sort_key(since);
        let items = self
            .query_all(
                || {
                    self.client
                        .query()
                        .table_name(&self.tables.audit)
                        .index_name(AUDIT_BY_OUTCOME.name)
                        .key_condition_expression("#o = :o AND #sk >= :since")
                        .expression_attribute_names("#o", AUDIT_BY_OUTCOME.partition_key)
                        .expression_attribute_names("#sk", SK)
                        .expression_attribute_values(":o", s(outcome.as_str()))
                        .expression_attribute_values(":since", s(&since_key))
                },
                Some(limit),
            )
            .await?;
        items.iter().map(decode).collect()
    }
}
