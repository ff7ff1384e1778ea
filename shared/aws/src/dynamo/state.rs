//! Record state (records table).
//!
//! The poll side and the sink side of one record are two items under partition
//! `{flow}#{entity}`: sort `p#{key}` (`sent_hash`, `sent_version`, `is_open`) and sort
//! `s#{key}` (`applied_version`, `applied_hash`, `applied_at`, one `dest:{name}` attribute per
//! destination id). Because they are separate items, the poll writes its side with
//! BatchWriteItem (25 puts per call instead of one UpdateItem per record) and can never clobber
//! what a sink wrote; the sink's conditional UpdateItem touches only its own item. `open_keys` is
//! a Query on `begins_with(sk, "p#")` that never reads sink items.
//!
//! `mark_sent` also writes each mark's `queued` audit entry to the audit table (see
//! `RecordStateStore::mark_sent`).
//!
//! Versions are stored as sortable strings (see `version_sort_key`), so "applied version < new"
//! is a plain string comparison in the condition.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mlc_core::ports::{AuditLog, RecordStateStore, Unapplied};
use mlc_core::state::{AppliedMark, SentMark, StateKey};
use mlc_core::{AuditEntry, Entity, PortError, PortResult, RecordState};

use super::{
    get_s, get_time, is_conditional_failure, key, parse_version_key, s, time_value,
    version_sort_key, DynamoStore, Item,
};
use crate::error::port_error;
use crate::schema::{PK, SK};

const POLL_PREFIX: &str = "p#";
const SINK_PREFIX: &str = "s#";
const DEST_PREFIX: &str = "dest:";

fn record_pk(flow: &str, entity: Entity) -> String {
    format!("{flow}#{}", entity.as_str())
}

fn version_attr(item: &Item, name: &str) -> PortResult<Option<mlc_core::SourceVersion>> {
    match get_s(item, name) {
        None => Ok(None),
        Some(v) => parse_version_key(v)
            .map(Some)
            .ok_or_else(|| PortError::invalid(format!("stored {name} {v:?} is corrupt"))),
    }
}

impl DynamoStore {
    /// The fence: marks of a poll older than the flow's latest lease are refused as a whole (a
    /// poll whose lease lapsed and was taken must not make the next poll believe its data was
    /// the last sent). One consistent read of the flow's run item per flow and call.
    async fn fence(&self, marks: &[SentMark]) -> PortResult<()> {
        let mut newest: HashMap<&str, u64> = HashMap::new();
        for m in marks {
            let seq = newest.entry(m.key.flow.as_str()).or_insert(0);
            *seq = (*seq).max(m.version.poll_seq);
        }
        for (flow, seq) in newest {
            let latest = mlc_core::ports::WatermarkStore::run_info(self, flow)
                .await?
                .last_poll_seq;
            if latest > seq {
                return Err(PortError::Conflict(format!(
                    "flow {flow}: poll {seq} lost its lease to poll {latest}; its sent marks are refused"
                )));
            }
        }
        Ok(())
    }

    /// The poll-side items of an entity's open records (`filter` over them; `:t` is `true`),
    /// with `projection`.
    async fn open_poll_items(
        &self,
        flow: &str,
        entity: Entity,
        filter: &str,
        projection: &str,
    ) -> PortResult<Vec<Item>> {
        let pk = record_pk(flow, entity);
        self.query_all(
            || {
                self.client
                    .query()
                    .table_name(&self.tables.records)
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
                    .filter_expression(filter)
                    .projection_expression(projection)
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#sk", SK)
                    .expression_attribute_values(":pk", s(&pk))
                    .expression_attribute_values(":p", s(POLL_PREFIX))
                    .expression_attribute_values(
                        ":t",
                        aws_sdk_dynamodb::types::AttributeValue::Bool(true),
                    )
                    .consistent_read(true)
            },
            None,
        )
        .await
    }
}

