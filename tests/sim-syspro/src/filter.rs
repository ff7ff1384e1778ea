//! Filter expressions: an OData `$filter` parser (eq, ne, gt, ge, lt, le, and, or, not,
//! parentheses; string, number, date, datetimeoffset, binary, null literals), the same tree
//! built from an e.net `COMFND` `Where` block, and evaluation with SQL semantics.
//!
//! Malformed input is an error, never "match everything": a client bug must show up as a 400,
//! as it would on the real service.

use base64::Engine;
use chrono::NaiveDate;

use crate::data::{Cell, ColType, RowKey, TableSchema};

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

impl CmpOp {
    /// From an OData or COMFND spelling (case-insensitive).
    pub fn parse(s: &str) -> Option<CmpOp> {
        Some(match s.to_ascii_lowercase().as_str() {
            "eq" => CmpOp::Eq,
            "ne" => CmpOp::Ne,
            "gt" => CmpOp::Gt,
            "ge" => CmpOp::Ge,
            "lt" => CmpOp::Lt,
            "le" => CmpOp::Le,
            _ => return None,
        })
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// `'text'`
    Str(String),
    /// `12`, `-3.5`
    Num(f64),
    /// `2026-11-24` (or the date part of a datetimeoffset literal)
    Date(NaiveDate),
    /// `binary'…'` (rowversion, big-endian)
    Binary(u64),
    /// `null`
    Null,
}

/// A parsed filter, columns resolved to indexes.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `col op lit`
    Cmp(usize, CmpOp, Lit),
    /// both
    And(Box<Expr>, Box<Expr>),
    /// either
    Or(Box<Expr>, Box<Expr>),
    /// negation
    Not(Box<Expr>),
}

impl Expr {
    /// Evaluates against a row. SQL semantics: comparisons with null are false.
    pub fn eval(&self, row: &[Cell]) -> bool {
        match self {
            Expr::And(a, b) => a.eval(row) && b.eval(row),
            Expr::Or(a, b) => a.eval(row) || b.eval(row),
            Expr::Not(a) => !a.eval(row),
            Expr::Cmp(i, op, lit) => {
                let cell = &row[*i];
                if let Lit::Null = lit {
                    let is_null = matches!(cell, Cell::Date(None));
                    return match op {
                        CmpOp::Eq => is_null,
                        CmpOp::Ne => !is_null,
                        _ => false,
                    };
                }
                let other = match lit {
                    Lit::Str(s) => Cell::Str(s.clone()),
                    Lit::Num(n) => Cell::Num(*n),
                    Lit::Date(d) => Cell::Date(Some(*d)),
                    Lit::Binary(v) => Cell::Rv(*v),
                    Lit::Null => return false,
                };
                let Some(ord) = cell.sql_cmp(&other) else {
                    return false;
                };
                use std::cmp::Ordering::*;
                match op {
                    CmpOp::Eq => ord == Equal,
                    CmpOp::Ne => ord != Equal,
                    CmpOp::Gt => ord == Greater,
                    CmpOp::Ge => ord != Less,
                    CmpOp::Lt => ord == Less,
                    CmpOp::Le => ord != Greater,
                }
            }
        }
    }

    /// When this expression is (or, as a top-level conjunct, contains) the keyset predicate
    /// "key > k" over the table's full key, returns k. Used only to start a scan later in the
    /// key order; the whole filter is still evaluated on every row scanned, so a wrong guess
    /// could only cost speed, and the shape is checked exactly so it cannot skip rows.
    pub fn key_lower_bound(&self, schema: &TableSchema) -> Option<RowKey> {
        match self {
            Expr::And(a, b) => a
                .key_lower_bound(schema)
                .into_iter()
                .chain(b.key_lower_bound(schema))
                .max(),
            Expr::Or(..) | Expr::Cmp(..) => {
                let mut disjuncts = Vec::new();
                flatten_or(self, &mut disjuncts);
                let n = schema.keys.len();
                if disjuncts.len() != n {
                    return None;
                }
                let mut bound: Vec<Option<Cell>> = vec![None; n];
                for (d_i, d) in disjuncts.iter().enumerate() {
                    let mut conj = Vec::new();
                    flatten_and(d, &mut conj);
                    if conj.len() != d_i + 1 {
                        return None;
                    }
                    for (c_i, c) in conj.iter().enumerate() {
                        let Expr::Cmp(col, op, lit) = c else {
                            return None;
                        };
                        if *col != schema.keys[c_i] {
                            return None;
                        }
                        let want = if c_i == d_i { CmpOp::Gt } else { CmpOp::Eq };
                        if *op != want {
                            return None;
                        }
                        let cell = match lit {
                            Lit::Str(s) => Cell::Str(s.clone()),
                            Lit::Num(v) => Cell::Num(*v),
                            _ => return None,
                        };
                        match &bound[c_i] {
                            None => bound[c_i] = Some(cell),
                            Some(b) if b.sql_cmp(&cell) == Some(std::cmp::Ordering::Equal) => {}
                            Some(_) => return None,
                        }
                    }
                }
                Some(RowKey(bound.into_iter().collect::<Option<Vec<_>>>()?))
            }
            Expr::Not(_) => None,
        }
    }
}

