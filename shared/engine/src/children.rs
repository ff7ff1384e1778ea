//! Values a parent record takes from its child rows: a purchase order's value, line count and
//! receipt status from its `PorMasterDetail` lines, its received value from its `GrnDetails`.
//!
//! Read only when the destination reads one of these fields, one query per 50 parents per
//! child table. Money and quantities are decimals: a line's value is `MOrderQty × MPrice`
//! rounded half-up to cents, as SYSPRO shows line values, and the order value is their sum.

use std::collections::HashMap;

use mlc_core::entity::derived;
use mlc_core::money::{self, Decimal};
use mlc_core::ports::{Source, SourceError};
use mlc_core::query::{Filter, Literal, Op, SourceQuery};
use mlc_core::view::DestinationView;
use mlc_core::{Entity, Record};
use serde_json::Value;

/// Parents per child query (an `or` of equalities, like the other by-key reads).
const PARENTS_PER_QUERY: usize = 50;

/// The child-derived fields of an entity.
pub fn child_fields(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::PorMasterHdr => &[
            derived::ORDER_VALUE,
            derived::GRN_STATUS,
            derived::LINE_COUNT,
            derived::RECEIVED_VALUE,
        ],
        _ => &[],
    }
}

/// The child tables whose rows change the parent's record as the view sees it, with the
/// column on the child that names the parent.
pub fn child_tables(view: &DestinationView) -> Vec<(Entity, &'static str)> {
    let reads = |f: &str| view.fields.contains(f);
    let mut out = Vec::new();
    if view.entity == Entity::PorMasterHdr {
        if [
            derived::ORDER_VALUE,
            derived::GRN_STATUS,
            derived::LINE_COUNT,
        ]
        .iter()
        .any(|f| reads(f))
        {
            out.push((Entity::PorMasterDetail, "PurchaseOrder"));
        }
        if reads(derived::RECEIVED_VALUE) {
            out.push((Entity::GrnDetails, "PurchaseOrder"));
        }
    }
    out
}

/// Fills the child-derived fields of `rows` (purchase order headers).
pub async fn fill(
    source: &dyn Source,
    view: &DestinationView,
    rows: &mut [Record],
    page_size: u32,
) -> Result<(), SourceError> {
    let tables = child_tables(view);
    if tables.is_empty() || rows.is_empty() {
        return Ok(());
    }
    let parents: Vec<String> = rows.iter().filter_map(parent_id).collect();
    for (child, parent_col) in tables {
        let cols: &[&str] = match child {
            Entity::PorMasterDetail => &["PurchaseOrder", "MOrderQty", "MReceivedQty", "MPrice"],
            _ => &["PurchaseOrder", "OrigGrnValue"],
        };
        let lines = read_children(source, child, parent_col, cols, &parents, page_size).await?;
        for row in rows.iter_mut() {
            let Some(id) = parent_id(row) else { continue };
            let mine = lines.get(&id).map(Vec::as_slice).unwrap_or_default();
            match child {
                Entity::PorMasterDetail => add_line_values(row, mine),
                _ => add_received_value(row, mine),
            }
        }
    }
    Ok(())
}

/// Parents whose children changed after `bound` (a rowversion: SQL Server numbers every
/// write in the database from one counter, so the parent's watermark bounds its children too),
/// with the highest rowversion read.
pub async fn changed_parents(
    source: &dyn Source,
    view: &DestinationView,
    bound: u64,
    page_size: u32,
) -> Result<(Vec<String>, Option<u64>), SourceError> {
    let mut parents = Vec::new();
    let mut max_rv = None;
    for (child, parent_col) in child_tables(view) {
        if !source.has_row_version(child).await? {
            continue;
        }
        let q = SourceQuery {
            entity: child,
            fields: vec![parent_col.to_string(), "TimeStamp".into()],
            filter: Some(Filter::cmp("TimeStamp", Op::Gt, Literal::RowVersion(bound))),
            page_size,
        };
        for r in read_all(source, &q).await? {
            if let Some(v) = r.get("TimeStamp").and_then(Value::as_u64) {
                max_rv = Some(max_rv.map_or(v, |m: u64| m.max(v)));
            }
            if let Some(p) = r.get(parent_col).and_then(Value::as_str) {
                let p = p.trim_end().to_string();
                if !parents.contains(&p) {
                    parents.push(p);
                }
            }
        }
    }
    Ok((parents, max_rv))
}

fn parent_id(row: &Record) -> Option<String> {
    row.get("PurchaseOrder")
        .and_then(Value::as_str)
        .map(|s| s.trim_end().to_string())
}

async fn read_all(source: &dyn Source, q: &SourceQuery) -> Result<Vec<Record>, SourceError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = source.read_page(q, cursor.as_ref()).await?;
        out.extend(page.rows);
        match page.next {
            Some(n) => cursor = Some(n),
            None => return Ok(out),
        }
    }
}

