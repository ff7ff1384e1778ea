//! Watermarks, the per-flow lease, run info and pauses (control table).
//!
//! Items, partition `flow#{flow}`:
//! - sort `run`: `lease_owner`, `lease_expires_ms` (N, compared in conditions),
//!   `lease_expires_at` (exact time), `poll_seq` (N, `ADD`ed with each grant), `started_at`,
//!   `finished_at`, `paused_until`, `pause_reason`;
//! - sort `wm#{entity}`: `version` (N, the optimistic version) and `doc` (the watermark as JSON).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};
use mlc_core::ports::WatermarkStore;
use mlc_core::watermark::FlowRunInfo;
use mlc_core::{Entity, Lease, PortError, PortResult, Watermark};

use super::{
    corrupt, get_n, get_s, get_time, is_conditional_failure, key, n, s, time_value, DynamoStore,
    Item,
};
use crate::error::port_error;
use crate::schema::{PK, SK};

const RUN_SK: &str = "run";

fn flow_pk(flow: &str) -> String {
    format!("flow#{flow}")
}

fn wm_sk(entity: Entity) -> String {
    format!("wm#{}", entity.as_str())
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> PortResult<DateTime<Utc>> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| PortError::invalid(format!("lease ttl {ttl:?} is out of range")))
}

fn decode_watermark(item: &Item) -> PortResult<Watermark> {
    let doc =
        get_s(item, "doc").ok_or_else(|| PortError::invalid("stored watermark has no doc"))?;
    serde_json::from_str(doc).map_err(|e| corrupt("watermark", e))
}

