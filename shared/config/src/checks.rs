//! Semantic checks on flows that passed the structural walk: the rules serde cannot express.

use std::collections::{BTreeMap, BTreeSet};

use mlc_core::config::{
    ChangeDetection, Destination, EntityConfig, FieldMapping, FlowConfig, InitialScope,
    MappingRule, MondayConnection, ReadPath, SalesforceConnection, Settings, SysproAuth, ValueKind,
};
use mlc_core::mapping::{source_fields, template_fields};
use mlc_core::Entity;

use crate::endpoint::check_endpoint;
use crate::fields::{check_source_field, date_columns, is_column_name};
use crate::path::Path;
use crate::problems::Problems;
use crate::schedule::schedule_duration;

/// SQS's message size limit.
pub const SQS_MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SYSPRO OData's largest page.
pub const MAX_PAGE_SIZE: u32 = 5000;
/// The oldest Salesforce API version we speak (v45 and older answer upserts with 204 and no body).
pub const MIN_SALESFORCE_API: u32 = 46;
/// Entities a Salesforce flow can take (Accounts, Opportunities, payment activity).
pub const SALESFORCE_ENTITIES: [Entity; 3] =
    [Entity::ArCustomer, Entity::ArInvoice, Entity::ArInvoicePay];
/// Monday.com column types a mapping may write.
pub const MONDAY_COLUMN_TYPES: [&str; 9] = [
    "text",
    "long_text",
    "numbers",
    "date",
    "status",
    "dropdown",
    "email",
    "phone",
    "link",
];
/// Invoice statuses a `stage_map` may map, and those it must map when the flow has ArInvoice.
pub const STAGE_KEYS: [&str; 4] = ["open", "overdue", "paid", "removed"];
const REQUIRED_STAGES: [&str; 3] = ["open", "overdue", "paid"];

/// Checks a flow id: 1..64 of lowercase letters, digits and '-' (it names AWS resources).
pub fn check_flow_id(id: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "flow id {id:?} must be 1 to 64 lowercase letters, digits or '-' (it names AWS resources)"
        ))
    }
}

pub fn check_settings(s: &Settings, out: &mut Problems<'_>) {
    let p = Path::root().key("settings");
    if s.state_path.trim().is_empty() {
        out.at(&p.key("state_path"), "must not be empty");
    }
    if s.resend_unapplied_after_hours <= s.retry_horizon_hours {
        out.at(
            &p.key("resend_unapplied_after_hours"),
            format!(
                "must be longer than retry_horizon_hours ({}): a record still being retried must not be sent twice",
                s.retry_horizon_hours
            ),
        );
    }
    if !(1..=MAX_RETRY_HORIZON_HOURS).contains(&s.retry_horizon_hours) {
        out.at(
            &p.key("retry_horizon_hours"),
            format!("must be from 1 to {MAX_RETRY_HORIZON_HOURS} (SQS keeps a message 14 days; a day is left for replay)"),
        );
    }
    if s.max_attempts == 0 {
        out.at(&p.key("max_attempts"), "must be at least 1");
    }
    if s.max_message_bytes == 0 || s.max_message_bytes > SQS_MAX_MESSAGE_BYTES {
        out.at(
            &p.key("max_message_bytes"),
            format!("must be from 1 to {SQS_MAX_MESSAGE_BYTES} (256 KiB, the SQS message limit)"),
        );
    }
    if s.max_batch_records == 0 {
        out.at(&p.key("max_batch_records"), "must be at least 1");
    }
}

/// Flow ids must be unique (they name schedules, state and audit).
pub fn check_duplicate_ids(ids: &[(usize, String)], out: &mut Problems<'_>) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, id) in ids {
        match seen.get(id.as_str()) {
            Some(first) => out.at(
                &Path::root().key("flows").index(*i).key("id"),
                format!("duplicate flow id {id:?} (also used by flows[{first}])"),
            ),
            None => {
                seen.insert(id, *i);
            }
        }
    }
}

