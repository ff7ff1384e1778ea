//! Pure request building: records → one GraphQL document plus variables.
//!
//! Every value travels as a GraphQL variable; the query text only ever holds aliases (`m0`,
//! `m1` …) and variable names that this module generates. `column_values` is one JSON-encoded
//! string per mutation: the whole object is encoded once, never value by value.

use serde::Serialize;
use serde_json::{json, Map, Value};

use mlc_core::config::ValueKind;

/// Complexity Monday.com charges for one `create_item` or `change_multiple_column_values`
/// (about 10,000 points each, per the vendor notes). Used to plan packs against the budget.
pub const MUTATION_COMPLEXITY: u64 = 10_000;

/// Monday.com's per-query complexity limit.
pub const MAX_QUERY_COMPLEXITY: u64 = 5_000_000;

/// Largest page `items_page_by_column_values` returns.
pub const LOOKUP_PAGE_LIMIT: usize = 500;

/// Column types the connector writes.
pub const WRITABLE_TYPES: &[&str] = &[
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

/// The selection that reads the remaining complexity budget (added to every request).
const COMPLEXITY_SELECTION: &str = "complexity { before after query reset_in_x_seconds }";

/// A GraphQL request body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphqlRequest {
    /// The document.
    pub query: String,
    /// Its variables.
    pub variables: Map<String, Value>,
}

/// One write to a board.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// `create_item` with every column (and the group, when configured).
    Create {
        /// Board id.
        board_id: String,
        /// Group for the new item.
        group_id: Option<String>,
        /// Item name (1–255 characters).
        item_name: String,
        /// Column id → Monday.com value (already shaped for its type).
        column_values: Map<String, Value>,
    },
    /// `change_multiple_column_values` on an existing item.
    Update {
        /// Board id.
        board_id: String,
        /// Item id.
        item_id: String,
        /// Column id → Monday.com value.
        column_values: Map<String, Value>,
    },
}

impl WriteOp {
    /// True for creates.
    pub fn is_create(&self) -> bool {
        matches!(self, WriteOp::Create { .. })
    }
}

/// The alias of the `i`-th mutation of a packed request.
pub fn alias(i: usize) -> String {
    format!("m{i}")
}

/// The alias index named by an error path's first element (`m3` → 3).
pub fn alias_index(name: &str) -> Option<usize> {
    name.strip_prefix('m')?.parse().ok()
}

/// One mutation request holding every op as an aliased root field, in order. Root mutation
/// fields run serially, so the order of `ops` is the order the board sees.
pub fn packed_mutation(ops: &[WriteOp]) -> GraphqlRequest {
    let mut decls = Vec::with_capacity(ops.len() * 4);
    let mut fields = Vec::with_capacity(ops.len());
    let mut vars = Map::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            WriteOp::Create {
                board_id,
                group_id,
                item_name,
                column_values,
            } => {
                decls.push(format!("$b{i}: ID!, $n{i}: String!, $cv{i}: JSON"));
                vars.insert(format!("b{i}"), json!(board_id));
                vars.insert(format!("n{i}"), json!(item_name));
                vars.insert(format!("cv{i}"), Value::String(encode_once(column_values)));
                let group = match group_id {
                    Some(g) => {
                        decls.push(format!("$g{i}: String"));
                        vars.insert(format!("g{i}"), json!(g));
                        format!(", group_id: $g{i}")
                    }
                    None => String::new(),
                };
                fields.push(format!(
                    "m{i}: create_item(board_id: $b{i}, item_name: $n{i}{group}, column_values: $cv{i}) {{ id }}"
                ));
            }
            WriteOp::Update {
                board_id,
                item_id,
                column_values,
            } => {
                decls.push(format!("$b{i}: ID!, $i{i}: ID!, $cv{i}: JSON!"));
                vars.insert(format!("b{i}"), json!(board_id));
                vars.insert(format!("i{i}"), json!(item_id));
                vars.insert(format!("cv{i}"), Value::String(encode_once(column_values)));
                fields.push(format!(
                    "m{i}: change_multiple_column_values(board_id: $b{i}, item_id: $i{i}, column_values: $cv{i}) {{ id }}"
                ));
            }
        }
    }
    let query = format!(
        "mutation Write({}) {{ {COMPLEXITY_SELECTION} {} }}",
        decls.join(", "),
        fields.join(" ")
    );
    GraphqlRequest {
        query,
        variables: vars,
    }
}

