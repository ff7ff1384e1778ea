//! `ml-connector resync --flow F [--entity E] [--key K]`: re-sends records as SYSPRO has them
//! now, whatever was sent before, and delivers them. For a destination edited by hand, a
//! record deleted there, or a doubt. The destination writes them even when their content is
//! what it last applied; the next ordinary poll sends nothing more.

use std::str::FromStr;

use mlc_core::Entity;
use mlc_engine::local::{drain, DrainOptions};
use mlc_engine::{poll_flow_with, PollOptions, PollReport, Resync};
use serde::Serialize;

use crate::app::{App, AppError};
use crate::commands::error_chain;
use crate::output::{print_json, print_table};

/// What `resync` did.
#[derive(Debug, Serialize)]
struct ResyncSummary {
    flow: String,
    entity: Option<String>,
    key: Option<String>,
    poll: PollReport,
    created: usize,
    updated: usize,
    unchanged: usize,
    retried: usize,
    dead_lettered: usize,
}

/// Runs the command.
pub async fn run(
    app: &App,
    flow_id: &str,
    entity: Option<&str>,
    key: Option<&str>,
    json: bool,
) -> Result<u8, AppError> {
    let flow = app
        .flows(Some(flow_id))?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Config(format!("no flow {flow_id:?} in the flows file")))?;
    let names = || {
        flow.entities
            .iter()
            .map(|e| e.entity.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let entity = match entity {
        None => None,
        Some(e) => {
            let parsed = Entity::from_str(e).map_err(|err| AppError::Config(err.to_string()))?;
            if flow.entity(parsed).is_none() {
                return Err(AppError::Config(format!(
                    "flow {flow_id} does not read {e} (it reads {})",
                    names()
                )));
            }
            Some(parsed)
        }
    };
    if key.is_some() && entity.is_none() && flow.entities.len() > 1 {
        return Err(AppError::Config(format!(
            "--key needs --entity: flow {flow_id} reads {}",
            names()
        )));
    }
    let entity = entity.or_else(|| key.and(flow.entities.first().map(|e| e.entity)));
    let opts = PollOptions {
        resync: Some(Resync {
            entity,
            key: key.map(str::to_string),
        }),
        ..Default::default()
    };
    let owner = format!("cli-resync-{}", std::process::id());
    let rt = app.runtime(flow.clone());
    let source = app.source(&flow)?;
    let poll = poll_flow_with(&rt, source.as_ref(), &owner, opts).await;
    source.close().await;
    let poll = poll.map_err(|e| AppError::Runtime(error_chain(&e)))?;
    if poll.skipped {
        return Err(AppError::Runtime(format!(
            "flow {flow_id}: another poll holds the lease; try again when it has finished"
        )));
    }
    let sinks = app.sink_set(flow.destination_name())?;
    let queue = app.queue_for(&flow);
    let delivered = drain(queue.as_ref(), &sinks, &DrainOptions::default())
        .await
        .map_err(|e| AppError::Runtime(error_chain(&e)))?;
    let summary = ResyncSummary {
        flow: flow.id.clone(),
        entity: entity.map(|e| e.to_string()),
        key: key.map(str::to_string),
        created: delivered.created,
        updated: delivered.updated,
        unchanged: delivered.unchanged,
        retried: delivered.retried,
        dead_lettered: delivered.dead_lettered,
        poll,
    };
    if json {
        print_json(&summary);
    } else {
        print(&summary);
    }
    let found = summary.poll.queued() > 0;
    Ok(if summary.dead_lettered > 0 {
        3
    } else if !found && key.is_some() {
        // A key SYSPRO does not have: said, and a failure for scripts.
        eprintln!(
            "{flow_id}: {} {} not found in SYSPRO",
            summary.entity.as_deref().unwrap_or("record"),
            key.unwrap_or_default()
        );
        1
    } else {
        0
    })
}

fn print(s: &ResyncSummary) {
    let rows: Vec<Vec<String>> = s
        .poll
        .entities
        .iter()
        .map(|e| {
            vec![
                e.entity.clone(),
                e.rows_read.to_string(),
                e.queued.to_string(),
            ]
        })
        .collect();
    print_table(&["entity", "rows read", "re-sent"], &rows);
    println!(
        "{}: created {} · updated {} · unchanged {} · retried {} · dead-lettered {}",
        s.flow, s.created, s.updated, s.unchanged, s.retried, s.dead_lettered
    );
}