fn flatten_or<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::Or(a, b) => {
            flatten_or(a, out);
            flatten_or(b, out);
        }
        _ => out.push(e),
    }
}

fn flatten_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::And(a, b) => {
            flatten_and(a, out);
            flatten_and(b, out);
        }
        _ => out.push(e),
    }
}

/// Checks that a literal fits a column's type.
pub fn check_type(schema: &TableSchema, col: usize, lit: &Lit) -> Result<(), String> {
    let c = &schema.columns[col];
    let ok = matches!(
        (c.ty, lit),
        (_, Lit::Null)
            | (ColType::Str, Lit::Str(_))
            | (ColType::Num { .. }, Lit::Num(_))
            | (ColType::Date, Lit::Date(_))
            | (ColType::RowVersion, Lit::Binary(_))
    );
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a binary operator with incompatible types was detected: found operand types for property '{}' and literal {lit:?}",
            c.name
        ))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Lit(Lit),
    Open,
    Close,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if c == '\'' {
            let (s, next) = read_quoted(&chars, i)?;
            out.push(Tok::Lit(Lit::Str(s)));
            i = next;
        } else if c.is_ascii_digit() || c == '-' {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '-' | ':' | '+'))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(Tok::Lit(parse_number_or_date(&word)?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if i < chars.len() && chars[i] == '\'' {
                let (body, next) = read_quoted(&chars, i)?;
                i = next;
                match word.to_ascii_lowercase().as_str() {
                    "binary" | "x" => out.push(Tok::Lit(Lit::Binary(decode_binary(&body)?))),
                    other => return Err(format!("unsupported typed literal {other}'…'")),
                }
            } else if word == "null" {
                out.push(Tok::Lit(Lit::Null));
            } else {
                out.push(Tok::Ident(word));
            }
        } else {
            return Err(format!("syntax error at position {i}: unexpected {c:?}"));
        }
    }
    Ok(out)
}

fn read_quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut i = start + 1;
    let mut s = String::new();
    loop {
        match chars.get(i) {
            None => return Err(format!("unterminated string literal at position {start}")),
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                s.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((s, i + 1)),
            Some(c) => {
                s.push(*c);
                i += 1;
            }
        }
    }
}

fn parse_number_or_date(word: &str) -> Result<Lit, String> {
    if word.len() >= 10 && word.as_bytes().get(4) == Some(&b'-') {
        let d = NaiveDate::parse_from_str(&word[..10], "%Y-%m-%d")
            .map_err(|_| format!("invalid date literal {word}"))?;
        let rest = &word[10..];
        if rest.is_empty() || (rest.starts_with('T') && rest.len() > 1) {
            return Ok(Lit::Date(d));
        }
        return Err(format!("invalid date literal {word}"));
    }
    let w = word.trim_end_matches(['m', 'M', 'd', 'D', 'L', 'l']);
    w.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(Lit::Num)
        .ok_or_else(|| format!("invalid number literal {word}"))
}

/// Decodes a binary literal (base64url or base64, padding optional) into a big-endian u64.
pub fn decode_binary(body: &str) -> Result<u64, String> {
    let clean: String = body
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(clean.as_bytes())
        .map_err(|e| format!("invalid binary literal: {e}"))?;
    if bytes.len() > 8 {
        return Err("binary literal longer than a rowversion".into());
    }
    Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Parses an OData `$filter` against a table.
pub fn parse_odata(s: &str, schema: &TableSchema) -> Result<Expr, String> {
    let toks = tokenize(s)?;
    let mut p = Parser {
        toks,
        pos: 0,
        schema,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!(
            "syntax error: unexpected token {:?}",
            p.toks[p.pos]
        ));
    }
    Ok(e)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    schema: &'a TableSchema,
}

impl Parser<'_> {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Ident(w)) if w == kw)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.peek_kw("or") {
            self.pos += 1;
            let r = self.and()?;
            e = Expr::Or(Box::new(e), Box::new(r));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        while self.peek_kw("and") {
            self.pos += 1;
            let r = self.unary()?;
            e = Expr::And(Box::new(e), Box::new(r));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_kw("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Open) => {
                self.pos += 1;
                let e = self.or()?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err("syntax error: ')' expected".into());
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                let col = self.schema.col(&name).ok_or_else(|| {
                    format!(
                        "could not find a property named '{name}' on type 'SYSPRO.{}'",
                        self.schema.name
                    )
                })?;
                let op = match self.toks.get(self.pos) {
                    Some(Tok::Ident(w)) => CmpOp::parse(w)
                        .filter(|_| w.chars().all(|c| c.is_ascii_lowercase()))
                        .ok_or_else(|| format!("syntax error: unknown operator {w}"))?,
                    other => {
                        return Err(format!("syntax error: operator expected, found {other:?}"))
                    }
                };
                self.pos += 1;
                let lit = match self.toks.get(self.pos) {
                    Some(Tok::Lit(l)) => l.clone(),
                    other => {
                        return Err(format!("syntax error: literal expected, found {other:?}"))
                    }
                };
                self.pos += 1;
                check_type(self.schema, col, &lit)?;
                Ok(Expr::Cmp(col, op, lit))
            }
            other => Err(format!(
                "syntax error: expression expected, found {other:?}"
            )),
        }
    }
}

