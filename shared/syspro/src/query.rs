//! Translating [`mlc_core::query::Filter`] into OData `$filter` text and COMFND `Where`
//! expressions, keyset paging predicates, and the opaque page cursor.
//!
//! Values are never spliced raw: OData string literals double their single quotes, dates are
//! OData date literals, rowversions `binary'…'` (base64url, big-endian); COMFND values are XML
//! escaped by the writer. Field names must be plain identifiers.

use base64::Engine;
use mlc_core::ports::SourceError;
use mlc_core::query::{Filter, Literal, Op};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metadata::PropKind;

/// A filter after removing empty `and`/`or`s.
#[derive(Debug, Clone, PartialEq)]
pub enum Simple {
    /// Matches every row.
    All,
    /// Matches no row (an empty `or`, e.g. `Filter::keys` of no keys): no request needed.
    Nothing,
    /// A real filter.
    Some(Filter),
}

/// Drops empty groups and unwraps single-child groups.
pub fn simplify(f: &Filter) -> Simple {
    match f {
        Filter::Cmp { .. } => Simple::Some(f.clone()),
        Filter::And(v) => {
            let mut out = Vec::new();
            for c in v {
                match simplify(c) {
                    Simple::All => {}
                    Simple::Nothing => return Simple::Nothing,
                    Simple::Some(c) => out.push(c),
                }
            }
            match out.len() {
                0 => Simple::All,
                1 => Simple::Some(out.remove(0)),
                _ => Simple::Some(Filter::And(out)),
            }
        }
        Filter::Or(v) => {
            let mut out = Vec::new();
            for c in v {
                match simplify(c) {
                    Simple::All => return Simple::All,
                    Simple::Nothing => {}
                    Simple::Some(c) => out.push(c),
                }
            }
            match out.len() {
                0 => Simple::Nothing,
                1 => Simple::Some(out.remove(0)),
                _ => Simple::Some(Filter::Or(out)),
            }
        }
    }
}

/// Checks a field name is a plain identifier (it is written into query text).
pub fn check_field(name: &str) -> Result<(), SourceError> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(SourceError::Rejected(format!(
            "invalid column name {name:?}"
        )))
    }
}

/// A number in query text: integral values without a fraction, never exponent notation.
pub fn fmt_num(n: f64) -> Result<String, SourceError> {
    if !n.is_finite() {
        return Err(SourceError::Rejected(format!(
            "number {n} cannot be queried"
        )));
    }
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Ok(format!("{}", n as i64))
    } else {
        Ok(format!("{n}"))
    }
}

/// OData string literal: single quotes doubled.
pub fn odata_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// OData binary literal of a rowversion.
pub fn odata_binary(v: u64) -> String {
    format!(
        "binary'{}'",
        base64::engine::general_purpose::URL_SAFE.encode(v.to_be_bytes())
    )
}

/// Renders a literal for a property of the given kind, coercing text the engine built (key
/// parts are text) into the property's type so `EntryNumber eq '12'` becomes `eq 12`.
fn odata_literal(lit: &Literal, kind: Option<PropKind>) -> Result<String, SourceError> {
    Ok(match (lit, kind) {
        (Literal::Str(s), Some(PropKind::Number)) => match s.trim().parse::<f64>() {
            Ok(n) => fmt_num(n)?,
            Err(_) => odata_string(s),
        },
        (Literal::Str(s), Some(PropKind::Date)) => {
            match mlc_core::invoice::parse_business_date(s) {
                Some(d) => d.format("%Y-%m-%d").to_string(),
                None => odata_string(s),
            }
        }
        (Literal::Str(s), _) => odata_string(s),
        (Literal::Num(n), Some(PropKind::Text)) => odata_string(&fmt_num(*n)?),
        (Literal::Num(n), _) => fmt_num(*n)?,
        (Literal::Date(d), _) => d.format("%Y-%m-%d").to_string(),
        (Literal::RowVersion(v), _) => odata_binary(*v),
    })
}