pub fn check_flow(i: usize, flow: &FlowConfig, out: &mut Problems<'_>) {
    let p = Path::root().key("flows").index(i);
    if let Err(e) = check_flow_id(&flow.id) {
        out.at(&p.key("id"), e);
    }
    if flow.timezone.parse::<chrono_tz::Tz>().is_err() {
        out.at(
            &p.key("timezone"),
            format!(
                "{:?} is not an IANA time zone (e.g. \"Africa/Johannesburg\", \"UTC\")",
                flow.timezone
            ),
        );
    }
    if let Err(e) = schedule_duration(&flow.schedule) {
        out.at(&p.key("schedule"), e);
    }
    check_syspro(flow, &p.key("syspro"), out);

    let ents = p.key("entities");
    if flow.entities.is_empty() {
        out.at(&ents, "a flow needs at least one entity");
    }
    let mut seen: BTreeMap<Entity, usize> = BTreeMap::new();
    for (k, e) in flow.entities.iter().enumerate() {
        let ep = ents.index(k);
        if let Some(first) = seen.get(&e.entity) {
            out.at(
                &ep.key("entity"),
                format!(
                    "{} appears twice in this flow (also entities[{first}])",
                    e.entity
                ),
            );
        } else {
            seen.insert(e.entity, k);
        }
        check_entity(flow, e, &ep, out);
    }

    let dp = p.key("destination");
    match &flow.destination {
        Destination::Salesforce(sf) => check_salesforce(flow, sf, &dp, out),
        Destination::Monday(m) => check_monday(m, &dp, out),
    }
}

fn check_syspro(flow: &FlowConfig, p: &Path, out: &mut Problems<'_>) {
    let s = &flow.syspro;
    if let Err(e) = check_endpoint(&s.base_url) {
        out.at(&p.key("base_url"), e);
    }
    for (key, v) in [("odata_path", &s.odata_path), ("enet_path", &s.enet_path)] {
        if !v.starts_with('/') {
            out.at(&p.key(key), "must start with '/'");
        }
    }
    for (key, v) in [("company", &s.company), ("operator", &s.operator)] {
        if v.trim().is_empty() {
            out.at(&p.key(key), "must not be empty");
        }
    }
    match (s.auth, s.read_path) {
        (SysproAuth::Session, ReadPath::Odata) => out.at(
            &p.key("auth"),
            "auth = \"session\" cannot be used with read_path = \"odata\": SYSPRO's OData service \
             authenticates with HTTP Basic (operator and OData password); e.net Logon sessions \
             belong to read_path = \"enet\"",
        ),
        (SysproAuth::Basic, ReadPath::Enet) => out.at(
            &p.key("read_path"),
            "read_path = \"enet\" needs auth = \"session\": e.net calls authenticate with a Logon \
             session token, not HTTP Basic",
        ),
        _ => {}
    }
    if s.timeout_secs == 0 {
        out.at(&p.key("timeout_secs"), "must be at least 1");
    }
    if s.page_size == 0 || s.page_size > MAX_PAGE_SIZE {
        out.at(
            &p.key("page_size"),
            format!("must be from 1 to {MAX_PAGE_SIZE} (SYSPRO OData returns at most 5,000 rows a page)"),
        );
    }
}

/// Status-rule overrides apply to the entities whose status they decide.
/// The longest retry horizon: SQS keeps messages 14 days, and a dead letter needs time to be
/// seen and replayed.
const MAX_RETRY_HORIZON_HOURS: u32 = 13 * 24;

fn check_status_rules(e: &EntityConfig, p: &Path, out: &mut Problems<'_>) {
    let r = &e.status_rules;
    let entity = e.entity;
    if let Some(col) = &r.due_date_from {
        if !entity.is_invoice() {
            out.at(
                &p.key("due_date_from"),
                format!("due_date_from is for invoices (ArInvoice, ApInvoice), not {entity}"),
            );
        } else if !is_column_name(col) {
            out.at(
                &p.key("due_date_from"),
                format!("{col:?} cannot be a SYSPRO column name (ASCII letters, digits and '_', starting with a letter)"),
            );
        }
    }
    if r.credit_notes_fall_overdue && entity != Entity::ArInvoice {
        out.at(
            &p.key("credit_notes_fall_overdue"),
            format!("credit notes are ArInvoice documents, not {entity}"),
        );
    }
    if !r.order_status.is_empty() && entity != Entity::PorMasterHdr {
        out.at(
            &p.key("order_status"),
            format!("order_status is for PorMasterHdr (OrderStatus codes), not {entity}"),
        );
    }
    for (code, label) in &r.order_status {
        if label.trim().is_empty() {
            out.at(
                &p.key("order_status").key(code),
                "the status label must not be blank",
            );
        }
    }
}

