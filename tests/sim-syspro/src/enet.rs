//! The e.net Solutions REST side: `Logon`, `Logoff`, `GetVersion`, `Query/Query` with the
//! `COMFND` business object. Every answer is HTTP 200 `application/octet-stream`, errors
//! included (`ERROR: …` text, or XML with `ErrorNumber`/`ErrorDescription`).

use std::fmt::Write as _;
use std::ops::Bound;

use axum::http::StatusCode;
use axum::response::Response;
use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::Reader;
use rand::Rng;

use crate::data::{Cell, ColType, Table};
use crate::filter::{from_comfnd, ComfndExpr};
use crate::server::{finish, octet, pre_faults, status, PostFault, PreFault};
use crate::{lock, Shared};

const INVALID_SESSION: &str = "ERROR: The supplied UserID is invalid. Either you were not logged in; or your session has expired. You will need to logon again.";

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(crate) async fn handle(s: &Shared, rest: &str, q: &[(String, String)]) -> Response {
    match rest {
        "logon" => logon(s, q),
        "logoff" => {
            s.count("logoff");
            let token = param(q, "UserId").unwrap_or("");
            lock(&s.sessions).retain(|_, t| t != token);
            octet(b"0".to_vec())
        }
        "getversion" => {
            s.count("getversion");
            octet(b"8.0.0.21".to_vec())
        }
        "query/query" => query(s, q).await,
        _ => status(StatusCode::NOT_FOUND, "Endpoint not found."),
    }
}

fn logon(s: &Shared, q: &[(String, String)]) -> Response {
    s.count("logon");
    let mut vals = Vec::new();
    for name in [
        "Operator",
        "OperatorPassword",
        "CompanyId",
        "CompanyPassword",
    ] {
        match param(q, name) {
            Some(v) => vals.push(v),
            None => {
                s.count("logon_failed");
                return status(
                    StatusCode::BAD_REQUEST,
                    &format!("missing parameter {name}"),
                );
            }
        }
    }
    let (op, pw, company, company_pw) = (vals[0], vals[1], vals[2], vals[3]);
    let fail = |msg: &str| {
        s.count("logon_failed");
        octet(format!("ERROR: {msg}").into_bytes())
    };
    if !company.eq_ignore_ascii_case(&s.opts.company_id) {
        return fail(&format!("Company '{company}' not found"));
    }
    if company_pw != s.opts.company_password {
        return fail("Invalid company password");
    }
    let known = lock(&s.passwords).get(&op.to_ascii_uppercase()).cloned();
    match known {
        None => return fail(&format!("Operator '{op}' not found")),
        Some(p) if p != pw => return fail("Invalid operator password"),
        Some(_) => {}
    }
    let token = {
        let mut r = lock(&s.token_rng);
        format!(
            "{:016X}{:016X}{:02X}",
            r.random::<u64>(),
            r.random::<u64>(),
            r.random::<u8>()
        )
    };
    // One session per operator: this logon evicts the previous one.
    lock(&s.sessions).insert(op.to_ascii_uppercase(), token.clone());
    octet(format!("{token}  ").into_bytes())
}

fn business_error(number: u32, text: &str) -> Vec<u8> {
    encode_1252(&format!(
        "<?xml version=\"1.0\" encoding=\"Windows-1252\"?>\n<ErrorMessage>\n<ErrorNumber>{number}</ErrorNumber>\n<ErrorDescription>{}</ErrorDescription>\n</ErrorMessage>\n",
        escape(text)
    ))
}

fn encode_1252(s: &str) -> Vec<u8> {
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(s);
    bytes.into_owned()
}