/// Renders a (simplified) filter as OData `$filter` text.
pub fn to_odata(
    f: &Filter,
    kind_of: &dyn Fn(&str) -> Option<PropKind>,
) -> Result<String, SourceError> {
    match f {
        Filter::Cmp { field, op, value } => {
            check_field(field)?;
            Ok(format!(
                "{field} {} {}",
                op.odata(),
                odata_literal(value, kind_of(field))?
            ))
        }
        Filter::And(v) | Filter::Or(v) => {
            let joiner = if matches!(f, Filter::And(_)) {
                " and "
            } else {
                " or "
            };
            let parts = v
                .iter()
                .map(|c| to_odata(c, kind_of).map(|s| format!("({s})")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(parts.join(joiner))
        }
    }
}

/// A JSON key value (as read) → a filter literal.
fn key_literal(v: &Value) -> Result<Literal, SourceError> {
    match v {
        Value::String(s) => Ok(Literal::Str(s.clone())),
        Value::Number(n) => n
            .as_f64()
            .map(Literal::Num)
            .ok_or_else(|| SourceError::Rejected("key value out of range".into())),
        other => Err(SourceError::Transient(format!(
            "key column came back as {other}: cannot page after it"
        ))),
    }
}

/// "key > last", lexicographic over the composite key:
/// `k1 gt v1 or (k1 eq v1 and k2 gt v2) or (k1 eq v1 and k2 eq v2 and k3 gt v3)`.
pub fn keyset_after(keys: &[String], last: &[Value]) -> Result<Filter, SourceError> {
    if keys.len() != last.len() || keys.is_empty() {
        return Err(SourceError::Rejected(
            "page cursor does not match the key".into(),
        ));
    }
    let lits = last
        .iter()
        .map(key_literal)
        .collect::<Result<Vec<_>, _>>()?;
    let mut disjuncts = Vec::new();
    for i in 0..keys.len() {
        let mut conj: Vec<Filter> = (0..i)
            .map(|j| Filter::cmp(keys[j].clone(), Op::Eq, lits[j].clone()))
            .collect();
        conj.push(Filter::cmp(keys[i].clone(), Op::Gt, lits[i].clone()));
        disjuncts.push(if conj.len() == 1 {
            conj.remove(0)
        } else {
            Filter::And(conj)
        });
    }
    Ok(if disjuncts.len() == 1 {
        disjuncts.remove(0)
    } else {
        Filter::Or(disjuncts)
    })
}

/// The filter of one page: the query's own filter AND, after the first page, "key after the
/// cursor's key".
pub fn page_filter(
    filter: Option<&Filter>,
    keys: &[String],
    cursor: Option<&Cursor>,
) -> Result<Simple, SourceError> {
    let base = filter.map(simplify).unwrap_or(Simple::All);
    let after = cursor.map(|c| keyset_after(keys, &c.k)).transpose()?;
    Ok(match (base, after) {
        (Simple::Nothing, _) => Simple::Nothing,
        (base, None) => base,
        (Simple::All, Some(a)) => Simple::Some(a),
        (Simple::Some(f), Some(a)) => Simple::Some(Filter::And(vec![f, a])),
    })
}

/// What the opaque [`mlc_core::query::PageCursor`] holds: where the next keyset page starts.
/// (Cursors of older versions also carried a nextLink and a row count; serde ignores them.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The key of the last row handed out (raw values).
    pub k: Vec<Value>,
}

impl Cursor {
    /// Encodes as base64url JSON.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a cursor this crate produced.
    pub fn decode(s: &str) -> Result<Cursor, SourceError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.as_bytes())
            .map_err(|_| SourceError::Rejected("page cursor is not one of ours".into()))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| SourceError::Rejected("page cursor is not one of ours".into()))
    }
}

/// One COMFND `Where/Expression`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WhereExpr {
    /// Opening brackets before it.
    pub open: usize,
    /// `And` / `Or` joining it to the previous expression (empty for the first).
    pub and_or: &'static str,
    /// Column.
    pub column: String,
    /// `EQ`, `NE`, `GT`, `GE`, `LT`, `LE`.
    pub condition: &'static str,
    /// Value as text.
    pub value: String,
    /// Closing brackets after it.
    pub close: usize,
}

fn comfnd_condition(op: Op) -> &'static str {
    match op {
        Op::Eq => "EQ",
        Op::Ne => "NE",
        Op::Gt => "GT",
        Op::Ge => "GE",
        Op::Lt => "LT",
        Op::Le => "LE",
    }
}