/// Child rows per parent identity.
async fn read_children(
    source: &dyn Source,
    child: Entity,
    parent_col: &str,
    cols: &[&str],
    parents: &[String],
    page_size: u32,
) -> Result<HashMap<String, Vec<Record>>, SourceError> {
    let mut by_parent: HashMap<String, Vec<Record>> = HashMap::new();
    for chunk in parents.chunks(PARENTS_PER_QUERY) {
        let q = SourceQuery {
            entity: child,
            fields: cols.iter().map(|c| c.to_string()).collect(),
            filter: Some(Filter::Or(
                chunk
                    .iter()
                    .map(|p| Filter::cmp(parent_col, Op::Eq, Literal::Str(p.clone())))
                    .collect(),
            )),
            page_size,
        };
        for r in read_all(source, &q).await? {
            if let Some(p) = r.get(parent_col).and_then(Value::as_str) {
                by_parent
                    .entry(p.trim_end().to_string())
                    .or_default()
                    .push(r);
            }
        }
    }
    Ok(by_parent)
}

/// `_OrderValue`, `_LineCount` and `_GrnStatus` from a purchase order's lines. A line whose
/// numbers cannot be read leaves the value and status empty (never a wrong total).
fn add_line_values(row: &mut Record, lines: &[Record]) {
    let num = |r: &Record, f: &str| money::decimal(r.get(f)).map(Option::unwrap_or_default);
    let mut value = Some(Decimal::ZERO);
    let mut received_lines = 0usize;
    let mut any_received = false;
    for l in lines {
        match (
            num(l, "MOrderQty"),
            num(l, "MPrice"),
            num(l, "MReceivedQty"),
        ) {
            (Ok(qty), Ok(price), Ok(got)) => {
                value = value.map(|v| v + money::round_half_up(qty * price, 2));
                any_received |= !got.is_zero();
                if got >= qty {
                    received_lines += 1;
                }
            }
            _ => value = None,
        }
    }
    let status = match value {
        None => Value::Null,
        Some(_) if !lines.is_empty() && received_lines == lines.len() && any_received => {
            Value::String("received".into())
        }
        Some(_) if any_received => Value::String("partial".into()),
        Some(_) => Value::String("none".into()),
    };
    row.insert(
        derived::ORDER_VALUE.into(),
        value.map(money::to_json).unwrap_or(Value::Null),
    );
    row.insert(derived::GRN_STATUS.into(), status);
    row.insert(derived::LINE_COUNT.into(), Value::from(lines.len()));
}

/// `_ReceivedValue`: the sum of the purchase order's GRN values.
fn add_received_value(row: &mut Record, grns: &[Record]) {
    let total: Result<Decimal, String> = grns.iter().try_fold(Decimal::ZERO, |acc, g| {
        Ok(acc + money::decimal(g.get("OrigGrnValue"))?.unwrap_or_default())
    });
    row.insert(
        derived::RECEIVED_VALUE.into(),
        total.map(money::to_json).unwrap_or(Value::Null),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(qty: &str, price: &str, got: &str) -> Record {
        json!({"PurchaseOrder": "P1", "MOrderQty": qty, "MPrice": price, "MReceivedQty": got})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn order_value_rounds_each_line_half_up_then_sums() {
        let mut row = Record::new();
        // 2.5 × 1.01 = 2.525 → 2.53; 0.333333 × 3 = 0.999999 → 1.00; 3 × 0.1 = 0.30.
        let lines = [
            line("2.5", "1.01", "0"),
            line("0.333333", "3", "0.333333"),
            line("3", "0.10000", "0"),
        ];
        add_line_values(&mut row, &lines);
        assert_eq!(row[derived::ORDER_VALUE].to_string(), "3.83");
        assert_eq!(row[derived::LINE_COUNT], json!(3));
        assert_eq!(row[derived::GRN_STATUS], json!("partial"));
    }

    #[test]
    fn receipt_status_from_the_lines() {
        let mut row = Record::new();
        add_line_values(&mut row, &[line("2", "5", "2"), line("1", "5", "3")]);
        assert_eq!(row[derived::GRN_STATUS], json!("received"));
        add_line_values(&mut row, &[line("2", "5", "0")]);
        assert_eq!(row[derived::GRN_STATUS], json!("none"));
        add_line_values(&mut row, &[]);
        assert_eq!(row[derived::GRN_STATUS], json!("none"));
        assert_eq!(row[derived::ORDER_VALUE].to_string(), "0");
        add_line_values(&mut row, &[line("2", "five", "0")]);
        assert_eq!(row[derived::ORDER_VALUE], Value::Null);
        assert_eq!(row[derived::GRN_STATUS], Value::Null);
    }

    #[test]
    fn received_value_sums_grns() {
        let mut row = Record::new();
        let g = |v: Value| {
            json!({"PurchaseOrder": "P1", "OrigGrnValue": v})
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        add_received_value(
            &mut row,
            &[g(json!(0.1)), g(json!("  0.2")), g(Value::Null)],
        );
        assert_eq!(row[derived::RECEIVED_VALUE].to_string(), "0.3");
    }
}
