//! Loads and validates flow configuration (TOML) with file, line and field.
//!
//! [`load`] / [`parse`] turn a flows file into [`mlc_core::config::ConnectorConfig`] or a
//! [`ConfigError`] listing **every** problem, one per line, as `file:line: path: message`
//! (`flows.toml:14: flows[1].entities[0].mapping.Amount: source field "_DueDat" is not a derived
//! field …`). Three passes, each reporting all it finds:
//! 1. syntax: toml's recoverable parser, with line numbers;
//! 2. shape: a walk of the spanned document against the shape of the core types (unknown keys,
//!    missing keys, wrong types, unknown entities, inline secrets), because serde stops at the
//!    first error; then serde deserialises each flow, with the mistakes already reported
//!    patched out (unknown keys dropped, bad optional values defaulted) so that pass 3 still
//!    checks the rest of it — only a flow missing something essential is skipped;
//! 3. meaning: the rules of the domain (ids, time zones, schedules, endpoints, change detection,
//!    mapping field names, destination-specific rules). Which columns exist is the server's
//!    `$metadata`, checked by `ping` and by the reader: offline, a column name is refused only
//!    when it cannot be one.
//!
//! Secrets are references only (`env:NAME` locally, a Secrets Manager ARN in AWS); no message
//! ever repeats a value found where a secret reference belongs.
//!
//! Module map:
//! - [`error`]: `ConfigError`, `ConfigProblem`
//! - `path`: document paths and their line numbers; `problems`: the collector
//! - `schema`: the structural walk (the core types' shape as data)
//! - `checks`: the semantic checks
//! - [`fields`]: entity date columns, source field names and dotted lookups (`Customer.Name`)
//! - [`check_endpoint`], [`schedule_duration`], [`eventbridge_rate`], [`check_flow_id`]:
//!   helpers other crates reuse

mod checks;
mod endpoint;
pub mod error;
pub mod fields;
mod path;
mod problems;
mod schedule;
mod schema;

use std::path::Path as FsPath;

use mlc_core::config::{ConnectorConfig, FlowConfig, Settings};
use toml::de::DeTable;

pub use checks::{
    check_flow_id, MAX_PAGE_SIZE, MIN_SALESFORCE_API, MONDAY_COLUMN_TYPES, SALESFORCE_ENTITIES,
    SQS_MAX_MESSAGE_BYTES, STAGE_KEYS,
};
pub use endpoint::check_endpoint;
pub use error::{ConfigError, ConfigProblem, Result};
pub use schedule::{eventbridge_rate, schedule_duration};

use path::{Located, Path, Seg};
use problems::Problems;

/// Reads and validates a configuration file. Problems name the file as `path` is written.
pub fn load(path: &FsPath) -> Result<ConnectorConfig> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&name, &text),
        Err(e) => Err(ConfigError {
            problems: vec![ConfigProblem {
                file: name,
                line: 0,
                path: String::new(),
                message: format!("cannot read the configuration file: {e}"),
            }],
            source: Some(e),
        }),
    }
}

/// Parses and validates configuration text; `file_name` only labels the problems.
pub fn parse(file_name: &str, text: &str) -> Result<ConnectorConfig> {
    // Pass 1: syntax.
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let doc = Located::new(text, &root);
        let problems = syntax
            .iter()
            .map(|e| ConfigProblem {
                file: file_name.to_string(),
                line: e.span().map(|s| doc.line_at(s.start)).unwrap_or(1),
                path: String::new(),
                message: format!("syntax error: {}", e.message().trim_end_matches('\n')),
            })
            .collect();
        return Err(ConfigError::new(problems));
    }
    let doc = Located::new(text, &root);

    // Pass 2: shape, with repairs so the rest of a flow can still be read.
    let mut shape = Problems::new(file_name, &doc);
    let mut fixes = Vec::new();
    let (settings_ok, flows_ok) = schema::walk_root(&root, &mut shape, &mut fixes);

    let mut table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            // The same parser accepted the text above: not expected, still reported.
            shape.at(
                &Path::root(),
                format!("cannot read the document: {}", e.message()),
            );
            return Err(ConfigError::new(shape.list));
        }
    };
    for fix in &fixes {
        apply_fix(&mut table, fix);
    }

    // Pass 3: meaning, on everything that could be read.
    let mut sem = Problems::new(file_name, &doc);
    let mut settings = Settings::default();
    if let Some(v) = table.get("settings") {
        if settings_ok {
            match v.clone().try_into::<Settings>() {
                Ok(s) => {
                    checks::check_settings(&s, &mut sem);
                    settings = s;
                }
                Err(e) => shape.at(&Path::root().key("settings"), e.message().to_string()),
            }
        }
    }
    let mut flows = Vec::new();
    let mut ids = Vec::new();
    if let Some(list) = table.get("flows").and_then(|f| f.as_array()) {
        for (i, v) in list.iter().enumerate() {
            let fp = Path::root().key("flows").index(i);
            if let Some(id) = v.get("id").and_then(|id| id.as_str()) {
                ids.push((i, id.to_string()));
            }
            if !flows_ok.get(i).copied().unwrap_or(false) {
                continue;
            }
            match v.clone().try_into::<FlowConfig>() {
                Ok(flow) => {
                    checks::check_flow(i, &flow, &mut sem);
                    flows.push(flow);
                }
                // The walk mirrors the core types, so this is a gap in the walk: still report it.
                Err(e) => shape.at(&fp, format!("cannot read the flow: {}", e.message())),
            }
        }
    }
    checks::check_duplicate_ids(&ids, &mut sem);

    // A problem already reported by the walk is not reported again by the checks (a repaired
    // value would only produce a second, misleading message).
    let shape_paths: Vec<String> = shape.list.iter().map(|p| p.path.clone()).collect();
    let tainted: Vec<String> = fixes
        .iter()
        .filter(|f| f.taints)
        .map(|f| f.path.parent().to_string())
        .collect();
    let mut out = shape;
    out.list.extend(sem.list.into_iter().filter(|p| {
        !shape_paths
            .iter()
            .any(|s| within(&p.path, s) || within(s, &p.path))
            && !tainted.iter().any(|t| within(&p.path, t))
    }));

    if out.len() > 0 {
        return Err(ConfigError::new(out.list));
    }
    Ok(ConnectorConfig { settings, flows })
}

/// True when `path` is `prefix` or lies under it.
fn within(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// Applies one repair to the plain document.
fn apply_fix(table: &mut toml::Table, fix: &schema::Fix) {
    let Some((last, parents)) = fix.path.0.split_last() else {
        return;
    };
    let mut cur: Option<&mut toml::Value> = None;
    for seg in parents {
        let next = match (seg, cur) {
            (Seg::Key(k), None) => table.get_mut(k),
            (Seg::Key(k), Some(v)) => v.get_mut(k.as_str()),
            (Seg::Index(i), Some(v)) => v.get_mut(*i),
            (Seg::Index(_), None) => None,
        };
        let Some(next) = next else { return };
        cur = Some(next);
    }
    let (Seg::Key(k), Some(toml::Value::Table(t))) = (last, cur) else {
        return;
    };
    match &fix.repair {
        schema::Repair::Remove => {
            t.remove(k);
        }
        schema::Repair::Replace(v) => {
            t.insert(k.clone(), v.clone());
        }
    }
}