/// Converts a COMFND `Where/Expression` value (text) into a literal for a column.
pub fn comfnd_literal(schema: &TableSchema, col: usize, value: &str) -> Result<Lit, String> {
    let c = &schema.columns[col];
    match c.ty {
        ColType::Str => Ok(Lit::Str(value.to_string())),
        ColType::Num { .. } => value
            .trim()
            .parse()
            .map(Lit::Num)
            .map_err(|_| format!("value '{value}' is not numeric for column {}", c.name)),
        ColType::Date => NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
            .map(Lit::Date)
            .map_err(|_| format!("value '{value}' is not a date for column {}", c.name)),
        ColType::RowVersion => {
            let v = value.trim();
            let hex = v
                .strip_prefix("0x")
                .or_else(|| v.strip_prefix("0X"))
                .unwrap_or(v);
            u64::from_str_radix(hex, 16)
                .map(Lit::Binary)
                .map_err(|_| format!("value '{value}' is not a rowversion"))
        }
    }
}

/// One COMFND `Where/Expression`.
#[derive(Debug, Clone, Default)]
pub struct ComfndExpr {
    /// `(` characters.
    pub open: usize,
    /// `And` / `Or` joining it to the previous one.
    pub and_or: String,
    /// Column.
    pub column: String,
    /// `EQ`, `NE`, `GT`, `GE`, `LT`, `LE`.
    pub condition: String,
    /// Value as text.
    pub value: String,
    /// `)` characters.
    pub close: usize,
}

/// Builds the filter from a COMFND `Where` list (brackets respected; `and` binds tighter).
pub fn from_comfnd(exprs: &[ComfndExpr], schema: &TableSchema) -> Result<Option<Expr>, String> {
    if exprs.is_empty() {
        return Ok(None);
    }
    // Turn the list back into OData-like tokens, then reuse the parser.
    let mut toks = Vec::new();
    for (i, e) in exprs.iter().enumerate() {
        if i > 0 {
            match e.and_or.trim().to_ascii_lowercase().as_str() {
                "and" | "" => toks.push(Tok::Ident("and".into())),
                "or" => toks.push(Tok::Ident("or".into())),
                other => return Err(format!("invalid AndOr '{other}'")),
            }
        }
        toks.extend(std::iter::repeat_n(Tok::Open, e.open));
        let col = schema
            .col_ci(e.column.trim())
            .ok_or_else(|| format!("column '{}' not found in table {}", e.column, schema.name))?;
        let op = CmpOp::parse(e.condition.trim())
            .ok_or_else(|| format!("invalid condition '{}'", e.condition))?;
        let lit = comfnd_literal(schema, col, &e.value)?;
        toks.push(Tok::Ident(schema.columns[col].name.to_string()));
        toks.push(Tok::Ident(format!("{op:?}").to_ascii_lowercase()));
        toks.push(Tok::Lit(lit));
        toks.extend(std::iter::repeat_n(Tok::Close, e.close));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        schema,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err("unbalanced brackets in Where".into());
    }
    Ok(Some(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Company;

    fn schema() -> TableSchema {
        Company::empty().table("ArInvoice").unwrap().schema.clone()
    }

    #[test]
    fn parses_and_rejects() {
        let s = schema();
        assert!(parse_odata(
            "Customer eq 'O''Brien' and (InvoiceBal1 ne 0 or InvoiceDate ge 2026-11-24)",
            &s
        )
        .is_ok());
        assert!(parse_odata("TimeStamp gt binary'AAAAAAAAB9E='", &s).is_ok());
        assert!(parse_odata("Customer eq 'x", &s).is_err());
        assert!(parse_odata("Customer eq", &s).is_err());
        assert!(parse_odata("Nope eq 1", &s).is_err());
        assert!(parse_odata("Customer eq 1", &s).is_err());
        assert!(parse_odata("Customer EQ 'a'", &s).is_err());
        assert!(parse_odata("(Customer eq 'a'", &s).is_err());
        assert!(parse_odata("Customer eq 'a' garbage", &s).is_err());
        assert_eq!(decode_binary("AAAAAAAAB9E=").unwrap(), 2001);
    }

    #[test]
    fn keyset_bound_is_detected() {
        let s = schema();
        let e = parse_odata(
            "(InvoiceBal1 ne 0) and (Customer gt 'A' or (Customer eq 'A' and Invoice gt '1') or (Customer eq 'A' and Invoice eq '1' and DocumentType gt 'I'))",
            &s,
        )
        .unwrap();
        let b = e.key_lower_bound(&s).unwrap();
        assert_eq!(b.0[1], Cell::Str("1".into()));
        let e = parse_odata("Customer gt 'A' or Invoice gt '1'", &s).unwrap();
        assert!(e.key_lower_bound(&s).is_none());
    }
}
