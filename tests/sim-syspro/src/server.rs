//! Routing, faults and the OData v4 side.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::data::{num_json, Cell, ColType, Table};
use crate::filter::parse_odata;
use crate::{enet, lock, Shared};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// Query-string pairs, percent-decoded (`+` is a blank, as IIS decodes it).
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// What a data request suffers before it is served.
pub(crate) enum PreFault {
    None,
    Respond(Response),
    Evict,
}

pub(crate) struct PostFault {
    pub truncate: bool,
}

/// Applies the fault switches to a data request (OData table read or e.net query).
pub(crate) async fn pre_faults(s: &Shared, enet: bool) -> (PreFault, PostFault) {
    let (delay, pre, truncate) = {
        let mut f = lock(&s.faults);
        let mut delay = f.delay;
        let mut pre = PreFault::None;
        let mut truncate = false;
        let rate = f.fault_rate.clamp(0.0, 1.0);
        if rate > 0.0 && f.rng.random_bool(rate) {
            match f.rng.random_range(0..if enet { 4 } else { 3 }) {
                0 => {
                    pre = PreFault::Respond(status(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service Unavailable",
                    ))
                }
                1 => truncate = true,
                2 => delay += Duration::from_millis(300),
                _ => pre = PreFault::Evict,
            }
        }
        if matches!(pre, PreFault::None) {
            if f.next_5xx > 0 {
                f.next_5xx -= 1;
                pre = PreFault::Respond(status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                ));
            } else if let Some(text) = f.next_error_body.pop_front() {
                pre = PreFault::Respond(octet(format!("ERROR: {text}").into_bytes()));
                drop(f);
                s.count("fault_error_body");
                return (pre, PostFault { truncate: false });
            } else if f.next_truncated > 0 {
                f.next_truncated -= 1;
                truncate = true;
            }
        }
        (delay, pre, truncate)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let PreFault::Respond(_) = &pre {
        s.count("fault_5xx");
    }
    (pre, PostFault { truncate })
}

/// Cuts a body in half (a proxy dropping the connection mid-response).
pub(crate) fn finish(
    s: &Shared,
    post: PostFault,
    status_code: StatusCode,
    ct: &str,
    body: Vec<u8>,
) -> Response {
    // The data moves right after the page was served.
    let hook = lock(&s.faults).after_page.pop_front();
    if let Some(h) = hook {
        h(&mut lock(&s.company));
    }
    let body = if post.truncate && status_code == StatusCode::OK {
        s.count("fault_truncated");
        body[..body.len() / 2].to_vec()
    } else {
        body
    };
    (status_code, [(header::CONTENT_TYPE, ct.to_string())], body).into_response()
}

pub(crate) fn status(code: StatusCode, text: &str) -> Response {
    (code, text.to_string()).into_response()
}

pub(crate) fn octet(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        body,
    )
        .into_response()
}