fn encode_once(values: &Map<String, Value>) -> String {
    // serde_json cannot fail on a Map of Values.
    serde_json::to_string(values).unwrap_or_else(|_| "{}".to_string())
}

/// What a lookup reads of each item's columns: the text (finding items by the id column),
/// or text and value (`preview` compares every mapped column with what would be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemColumns {
    /// `{ id text }`.
    Text,
    /// `{ id text value }`.
    TextAndValue,
}

impl ItemColumns {
    fn selection(self) -> &'static str {
        match self {
            ItemColumns::Text => "id text",
            ItemColumns::TextAndValue => "id text value",
        }
    }
}

/// Finds items whose `column_id` holds one of `values` (whole-value, case-insensitive on the
/// server: callers compare exactly).
pub fn lookup_by_column(
    board_id: &str,
    column_id: &str,
    values: &[String],
    limit: usize,
) -> GraphqlRequest {
    lookup_items(
        board_id,
        column_id,
        values,
        &[column_id.to_string()],
        ItemColumns::Text,
        limit,
    )
}

/// [`lookup_by_column`] reading `columns` of each item found (ids, names and values all
/// travel as variables).
pub fn lookup_items(
    board_id: &str,
    column_id: &str,
    values: &[String],
    columns: &[String],
    read: ItemColumns,
    limit: usize,
) -> GraphqlRequest {
    let query = format!(
        "query Lookup($b: ID!, $c: String!, $cids: [String!], $v: [String]!, $l: Int!) {{ {COMPLEXITY_SELECTION} \
items_page_by_column_values(board_id: $b, columns: [{{column_id: $c, column_values: $v}}], limit: $l) \
{{ cursor items {{ id name column_values(ids: $cids) {{ {} }} }} }} }}",
        read.selection()
    );
    let mut vars = Map::new();
    vars.insert("b".into(), json!(board_id));
    vars.insert("c".into(), json!(column_id));
    vars.insert("cids".into(), json!(columns));
    vars.insert("v".into(), json!(values));
    vars.insert("l".into(), json!(limit.clamp(1, LOOKUP_PAGE_LIMIT)));
    GraphqlRequest {
        query,
        variables: vars,
    }
}

/// The next page of a lookup.
pub fn lookup_next_page(cursor: &str, column_id: &str, limit: usize) -> GraphqlRequest {
    next_items(cursor, &[column_id.to_string()], ItemColumns::Text, limit)
}

/// The next page of [`lookup_items`].
pub fn next_items(
    cursor: &str,
    columns: &[String],
    read: ItemColumns,
    limit: usize,
) -> GraphqlRequest {
    let query = format!(
        "query LookupNext($cur: String!, $cids: [String!], $l: Int!) {{ {COMPLEXITY_SELECTION} \
next_items_page(cursor: $cur, limit: $l) {{ cursor items {{ id name column_values(ids: $cids) {{ {} }} }} }} }}",
        read.selection()
    );
    let mut vars = Map::new();
    vars.insert("cur".into(), json!(cursor));
    vars.insert("cids".into(), json!(columns));
    vars.insert("l".into(), json!(limit.clamp(1, LOOKUP_PAGE_LIMIT)));
    GraphqlRequest {
        query,
        variables: vars,
    }
}

/// Discovers boards' columns and groups.
pub fn board_schema(board_ids: &[String]) -> GraphqlRequest {
    let query = format!(
        "query Boards($ids: [ID!], $l: Int) {{ {COMPLEXITY_SELECTION} \
boards(ids: $ids, limit: $l) {{ id name columns {{ id title type settings }} groups {{ id title }} }} }}"
    );
    let mut vars = Map::new();
    vars.insert("ids".into(), json!(board_ids));
    vars.insert("l".into(), json!(board_ids.len().max(1)));
    GraphqlRequest {
        query,
        variables: vars,
    }
}