async fn query(s: &Shared, q: &[(String, String)]) -> Response {
    s.count("query");
    let (pre, post) = pre_faults(s, true).await;
    let mut evict = matches!(pre, PreFault::Evict);
    if let PreFault::Respond(r) = pre {
        return r;
    }
    let evict_every = lock(&s.faults).evict_every;
    if let Some(n) = evict_every {
        let seen = lock(&s.counters).get("query").copied().unwrap_or(0);
        if n > 0 && seen % u64::from(n) == 0 {
            evict = true;
        }
    }
    if evict {
        lock(&s.sessions).clear();
        s.count("evicted");
    }
    let token = param(q, "UserId").unwrap_or("");
    let valid = !token.is_empty() && lock(&s.sessions).values().any(|t| t == token);
    if !valid {
        return octet(INVALID_SESSION.as_bytes().to_vec());
    }
    let bo = param(q, "BusinessObject").unwrap_or("");
    if !bo.eq_ignore_ascii_case("COMFND") {
        return octet(business_error(
            100_001,
            &format!("Business object '{bo}' not found"),
        ));
    }
    let xml_in = param(q, "XmlIn").unwrap_or("");
    match comfnd(s, xml_in) {
        Ok(body) => finish(s, post, StatusCode::OK, "application/octet-stream", body),
        Err(msg) => finish(
            s,
            PostFault { truncate: false },
            StatusCode::OK,
            "application/octet-stream",
            business_error(100_000, &msg),
        ),
    }
}

#[derive(Default)]
struct ComfndIn {
    table: String,
    return_rows: Option<usize>,
    columns: Vec<String>,
    order: Vec<String>,
    exprs: Vec<ComfndExpr>,
}

fn parse_xml_in(xml: &str) -> Result<ComfndIn, String> {
    let mut r = Reader::from_str(xml);
    let mut out = ComfndIn::default();
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    loop {
        match r.read_event() {
            Err(e) => return Err(format!("XmlIn is not valid XML: {e}")),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => {
                let name = e.name().as_ref().to_ascii_lowercase();
                if name == "expression" {
                    out.exprs.push(ComfndExpr::default());
                }
                stack.push(name);
                text.clear();
            }
            Ok(Event::Empty(_)) => {}
            Ok(Event::Text(t)) => {
                text.push_str(&t.xml10_content());
            }
            Ok(Event::GeneralRef(e)) => {
                let name: &str = &e;
                let ch = match name {
                    "amp" => "&".to_string(),
                    "lt" => "<".into(),
                    "gt" => ">".into(),
                    "quot" => "\"".into(),
                    "apos" => "'".into(),
                    n if n.starts_with('#') => {
                        let code = if let Some(h) = n.strip_prefix("#x") {
                            u32::from_str_radix(h, 16).ok()
                        } else {
                            n[1..].parse().ok()
                        };
                        code.and_then(char::from_u32)
                            .map(String::from)
                            .ok_or_else(|| format!("bad character reference &{n};"))?
                    }
                    n => return Err(format!("unknown entity &{n};")),
                };
                text.push_str(&ch);
            }
            Ok(Event::End(_)) => {
                let name = stack.pop().unwrap_or_default();
                let parent = stack.last().map(String::as_str).unwrap_or("");
                let v = std::mem::take(&mut text);
                match (parent, name.as_str()) {
                    (_, "tablename") => out.table = v.trim().to_string(),
                    (_, "returnrows") => {
                        out.return_rows = Some(
                            v.trim()
                                .parse()
                                .map_err(|_| format!("ReturnRows '{v}' is not a number"))?,
                        )
                    }
                    ("columns", "column") => out.columns.push(v.trim().to_string()),
                    ("orderby", "column") => out.order.push(v.trim().to_string()),
                    ("expression", field) => {
                        let e = out.exprs.last_mut().ok_or("Expression expected")?;
                        match field {
                            "openbracket" => e.open = v.chars().filter(|c| *c == '(').count(),
                            "closebracket" => e.close = v.chars().filter(|c| *c == ')').count(),
                            "andor" => e.and_or = v,
                            "column" => e.column = v,
                            "condition" => e.condition = v,
                            "value" => e.value = v,
                            other => return Err(format!("unknown element {other} in Expression")),
                        }
                    }
                    _ => {}
                }
            }
            Ok(_) => {}
        }
    }
    if out.table.is_empty() {
        return Err("TableName is required".into());
    }
    Ok(out)
}

