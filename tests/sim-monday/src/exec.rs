//! Execution of validated operations on the in-memory boards.

use std::collections::BTreeMap;

use apollo_compiler::ast;
use apollo_compiler::executable::{Field, Operation, Selection, SelectionSet};
use apollo_compiler::parser::SourceMap;
use apollo_compiler::Node;
use serde_json::{json, Map, Value};

use crate::columns;
use crate::state::{Inner, SimItem};

/// Complexity charged per root field (≈10,000 per item mutation, as the vendor notes say).
pub(crate) fn field_cost(name: &str) -> u64 {
    match name {
        "create_item" | "change_multiple_column_values" => 10_000,
        "items_page_by_column_values" | "next_items_page" => 1_000,
        "boards" => 500,
        _ => 0,
    }
}

pub(crate) fn arg_json(v: &ast::Value, vars: &Map<String, Value>) -> Value {
    match v {
        ast::Value::Null => Value::Null,
        ast::Value::Enum(n) => Value::String(n.to_string()),
        ast::Value::Variable(n) => vars.get(n.as_str()).cloned().unwrap_or(Value::Null),
        ast::Value::String(s) => Value::String(s.clone()),
        ast::Value::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        ast::Value::Int(i) => i
            .as_str()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::Null),
        ast::Value::Boolean(b) => Value::Bool(*b),
        ast::Value::List(l) => Value::Array(l.iter().map(|x| arg_json(x, vars)).collect()),
        ast::Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.to_string(), arg_json(x, vars)))
                .collect(),
        ),
    }
}

pub(crate) fn arg(f: &Field, name: &str, vars: &Map<String, Value>) -> Value {
    f.arguments
        .iter()
        .find(|a| a.name == name)
        .map(|a| arg_json(&a.value, vars))
        .unwrap_or(Value::Null)
}

pub(crate) fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An error for one field (its alias in `path`).
pub(crate) fn field_error(
    f: &Node<Field>,
    sources: &SourceMap,
    code: &str,
    message: &str,
    data: Option<Value>,
    retry: Option<u64>,
) -> Value {
    let loc = f
        .location()
        .and_then(|l| l.line_column(sources))
        .map(|lc| json!([{"line": lc.line, "column": lc.column}]))
        .unwrap_or(json!([]));
    let mut ext = json!({"code": code, "status_code": 200});
    if let Some(d) = data {
        ext["error_data"] = d;
    }
    if let Some(r) = retry {
        ext["retry_in_seconds"] = json!(r);
    }
    json!({"message": message, "locations": loc, "path": [f.response_key().as_str()], "extensions": ext})
}

