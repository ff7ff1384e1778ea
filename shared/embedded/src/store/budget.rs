//! Rate budgets: a counter per (scope, window), taken in one immediate transaction so
//! concurrent takers (threads or processes) never pass the limit together.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mlc_core::ports::Budget;
use mlc_core::PortResult;
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::db::{time, write_tx};
use crate::error::sql;

#[async_trait]
impl Budget for SqliteStore {
    async fn take(
        &self,
        scope: &str,
        window_start: DateTime<Utc>,
        limit: u32,
        want: u32,
    ) -> PortResult<u32> {
        if want == 0 || limit == 0 {
            return Ok(0);
        }
        let scope = scope.to_string();
        let window = time(window_start)?;
        self.db
            .run("take", move |conn| {
                let tx = write_tx(conn)?;
                let used: i64 = tx
                    .prepare_cached(
                        "SELECT used FROM mlc_budget WHERE scope = ?1 AND window_start = ?2",
                    )
                    .and_then(|mut s| s.query_row(params![scope, window], |r| r.get(0)).optional())
                    .map_err(sql("read budget"))?
                    .unwrap_or(0);
                let left = i64::from(limit).saturating_sub(used).max(0);
                let granted = i64::from(want).min(left);
                if granted > 0 {
                    tx.prepare_cached(
                        "INSERT INTO mlc_budget (scope, window_start, used) VALUES (?1, ?2, ?3)
                         ON CONFLICT (scope, window_start) DO UPDATE SET used = used + excluded.used",
                    )
                    .and_then(|mut s| s.execute(params![scope, window, granted]))
                    .map_err(sql("take budget"))?;
                    // Past windows of the scope are spent for good: keep the table small.
                    tx.prepare_cached("DELETE FROM mlc_budget WHERE scope = ?1 AND window_start < ?2")
                        .and_then(|mut s| s.execute(params![scope, window]))
                        .map_err(sql("prune budget"))?;
                }
                tx.commit().map_err(sql("commit budget"))?;
                Ok(u32::try_from(granted).unwrap_or(0))
            })
            .await
    }
}
