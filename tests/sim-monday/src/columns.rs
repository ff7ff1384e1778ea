//! Column value validation per column type, with the error bodies Monday.com sends.

use serde_json::{json, Value};

/// A rejected value: code, message and `error_data`.
#[derive(Debug, Clone)]
pub(crate) struct ColumnError {
    pub code: &'static str,
    pub message: String,
    pub data: Value,
}

/// Monday's class-style name of a column type (`DateColumn`), as error_data shows it.
fn class_name(ty: &str) -> String {
    let mut s: String = ty
        .split('_')
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect();
    s.push_str("Column");
    s
}

fn bad(ty: &str, col: &str, v: &Value) -> ColumnError {
    ColumnError {
        code: "ColumnValueException",
        message: "invalid value, please check our API documentation for the correct data structure for this column. https://developer.monday.com/api-reference/docs/change-column-values".to_string(),
        data: json!({"column_value": v.to_string(), "column_type": class_name(ty), "column_id": col}),
    }
}

/// Labels of a status or dropdown column, from its settings (map or list form).
fn labels(settings: &Value) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    match settings.get("labels") {
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if let (Ok(i), Some(l)) = (k.parse::<i64>(), v.as_str()) {
                    out.push((i, l.to_string()));
                }
            }
        }
        Some(Value::Array(a)) => {
            for v in a {
                let id = v
                    .get("id")
                    .or_else(|| v.get("index"))
                    .and_then(Value::as_i64);
                let l = v
                    .get("label")
                    .or_else(|| v.get("name"))
                    .and_then(Value::as_str);
                if let (Some(i), Some(l)) = (id, l) {
                    out.push((i, l.to_string()));
                }
            }
        }
        _ => {}
    }
    out
}

/// Validates (and normalises) one value for a column; `Null` clears it.
pub(crate) fn validate(
    ty: &str,
    col: &str,
    settings: &Value,
    v: &Value,
    create_labels: bool,
) -> Result<Value, ColumnError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    let ok = match ty {
        "text" => v.is_string(),
        "long_text" => v.is_string() || s("text").is_some(),
        "numbers" => match v {
            Value::String(x) => x.is_empty() || x.trim().parse::<f64>().is_ok(),
            Value::Number(_) => true,
            _ => false,
        },
        "date" => {
            let d_ok =
                s("date").is_some_and(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok());
            let t_ok = match v.get("time") {
                None | Some(Value::Null) => true,
                Some(Value::String(t)) => chrono::NaiveTime::parse_from_str(t, "%H:%M:%S").is_ok(),
                _ => false,
            };
            d_ok && t_ok
        }
        "status" => {
            let ls = labels(settings);
            if let Some(l) = s("label") {
                if !create_labels && !ls.iter().any(|(_, x)| x == l) {
                    return Err(ColumnError {
                        code: "ColumnValueException",
                        message: format!(
                            "This status label doesn't exist, possible statuses are: {}",
                            ls.iter()
                                .map(|(i, l)| format!("{i}: {l}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        data: json!({"column_value": v.to_string(), "column_type": "StatusColumn", "column_id": col}),
                    });
                }
                true
            } else if let Some(i) = v.get("index").and_then(Value::as_i64) {
                ls.iter().any(|(x, _)| *x == i)
            } else {
                false
            }
        }
        "dropdown" => {
            let ls = labels(settings);
            if let Some(arr) = v.get("labels").and_then(Value::as_array) {
                arr.iter().all(|l| {
                    l.as_str()
                        .is_some_and(|l| create_labels || ls.iter().any(|(_, x)| x == l))
                })
            } else if let Some(arr) = v.get("ids").and_then(Value::as_array) {
                arr.iter()
                    .all(|i| i.as_i64().is_some_and(|i| ls.iter().any(|(x, _)| *x == i)))
            } else {
                false
            }
        }
        "email" => s("email").is_some_and(|e| e.contains('@')) && s("text").is_some(),
        "phone" => {
            s("phone").is_some_and(|p| {
                p.len() >= 6
                    && p.trim_start_matches('+')
                        .chars()
                        .all(|c| c.is_ascii_digit())
            }) && s("countryShortName")
                .is_some_and(|c| c.len() == 2 && c.chars().all(|c| c.is_ascii_uppercase()))
        }
        "link" => s("url").is_some_and(|u| u.starts_with("http://") || u.starts_with("https://")),
        _ => false,
    };
    if ok {
        Ok(v.clone())
    } else {
        Err(bad(ty, col, v))
    }
}

/// The display text of a stored value (what `column_values { text }` returns).
pub(crate) fn text_of(ty: &str, v: &Value) -> Option<String> {
    if v.is_null() {
        return None;
    }
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Some(match ty {
        "text" | "numbers" => v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
        "long_text" => v
            .as_str()
            .map(str::to_string)
            .or_else(|| s("text"))
            .unwrap_or_default(),
        "date" => s("date").unwrap_or_default(),
        "status" => s("label").unwrap_or_default(),
        "dropdown" => v
            .get("labels")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        "email" => s("email").unwrap_or_default(),
        "phone" => s("phone").unwrap_or_default(),
        "link" => s("url").unwrap_or_default(),
        _ => v.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let st = json!({"labels": {"0": "Open", "1": "Paid"}});
        assert!(validate(
            "date",
            "d",
            &Value::Null,
            &json!({"date": "2026-11-24"}),
            false
        )
        .is_ok());
        assert!(validate("date", "d", &Value::Null, &json!("2026-11-24"), false).is_err());
        assert!(validate("numbers", "n", &Value::Null, &json!("12.5"), false).is_ok());
        assert!(validate("numbers", "n", &Value::Null, &json!({"date": "x"}), false).is_err());
        assert!(validate("status", "s", &st, &json!({"label": "Paid"}), false).is_ok());
        assert!(validate("status", "s", &st, &json!({"label": "Nope"}), false).is_err());
        let e = validate("date", "d", &Value::Null, &json!(5), false).unwrap_err();
        assert_eq!(e.data["column_type"], "DateColumn");
    }
}
