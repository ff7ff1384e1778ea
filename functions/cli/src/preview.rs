//! `ml-connector preview`: one record as a sync would write it now, field by field, beside the
//! destination's current value, and what the sync would do. Reads SYSPRO and the destination;
//! writes nothing anywhere. The engine and the sink do the work (the same code paths as a
//! sync), this file only prints.

use mlc_core::preview::{FieldPreview, PreviewAction};
use mlc_core::Entity;
use mlc_engine::preview::{preview_record, RecordPreview};
use mlc_engine::EngineError;
use serde::Serialize;
use serde_json::Value;

use crate::app::{App, AppError};
use crate::commands::error_chain;
use crate::output::{print_json, print_table};

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct JsonPreview<'a> {
    flow: &'a str,
    entity: Entity,
    key: &'a str,
    sink: &'a str,
    destination: &'a str,
    destination_id: Option<&'a str>,
    /// `create`, `update`, `nothing` or `refuse`.
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
    unchanged_since_sent: bool,
    fields: &'a [FieldPreview],
}

/// Runs the command: 0 when the preview was shown, 2 for an unknown flow or entity, 1 when
/// SYSPRO or the destination could not be read (or has no such record).
pub async fn run(
    app: &App,
    flow: &str,
    key: &str,
    entity: Option<&str>,
    json: bool,
) -> Result<u8, AppError> {
    let entity = entity
        .map(|e| e.parse::<Entity>())
        .transpose()
        .map_err(|e| AppError::Config(e.to_string()))?;
    let flow = app
        .flows(Some(flow))?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Config(format!("no flow {flow:?} in the configuration")))?;
    let rt = app.runtime(flow.clone());
    let source = app.source(&flow)?;
    let sink = app.sink(&flow)?;
    let result = preview_record(&rt, source.as_ref(), sink.as_ref(), entity, key).await;
    source.close().await;
    let r = match result {
        Ok(r) => r,
        Err(e @ EngineError::UnknownEntity { .. }) => return Err(AppError::Config(e.to_string())),
        Err(e) => return Err(AppError::Runtime(error_chain(&e))),
    };
    if json {
        print_json(&as_json(&r));
    } else {
        print_text(&r);
    }
    Ok(0)
}

fn action_name(a: &PreviewAction) -> &'static str {
    match a {
        PreviewAction::Create => "create",
        PreviewAction::Update { .. } => "update",
        PreviewAction::Refuse { .. } => "refuse",
        _ => "nothing",
    }
}

fn as_json(r: &RecordPreview) -> JsonPreview<'_> {
    let p = &r.preview;
    JsonPreview {
        flow: &r.flow,
        entity: r.entity,
        key: &r.key,
        sink: &r.sink,
        destination: &p.destination,
        destination_id: p.destination_id.as_deref(),
        action: action_name(&p.action),
        reason: match &p.action {
            PreviewAction::Refuse { reason } => Some(reason),
            _ => None,
        },
        note: p.note.as_deref(),
        unchanged_since_sent: r.unchanged_since_sent,
        fields: &p.fields,
    }
}

/// A value as people read it: text as is, numbers as their exact decimal text, blank as
/// nothing, anything else as compact JSON.
fn show(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// The sentence saying what a sync would do.
fn verdict(r: &RecordPreview) -> String {
    let what = match &r.preview.action {
        PreviewAction::Create => "would create".to_string(),
        PreviewAction::Update { fields } => format!(
            "would update {} field{}: {}",
            fields.len(),
            if fields.len() == 1 { "" } else { "s" },
            fields.join(", ")
        ),
        PreviewAction::Refuse { reason } => format!("would refuse it: {reason}"),
        _ => return "nothing to write".to_string(),
    };
    if r.unchanged_since_sent && !matches!(r.preview.action, PreviewAction::Refuse { .. }) {
        // The poll drops records whose content equals what it last sent.
        format!(
            "{what}, once it is queued again (SYSPRO has not changed since it was last sent, so the next sync skips it; `resync --flow {} --entity {} --key '{}'` writes it now)",
            r.flow, r.entity, r.key
        )
    } else {
        what
    }
}

fn print_text(r: &RecordPreview) {
    let p = &r.preview;
    println!(
        "flow {} · {} {} → {} {}{}",
        r.flow,
        r.entity,
        r.key,
        r.sink,
        p.destination,
        p.destination_id
            .as_deref()
            .map(|id| format!(" {id}"))
            .unwrap_or_default()
    );
    if !p.fields.is_empty() {
        let rows: Vec<Vec<String>> = p
            .fields
            .iter()
            .map(|f| {
                vec![
                    f.field.clone(),
                    show(&f.new),
                    f.current
                        .as_ref()
                        .map(show)
                        .unwrap_or_else(|| "(no record)".into()),
                    if f.changed { "yes" } else { "no" }.into(),
                ]
            })
            .collect();
        print_table(
            &["field", "SYSPRO → new value", "destination now", "changes?"],
            &rows,
        );
    }
    if let Some(n) = &p.note {
        println!("note: {n}");
    }
    println!("{}", verdict(r));
}
