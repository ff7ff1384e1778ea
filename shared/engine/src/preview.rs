//! `preview`: one SYSPRO record as a sync would write it now, beside the destination's
//! current values, without writing anything anywhere.
//!
//! The record is read, checked, derived and projected exactly as the poll prepares a row
//! before it is queued (the same [`EntityReader`], [`check_row`], [`add_derived_for`] and
//! [`DestinationView::project`]),
//! and handed to the sink as the sink pass hands it (a [`PendingWrite`] with the record's
//! state), whose `preview` builds the payload with the code `write` uses. So what a preview
//! shows is what a sync sends.
//!
//! [`DestinationView::project`]: mlc_core::view::DestinationView::project

use mlc_core::config::EntityConfig;
use mlc_core::event::RecordJson;
use mlc_core::ports::{PendingWrite, Sink, SinkError, Source};
use mlc_core::preview::Preview;
use mlc_core::state::StateKey;
use mlc_core::{ChangeEvent, Entity, Record, RecordKey, SourceVersion};
use serde::Serialize;

use crate::derive::{add_derived_for, record_key};
use crate::error::{EngineError, Result};
use crate::quality::{check_row, BadRow, SOURCE_DESTINATION};
use crate::read::EntityReader;
use crate::runtime::FlowRuntime;

/// The preview of one record of one flow.
#[derive(Debug, Clone, Serialize)]
pub struct RecordPreview {
    /// The flow.
    pub flow: String,
    /// The entity the key was found in.
    pub entity: Entity,
    /// The key's identity (`ACME01`, `ACME01|100045|I`).
    pub key: String,
    /// The destination (`salesforce`, `monday`).
    pub sink: String,
    /// What the sink would send and do.
    pub preview: Preview,
    /// SYSPRO's content equals what the poll last sent: the poll would not queue the record,
    /// so a destination that drifted stays as it is until the record changes in SYSPRO.
    pub unchanged_since_sent: bool,
}

/// Previews the record `key` (parts joined by `|`, tried as given, as SYSPRO matches keys) of
/// the flow's `entity`, or of the first of the flow's entities that has it.
pub async fn preview_record(
    rt: &FlowRuntime,
    source: &dyn Source,
    sink: &dyn Sink,
    entity: Option<Entity>,
    key: &str,
) -> Result<RecordPreview> {
    let flow = &rt.flow;
    let candidates: Vec<&EntityConfig> = match entity {
        Some(e) => vec![flow.entity(e).ok_or_else(|| EngineError::UnknownEntity {
            flow: flow.id.clone(),
            entity: e.to_string(),
        })?],
        None => flow.entities.iter().collect(),
    };
    for ec in &candidates {
        // A key of another shape would match on its first parts only (a customer code would
        // select that customer's invoices).
        if key.split('|').count() != ec.entity.key_fields().len() {
            continue;
        }
        match read_event(rt, source, ec, key).await? {
            Read::Event(event, open) => return preview_event(rt, sink, event, open).await,
            Read::Bad(bad) => return Ok(source_data_error(rt, sink, &bad)),
            Read::Missing => {}
        }
    }
    Err(EngineError::RecordNotFound {
        flow: flow.id.clone(),
        entity: candidates
            .iter()
            .map(|ec| format!("{} (key {})", ec.entity, ec.entity.key_fields().join("|")))
            .collect::<Vec<_>>()
            .join(" or "),
        key: key.to_string(),
    })
}

/// A record read for a preview.
enum Read {
    /// The event the poll would queue, and whether the record is open.
    Event(ChangeEvent, bool),
    /// The row cannot be synced as it is: the poll records a source-data error instead.
    Bad(BadRow),
    /// No such record.
    Missing,
}

/// Reads the record and prepares it as the poll does before queueing it: checked for values
/// that cannot be synced, derived fields from the flow's "today", then projected onto what
/// the destination reads.
async fn read_event(
    rt: &FlowRuntime,
    source: &dyn Source,
    ec: &EntityConfig,
    key: &str,
) -> Result<Read> {
    // Terms as the poll derives them (SYSPRO's TblArTerms when the flow says so).
    let flow = &crate::terms::effective_flow(&rt.flow, source).await?;
    let mut reader = EntityReader::new(flow, source, ec, false);
    let (rows, _) = reader.by_keys(&[key.to_string()]).await?;
    let Some((raw, mut row)) = rows
        .into_iter()
        .find_map(|r| Some((record_key(ec.entity, &r)?, r)))
    else {
        return Ok(Read::Missing);
    };
    if let Some(bad) = check_row(ec, &row) {
        return Ok(Read::Bad(bad));
    }
    let id = raw.id();
    let today = rt.clock.today(flow.tz());
    let open = add_derived_for(flow, ec.entity, &id, &mut row, today);
    reader.view.project(&mut row);
    let hash = RecordJson::seeded(&reader.view.fingerprint, &row).hash;
    Ok(Read::Event(event(rt, ec.entity, raw, hash, row), open))
}

/// A row the poll would not queue: what it would record instead.
fn source_data_error(rt: &FlowRuntime, sink: &dyn Sink, bad: &BadRow) -> RecordPreview {
    RecordPreview {
        flow: rt.flow.id.clone(),
        entity: bad.entity,
        key: bad.key.clone(),
        sink: sink.destination().to_string(),
        preview: Preview::refused(
            SOURCE_DESTINATION.to_string(),
            format!(
                "the poll records a source-data error instead of queueing it: {}",
                bad.message(&rt.flow.id)
            ),
        ),
        unchanged_since_sent: false,
    }
}

/// The event the poll would queue for the row (a version no sink has seen: a preview does not
/// take a poll sequence number).
fn event(
    rt: &FlowRuntime,
    entity: Entity,
    key: RecordKey,
    content_hash: String,
    record: Record,
) -> ChangeEvent {
    ChangeEvent {
        flow: rt.flow.id.clone(),
        entity,
        key,
        version: SourceVersion {
            poll_seq: 0,
            row_version: None,
        },
        content_hash,
        poll_id: format!("{}:preview", rt.flow.id),
        polled_at: rt.clock.now(),
        record,
        attempt: 0,
        failure: None,
        retry_since: None,
    }
}

/// Hands the event to the sink with the record's state, as the sink pass does.
async fn preview_event(
    rt: &FlowRuntime,
    sink: &dyn Sink,
    event: ChangeEvent,
    open: bool,
) -> Result<RecordPreview> {
    let flow = &rt.flow.id;
    let sk = StateKey::new(flow.clone(), event.entity, event.key.id());
    let prior = rt
        .state
        .get_many(std::slice::from_ref(&sk))
        .await?
        .into_iter()
        .find(|(k, _)| *k == sk)
        .map(|(_, s)| s);
    let unchanged_since_sent = rt
        .state
        .last_sent(std::slice::from_ref(&sk))
        .await?
        .into_iter()
        .any(|(k, last)| k == sk && last.hash == event.content_hash && last.open == open);
    let (entity, key) = (event.entity, event.key.id());
    let pw = PendingWrite { event, prior };
    let preview = sink
        .preview(std::slice::from_ref(&pw))
        .await
        .and_then(|mut v| match (v.pop(), v.is_empty()) {
            (Some(p), true) => Ok(p),
            _ => Err(SinkError::Transient(
                "the sink did not return exactly one preview".into(),
            )),
        })
        .map_err(|source| EngineError::Sink {
            flow: flow.clone(),
            source,
        })?;
    Ok(RecordPreview {
        flow: flow.clone(),
        entity,
        key,
        sink: sink.destination().to_string(),
        preview,
        unchanged_since_sent,
    })
}