/// Every document the connector can send, with sample variables: the schema tests validate
/// each one against the official SDL.
pub fn sample_documents() -> Vec<(&'static str, GraphqlRequest)> {
    let mut cv = Map::new();
    cv.insert("text0".into(), json!("INV-1"));
    let create = WriteOp::Create {
        board_id: "1".into(),
        group_id: Some("topics".into()),
        item_name: "INV 1".into(),
        column_values: cv.clone(),
    };
    let create_no_group = WriteOp::Create {
        board_id: "1".into(),
        group_id: None,
        item_name: "INV 2".into(),
        column_values: cv.clone(),
    };
    let update = WriteOp::Update {
        board_id: "1".into(),
        item_id: "7".into(),
        column_values: cv,
    };
    vec![
        ("create", packed_mutation(std::slice::from_ref(&create))),
        ("update", packed_mutation(std::slice::from_ref(&update))),
        (
            "packed",
            packed_mutation(&[create, update, create_no_group]),
        ),
        (
            "lookup",
            lookup_by_column("1", "text0", &["A".into(), "B".into()], 25),
        ),
        ("lookup_next", lookup_next_page("abc", "text0", 25)),
        (
            "lookup_values",
            lookup_items(
                "1",
                "text0",
                &["A".into()],
                &["text0".into(), "status".into()],
                ItemColumns::TextAndValue,
                25,
            ),
        ),
        (
            "lookup_values_next",
            next_items("abc", &["text0".into()], ItemColumns::TextAndValue, 25),
        ),
        ("boards", board_schema(&["1".into(), "2".into()])),
    ]
}

/// Shapes a mapped value for a column type, as Monday.com expects it inside `column_values`.
/// `Null` or a blank string clears the column, whatever its type (SYSPRO pads and leaves
/// columns blank: an empty e-mail is "no e-mail", not a bad one). Errors name the value and
/// the expected shape.
pub fn column_value(column_type: &str, value: &Value) -> Result<Value, String> {
    if value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty()) {
        return Ok(Value::Null);
    }
    let text = || match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(match column_type {
        "text" => Value::String(text()),
        "long_text" => {
            let t = text();
            if t.chars().count() > 2000 {
                return Err(format!(
                    "long_text value of {} characters is over the 2,000 limit",
                    t.chars().count()
                ));
            }
            json!({ "text": t })
        }
        "numbers" => match value {
            Value::Number(n) => Value::String(n.to_string()),
            Value::String(s) if s.trim().is_empty() => Value::Null,
            Value::String(s) => match mlc_core::money::parse(s) {
                Ok(_) => Value::String(s.trim().to_string()),
                Err(_) => return Err(format!("value {s:?} is not a number")),
            },
            other => return Err(format!("value {other} is not a number")),
        },
        "date" => match value {
            Value::String(s) if s.trim().is_empty() => Value::Null,
            Value::String(s) => {
                let d = s.get(..10).unwrap_or(s);
                if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
                    return Err(format!("value {s:?} is not a date (YYYY-MM-DD)"));
                }
                json!({ "date": d })
            }
            other => return Err(format!("value {other} is not a date (YYYY-MM-DD)")),
        },
        "status" => json!({ "label": text() }),
        "dropdown" => match value {
            Value::Array(a) => json!({ "labels": a }),
            _ => json!({ "labels": [text()] }),
        },
        "email" => {
            let e = text();
            if !e.contains('@') {
                return Err(format!("value {e:?} is not an email address"));
            }
            json!({ "email": e, "text": e })
        }
        "phone" => {
            let p: String = text()
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .collect();
            match phone_country(&p) {
                Some(cc) => json!({ "phone": p, "countryShortName": cc }),
                None => {
                    return Err(format!(
                        "phone {p:?} needs the international format +<country code><number>"
                    ))
                }
            }
        }
        "link" => {
            let u = text();
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(format!("value {u:?} is not a URL"));
            }
            json!({ "url": u, "text": u })
        }
        other => {
            return Err(format!(
                "column type {other} is not one the connector writes"
            ))
        }
    })
}

/// ISO country of an international phone number, from its calling code (the common ones).
fn phone_country(p: &str) -> Option<&'static str> {
    const CODES: &[(&str, &str)] = &[
        ("+27", "ZA"),
        ("+44", "GB"),
        ("+61", "AU"),
        ("+64", "NZ"),
        ("+353", "IE"),
        ("+971", "AE"),
        ("+49", "DE"),
        ("+33", "FR"),
        ("+31", "NL"),
        ("+91", "IN"),
        ("+65", "SG"),
        ("+263", "ZW"),
        ("+267", "BW"),
        ("+264", "NA"),
        ("+254", "KE"),
        ("+1", "US"),
    ];
    if !p.starts_with('+') || p.len() < 8 || !p[1..].chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    CODES
        .iter()
        .find(|(code, _)| p.starts_with(code))
        .map(|(_, cc)| *cc)
}