#[async_trait]
impl WatermarkStore for DynamoStore {
    async fn acquire_lease(
        &self,
        flow: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> PortResult<Option<Lease>> {
        let expires_at = expiry(now, ttl)?;
        // One conditional update both takes the lease and increments the sequence, so a grant
        // and its poll_seq can never be split by a concurrent poll.
        let res = self
            .client
            .update_item()
            .table_name(&self.tables.control)
            .set_key(Some(key(flow_pk(flow), RUN_SK)))
            .update_expression(
                "SET lease_owner = :me, lease_expires_ms = :exp_ms, lease_expires_at = :exp, started_at = :now_t ADD poll_seq :one",
            )
            .condition_expression(
                "attribute_not_exists(lease_owner) OR lease_expires_ms <= :now_ms OR lease_owner = :me",
            )
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":exp_ms", n(expires_at.timestamp_millis()))
            .expression_attribute_values(":exp", s(time_value(expires_at)))
            .expression_attribute_values(":now_t", s(time_value(now)))
            .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let poll_seq = out
                    .attributes()
                    .and_then(|a| get_n::<u64>(a, "poll_seq"))
                    .ok_or_else(|| PortError::invalid("lease grant returned no poll_seq"))?;
                Ok(Some(Lease {
                    flow: flow.to_string(),
                    owner: owner.to_string(),
                    expires_at,
                    poll_seq,
                }))
            }
            Err(e) if is_conditional_failure(&e) => Ok(None),
            Err(e) => Err(port_error("DynamoDB.UpdateItem (acquire lease)", e)),
        }
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> PortResult<Lease> {
        let expires_at = expiry(now, ttl)?;
        // Still ours if nobody took it since, even if it lapsed meanwhile: no one else ran.
        let res = self
            .client
            .update_item()
            .table_name(&self.tables.control)
            .set_key(Some(key(flow_pk(&lease.flow), RUN_SK)))
            .update_expression("SET lease_expires_ms = :exp_ms, lease_expires_at = :exp")
            .condition_expression("lease_owner = :me AND poll_seq = :seq")
            .expression_attribute_values(":me", s(&lease.owner))
            .expression_attribute_values(":seq", n(lease.poll_seq))
            .expression_attribute_values(":exp_ms", n(expires_at.timestamp_millis()))
            .expression_attribute_values(":exp", s(time_value(expires_at)))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Lease {
                expires_at,
                ..lease.clone()
            }),
            Err(e) if is_conditional_failure(&e) => Err(PortError::Conflict(format!(
                "lease on flow {} (poll {}) is no longer held by {}",
                lease.flow, lease.poll_seq, lease.owner
            ))),
            Err(e) => Err(port_error("DynamoDB.UpdateItem (renew lease)", e)),
        }
    }

    async fn release_lease(
        &self,
        lease: &Lease,
        finished: bool,
        now: DateTime<Utc>,
    ) -> PortResult<()> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.control)
            .set_key(Some(key(flow_pk(&lease.flow), RUN_SK)))
            .condition_expression("lease_owner = :me AND poll_seq = :seq")
            .expression_attribute_values(":me", s(&lease.owner))
            .expression_attribute_values(":seq", n(lease.poll_seq));
        req = if finished {
            req.update_expression(
                "SET finished_at = :now REMOVE lease_owner, lease_expires_ms, lease_expires_at",
            )
            .expression_attribute_values(":now", s(time_value(now)))
        } else {
            req.update_expression("REMOVE lease_owner, lease_expires_ms, lease_expires_at")
        };
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(PortError::Conflict(format!(
                "lease on flow {} (poll {}) is no longer held by {}: not released",
                lease.flow, lease.poll_seq, lease.owner
            ))),
            Err(e) => Err(port_error("DynamoDB.UpdateItem (release lease)", e)),
        }
    }

    async fn load(&self, flow: &str, entity: Entity) -> PortResult<Option<Watermark>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.control)
            .set_key(Some(key(flow_pk(flow), wm_sk(entity))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("DynamoDB.GetItem (watermark)", e))?;
        out.item().map(decode_watermark).transpose()
    }

    async fn save(&self, wm: &Watermark) -> PortResult<()> {
        if wm.version == 0 {
            return Err(PortError::invalid(format!(
                "watermark of {}/{} has version 0: the first save is version 1",
                wm.flow, wm.entity
            )));
        }
        let doc =
            serde_json::to_string(wm).map_err(|e| PortError::permanent("encoding watermark", e))?;
        let mut item = key(flow_pk(&wm.flow), wm_sk(wm.entity));
        item.insert("version".into(), n(wm.version));
        item.insert("doc".into(), s(doc));
        let mut req = self
            .client
            .put_item()
            .table_name(&self.tables.control)
            .set_item(Some(item));
        req = if wm.version == 1 {
            req.condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
        } else {
            req.condition_expression("version = :prev")
                .expression_attribute_values(":prev", n(wm.version - 1))
        };
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(PortError::Conflict(format!(
                "watermark of {}/{}: stored version is not {}",
                wm.flow,
                wm.entity,
                wm.version - 1
            ))),
            Err(e) => Err(port_error("DynamoDB.PutItem (watermark)", e)),
        }
    }

    async fn list(&self, flow: &str) -> PortResult<Vec<Watermark>> {
        let pk = flow_pk(flow);
        let items = self
            .query_all(
                || {
                    self.client
                        .query()
                        .table_name(&self.tables.control)
                        .key_condition_expression("#pk = :pk AND begins_with(#sk, :wm)")
                        .expression_attribute_names("#pk", PK)
                        .expression_attribute_names("#sk", SK)
                        .expression_attribute_values(":pk", s(&pk))
                        .expression_attribute_values(":wm", s("wm#"))
                        .consistent_read(true)
                },
                None,
            )
            .await?;
        items.iter().map(decode_watermark).collect()
    }

    async fn run_info(&self, flow: &str) -> PortResult<FlowRunInfo> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.control)
            .set_key(Some(key(flow_pk(flow), RUN_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("DynamoDB.GetItem (run info)", e))?;
        let Some(item) = out.item() else {
            return Ok(FlowRunInfo {
                flow: flow.to_string(),
                last_poll_seq: 0,
                last_started_at: None,
                last_finished_at: None,
                running: None,
                paused_until: None,
                pause_reason: None,
            });
        };
        let last_poll_seq = get_n::<u64>(item, "poll_seq").unwrap_or(0);
        // A lease that lapsed without release still shows here: `expires_at` tells the reader.
        let running = match (
            get_s(item, "lease_owner"),
            get_time(item, "lease_expires_at")?,
        ) {
            (Some(owner), Some(expires_at)) => Some(Lease {
                flow: flow.to_string(),
                owner: owner.to_string(),
                expires_at,
                poll_seq: last_poll_seq,
            }),
            _ => None,
        };
        Ok(FlowRunInfo {
            flow: flow.to_string(),
            last_poll_seq,
            last_started_at: get_time(item, "started_at")?,
            last_finished_at: get_time(item, "finished_at")?,
            running,
            paused_until: get_time(item, "paused_until")?,
            pause_reason: get_s(item, "pause_reason").map(str::to_string),
        })
    }

    async fn set_pause(
        &self,
        flow: &str,
        until: Option<DateTime<Utc>>,
        reason: Option<&str>,
    ) -> PortResult<()> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.control)
            .set_key(Some(key(flow_pk(flow), RUN_SK)));
        req = match (until, reason) {
            (Some(u), Some(r)) => req
                .update_expression("SET paused_until = :u, pause_reason = :r")
                .expression_attribute_values(":u", s(time_value(u)))
                .expression_attribute_values(":r", s(r)),
            (Some(u), None) => req
                .update_expression("SET paused_until = :u REMOVE pause_reason")
                .expression_attribute_values(":u", s(time_value(u))),
            (None, _) => req.update_expression("REMOVE paused_until, pause_reason"),
        };
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| port_error("DynamoDB.UpdateItem (pause)", e))
    }
}
