//! `preview`: the column values `write` would send for each record, beside the item's values
//! on the board now.
//!
//! Records are mapped by [`MondaySink::prepare`], the function `write` uses, after the same
//! board discovery and mapping check, so the two cannot drift apart. Items are found as the
//! write finds them (the item id in record state, else the SYSPRO id column), with one
//! `items_page_by_column_values` per board reading only the mapped columns. Columns compare
//! by what the board shows (`text`, or the `value` for e-mail, phone and link): numbers as
//! decimals, dates as dates, status and dropdown by label, blank and missing alike.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use mlc_core::ports::{PendingWrite, SinkError};
use mlc_core::preview::{is_blank, same_date, same_decimal, FieldPreview, Preview, PreviewAction};
use mlc_core::ErrorLink;

use super::{
    column_text, exact_matches, id_str, next_utc_midnight, BoardInfo, Discovered, MondaySink,
    Prepared,
};
use crate::request_builder::ItemColumns;
use crate::retry::ErrorClass;

/// A record mapped for its board, or its preview already (not writable, nothing to write).
enum Step {
    Mapped {
        board: String,
        id_column: String,
        prepared: Prepared,
    },
    Done(Preview),
}

/// A board's items for the batch, as the lookup returned them.
#[derive(Default)]
struct BoardItems {
    /// By the id column's exact text.
    by_target: HashMap<String, Value>,
    /// By item id.
    by_id: HashMap<String, Value>,
}

impl BoardItems {
    /// The item a write would touch: the one record state names (when the board still has
    /// it), else the one carrying the SYSPRO id.
    fn of(&self, p: &Prepared) -> Option<&Value> {
        p.item_id
            .as_ref()
            .and_then(|id| self.by_id.get(id))
            .or_else(|| self.by_target.get(&p.target))
    }
}

impl MondaySink {
    /// Previews a batch: one per record, in order.
    pub(super) async fn preview_batch(
        &self,
        batch: &[PendingWrite],
    ) -> Result<Vec<Preview>, SinkError> {
        let mut boards: Vec<String> = batch
            .iter()
            .filter_map(|w| self.flow.entity(w.event.entity)?.monday.as_ref())
            .map(|t| t.board_id.clone())
            .collect();
        boards.sort();
        boards.dedup();
        if !boards.is_empty() {
            self.discover(&boards)
                .await
                .map_err(|(class, l, _)| self.sink_error(class, l))?;
        }
        let known = self.boards.lock().await.clone();
        let steps: Vec<Step> = batch
            .iter()
            .enumerate()
            .map(|(i, w)| self.preview_step(i, w, &known))
            .collect();
        let mut current: HashMap<String, BoardItems> = HashMap::new();
        for board in &boards {
            let items = self.current_items(board, &steps).await?;
            current.insert(board.clone(), items);
        }
        Ok(steps
            .into_iter()
            .map(|s| match s {
                Step::Done(p) => p,
                Step::Mapped {
                    board, prepared, ..
                } => {
                    let info = match known.get(&board) {
                        Some(Discovered::Found(i)) => i.clone(),
                        _ => BoardInfo::default(),
                    };
                    let items = current.get(&board);
                    compare(
                        &board,
                        &info,
                        &prepared,
                        items.and_then(|m| m.of(&prepared)),
                    )
                }
            })
            .collect())
    }

    /// Maps one record exactly as `write` does, or says why nothing would be written.
    fn preview_step(
        &self,
        i: usize,
        w: &PendingWrite,
        known: &HashMap<String, Discovered>,
    ) -> Step {
        let flow = &self.flow.id;
        let ev = &w.event;
        let Some((ecfg, t)) = self
            .flow
            .entity(ev.entity)
            .and_then(|e| e.monday.as_ref().map(|t| (e, t)))
        else {
            return Step::Done(Preview::refused(
                "monday".into(),
                format!(
                    "flow {flow}: entity {} has no monday board configured (record {})",
                    ev.entity,
                    ev.label()
                ),
            ));
        };
        let destination = format!("board {}", t.board_id);
        let d = known
            .get(&t.board_id)
            .cloned()
            .unwrap_or(Discovered::Missing);
        if let Err(m) = self.check_mapping(ecfg, t, &d) {
            return Step::Done(Preview::refused(destination, m));
        }
        let Discovered::Found(info) = &d else {
            return Step::Done(Preview::refused(destination, "board not found".into()));
        };
        match self.prepare(i, w, ecfg, t, info) {
            Ok(Some(prepared)) => Step::Mapped {
                board: t.board_id.clone(),
                id_column: t.id_column.clone(),
                prepared,
            },
            Ok(None) => Step::Done(Preview {
                destination,
                destination_id: None,
                fields: Vec::new(),
                action: PreviewAction::Nothing,
                note: Some(
                    "gone from SYSPRO, and the flow configures no column for removals".into(),
                ),
            }),
            Err(f) => Step::Done(Preview::refused(destination, f.message)),
        }
    }