/// Flattens a (simplified) filter into COMFND expressions with brackets.
pub fn to_comfnd(f: &Filter) -> Result<Vec<WhereExpr>, SourceError> {
    let mut out: Vec<WhereExpr> = Vec::new();
    let mut open = 0usize;
    let mut conn: &'static str = "";
    fn walk(
        f: &Filter,
        out: &mut Vec<WhereExpr>,
        open: &mut usize,
        conn: &mut &'static str,
    ) -> Result<(), SourceError> {
        match f {
            Filter::Cmp { field, op, value } => {
                check_field(field)?;
                let value = match value {
                    Literal::Str(s) => s.clone(),
                    Literal::Num(n) => fmt_num(*n)?,
                    Literal::Date(d) => d.format("%Y-%m-%d").to_string(),
                    Literal::RowVersion(v) => format!("0x{v:016X}"),
                };
                out.push(WhereExpr {
                    open: std::mem::take(open),
                    and_or: std::mem::take(conn),
                    column: field.clone(),
                    condition: comfnd_condition(*op),
                    value,
                    close: 0,
                });
                Ok(())
            }
            Filter::And(v) | Filter::Or(v) => {
                let joiner = if matches!(f, Filter::And(_)) {
                    "And"
                } else {
                    "Or"
                };
                *open += 1;
                for (i, c) in v.iter().enumerate() {
                    if i > 0 {
                        *conn = joiner;
                    }
                    walk(c, out, open, conn)?;
                }
                if let Some(last) = out.last_mut() {
                    last.close += 1;
                }
                Ok(())
            }
        }
    }
    walk(f, &mut out, &mut open, &mut conn)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use serde_json::json;

    fn kinds(f: &str) -> Option<PropKind> {
        match f {
            "EntryNumber" | "InvoiceBal1" => Some(PropKind::Number),
            "InvoiceDate" => Some(PropKind::Date),
            "TimeStamp" => Some(PropKind::Binary),
            _ => Some(PropKind::Text),
        }
    }

    #[test]
    fn odata_literals_are_escaped_and_typed() {
        let f = Filter::And(vec![
            Filter::cmp("Customer", Op::Eq, Literal::Str("O'Brien".into())),
            Filter::cmp(
                "InvoiceDate",
                Op::Ge,
                Literal::Date(NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()),
            ),
            Filter::cmp("TimeStamp", Op::Gt, Literal::RowVersion(2001)),
            Filter::cmp("InvoiceBal1", Op::Ne, Literal::Num(0.0)),
            Filter::cmp("EntryNumber", Op::Eq, Literal::Str("12".into())),
        ]);
        assert_eq!(
            to_odata(&f, &kinds).unwrap(),
            "(Customer eq 'O''Brien') and (InvoiceDate ge 2026-11-24) and (TimeStamp gt binary'AAAAAAAAB9E=') and (InvoiceBal1 ne 0) and (EntryNumber eq 12)"
        );
        let bad = Filter::cmp("X eq 1) or (Y", Op::Eq, Literal::Num(1.0));
        assert!(to_odata(&bad, &kinds).is_err());
    }

    #[test]
    fn keyset_and_cursor() {
        let keys: Vec<String> = ["Customer", "Invoice"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f = keyset_after(&keys, &[json!("A'1 "), json!("100")]).unwrap();
        assert_eq!(
            to_odata(&f, &kinds).unwrap(),
            "(Customer gt 'A''1 ') or ((Customer eq 'A''1 ') and (Invoice gt '100'))"
        );
        let c = Cursor {
            k: vec![json!("x")],
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("garbage!").is_err());
        // A cursor from before keyset-only paging still resumes after its key.
        let old = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"k":["x"],"n":"http://127.0.0.1/next?$skip=3","w":3}"#);
        assert_eq!(Cursor::decode(&old).unwrap(), c);
    }

    #[test]
    fn simplify_and_comfnd() {
        assert_eq!(simplify(&Filter::Or(vec![])), Simple::Nothing);
        assert_eq!(simplify(&Filter::And(vec![])), Simple::All);
        let f = Filter::And(vec![
            Filter::cmp("InvoiceBal1", Op::Ne, Literal::Num(0.0)),
            Filter::Or(vec![
                Filter::cmp("Customer", Op::Gt, Literal::Str("A".into())),
                Filter::cmp("Customer", Op::Eq, Literal::Str("<&>".into())),
            ]),
        ]);
        let w = to_comfnd(&f).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].open, w[0].and_or, w[0].close), (1, "", 0));
        assert_eq!((w[1].open, w[1].and_or, w[1].close), (1, "And", 0));
        assert_eq!((w[2].open, w[2].and_or, w[2].close), (0, "Or", 2));
        assert_eq!(w[2].value, "<&>");
    }
}