fn odata_error(code: StatusCode, message: &str) -> Response {
    (
        code,
        [(
            header::CONTENT_TYPE,
            "application/json; odata.metadata=minimal",
        )],
        json!({"error": {"code": "", "message": message}}).to_string(),
    )
        .into_response()
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let lower = path.to_ascii_lowercase();
    let enet_prefix = format!("{}/", s.opts.enet_path.to_ascii_lowercase());
    if let Some(rest) = lower.strip_prefix(&enet_prefix) {
        return enet::handle(&s, rest, &query).await;
    }
    let odata_prefix = format!("{}/", s.opts.odata_path);
    if let Some(rest) = path.strip_prefix(&odata_prefix) {
        return odata(
            &s,
            rest,
            req.uri().query().unwrap_or(""),
            &query,
            req.headers(),
        )
        .await;
    }
    match path.as_str() {
        "/_sim/snapshot" => axum::Json(json!(lock(&s.company).snapshot())).into_response(),
        "/_sim/counters" => axum::Json(json!(*lock(&s.counters))).into_response(),
        _ => status(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn authorised(s: &Shared, headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = v.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let Ok(text) = String::from_utf8(raw) else {
        return false;
    };
    let Some((op, pw)) = text.split_once(':') else {
        return false;
    };
    lock(&s.passwords).get(&op.to_ascii_uppercase()) == Some(&pw.to_string())
}

async fn odata(
    s: &Shared,
    rest: &str,
    raw_query: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Response {
    if !authorised(s, headers) {
        s.count("unauthorized");
        let mut r = odata_error(
            StatusCode::UNAUTHORIZED,
            "Authorization has been denied for this request.",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"SYSPRO OData\""),
        );
        return r;
    }
    let (company, entity) = rest.split_once('/').unwrap_or((rest, ""));
    if !company.eq_ignore_ascii_case(&s.opts.company_id) {
        return odata_error(
            StatusCode::NOT_FOUND,
            &format!("company '{company}' not found"),
        );
    }
    if entity == "$metadata" {
        s.count("metadata");
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/xml")],
            metadata(s),
        )
            .into_response();
    }
    s.count("odata");
    // Offset paging is what a keyset reader must never do: tests assert this stays zero.
    if query.iter().any(|(k, _)| k == "$skip") {
        s.count("odata_skip");
    }
    let (pre, post) = pre_faults(s, false).await;
    if let PreFault::Respond(r) = pre {
        return r;
    }
    match read_entity_set(s, company, entity, raw_query, query) {
        Ok(body) => finish(
            s,
            post,
            StatusCode::OK,
            "application/json; odata.metadata=minimal",
            body.into_bytes(),
        ),
        Err((code, msg)) => odata_error(code, &msg),
    }
}

fn metadata(s: &Shared) -> String {
    let c = lock(&s.company);
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n<edmx:DataServices>\n<Schema Namespace=\"SYSPRO\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">\n",
    );
    for t in c.tables().values() {
        let hide = s.opts.hide_row_version.iter().any(|h| h == t.schema.name);
        let _ = writeln!(x, "<EntityType Name=\"{}\">\n<Key>", t.schema.name);
        for &k in &t.schema.keys {
            let _ = writeln!(x, "<PropertyRef Name=\"{}\"/>", t.schema.columns[k].name);
        }
        x.push_str("</Key>\n");
        for col in &t.schema.columns {
            let ty = match col.ty {
                ColType::Str => "Edm.String".to_string(),
                ColType::Num { scale, width } => format!(
                    "Edm.Decimal\" Precision=\"{}\" Scale=\"{scale}",
                    width.saturating_sub(1)
                ),
                ColType::Date => "Edm.DateTimeOffset".to_string(),
                ColType::RowVersion if hide => continue,
                ColType::RowVersion => "Edm.Binary\" MaxLength=\"8".to_string(),
            };
            let _ = writeln!(x, "<Property Name=\"{}\" Type=\"{ty}\"/>", col.name);
        }
        x.push_str("</EntityType>\n");
    }
    x.push_str("<EntityContainer Name=\"SYSPROContainer\">\n");
    for t in c.tables().values() {
        let _ = writeln!(
            x,
            "<EntitySet Name=\"{0}\" EntityType=\"SYSPRO.{0}\"/>",
            t.schema.name
        );
    }
    x.push_str("</EntityContainer>\n</Schema>\n</edmx:DataServices>\n</edmx:Edmx>\n");
    x
}

type HttpErr = (StatusCode, String);

fn bad(msg: impl Into<String>) -> HttpErr {
    (StatusCode::BAD_REQUEST, msg.into())
}

fn read_entity_set(
    s: &Shared,
    company: &str,
    entity: &str,
    raw_query: &str,
    query: &[(String, String)],
) -> Result<String, HttpErr> {
    let c = lock(&s.company);
    let t = c.table(entity).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("No HTTP resource was found that matches the request URI '{entity}'"),
        )
    })?;
    let schema = &t.schema;
    let mut select: Option<Vec<usize>> = None;
    let mut order: Option<Vec<(usize, bool)>> = None;
    let mut top: Option<usize> = None;
    let mut skip = 0usize;
    let mut filter = None;
    for (k, v) in query {
        match k.as_str() {
            "$select" => {
                let mut cols = Vec::new();
                for name in v.split(',') {
                    let name = name.trim();
                    cols.push(schema.col(name).ok_or_else(|| {
                        bad(format!(
                            "could not find a property named '{name}' on type 'SYSPRO.{entity}'"
                        ))
                    })?);
                }
                select = Some(cols);
            }
            "$orderby" => {
                let mut cols = Vec::new();
                for item in v.split(',') {
                    let mut words = item.split_whitespace();
                    let name = words.next().ok_or_else(|| bad("empty $orderby item"))?;
                    let desc = match words.next() {
                        None | Some("asc") => false,
                        Some("desc") => true,
                        Some(w) => return Err(bad(format!("syntax error in $orderby at '{w}'"))),
                    };
                    if words.next().is_some() {
                        return Err(bad("syntax error in $orderby"));
                    }
                    let col = schema.col(name).ok_or_else(|| {
                        bad(format!(
                            "could not find a property named '{name}' on type 'SYSPRO.{entity}'"
                        ))
                    })?;
                    cols.push((col, desc));
                }
                order = Some(cols);
            }
            "$top" => {
                top = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| bad(format!("invalid $top '{v}'")))?,
                )
            }
            "$skip" => {
                skip = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("invalid $skip '{v}'")))?
            }
            "$filter" => filter = Some(parse_odata(v, schema).map_err(bad)?),
            k if k.starts_with('$') => {
                return Err(bad(format!("the query parameter '{k}' is not supported")))
            }
            _ => {}
        }
    }
    let page_limit = s
        .opts
        .server_page
        .unwrap_or(s.opts.max_page)
        .min(s.opts.max_page);
    let want = top.unwrap_or(usize::MAX);
    let take = want.min(page_limit);
    let key_order = order.as_ref().is_none_or(|o| {
        o.iter().map(|(c, _)| *c).eq(schema.keys.iter().copied()) && o.iter().all(|(_, d)| !d)
    });
    // One row past the page tells whether the server truncated it.
    let limit = take.saturating_add(1);
    let rows: Vec<&Vec<Cell>> = if key_order {
        let start = filter.as_ref().and_then(|f| f.key_lower_bound(schema));
        let range = match &start {
            Some(k) => t.rows.range((Bound::Excluded(k), Bound::Unbounded)),
            None => t.rows.range::<crate::data::RowKey, _>(..),
        };
        range
            .map(|(_, r)| r)
            .filter(|r| filter.as_ref().is_none_or(|f| f.eval(r)))
            .skip(skip)
            .take(limit)
            .collect()
    } else {
        let mut all: Vec<&Vec<Cell>> = t
            .rows
            .values()
            .filter(|r| filter.as_ref().is_none_or(|f| f.eval(r)))
            .collect();
        let order = order.unwrap_or_default();
        all.sort_by(|a, b| {
            for (c, desc) in &order {
                let o = a[*c].sql_cmp(&b[*c]).unwrap_or_else(|| {
                    // Null dates sort first, as in SQL Server.
                    matches!(a[*c], Cell::Date(Some(_))).cmp(&matches!(b[*c], Cell::Date(Some(_))))
                });
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
        all.into_iter().skip(skip).take(limit).collect()
    };
    let more = rows.len() > take;
    let rows = &rows[..rows.len().min(take)];
    // Rows served, in total and per table: what a reader costs SYSPRO (the benchmark's figure).
    s.count_n("odata_rows", rows.len() as u64);
    s.count_n(&format!("odata_rows:{}", schema.name), rows.len() as u64);
    let cols: Vec<usize> = select.unwrap_or_else(|| (0..schema.columns.len()).collect());
    let mut value = Vec::with_capacity(rows.len());
    for r in rows {
        value.push(Value::Object(row_odata(s, t, r, &cols)));
    }
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        json!(format!(
            "{}{}/{company}/$metadata#{entity}",
            s.base_url, s.opts.odata_path
        )),
    );
    out.insert("value".into(), Value::Array(value));
    if more && take < want {
        // Server-driven paging: the rest of the client's request, from where this page ended.
        let mut pairs: Vec<String> = raw_query
            .split('&')
            .filter(|p| !p.starts_with("$skip=") && !p.starts_with("$top=") && !p.is_empty())
            .map(str::to_string)
            .collect();
        pairs.push(format!("$skip={}", skip + take));
        if let Some(t) = top {
            pairs.push(format!("$top={}", t - take));
        }
        out.insert(
            "@odata.nextLink".into(),
            json!(format!(
                "{}{}/{company}/{entity}?{}",
                s.base_url,
                s.opts.odata_path,
                pairs.join("&")
            )),
        );
    }
    Ok(Value::Object(out).to_string())
}

fn row_odata(s: &Shared, t: &Table, row: &[Cell], cols: &[usize]) -> Map<String, Value> {
    let mut m = Map::new();
    for &i in cols {
        let v = match &row[i] {
            Cell::Str(x) => Value::String(x.clone()),
            Cell::Num(n) => num_json(*n),
            Cell::Date(Some(d)) => Value::String(format!(
                "{}T00:00:00{}",
                d.format("%Y-%m-%d"),
                s.opts.date_offset
            )),
            Cell::Date(None) => Value::Null,
            Cell::Rv(v) => {
                Value::String(base64::engine::general_purpose::URL_SAFE.encode(v.to_be_bytes()))
            }
        };
        m.insert(t.schema.columns[i].name.to_string(), v);
    }
    m
}
