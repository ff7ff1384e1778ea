//! The shared rate budget (control table).
//!
//! One counter item per (scope, window): partition `budget#{scope}`, sort
//! `window#{window start}`, attribute `used` (N). A take is one conditional
//! `ADD used :want` with `attribute_not_exists(used) OR used <= :limit_minus_want` (DynamoDB
//! conditions cannot add, so the subtraction is done here). When that fails, the current count
//! (returned with the failure) says how much is left, and the take retries for the remainder.
//! Counters carry a TTL two days past their window so old windows clean themselves up.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};
use mlc_core::ports::Budget;
use mlc_core::{PortError, PortResult};

use super::{backoff, get_n, key, n, time_sort_key, DynamoStore};
use crate::error::{error_code, port_error};
use crate::schema::TTL_ATTRIBUTE;

/// Attempts before a heavily contended take gives up with a transient error.
const MAX_ROUNDS: u32 = 20;

#[async_trait]
impl Budget for DynamoStore {
    async fn take(
        &self,
        scope: &str,
        window_start: DateTime<Utc>,
        limit: u32,
        want: u32,
    ) -> PortResult<u32> {
        let mut ask = want.min(limit);
        if ask == 0 {
            return Ok(0);
        }
        let item_key = key(
            format!("budget#{scope}"),
            format!("window#{}", time_sort_key(window_start)),
        );
        let expires = (window_start + chrono::Duration::days(2)).timestamp();
        for round in 0..MAX_ROUNDS {
            let res = self
                .client
                .update_item()
                .table_name(&self.tables.control)
                .set_key(Some(item_key.clone()))
                .update_expression("ADD used :ask SET #ttl = if_not_exists(#ttl, :exp)")
                .condition_expression("attribute_not_exists(used) OR used <= :max")
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":ask", n(ask))
                .expression_attribute_values(":max", n(limit - ask))
                .expression_attribute_values(":exp", n(expires))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let err = match res {
                Ok(_) => return Ok(ask),
                Err(e) if error_code(&e) == Some("ConditionalCheckFailedException") => e,
                Err(e) => return Err(port_error("DynamoDB.UpdateItem (budget)", e)),
            };
            let returned = match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(c) => {
                    c.item().and_then(|i| get_n::<u64>(i, "used"))
                }
                _ => None,
            };
            let used = match returned {
                Some(u) => u,
                None => self.read_used(&item_key).await?,
            };
            let left = u64::from(limit).saturating_sub(used);
            if left == 0 {
                return Ok(0);
            }
            ask = ask.min(u32::try_from(left).unwrap_or(u32::MAX));
            if round > 2 {
                tokio::time::sleep(backoff(round - 2)).await;
            }
        }
        Err(PortError::Transient {
            message: format!(
                "budget {scope}: too much contention, no grant after {MAX_ROUNDS} attempts"
            ),
            source: None,
        })
    }
}

impl DynamoStore {
    async fn read_used(&self, item_key: &super::Item) -> PortResult<u64> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.control)
            .set_key(Some(item_key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("DynamoDB.GetItem (budget)", e))?;
        Ok(out
            .item()
            .and_then(|i| get_n::<u64>(i, "used"))
            .unwrap_or(0))
    }
}