    /// The board's items for the batch's records, keyed by the id column's exact text and
    /// by item id: one lookup reading only the mapped columns.
    async fn current_items(&self, board: &str, steps: &[Step]) -> Result<BoardItems, SinkError> {
        let mut targets: BTreeSet<String> = BTreeSet::new();
        let mut columns: BTreeSet<String> = BTreeSet::new();
        let mut id_col: Option<&String> = None;
        for s in steps {
            if let Step::Mapped {
                board: b,
                id_column,
                prepared,
            } = s
            {
                if b == board {
                    targets.insert(prepared.target.clone());
                    columns.extend(prepared.values.keys().cloned());
                    // As `write` does: the first record's entity names the board's id column.
                    id_col = id_col.or(Some(id_column));
                }
            }
        }
        let Some(id_column) = id_col else {
            return Ok(BoardItems::default());
        };
        let targets: Vec<String> = targets.into_iter().collect();
        let columns: Vec<String> = columns.into_iter().collect();
        let items = self
            .fetch_items(
                board,
                id_column,
                &targets,
                &columns,
                ItemColumns::TextAndValue,
            )
            .await
            .map_err(|(class, l, _)| self.sink_error(class, l))?;
        let by_target = exact_matches(&items, id_column, &targets)
            .into_iter()
            .map(|(t, it)| (t, it.clone()))
            .collect();
        let by_id = items
            .iter()
            .filter_map(|it| Some((id_str(it.get("id"))?, it.clone())))
            .collect();
        Ok(BoardItems { by_target, by_id })
    }

    /// A whole-call lookup failure as the port's error.
    fn sink_error(&self, class: ErrorClass, l: ErrorLink) -> SinkError {
        let m = format!("flow {}: {}", self.flow.id, l.message);
        match class {
            ErrorClass::Auth => SinkError::Auth(m),
            ErrorClass::Permanent => SinkError::Config(m),
            ErrorClass::Daily => SinkError::DailyLimit {
                message: m,
                until: next_utc_midnight(self.clock.now()),
            },
            _ => SinkError::Transient(m),
        }
    }
}

/// The payload beside the item (`None`: no item found).
fn compare(board: &str, info: &BoardInfo, p: &Prepared, item: Option<&Value>) -> Preview {
    let destination = format!("board {board}");
    // The id record state holds is the one the write updates, found on the board or not.
    let item_id = item
        .and_then(|it| id_str(it.get("id")))
        .or_else(|| p.item_id.clone());
    if item_id.is_none() && !p.may_create {
        let why = if p.removal {
            "gone from SYSPRO and never on the board: nothing to mark as removed"
        } else {
            "a payment updates its invoice's item and never creates one; that item does not exist yet, so the payment waits"
        };
        return Preview {
            destination,
            destination_id: None,
            fields: Vec::new(),
            action: PreviewAction::Nothing,
            note: Some(format!("{why} ({})", p.target)),
        };
    }
    let mut fields: Vec<FieldPreview> = Vec::new();
    if p.may_create && !p.removal {
        let current = item.map(|it| it.get("name").cloned().unwrap_or(Value::Null));
        let changed = current
            .as_ref()
            .is_none_or(|c| c.as_str().map(str::trim) != Some(p.item_name.trim()));
        fields.push(FieldPreview {
            field: "name".into(),
            new: Value::String(p.item_name.clone()),
            current,
            changed,
        });
    }
    let ordered: BTreeMap<&String, &Value> = p.values.iter().collect();
    for (col, new) in ordered {
        let ty = info
            .columns
            .get(col)
            .map(|c| c.1.as_str())
            .unwrap_or("text");
        let now = item.map(|it| column_now(it, col));
        let changed = match &now {
            None => true,
            Some((text, value)) => !column_same(ty, new, text.as_deref(), value.as_ref()),
        };
        fields.push(FieldPreview {
            field: col.clone(),
            new: new.clone(),
            current: now.map(|(text, _)| text.map(Value::String).unwrap_or(Value::Null)),
            changed,
        });
    }
    let mut preview = Preview::from_fields(destination, item_id, fields);
    if item.is_none() && preview.destination_id.is_some() {
        preview = preview.with_note(
            "record state names this item but the board did not return it: the sync updates it by id",
        );
    }
    preview
}