/// Whether a mapping rule's conversion can produce a value a column of `column_type` takes:
/// a date into `numbers` or a number into `date` is a configuration error, caught before any
/// data moves.
pub fn kind_fits(kind: Option<ValueKind>, column_type: &str) -> bool {
    match kind {
        None | Some(ValueKind::Text) => true,
        Some(ValueKind::Number) => matches!(
            column_type,
            "numbers" | "text" | "long_text" | "status" | "dropdown"
        ),
        Some(ValueKind::Date) => matches!(column_type, "date" | "text" | "long_text"),
        Some(ValueKind::Bool) => {
            matches!(column_type, "text" | "long_text" | "status" | "dropdown")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_request_keeps_values_out_of_the_query() {
        let mut cv = Map::new();
        cv.insert("date4".into(), json!({"date": "2026-11-24"}));
        cv.insert("text0".into(), json!("\") { evil }"));
        let ops = vec![
            WriteOp::Create {
                board_id: "42".into(),
                group_id: Some("g1".into()),
                item_name: "INV \"1\"".into(),
                column_values: cv.clone(),
            },
            WriteOp::Update {
                board_id: "42".into(),
                item_id: "9".into(),
                column_values: cv,
            },
        ];
        let r = packed_mutation(&ops);
        assert!(!r.query.contains("evil") && !r.query.contains("42") && !r.query.contains("INV"));
        assert!(
            r.query.contains("m0: create_item(")
                && r.query.contains("m1: change_multiple_column_values(")
        );
        // Encoded once: a string holding an object whose values are not themselves strings.
        let s = r.variables["cv0"].as_str().unwrap();
        let back: Value = serde_json::from_str(s).unwrap();
        assert_eq!(back["date4"], json!({"date": "2026-11-24"}));
        assert_eq!(r.variables["g0"], json!("g1"));
        assert_eq!(r.variables["i1"], json!("9"));
    }

    #[test]
    fn column_shapes_follow_the_vendor_notes() {
        assert_eq!(
            column_value("text", &json!("INV-1")).unwrap(),
            json!("INV-1")
        );
        assert_eq!(
            column_value("long_text", &json!("x")).unwrap(),
            json!({"text": "x"})
        );
        assert_eq!(
            column_value("numbers", &json!(1234.5)).unwrap(),
            json!("1234.5")
        );
        assert_eq!(column_value("numbers", &Value::Null).unwrap(), Value::Null);
        assert_eq!(
            column_value("date", &json!("2026-11-24")).unwrap(),
            json!({"date": "2026-11-24"})
        );
        assert_eq!(
            column_value("status", &json!("Paid")).unwrap(),
            json!({"label": "Paid"})
        );
        assert_eq!(
            column_value("dropdown", &json!("A")).unwrap(),
            json!({"labels": ["A"]})
        );
        assert_eq!(
            column_value("email", &json!("a@b.c")).unwrap(),
            json!({"email": "a@b.c", "text": "a@b.c"})
        );
        for ty in WRITABLE_TYPES {
            for blank in [json!(""), json!("   "), Value::Null] {
                assert_eq!(
                    column_value(ty, &blank).unwrap(),
                    Value::Null,
                    "{ty} {blank}"
                );
            }
        }
        assert_eq!(
            column_value("phone", &json!("+27 11 555 0101")).unwrap(),
            json!({"phone": "+27115550101", "countryShortName": "ZA"})
        );
        assert_eq!(
            column_value("link", &json!("https://x.y")).unwrap(),
            json!({"url": "https://x.y", "text": "https://x.y"})
        );
        assert!(column_value("numbers", &json!("abc")).is_err());
        assert!(column_value("date", &json!(12)).is_err());
        assert!(!kind_fits(Some(ValueKind::Date), "numbers"));
    }

    #[test]
    fn alias_round_trip() {
        assert_eq!(alias_index(&alias(17)), Some(17));
        assert_eq!(alias_index("complexity"), None);
    }
}
