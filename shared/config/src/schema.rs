//! The structural walk: the shape of `mlc_core::config` written out as data, checked against
//! the parsed document before serde sees it. serde's `deny_unknown_fields` and untagged enums
//! stop at the first error (and untagged ones say only "did not match any variant"); this walk
//! reports every unknown key, missing key and wrong type, each at its own line.
//!
//! Where a flow has problems, the walk also says how to patch it ([`Fix`]) so serde can still
//! read the rest of the flow and the semantic checks can still run on it.
//!
//! Keep it in step with `mlc_core::config`: the test `schema_matches_core` (tests/validate.rs)
//! serialises a config with every optional key set and parses it back, so a field added there
//! and not here fails.

use std::ops::Range;

use mlc_core::secret::SecretRef;
use mlc_core::Entity;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::path::Path;
use crate::problems::Problems;

/// The type a value must have.
#[derive(Debug)]
pub enum Ty {
    /// A string.
    Str,
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// A business date as a string, `YYYY-MM-DD`.
    Date,
    /// A SYSPRO entity name.
    Entity,
    /// A secret reference (`env:NAME`, a Secrets Manager ARN): never a secret.
    Secret,
    /// A non-negative integer up to this value.
    Int(u64),
    /// A boolean.
    Bool,
    /// Any value (becomes `serde_json::Value`); datetimes are refused.
    Any,
    /// A table with these keys.
    Struct(&'static Struct),
    /// An array of values of this type.
    Array(&'static Ty),
    /// A table of free keys whose values have this type.
    Map(&'static Ty),
    /// A string (shorthand) or a table (`FieldMapping`).
    StrOrStruct(&'static Struct),
    /// A table whose `tag` key picks the keys allowed (`Destination`).
    Tagged(&'static Tagged),
}

/// A table's keys.
#[derive(Debug)]
pub struct Struct {
    pub fields: &'static [Field],
}

/// One key of a table.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
}

/// An internally tagged table.
#[derive(Debug)]
pub struct Tagged {
    pub tag: &'static str,
    pub variants: &'static [(&'static str, &'static Struct)],
}

const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}
const fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

const U8: Ty = Ty::Int(u8::MAX as u64);
const U32: Ty = Ty::Int(u32::MAX as u64);
const U64: Ty = Ty::Int(i64::MAX as u64);
const USIZE: Ty = Ty::Int(u32::MAX as u64);

/// `Settings`.
pub static SETTINGS: Struct = Struct {
    fields: &[
        opt("state_path", Ty::Str),
        opt("max_attempts", U32),
        opt("retry_horizon_hours", U32),
        opt("resend_unapplied_after_hours", U32),
        opt("max_message_bytes", USIZE),
        opt("max_batch_records", USIZE),
    ],
};

/// `FlowConfig`.
pub static FLOW: Struct = Struct {
    fields: &[
        req("id", Ty::Str),
        opt("timezone", Ty::Str),
        opt("schedule", Ty::Str),
        req("syspro", Ty::Struct(&SYSPRO)),
        req("entities", Ty::Array(&Ty::Struct(&ENTITY))),
        req("destination", Ty::Tagged(&DESTINATION)),
        opt("trigger_secret", Ty::Secret),
    ],
};

static SYSPRO: Struct = Struct {
    fields: &[
        req("base_url", Ty::Str),
        opt("odata_path", Ty::Str),
        opt("enet_path", Ty::Str),
        req("company", Ty::Str),
        opt("auth", Ty::Enum(&["basic", "session"])),
        opt("read_path", Ty::Enum(&["odata", "enet"])),
        req("operator", Ty::Str),
        req("password", Ty::Secret),
        opt("company_password", Ty::Secret),
        opt("terms_source", Ty::Enum(&["flows-file", "syspro"])),
        opt("terms_days", Ty::Map(&U32)),
        opt("default_due_days", U32),
        opt("timeout_secs", U64),
        opt("page_size", U32),
    ],
};

static ENTITY: Struct = Struct {
    fields: &[
        req("entity", Ty::Entity),
        req(
            "change_detection",
            Ty::Enum(&["rowversion", "date-window", "open-items", "full-scan"]),
        ),
        opt("date_field", Ty::Str),
        opt("overlap_days", U32),
        opt("mapping", Ty::Map(&Ty::StrOrStruct(&RULE))),
        opt("salesforce", Ty::Struct(&SF_TARGET)),
        opt("monday", Ty::Struct(&MONDAY_TARGET)),
        opt("initial_scope", Ty::Enum(&["all", "open", "since"])),
        opt("since", Ty::Date),
        opt("sweep", Ty::Enum(&["daily", "every-poll", "off"])),
        opt("status_rules", Ty::Struct(&STATUS_RULES)),
    ],
};

static STATUS_RULES: Struct = Struct {
    fields: &[
        opt("due_date_from", Ty::Str),
        opt("credit_notes_fall_overdue", Ty::Bool),
        opt("order_status", Ty::Map(&Ty::Str)),
    ],
};

static RULE: Struct = Struct {
    fields: &[
        opt("from", Ty::Str),
        opt("concat", Ty::Array(&Ty::Str)),
        opt("separator", Ty::Str),
        opt("template", Ty::Str),
        opt("value", Ty::Any),
        opt("labels", Ty::Map(&Ty::Map(&Ty::Str))),
        opt("trim", Ty::Bool),
        opt("map", Ty::Map(&Ty::Str)),
        opt("default", Ty::Any),
        opt("type", Ty::Enum(&["text", "number", "date", "bool"])),
        opt("max_len", USIZE),
        opt("round", USIZE),
        opt("column_type", Ty::Str),
    ],
};

static DESTINATION: Tagged = Tagged {
    tag: "kind",
    variants: &[("salesforce", &SALESFORCE), ("monday", &MONDAY)],
};

static SALESFORCE: Struct = Struct {
    fields: &[
        req("my_domain_url", Ty::Str),
        opt("instance_url", Ty::Str),
        opt("api_version", Ty::Str),
        req("client_id", Ty::Secret),
        req("client_secret", Ty::Secret),
        opt("session_timeout_minutes", U64),
        opt("stage_map", Ty::Map(&Ty::Str)),
        opt("aging_field", Ty::Str),
        opt("balance_field", Ty::Str),
        opt("opportunity_name", Ty::Str),
        opt("bulk_threshold", USIZE),
        opt("daily_reserve_percent", U8),
        opt("nested_account_reference", Ty::Bool),
        opt("timeout_secs", U64),
    ],
};

static SF_TARGET: Struct = Struct {
    fields: &[req("object", Ty::Str), req("external_id_field", Ty::Str)],
};

static MONDAY: Struct = Struct {
    fields: &[
        opt("api_url", Ty::Str),
        opt("api_version", Ty::Str),
        req("token", Ty::Secret),
        opt("mutations_per_board_per_minute", U32),
        opt("requests_per_minute", U32),
        opt("timeout_secs", U64),
    ],
};

static MONDAY_TARGET: Struct = Struct {
    fields: &[
        req("board_id", Ty::Str),
        opt("group_id", Ty::Str),
        req("item_name", Ty::Str),
        req("id_column", Ty::Str),
    ],
};

fn article(ty: &str) -> &'static str {
    match ty {
        "integer" | "array" => "an",
        _ => "a",
    }
}

fn wrong_type(expected: &str, found: &DeValue<'_>) -> String {
    let t = found.type_str();
    let mut m = format!("expected {expected}, found {} {t}", article(t));
    if expected == "a string" && matches!(found, DeValue::Integer(_) | DeValue::Float(_)) {
        m.push_str(" (quote it)");
    }
    m
}

/// How the walk patches a flow that has problems so that its other keys can still be
/// deserialised and checked: the problems are already reported, the patched values never
/// reach a caller (a file with problems yields no config).
#[derive(Debug, Clone)]
pub enum Repair {
    /// Drop the key (unknown keys, bad optional values: the default applies).
    Remove,
    /// Replace a bad required value with a harmless one.
    Replace(toml::Value),
}

/// A repair at a path. `taints` marks repairs of enum-valued keys: checks elsewhere in the same
/// table depend on them (`auth` and `read_path`, `change_detection` and `date_field`), so
/// semantic problems in that table are not reported on top.
#[derive(Debug, Clone)]
pub struct Fix {
    pub path: Path,
    pub repair: Repair,
    pub taints: bool,
}

/// Walks `value` against `ty`, reporting every mismatch. Returns false when the value itself
/// is wrong and its parent must repair it (or give up on the flow).
pub fn walk(
    v: &Spanned<DeValue<'_>>,
    ty: &Ty,
    path: &Path,
    out: &mut Problems<'_>,
    fixes: &mut Vec<Fix>,
) -> bool {
    let span = v.span();
    let value = v.get_ref();
    match ty {
        Ty::Str => {
            if !value.is_str() {
                out.at_span(path, &span, wrong_type("a string", value));
                return false;
            }
        }
        Ty::Date => match value.as_str() {
            Some(s) if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => {}
            Some(s) => {
                out.at_span(path, &span, format!("{s:?} is not a date (YYYY-MM-DD)"));
                return false;
            }
            None => {
                out.at_span(
                    path,
                    &span,
                    wrong_type("a date string (\"YYYY-MM-DD\")", value),
                );
                return false;
            }
        },
        Ty::Enum(allowed) => match value.as_str() {
            Some(s) if allowed.contains(&s) => {}
            Some(s) => {
                let list = allowed
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.at_span(path, &span, format!("expected one of {list}, found {s:?}"));
                return false;
            }
            None => {
                out.at_span(path, &span, wrong_type("a string", value));
                return false;
            }
        },
        Ty::Entity => match value.as_str() {
            Some(s) if Entity::ALL.iter().any(|e| e.as_str() == s) => {}
            Some(s) => {
                let msg = match s.parse::<Entity>() {
                    Ok(Entity::TblArTerms) if s == "TblArTerms" => format!(
                        "{s} is read as a reference table (the invoices' due dates, with syspro.terms_source = \"syspro\"), never polled on its own"
                    ),
                    Ok(e) if e.as_str() == s => format!(
                        "{s} is read as a child table of PorMasterHdr (_OrderValue, _GrnStatus, _LineCount), never polled on its own"
                    ),
                    Ok(e) => format!(
                        "unknown SYSPRO entity {s:?} (names are case-sensitive: did you mean {:?}?)",
                        e.as_str()
                    ),
                    Err(e) => e.to_string(),
                };
                out.at_span(path, &span, msg);
                return false;
            }
            None => {
                out.at_span(path, &span, wrong_type("a string", value));
                return false;
            }
        },
        Ty::Secret => match value.as_str() {
            // The message never repeats the value: it may be a pasted secret.
            Some(s) => {
                if let Err(e) = SecretRef::parse(s) {
                    out.at_span(path, &span, e);
                    return false;
                }
            }
            None => {
                out.at_span(
                    path,
                    &span,
                    format!(
                        "{} (a secret reference: env:NAME or a Secrets Manager ARN)",
                        wrong_type("a string", value)
                    ),
                );
                return false;
            }
        },
        Ty::Int(max) => match value {
            DeValue::Integer(i) => {
                match i128::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(n) if n >= 0 && n <= *max as i128 => {}
                    _ => {
                        out.at_span(
                            path,
                            &span,
                            format!("must be a whole number from 0 to {max}"),
                        );
                        return false;
                    }
                }
            }
            _ => {
                out.at_span(path, &span, wrong_type("an integer", value));
                return false;
            }
        },
        Ty::Bool => {
            if !value.is_bool() {
                out.at_span(path, &span, wrong_type("a boolean (true or false)", value));
                return false;
            }
        }
        Ty::Any => return walk_any(v, path, out),
        Ty::Struct(s) => match value.as_table() {
            Some(t) => return walk_struct(t, &span, s, &[], path, out, fixes),
            None => {
                out.at_span(path, &span, wrong_type("a table", value));
                return false;
            }
        },
        Ty::Array(inner) => match value.as_array() {
            Some(a) => {
                let mut ok = true;
                for (i, item) in a.iter().enumerate() {
                    // An element cannot be dropped without shifting the paths of the others.
                    ok &= walk(item, inner, &path.index(i), out, fixes);
                }
                return ok;
            }
            None => {
                out.at_span(path, &span, wrong_type("an array", value));
                return false;
            }
        },
        Ty::Map(inner) => match value.as_table() {
            Some(t) => {
                for (k, item) in t.iter() {
                    let p = path.key(k.get_ref());
                    if !walk(item, inner, &p, out, fixes) {
                        fixes.push(Fix {
                            path: p,
                            repair: Repair::Remove,
                            taints: false,
                        });
                    }
                }
            }
            None => {
                out.at_span(path, &span, wrong_type("a table", value));
                return false;
            }
        },
        Ty::StrOrStruct(s) => match value {
            DeValue::String(_) => {}
            DeValue::Table(t) => return walk_struct(t, &span, s, &[], path, out, fixes),
            _ => {
                out.at_span(path, &span, wrong_type("a string or a table", value));
                return false;
            }
        },
        Ty::Tagged(tagged) => match value.as_table() {
            Some(t) => return walk_tagged(t, &span, tagged, path, out, fixes),
            None => {
                out.at_span(path, &span, wrong_type("a table", value));
                return false;
            }
        },
    }
    true
}

fn walk_any(v: &Spanned<DeValue<'_>>, path: &Path, out: &mut Problems<'_>) -> bool {
    match v.get_ref() {
        DeValue::Datetime(_) => {
            out.at_span(
                path,
                &v.span(),
                "dates and times are not supported here: write them as strings (\"2026-01-31\")",
            );
            false
        }
        DeValue::Array(a) => a.iter().enumerate().fold(true, |ok, (i, item)| {
            walk_any(item, &path.index(i), out) && ok
        }),
        DeValue::Table(t) => t.iter().fold(true, |ok, (k, item)| {
            walk_any(item, &path.key(k.get_ref()), out) && ok
        }),
        _ => true,
    }
}

fn walk_tagged(
    t: &DeTable<'_>,
    span: &Range<usize>,
    tagged: &Tagged,
    path: &Path,
    out: &mut Problems<'_>,
    fixes: &mut Vec<Fix>,
) -> bool {
    let names: Vec<String> = tagged
        .variants
        .iter()
        .map(|(n, _)| format!("{n:?}"))
        .collect();
    let tag_path = path.key(tagged.tag);
    match crate::path::entry(t, tagged.tag) {
        None => out.at_span(
            &tag_path,
            span,
            format!("missing required key (one of {})", names.join(", ")),
        ),
        Some((_, tv)) => match tv.get_ref().as_str() {
            Some(name) => match tagged.variants.iter().find(|(n, _)| *n == name) {
                Some((_, s)) => return walk_struct(t, span, s, &[tagged.tag], path, out, fixes),
                None => out.at_span(
                    &tag_path,
                    &tv.span(),
                    format!("expected one of {}, found {name:?}", names.join(", ")),
                ),
            },
            None => out.at_span(&tag_path, &tv.span(), wrong_type("a string", tv.get_ref())),
        },
    }
    false
}

/// A stand-in for a bad required value, when one exists that no check reads as meaningful.
fn placeholder(ty: &Ty) -> Option<toml::Value> {
    match ty {
        Ty::Str => Some(toml::Value::String(String::new())),
        Ty::Secret => Some(toml::Value::String("env:INVALID".to_string())),
        Ty::Enum(allowed) => allowed.first().map(|a| toml::Value::String(a.to_string())),
        _ => None,
    }
}

fn walk_struct(
    t: &DeTable<'_>,
    span: &Range<usize>,
    s: &Struct,
    extra: &[&str],
    path: &Path,
    out: &mut Problems<'_>,
    fixes: &mut Vec<Fix>,
) -> bool {
    let mut ok = true;
    for (k, v) in t.iter() {
        let key = k.get_ref().as_ref();
        if extra.contains(&key) {
            continue;
        }
        let p = path.key(key);
        match s.fields.iter().find(|f| f.name == key) {
            Some(f) => {
                if walk(v, &f.ty, &p, out, fixes) {
                    continue;
                }
                let repair = if !f.required {
                    Some(Repair::Remove)
                } else {
                    placeholder(&f.ty).map(Repair::Replace)
                };
                match repair {
                    Some(repair) => fixes.push(Fix {
                        path: p,
                        repair,
                        taints: matches!(f.ty, Ty::Enum(_)),
                    }),
                    None => ok = false,
                }
            }
            None => {
                let names: Vec<&str> = s.fields.iter().map(|f| f.name).collect();
                let msg = match suggest(key, &names) {
                    Some(m) => format!("unknown key (did you mean {m:?}?)"),
                    None => format!("unknown key (expected one of: {})", names.join(", ")),
                };
                out.at_span(&p, &k.span(), msg);
                fixes.push(Fix {
                    path: p,
                    repair: Repair::Remove,
                    taints: false,
                });
            }
        }
    }
    for f in s.fields.iter().filter(|f| f.required) {
        if crate::path::entry(t, f.name).is_none() {
            out.at_span(&path.key(f.name), span, "missing required key");
            ok = false;
        }
    }
    ok
}

/// Walks the document root: unknown top-level keys, `settings`, and each flow on its own.
/// Returns whether settings can be deserialised (after fixes) and, per flow, the same.
pub fn walk_root(
    root: &Spanned<DeTable<'_>>,
    out: &mut Problems<'_>,
    fixes: &mut Vec<Fix>,
) -> (bool, Vec<bool>) {
    let mut settings_ok = true;
    let mut flows_ok = Vec::new();
    let top = Path::root();
    for (k, v) in root.get_ref().iter() {
        let key = k.get_ref().as_ref();
        let p = top.key(key);
        match key {
            "settings" => settings_ok = walk(v, &Ty::Struct(&SETTINGS), &p, out, fixes),
            "flows" => match v.get_ref().as_array() {
                Some(a) => {
                    for (i, item) in a.iter().enumerate() {
                        flows_ok.push(walk(item, &Ty::Struct(&FLOW), &p.index(i), out, fixes));
                    }
                }
                None => out.at_span(
                    &p,
                    &v.span(),
                    wrong_type("an array of tables ([[flows]])", v.get_ref()),
                ),
            },
            _ => {
                let msg = match suggest(key, &["settings", "flows"]) {
                    Some(m) => format!("unknown key (did you mean {m:?}?)"),
                    None => "unknown key (expected one of: settings, flows)".to_string(),
                };
                out.at_span(&p, &k.span(), msg);
            }
        }
    }
    (settings_ok, flows_ok)
}

/// The closest known name, when it is close enough to be a typo.
fn suggest<'n>(key: &str, names: &[&'n str]) -> Option<&'n str> {
    names
        .iter()
        .map(|n| (distance(&key.to_ascii_lowercase(), n), *n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_suggested() {
        assert_eq!(
            suggest("pasword", &["password", "operator"]),
            Some("password")
        );
        assert_eq!(suggest("zzz", &["password", "operator"]), None);
    }
}
