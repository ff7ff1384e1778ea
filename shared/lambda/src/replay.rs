//! The replay function: dead letters back to their main queue, from the console.
//!
//! Test event: `{"flow": "acme-sf", "since": "2026-11-01T00:00:00Z", "keys": ["100045"],
//! "limit": 500, "dry_run": true}`; every field is optional. With a configured `flow`, only its
//! destination's DLQ is read; otherwise both (Salesforce first), sharing one `limit`. Unknown
//! fields are refused, so a misspelt `dry_run` can never turn into a real move.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mlc_engine::{replay, ReplayFilter, ReplayReport};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::context::{LambdaContext, Target};
use crate::error::Result;

/// Records moved by one invocation when the event sets no limit.
pub const DEFAULT_LIMIT: usize = 500;

/// What to replay. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayEvent {
    /// Only this flow (and only its destination's DLQ when it is configured).
    #[serde(default)]
    pub flow: Option<String>,
    /// Only records polled at or after this time.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Only these record keys (a bare invoice number matches composite keys containing it).
    #[serde(default)]
    pub keys: Vec<String>,
    /// At most this many records in all (default 500).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Count only; move nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a replay did, in total and per destination.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    /// True on a dry run.
    pub dry_run: bool,
    /// Records moved (or that would move).
    pub moved: usize,
    /// Dead-lettered records examined and left in place.
    pub left: usize,
    /// Dead-letter messages examined.
    pub messages: usize,
    /// Per destination (`salesforce`, `monday`).
    pub destinations: BTreeMap<String, ReplayReport>,
}

/// Replays matching dead letters.
pub async fn replay_handler(ctx: &LambdaContext, event: ReplayEvent) -> Result<ReplaySummary> {
    let limit = event.limit.unwrap_or(DEFAULT_LIMIT);
    let targets: Vec<Target> = match event.flow.as_deref().map(|f| ctx.flow(f)) {
        Some(Ok(flow)) => vec![Target::of(&flow)],
        // A flow removed from the configuration may still have dead letters: look everywhere.
        Some(Err(_)) | None => Target::ALL.to_vec(),
    };
    let mut summary = ReplaySummary {
        dry_run: event.dry_run,
        ..Default::default()
    };
    for target in targets {
        let room = limit.saturating_sub(summary.moved);
        if room == 0 {
            break;
        }
        let filter = ReplayFilter {
            flow: event.flow.clone(),
            keys: event.keys.clone(),
            since: event.since,
            limit: Some(room),
            dry_run: event.dry_run,
        };
        let queue = ctx.ports().queue(target);
        let r = replay(
            queue.as_ref(),
            ctx.ports().audit.as_ref(),
            ctx.clock().as_ref(),
            &filter,
        )
        .await?;
        info!(
            destination = target.name(),
            moved = r.moved,
            left = r.left,
            dry_run = r.dry_run,
            "replay finished"
        );
        summary.moved += r.moved;
        summary.left += r.left;
        summary.messages += r.messages;
        summary.destinations.insert(target.name().to_string(), r);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_console_event_parses_and_typos_are_refused() {
        let e: ReplayEvent = serde_json::from_value(json!({
            "flow": "acme-sf", "since": "2026-11-01T00:00:00Z", "keys": ["100045"],
            "limit": 500, "dry_run": true
        }))
        .unwrap();
        assert_eq!(e.flow.as_deref(), Some("acme-sf"));
        assert_eq!(e.keys, vec!["100045"]);
        assert!(e.dry_run);
        assert_eq!(
            serde_json::from_value::<ReplayEvent>(json!({})).unwrap(),
            ReplayEvent::default()
        );
        assert!(serde_json::from_value::<ReplayEvent>(json!({"dryrun": true})).is_err());
    }
}