#[async_trait]
impl RecordStateStore for DynamoStore {
    async fn get_many(&self, keys: &[StateKey]) -> PortResult<Vec<(StateKey, RecordState)>> {
        let mut seen = HashSet::new();
        let unique: Vec<&StateKey> = keys.iter().filter(|k| seen.insert(*k)).collect();
        let mut request = Vec::with_capacity(unique.len() * 2);
        for k in &unique {
            let pk = record_pk(&k.flow, k.entity);
            request.push(key(pk.clone(), format!("{POLL_PREFIX}{}", k.key)));
            request.push(key(pk, format!("{SINK_PREFIX}{}", k.key)));
        }
        let items = self.batch_get(&self.tables.records, request).await?;
        let mut by_key: HashMap<(String, String), Item> = HashMap::with_capacity(items.len());
        for item in items {
            if let (Some(pk), Some(sk)) = (get_s(&item, PK), get_s(&item, SK)) {
                by_key.insert((pk.to_string(), sk.to_string()), item);
            }
        }
        let mut out = Vec::new();
        for k in unique {
            let pk = record_pk(&k.flow, k.entity);
            let poll = by_key.get(&(pk.clone(), format!("{POLL_PREFIX}{}", k.key)));
            let sink = by_key.get(&(pk, format!("{SINK_PREFIX}{}", k.key)));
            if poll.is_none() && sink.is_none() {
                continue;
            }
            let mut st = RecordState::default();
            if let Some(p) = poll {
                st.sent_hash = get_s(p, "sent_hash").map(str::to_string);
                st.sent_version = version_attr(p, "sent_version")?;
                st.open = p
                    .get("is_open")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(false);
            }
            if let Some(sn) = sink {
                st.applied_version = version_attr(sn, "applied_version")?;
                st.applied_hash = get_s(sn, "applied_hash").map(str::to_string);
                st.applied_at = get_time(sn, "applied_at")?;
                st.destination_ids = sn
                    .iter()
                    .filter_map(|(name, v)| {
                        let id = name.strip_prefix(DEST_PREFIX)?;
                        Some((id.to_string(), v.as_s().ok()?.clone()))
                    })
                    .collect::<BTreeMap<_, _>>();
            }
            out.push((k.clone(), st));
        }
        Ok(out)
    }

    async fn mark_sent(&self, marks: &[SentMark]) -> PortResult<()> {
        self.fence(marks).await?;
        // One key may appear twice in a poll's marks: the last one wins, and DynamoDB refuses a
        // batch with duplicate keys anyway.
        let mut last: HashMap<&StateKey, usize> = HashMap::new();
        for (i, m) in marks.iter().enumerate() {
            last.insert(&m.key, i);
        }
        let items: Vec<Item> = marks
            .iter()
            .enumerate()
            .filter(|(i, m)| last.get(&m.key) == Some(i))
            .map(|(_, m)| {
                let mut item = key(
                    record_pk(&m.key.flow, m.key.entity),
                    format!("{POLL_PREFIX}{}", m.key.key),
                );
                item.insert("sent_hash".into(), s(&m.hash));
                item.insert("sent_version".into(), s(version_sort_key(m.version)));
                item.insert(
                    "is_open".into(),
                    aws_sdk_dynamodb::types::AttributeValue::Bool(m.open),
                );
                if let Some(due) = m.due {
                    item.insert("due".into(), s(due.to_string()));
                }
                item.insert("sent_at".into(), s(time_value(m.polled_at)));
                item
            })
            .collect();
        self.batch_put(&self.tables.records, items).await?;
        // The marks are the records' `queued` audit entries: in DynamoDB they are audit items
        // beside the state items (the audit table's keys and TTL apply to them as to any entry).
        let entries: Vec<AuditEntry> = marks.iter().map(SentMark::queued_entry).collect();
        AuditLog::append(self, &entries).await
    }

