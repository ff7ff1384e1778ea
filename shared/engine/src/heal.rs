//! Nothing sent is forgotten: a record sent long ago and never applied — lost in flight, a
//! dead letter whose queue message expired, a retry horizon that ran out during an outage — is
//! found from record state and re-sent as SYSPRO has it now, once per business date. Records
//! whose last outcome is a data error (a mapping or a value the destination refuses) stay
//! dead-lettered: sending them again changes nothing until SYSPRO or the flows file does.

use chrono::{DateTime, Utc};
use mlc_core::state::QUEUE_DESTINATION;
use mlc_core::{Entity, SyncOutcome};

use crate::error::Result;
use crate::quality::SOURCE_DESTINATION;
use crate::runtime::FlowRuntime;
use crate::sink::RETRIES_EXHAUSTED;

/// Records looked at per entity and business date.
const MAX_PER_DAY: usize = 5_000;

/// Keys of `entity` sent before `now - settings.resend_unapplied_after_hours`, never applied,
/// and not held back by a data error. (A record this poll sends again has a new sent mark, so
/// it is not among them.)
pub async fn keys_to_resend(
    rt: &FlowRuntime,
    entity: Entity,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let hours = i64::from(rt.settings.resend_unapplied_after_hours);
    let before = now - chrono::Duration::hours(hours);
    let stale = rt
        .state
        .unapplied(&rt.flow.id, &[entity], before, MAX_PER_DAY)
        .await?;
    let mut keys = Vec::new();
    for u in stale {
        if held_by_data_error(rt, &u.key.key).await? {
            continue;
        }
        keys.push(u.key.key);
    }
    Ok(keys)
}

/// True when the record's last destination outcome is a permanent failure other than an
/// exhausted retry horizon.
async fn held_by_data_error(rt: &FlowRuntime, key: &str) -> Result<bool> {
    let history = rt.audit.history(Some(&rt.flow.id), key).await?;
    let last = history
        .iter()
        .rev()
        .find(|e| e.destination != QUEUE_DESTINATION && e.destination != SOURCE_DESTINATION);
    Ok(last.is_some_and(|e| {
        e.outcome == SyncOutcome::FailedPermanent
            && !e
                .error_chain
                .iter()
                .any(|l| l.message.starts_with(RETRIES_EXHAUSTED))
    }))
}