/// Projects a full JSON object onto a selection set (aliases, `ids` filters, `__typename`).
pub(crate) fn project(v: &Value, sel: &SelectionSet, vars: &Map<String, Value>) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(|x| project(x, sel, vars)).collect()),
        Value::Object(o) => {
            let mut out = Map::new();
            project_into(o, sel, vars, &mut out);
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn project_into(
    o: &Map<String, Value>,
    sel: &SelectionSet,
    vars: &Map<String, Value>,
    out: &mut Map<String, Value>,
) {
    for s in &sel.selections {
        match s {
            Selection::Field(f) => {
                let key = f.response_key().to_string();
                let mut val = o.get(f.name.as_str()).cloned().unwrap_or(Value::Null);
                if let (Value::Array(items), Value::Array(ids)) = (&val, arg(f, "ids", vars)) {
                    let ids: Vec<String> = ids.iter().filter_map(id_of).collect();
                    val = Value::Array(
                        items
                            .iter()
                            .filter(|x| {
                                x.get("id")
                                    .and_then(id_of_ref)
                                    .is_some_and(|i| ids.contains(&i))
                            })
                            .cloned()
                            .collect(),
                    );
                }
                let v = if f.selection_set.selections.is_empty() {
                    val
                } else {
                    project(&val, &f.selection_set, vars)
                };
                out.insert(key, v);
            }
            Selection::InlineFragment(fr) => project_into(o, &fr.selection_set, vars, out),
            Selection::FragmentSpread(_) => {}
        }
    }
}

fn id_of_ref(v: &Value) -> Option<String> {
    id_of(v)
}

/// The full JSON of an item.
pub(crate) fn item_json(inner: &Inner, board_id: &str, it: &SimItem) -> Value {
    let Some(b) = inner.boards.get(board_id) else {
        return Value::Null;
    };
    let group = b
        .groups
        .iter()
        .find(|(g, _)| *g == it.group_id)
        .map(|(g, t)| json!({"id": g, "title": t}))
        .unwrap_or(Value::Null);
    let cvs: Vec<Value> = b
        .columns
        .iter()
        .map(|c| {
            let v = it.values.get(&c.id).cloned().unwrap_or(Value::Null);
            json!({
                "__typename": "TextValue",
                "id": c.id, "type": c.ty,
                "text": columns::text_of(&c.ty, &v),
                "value": if v.is_null() { Value::Null } else { Value::String(v.to_string()) },
            })
        })
        .collect();
    json!({
        "__typename": "Item", "id": it.id, "name": it.name,
        "board": {"id": b.id, "name": b.name}, "group": group,
        "created_at": "2026-11-24", "updated_at": "2026-11-24",
        "column_values": cvs,
    })
}

/// The full JSON of a board.
pub(crate) fn board_json(inner: &Inner, id: &str) -> Value {
    let Some(b) = inner.boards.get(id) else {
        return Value::Null;
    };
    json!({
        "__typename": "Board", "id": b.id, "name": b.name,
        "columns": b.columns.iter().map(|c| json!({"id": c.id, "title": c.title, "type": c.ty, "archived": false, "settings": c.settings})).collect::<Vec<_>>(),
        "groups": b.groups.iter().map(|(g, t)| json!({"id": g, "title": t})).collect::<Vec<_>>(),
    })
}

/// What a root field produced.
pub(crate) enum FieldResult {
    Data(Value),
    Error(Value),
}

/// Executes one root field of a query.
pub(crate) fn query_field(
    inner: &mut Inner,
    f: &Node<Field>,
    vars: &Map<String, Value>,
    sources: &SourceMap,
    complexity: &Value,
) -> FieldResult {
    match f.name.as_str() {
        "complexity" => FieldResult::Data(project(complexity, &f.selection_set, vars)),
        "boards" => {
            let ids: Option<Vec<String>> = arg(f, "ids", vars)
                .as_array()
                .map(|a| a.iter().filter_map(id_of).collect());
            let all: Vec<String> = match ids {
                Some(ids) => ids
                    .into_iter()
                    .filter(|i| inner.boards.contains_key(i))
                    .collect(),
                None => inner.boards.keys().cloned().collect(),
            };
            let limit = arg(f, "limit", vars).as_u64().unwrap_or(25) as usize;
            let v: Vec<Value> = all
                .iter()
                .take(limit)
                .map(|i| board_json(inner, i))
                .collect();
            FieldResult::Data(project(&Value::Array(v), &f.selection_set, vars))
        }
        "items_page_by_column_values" => {
            let board = id_of(&arg(f, "board_id", vars)).unwrap_or_default();
            let cols = arg(f, "columns", vars);
            let cursor = arg(f, "cursor", vars);
            let limit = arg(f, "limit", vars).as_u64().unwrap_or(25);
            if limit == 0 || limit > 500 {
                return FieldResult::Error(field_error(
                    f,
                    sources,
                    "InvalidArgumentException",
                    "limit must be between 1 and 500",
                    None,
                    None,
                ));
            }
            if !cols.is_null() && !cursor.is_null() {
                return FieldResult::Error(field_error(
                    f,
                    sources,
                    "InvalidArgumentException",
                    "columns and cursor cannot be used together",
                    None,
                    None,
                ));
            }
            let Some(b) = inner.boards.get(&board) else {
                return FieldResult::Error(field_error(
                    f,
                    sources,
                    "InvalidBoardIdException",
                    "This board ID doesn't exist",
                    Some(json!({"board_id": board})),
                    None,
                ));
            };
            let mut matched = Vec::new();
            for it in &b.items {
                let all = cols.as_array().into_iter().flatten().all(|c| {
                    let cid = c.get("column_id").and_then(Value::as_str).unwrap_or("");
                    let ty = b
                        .columns
                        .iter()
                        .find(|x| x.id == cid)
                        .map(|x| x.ty.as_str())
                        .unwrap_or("text");
                    let text = it
                        .values
                        .get(cid)
                        .and_then(|v| columns::text_of(ty, v))
                        .unwrap_or_default();
                    c.get("column_values")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|want| {
                            want.as_str()
                                .is_some_and(|w| w.to_lowercase() == text.to_lowercase())
                        })
                });
                if all {
                    matched.push(it.id.clone());
                }
            }
            FieldResult::Data(page(inner, &board, matched, limit as usize, f, vars))
        }
        "next_items_page" => {
            let cursor = arg(f, "cursor", vars).as_str().unwrap_or("").to_string();
            let limit = arg(f, "limit", vars).as_u64().unwrap_or(25).clamp(1, 500) as usize;
            match inner.cursors.remove(&cursor) {
                Some((board, ids)) => FieldResult::Data(page(inner, &board, ids, limit, f, vars)),
                None => FieldResult::Error(field_error(
                    f,
                    sources,
                    "InvalidArgumentException",
                    "cursor expired or invalid",
                    None,
                    None,
                )),
            }
        }
        other => FieldResult::Error(field_error(
            f,
            sources,
            "InvalidArgumentException",
            &format!("field {other} is not simulated"),
            None,
            None,
        )),
    }
}

fn page(
    inner: &mut Inner,
    board: &str,
    ids: Vec<String>,
    limit: usize,
    f: &Node<Field>,
    vars: &Map<String, Value>,
) -> Value {
    let (now, rest) = if ids.len() > limit {
        (ids[..limit].to_vec(), ids[limit..].to_vec())
    } else {
        (ids, Vec::new())
    };
    let cursor = if rest.is_empty() {
        Value::Null
    } else {
        inner.next_cursor += 1;
        let c = format!("cur{}", inner.next_cursor);
        inner.cursors.insert(c.clone(), (board.to_string(), rest));
        Value::String(c)
    };
    let items: Vec<Value> = inner
        .boards
        .get(board)
        .map(|b| {
            b.items
                .iter()
                .filter(|it| now.contains(&it.id))
                .map(|it| item_json(inner, board, it))
                .collect()
        })
        .unwrap_or_default();
    project(
        &json!({"cursor": cursor, "items": items}),
        &f.selection_set,
        vars,
    )
}