/// `initial_scope` narrows the first read of an entity with a balance; `since` goes with
/// `"since"` only. A full scan reads everything every time, so it cannot keep a scope.
fn check_scope(e: &EntityConfig, p: &Path, out: &mut Problems<'_>) {
    let entity = e.entity;
    match (e.initial_scope, e.since) {
        (InitialScope::Since, None) => out.at(
            &p.key("since"),
            "initial_scope = \"since\" needs since = \"YYYY-MM-DD\" (the first business date to take)",
        ),
        (InitialScope::All | InitialScope::Open, Some(_)) => out.at(
            &p.key("since"),
            "since is only used with initial_scope = \"since\"",
        ),
        _ => {}
    }
    if e.initial_scope != InitialScope::All {
        if !entity.is_invoice() {
            out.at(
                &p.key("initial_scope"),
                format!("initial_scope = {:?} needs an entity with a balance (ArInvoice, ApInvoice), not {entity}", e.initial_scope.as_str()),
            );
        } else if e.change_detection == ChangeDetection::FullScan {
            out.at(
                &p.key("initial_scope"),
                "a full scan reads every row at every poll, so it cannot keep an initial scope: use rowversion, date-window or open-items",
            );
        }
    }
}

fn check_entity(flow: &FlowConfig, e: &EntityConfig, p: &Path, out: &mut Problems<'_>) {
    let entity = e.entity;
    match (e.change_detection, &e.date_field) {
        (ChangeDetection::DateWindow, None) => out.at(
            &p.key("date_field"),
            format!(
                "change_detection = \"date-window\" needs a date_field (a date column of {entity}: {})",
                list_or_none(date_columns(entity))
            ),
        ),
        (ChangeDetection::DateWindow, Some(f)) if !date_columns(entity).contains(&f.as_str()) => {
            out.at(
                &p.key("date_field"),
                format!(
                    "{f:?} is not a date column of {entity} (date columns: {})",
                    list_or_none(date_columns(entity))
                ),
            )
        }
        (ChangeDetection::DateWindow, Some(_)) => {}
        (_, Some(_)) => out.at(
            &p.key("date_field"),
            "date_field is only used with change_detection = \"date-window\"",
        ),
        (_, None) => {}
    }
    if e.change_detection == ChangeDetection::OpenItems && !entity.is_invoice() {
        out.at(
            &p.key("change_detection"),
            format!(
                "open-items needs an entity with a balance (ArInvoice, ApInvoice), not {entity}"
            ),
        );
    }

    check_scope(e, p, out);
    check_status_rules(e, &p.key("status_rules"), out);

    let monday = matches!(flow.destination, Destination::Monday(_));
    for (name, rule) in &e.mapping {
        check_mapping(entity, rule, &p.key("mapping").key(name), monday, out);
    }

    match &flow.destination {
        Destination::Salesforce(_) => {
            if !SALESFORCE_ENTITIES.contains(&entity) {
                out.at(
                    &p.key("entity"),
                    format!(
                        "a Salesforce flow takes ArCustomer, ArInvoice or ArInvoicePay, not {entity} \
                         (send it to a Monday.com board instead)"
                    ),
                );
            }
            if e.monday.is_some() {
                out.at(
                    &p.key("monday"),
                    "a Monday.com board target on a Salesforce flow",
                );
            }
            if let Some(t) = &e.salesforce {
                let tp = p.key("salesforce");
                for (key, v) in [
                    ("object", &t.object),
                    ("external_id_field", &t.external_id_field),
                ] {
                    if v.trim().is_empty() {
                        out.at(&tp.key(key), "must not be empty");
                    }
                }
            }
        }
        Destination::Monday(_) => {
            if e.salesforce.is_some() {
                out.at(
                    &p.key("salesforce"),
                    "a Salesforce target on a Monday.com flow",
                );
            }
            let tp = p.key("monday");
            match &e.monday {
                None => out.at(
                    &tp,
                    "a Monday.com flow needs a board target for each entity \
                     ([flows.entities.monday] with board_id, item_name, id_column)",
                ),
                Some(t) => {
                    if t.board_id.is_empty() || !t.board_id.chars().all(|c| c.is_ascii_digit()) {
                        out.at(
                            &tp.key("board_id"),
                            format!(
                                "board id {:?} must be numeric (the number in the board's URL)",
                                t.board_id
                            ),
                        );
                    }
                    if t.item_name.trim().is_empty() {
                        out.at(&tp.key("item_name"), "must not be empty");
                    } else {
                        check_template(entity, &t.item_name, &tp.key("item_name"), out);
                    }
                    if t.id_column.trim().is_empty() {
                        out.at(&tp.key("id_column"), "must not be empty");
                    }
                    if t.group_id.as_deref().is_some_and(|g| g.trim().is_empty()) {
                        out.at(
                            &tp.key("group_id"),
                            "must not be empty (leave it out for the board's top group)",
                        );
                    }
                }
            }
        }
    }
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn check_mapping(
    entity: Entity,
    rule: &FieldMapping,
    p: &Path,
    monday: bool,
    out: &mut Problems<'_>,
) {
    let r: &MappingRule = match rule {
        FieldMapping::Field(f) => {
            if let Err(e) = check_source_field(entity, f, "source field") {
                out.at(p, e);
            }
            return;
        }
        FieldMapping::Rule(r) => r,
    };
    let sources: Vec<&str> = [
        ("from", r.from.is_some()),
        ("concat", r.concat.is_some()),
        ("template", r.template.is_some()),
        ("value", r.value.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(n, _)| *n)
    .collect();
    if sources.len() != 1 {
        let found = if sources.is_empty() {
            "none".to_string()
        } else {
            sources.join(" and ")
        };
        out.at(
            p,
            format!("a mapping rule needs exactly one of from, concat, template or value (found {found})"),
        );
    }
    if let Some(f) = &r.from {
        if let Err(e) = check_source_field(entity, f, "source field") {
            out.at(&p.key("from"), e);
        }
    }
    match &r.concat {
        Some(c) if c.is_empty() => out.at(&p.key("concat"), "concat needs at least one field"),
        Some(c) => {
            for (j, f) in c.iter().enumerate() {
                if let Err(e) = check_source_field(entity, f, "source field") {
                    out.at(&p.key("concat").index(j), e);
                }
            }
        }
        None => {
            if r.separator.is_some() {
                out.at(&p.key("separator"), "separator is only used with concat");
            }
        }
    }
    if let Some(t) = &r.template {
        check_template(entity, t, &p.key("template"), out);
    }
    if let Some(labels) = &r.labels {
        check_labels(rule, labels, &p.key("labels"), out);
    }
    if let (Some(_), Some(kind)) = (&r.map, r.kind) {
        if kind != ValueKind::Text {
            out.at(
                &p.key("map"),
                format!(
                    "map produces text: it cannot be combined with type = \"{}\"",
                    kind_name(kind)
                ),
            );
        }
    }
    if r.max_len == Some(0) {
        out.at(&p.key("max_len"), "must be at least 1");
    }
    if let Some(ct) = &r.column_type {
        if !monday {
            out.at(
                &p.key("column_type"),
                "column_type is only used by Monday.com flows",
            );
        } else if !MONDAY_COLUMN_TYPES.contains(&ct.as_str()) {
            out.at(
                &p.key("column_type"),
                format!(
                    "unknown Monday.com column type {ct:?} (expected one of {})",
                    MONDAY_COLUMN_TYPES.join(", ")
                ),
            );
        }
    }
}

/// `labels`: each key a source field the rule reads, each label map non-empty, its values
/// written as they are compared (trimmed, not blank).
fn check_labels(
    rule: &FieldMapping,
    labels: &BTreeMap<String, BTreeMap<String, String>>,
    p: &Path,
    out: &mut Problems<'_>,
) {
    if labels.is_empty() {
        out.at(
            p,
            "labels needs at least one source field (labels = { Field = { value = \"label\" } })",
        );
        return;
    }
    let reads: BTreeSet<String> = source_fields(rule).into_iter().collect();
    for (field, known) in labels {
        let fp = p.key(field);
        if !reads.contains(field) {
            let read = if reads.is_empty() {
                "none: labels apply to the fields of from, concat and template".to_string()
            } else {
                reads.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            out.at(
                &fp,
                format!(
                    "labels for {field:?}, a source field this rule does not read (it reads: {read})"
                ),
            );
        }
        if known.is_empty() {
            out.at(
                &fp,
                format!("the labels of {field:?} are empty: give at least one value = \"label\""),
            );
        }
        for value in known.keys() {
            if value.trim().is_empty() {
                out.at(
                    &fp.key(value),
                    "a blank value is never labelled (it stays blank): leave it out, or use default",
                );
            } else if value.trim() != value {
                out.at(
                    &fp.key(value),
                    format!(
                        "values are compared trimmed: write {:?}, not {value:?}",
                        value.trim()
                    ),
                );
            }
        }
    }
}

fn kind_name(k: ValueKind) -> &'static str {
    match k {
        ValueKind::Text => "text",
        ValueKind::Number => "number",
        ValueKind::Date => "date",
        ValueKind::Bool => "bool",
    }
}

/// Checks a template's `{Field}` placeholders against the entity.
fn check_template(entity: Entity, template: &str, p: &Path, out: &mut Problems<'_>) {
    let fields = template_fields(template);
    if template.matches('{').count() != fields.len()
        || template.matches('}').count() != fields.len()
    {
        out.at(p, "template has an unbalanced '{' or '}'");
    }
    let mut reported = BTreeSet::new();
    for f in fields {
        if f.is_empty() {
            out.at(p, "template has an empty placeholder {}");
        } else if let Err(e) = check_source_field(entity, &f, "template placeholder") {
            if reported.insert(f) {
                out.at(p, e);
            }
        }
    }
}

fn check_salesforce(
    flow: &FlowConfig,
    sf: &SalesforceConnection,
    p: &Path,
    out: &mut Problems<'_>,
) {
    match check_endpoint(&sf.my_domain_url) {
        Err(e) => out.at(&p.key("my_domain_url"), e),
        Ok(u) => {
            let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
            if host == "login.salesforce.com" || host == "test.salesforce.com" {
                out.at(
                    &p.key("my_domain_url"),
                    "the client credentials flow needs the org's My Domain \
                     (https://<domain>.my.salesforce.com); login and test.salesforce.com refuse it",
                );
            }
        }
    }
    if let Some(u) = &sf.instance_url {
        if let Err(e) = check_endpoint(u) {
            out.at(&p.key("instance_url"), e);
        }
    }
    if let Err(e) = check_sf_version(&sf.api_version) {
        out.at(&p.key("api_version"), e);
    }
    if sf.session_timeout_minutes == 0 {
        out.at(&p.key("session_timeout_minutes"), "must be at least 1");
    }
    if sf.timeout_secs == 0 {
        out.at(&p.key("timeout_secs"), "must be at least 1");
    }
    if sf.daily_reserve_percent > 100 {
        out.at(&p.key("daily_reserve_percent"), "must be from 0 to 100");
    }
    let sm = p.key("stage_map");
    for (k, v) in &sf.stage_map {
        if !STAGE_KEYS.contains(&k.as_str()) {
            out.at(
                &sm.key(k),
                format!(
                    "unknown invoice status {k:?} (expected one of {})",
                    STAGE_KEYS.join(", ")
                ),
            );
        } else if v.trim().is_empty() {
            out.at(&sm.key(k), "stage name must not be empty");
        }
    }
    let has_invoices = flow.entity(Entity::ArInvoice).is_some();
    if has_invoices {
        let missing: Vec<&str> = REQUIRED_STAGES
            .iter()
            .copied()
            .filter(|k| !sf.stage_map.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            out.at(
                &sm,
                format!(
                    "stage_map must map open, overdue and paid to Opportunity stages when the flow has ArInvoice (missing: {})",
                    missing.join(", ")
                ),
            );
        }
        check_template(
            Entity::ArInvoice,
            &sf.opportunity_name,
            &p.key("opportunity_name"),
            out,
        );
    }
    for (key, v) in [
        ("aging_field", &sf.aging_field),
        ("balance_field", &sf.balance_field),
    ] {
        if v.as_deref().is_some_and(|f| f.trim().is_empty()) {
            out.at(&p.key(key), "must not be empty (leave it out to skip)");
        }
    }
}

/// `vNN.0`, at least v46.0.
fn check_sf_version(v: &str) -> Result<(), String> {
    let major = v
        .strip_prefix('v')
        .and_then(|r| r.strip_suffix(".0"))
        .filter(|m| !m.is_empty() && m.len() <= 3 && m.chars().all(|c| c.is_ascii_digit()))
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| format!("Salesforce API version {v:?} must look like \"v62.0\""))?;
    if major < MIN_SALESFORCE_API {
        return Err(format!(
            "Salesforce API version {v:?} is below v{MIN_SALESFORCE_API}.0 (older versions answer upserts without a body)"
        ));
    }
    Ok(())
}

fn check_monday(m: &MondayConnection, p: &Path, out: &mut Problems<'_>) {
    if let Err(e) = check_endpoint(&m.api_url) {
        out.at(&p.key("api_url"), e);
    }
    let v = m.api_version.as_bytes();
    let ok = v.len() == 7
        && v[4] == b'-'
        && v[..4].iter().chain(&v[5..]).all(u8::is_ascii_digit)
        && matches!(&m.api_version[5..], "01" | "04" | "07" | "10");
    if !ok {
        out.at(
            &p.key("api_version"),
            format!("Monday.com API version {:?} must look like \"2026-10\" (a quarter: -01, -04, -07, -10)", m.api_version),
        );
    }
    for (key, n) in [
        (
            "mutations_per_board_per_minute",
            u64::from(m.mutations_per_board_per_minute),
        ),
        ("requests_per_minute", u64::from(m.requests_per_minute)),
        ("timeout_secs", m.timeout_secs),
    ] {
        if n == 0 {
            out.at(&p.key(key), "must be at least 1");
        }
    }
}