fn comfnd(s: &Shared, xml_in: &str) -> Result<Vec<u8>, String> {
    let input = parse_xml_in(xml_in)?;
    let c = lock(&s.company);
    let t: &Table = c
        .table_ci(&input.table)
        .ok_or_else(|| format!("Table '{}' not found", input.table))?;
    let schema = &t.schema;
    let cols: Vec<usize> = if input.columns.is_empty() {
        (0..schema.columns.len()).collect()
    } else {
        input
            .columns
            .iter()
            .map(|n| {
                schema
                    .col_ci(n)
                    .ok_or_else(|| format!("Column '{n}' not found in table {}", schema.name))
            })
            .collect::<Result<_, _>>()?
    };
    let order: Vec<usize> = input
        .order
        .iter()
        .map(|n| {
            schema
                .col_ci(n)
                .ok_or_else(|| format!("OrderBy column '{n}' not found in table {}", schema.name))
        })
        .collect::<Result<_, _>>()?;
    let filter = from_comfnd(&input.exprs, schema)?;
    let limit = input.return_rows.filter(|n| *n > 0).unwrap_or(usize::MAX);
    let key_order = order.is_empty() || order == schema.keys;
    let rows: Vec<&Vec<Cell>> = if key_order {
        let start = filter.as_ref().and_then(|f| f.key_lower_bound(schema));
        let range = match &start {
            Some(k) => t.rows.range((Bound::Excluded(k), Bound::Unbounded)),
            None => t.rows.range::<crate::data::RowKey, _>(..),
        };
        range
            .map(|(_, r)| r)
            .filter(|r| filter.as_ref().is_none_or(|f| f.eval(r)))
            .take(limit)
            .collect()
    } else {
        let mut all: Vec<&Vec<Cell>> = t
            .rows
            .values()
            .filter(|r| filter.as_ref().is_none_or(|f| f.eval(r)))
            .collect();
        all.sort_by(|a, b| {
            order
                .iter()
                .map(|&i| a[i].sql_cmp(&b[i]).unwrap_or(std::cmp::Ordering::Equal))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        all.into_iter().take(limit).collect()
    };
    // The recorded shape: root named after the table with single-quoted attributes, a
    // HeaderDetails echo, one Row per row, RowsReturned right-aligned to 8.
    let mut x = String::with_capacity(256 + rows.len() * 64 * cols.len());
    x.push_str("<?xml version=\"1.0\" encoding=\"Windows-1252\"?>\n");
    let _ = writeln!(
        x,
        "<{} Language='05' Language2='EN' CssStyle='' DecFormat='1' DateFormat='01' Role='01' Version='8.0.000' OperatorPrimaryRole='   ' >",
        schema.name
    );
    let _ = writeln!(
        x,
        "<HeaderDetails>\n<TableName>{}</TableName>\n<Columns>",
        schema.name
    );
    for &i in &cols {
        let _ = writeln!(x, "<Column>{}</Column>", schema.columns[i].name);
    }
    x.push_str("</Columns>\n<OrderBy>\n");
    for &i in &order {
        let _ = writeln!(x, "<Column>{}</Column>", schema.columns[i].name);
    }
    x.push_str("</OrderBy>\n</HeaderDetails>\n");
    for r in &rows {
        x.push_str("<Row>\n");
        for &i in &cols {
            let col = &schema.columns[i];
            let text = match (&r[i], col.ty) {
                (Cell::Str(v), _) => escape(v.as_str()).into_owned(),
                (Cell::Num(v), ColType::Num { scale, width }) => {
                    format!(
                        "{:>w$.p$}",
                        v,
                        w = usize::from(width),
                        p = usize::from(scale)
                    )
                }
                (Cell::Num(v), _) => v.to_string(),
                (Cell::Date(Some(d)), _) => d.format("%Y-%m-%d").to_string(),
                (Cell::Date(None), _) => "0000-00-00".into(),
                (Cell::Rv(v), _) => format!("{v:016X}"),
            };
            if text.is_empty() {
                let _ = writeln!(x, "<{}/>", col.name);
            } else {
                let _ = writeln!(x, "<{0}>{text}</{0}>", col.name);
            }
        }
        x.push_str("</Row>\n");
    }
    let _ = writeln!(x, "<RowsReturned>{:>8}</RowsReturned>", rows.len());
    let _ = writeln!(x, "</{}>", schema.name);
    Ok(encode_1252(&x))
}