/// A column's text and decoded value on an item.
fn column_now(item: &Value, col: &str) -> (Option<String>, Option<Value>) {
    let text = column_text(item, col)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let value = item
        .get("column_values")
        .and_then(Value::as_array)
        .and_then(|cvs| {
            cvs.iter()
                .find(|c| c.get("id").and_then(Value::as_str) == Some(col))
        })
        .and_then(|c| c.get("value"))
        .and_then(|v| match v {
            // `value` is JSON encoded in a string.
            Value::String(s) => serde_json::from_str(s).ok(),
            Value::Null => None,
            other => Some(other.clone()),
        });
    (text, value)
}

/// Whether a column already shows what writing `new` (shaped by `column_value`) would put
/// there. Judged on what the board shows: Monday keeps more in `value` (status indexes,
/// timestamps) than a write sets.
pub fn column_same(ty: &str, new: &Value, text: Option<&str>, value: Option<&Value>) -> bool {
    let text = text.map(str::trim).unwrap_or("");
    if is_blank(new) {
        return text.is_empty();
    }
    if text.is_empty() {
        return false;
    }
    let decoded = |k: &str| value.and_then(|v| key(v, k)).unwrap_or(text).to_string();
    match ty {
        "numbers" => same_decimal(new, &Value::String(text.to_string())),
        "date" => key(new, "date").is_some_and(|d| same_date(d, text)),
        "status" => key(new, "label") == Some(text),
        "dropdown" => {
            let want: BTreeSet<&str> = new
                .get("labels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::trim)
                .collect();
            let have: BTreeSet<&str> = text.split(',').map(str::trim).collect();
            want == have
        }
        "long_text" => key(new, "text").or(new.as_str().map(str::trim)) == Some(text),
        "email" => key(new, "email") == Some(decoded("email").as_str()),
        "link" => key(new, "url") == Some(decoded("url").as_str()),
        "phone" => {
            let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
            key(new, "phone").map(digits) == Some(digits(&decoded("phone")))
        }
        _ => new.as_str().map(str::trim) == Some(text),
    }
}

/// A string member of a shaped or decoded value, trimmed.
fn key<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_compare_by_what_the_board_shows() {
        assert!(column_same(
            "numbers",
            &json!("100.5"),
            Some("100.50"),
            None
        ));
        assert!(!column_same(
            "numbers",
            &json!("100.5"),
            Some("100.51"),
            None
        ));
        assert!(column_same(
            "date",
            &json!({"date": "2026-12-15"}),
            Some("2026-12-15"),
            None
        ));
        assert!(column_same(
            "status",
            &json!({"label": "paid"}),
            Some("paid"),
            Some(&json!({"index": 2}))
        ));
        assert!(!column_same(
            "status",
            &json!({"label": "paid"}),
            Some("open"),
            None
        ));
        assert!(column_same(
            "dropdown",
            &json!({"labels": ["B", "A"]}),
            Some("A, B"),
            None
        ));
        assert!(column_same(
            "link",
            &json!({"url": "https://x.y", "text": "https://x.y"}),
            Some("site - https://x.y"),
            Some(&json!({"url": "https://x.y", "text": "site"}))
        ));
        assert!(column_same(
            "phone",
            &json!({"phone": "+27115550101", "countryShortName": "ZA"}),
            Some("+27 11 555 0101"),
            None
        ));
        assert!(column_same("text", &json!("ACME01"), Some("ACME01 "), None));
        // Blank and missing are alike.
        assert!(column_same("text", &Value::Null, None, None));
        assert!(column_same("numbers", &Value::Null, Some(""), None));
        assert!(!column_same("text", &json!("x"), None, None));
    }
}