fn parse_cv(v: &Value) -> Option<Map<String, Value>> {
    match v {
        Value::Null => Some(Map::new()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        },
        Value::Object(m) => Some(m.clone()),
        _ => None,
    }
}

fn name_ok(n: &str) -> bool {
    let c = n.chars().count();
    (1..=255).contains(&c)
}

/// Executes one item mutation (cap already checked). Returns the item JSON or an error.
pub(crate) fn mutation_field(
    inner: &mut Inner,
    f: &Node<Field>,
    vars: &Map<String, Value>,
    sources: &SourceMap,
) -> FieldResult {
    let board_id = id_of(&arg(f, "board_id", vars)).unwrap_or_default();
    let create_labels = arg(f, "create_labels_if_missing", vars)
        .as_bool()
        .unwrap_or(false);
    let err = |code: &str, msg: &str, data: Option<Value>| {
        FieldResult::Error(field_error(f, sources, code, msg, data, None))
    };
    let Some(b) = inner.boards.get(&board_id) else {
        return err(
            "InvalidBoardIdException",
            "This board ID doesn't exist",
            Some(json!({"board_id": board_id})),
        );
    };
    let Some(cv) = parse_cv(&arg(f, "column_values", vars)) else {
        return err(
            "JsonParseException",
            "column_values must be a JSON object",
            None,
        );
    };
    let mut name: Option<String> = None;
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    for (col, v) in &cv {
        if col == "name" {
            match v.as_str() {
                Some(n) if name_ok(n) => name = Some(n.to_string()),
                _ => {
                    return err(
                        "ItemNameTooLongException",
                        "item name must be 1 to 255 characters",
                        Some(json!({"column_id": "name"})),
                    )
                }
            }
            continue;
        }
        let Some(c) = b.columns.iter().find(|c| &c.id == col) else {
            return err(
                "InvalidColumnIdException",
                "This column ID doesn't exist for the board",
                Some(json!({"column_id": col})),
            );
        };
        match columns::validate(&c.ty, col, &c.settings, v, create_labels) {
            Ok(v) => {
                values.insert(col.clone(), v);
            }
            Err(e) => return err(e.code, &e.message, Some(e.data)),
        }
    }
    match f.name.as_str() {
        "create_item" => {
            let item_name = arg(f, "item_name", vars).as_str().unwrap_or("").to_string();
            if !name_ok(&item_name) {
                return err(
                    "ItemNameTooLongException",
                    "item name must be 1 to 255 characters",
                    Some(json!({"item_name_length": item_name.chars().count()})),
                );
            }
            let group = match arg(f, "group_id", vars).as_str() {
                Some(g) => {
                    if !b.groups.iter().any(|(x, _)| x == g) {
                        return err(
                            "ResourceNotFoundException",
                            "Group not found",
                            Some(json!({"group_id": g})),
                        );
                    }
                    g.to_string()
                }
                None => b
                    .groups
                    .first()
                    .map(|g| g.0.clone())
                    .unwrap_or_else(|| "topics".into()),
            };
            inner.next_item_id += 1;
            let item = SimItem {
                id: inner.next_item_id.to_string(),
                name: name.unwrap_or(item_name),
                group_id: group,
                values: values.into_iter().filter(|(_, v)| !v.is_null()).collect(),
            };
            let v = item_json(inner, &board_id, &item);
            if let Some(b) = inner.boards.get_mut(&board_id) {
                b.items.push(item);
            }
            FieldResult::Data(project(&v, &f.selection_set, vars))
        }
        _ => {
            let item_id = id_of(&arg(f, "item_id", vars)).unwrap_or_default();
            let Some(b) = inner.boards.get_mut(&board_id) else {
                return err(
                    "InvalidBoardIdException",
                    "This board ID doesn't exist",
                    None,
                );
            };
            let Some(it) = b.items.iter_mut().find(|i| i.id == item_id) else {
                return err(
                    "InvalidItemIdException",
                    "Item not found in board",
                    Some(json!({"item_id": item_id})),
                );
            };
            if let Some(n) = name {
                it.name = n;
            }
            for (k, v) in values {
                if v.is_null() {
                    it.values.remove(&k);
                } else {
                    it.values.insert(k, v);
                }
            }
            let it = it.clone();
            let v = item_json(inner, &board_id, &it);
            FieldResult::Data(project(&v, &f.selection_set, vars))
        }
    }
}

/// The root fields of an operation, in order.
pub(crate) fn root_fields(op: &Operation) -> Vec<&Node<Field>> {
    op.selection_set
        .selections
        .iter()
        .filter_map(|s| match s {
            Selection::Field(f) => Some(f),
            _ => None,
        })
        .collect()
}