    async fn mark_applied(&self, mark: &AppliedMark) -> PortResult<bool> {
        let mut set = vec![
            "#av = :v".to_string(),
            "applied_hash = :h".to_string(),
            "applied_at = :at".to_string(),
        ];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.records)
            .set_key(Some(key(
                record_pk(&mark.key.flow, mark.key.entity),
                format!("{SINK_PREFIX}{}", mark.key.key),
            )))
            .condition_expression("attribute_not_exists(#av) OR #av < :v")
            .expression_attribute_names("#av", "applied_version")
            .expression_attribute_values(":v", s(version_sort_key(mark.version)))
            .expression_attribute_values(":h", s(&mark.hash))
            .expression_attribute_values(":at", s(time_value(mark.at)));
        // Each destination id is its own attribute, so merging is a SET per id and never
        // needs the earlier ids read back.
        for (i, (name, value)) in mark.destination_ids.iter().enumerate() {
            set.push(format!("#d{i} = :d{i}"));
            req = req
                .expression_attribute_names(format!("#d{i}"), format!("{DEST_PREFIX}{name}"))
                .expression_attribute_values(format!(":d{i}"), s(value));
        }
        match req
            .update_expression(format!("SET {}", set.join(", ")))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(port_error("DynamoDB.UpdateItem (mark applied)", e)),
        }
    }

    async fn open_keys(&self, flow: &str, entity: Entity) -> PortResult<Vec<String>> {
        let items = self
            .open_poll_items(flow, entity, "is_open = :t", "#sk")
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| get_s(i, SK)?.strip_prefix(POLL_PREFIX).map(str::to_string))
            .collect())
    }

    async fn unapplied(
        &self,
        flow: &str,
        entities: &[Entity],
        sent_before: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<Unapplied>> {
        let mut out = Vec::new();
        for entity in entities {
            let pk = record_pk(flow, *entity);
            // The poll and sink items of one entity are one partition: read both sides once.
            let items = self
                .query_all(
                    || {
                        self.client
                            .query()
                            .table_name(&self.tables.records)
                            .key_condition_expression("#pk = :pk")
                            .projection_expression("#sk, sent_version, sent_at, applied_version")
                            .expression_attribute_names("#pk", PK)
                            .expression_attribute_names("#sk", SK)
                            .expression_attribute_values(":pk", s(&pk))
                            .consistent_read(true)
                    },
                    None,
                )
                .await?;
            let mut applied: HashMap<&str, mlc_core::SourceVersion> = HashMap::new();
            for i in &items {
                if let Some(k) = get_s(i, SK).and_then(|k| k.strip_prefix(SINK_PREFIX)) {
                    if let Some(v) = version_attr(i, "applied_version")? {
                        applied.insert(k, v);
                    }
                }
            }
            for i in &items {
                let Some(k) = get_s(i, SK).and_then(|k| k.strip_prefix(POLL_PREFIX)) else {
                    continue;
                };
                let (Some(version), Some(sent_at)) =
                    (version_attr(i, "sent_version")?, get_time(i, "sent_at")?)
                else {
                    continue;
                };
                if sent_at >= sent_before || applied.get(k).is_some_and(|a| *a >= version) {
                    continue;
                }
                out.push(Unapplied {
                    key: StateKey::new(flow, *entity, k),
                    version,
                    sent_at,
                });
            }
        }
        out.sort_by_key(|u| u.sent_at);
        out.truncate(limit);
        Ok(out)
    }

    async fn calendar_keys(
        &self,
        flow: &str,
        entity: Entity,
    ) -> PortResult<Vec<(String, chrono::NaiveDate)>> {
        let items = self
            .open_poll_items(
                flow,
                entity,
                "is_open = :t AND attribute_exists(due)",
                "#sk, due",
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| {
                let key = get_s(i, SK)?.strip_prefix(POLL_PREFIX)?.to_string();
                let due = get_s(i, "due")?.parse().ok()?;
                Some((key, due))
            })
            .collect())
    }
}
