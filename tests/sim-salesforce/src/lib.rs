//! Salesforce org simulator on loopback, with faults.
//!
//! An org that tests, the benchmark and `ml-connector demo` write to. It rejects what the real
//! service rejects (bad credentials, bad SOQL escapes, missing required fields, bad picklist
//! values, duplicate external ids, too many subrequests) and answers in the real shapes
//! (`[{"message","errorCode","fields"}]` at top level, `statusCode` inside collections).
//!
//! Module map:
//! - this file: [`OrgOptions`], [`OrgSim::start`], [`OrgHandle`] (snapshots, request log,
//!   fault switches) and the HTTP front (token endpoint, REST routing, `/composite`)
//! - [`org`]: schema, records, upsert / update with validation, describe
//! - [`soql`]: the SOQL subset the connector sends, with real string-literal escaping
//! - [`bulk`]: Bulk API 2.0 ingest jobs and CSV
//!
//! What counts as an API call: every request under `/services/data/` (a whole `/composite`
//! request is one call); the token endpoint is logged but not counted, as in Salesforce.

pub mod bulk;
pub mod org;
pub mod soql;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

pub use org::{FieldDef, FieldType, RecErr, SObject, WriteResult, STANDARD_STAGES};

/// How the simulated org is set up.
#[derive(Debug, Clone)]
pub struct OrgOptions {
    /// The connected app's consumer key.
    pub client_id: String,
    /// The connected app's consumer secret.
    pub client_secret: String,
    /// False: the app has no "Run As" user (`invalid_grant`).
    pub run_as_user: bool,
    /// False: tokens are refused by the REST API ("This session is not valid for use with the
    /// REST API").
    pub rest_api_enabled: bool,
    /// Tokens die after this much inactivity.
    pub token_ttl: Duration,
    /// The daily API allowance.
    pub daily_limit: u64,
    /// Calls already spent when the org starts.
    pub api_used: u64,
    /// The Opportunity stage picklist.
    pub stages: Vec<String>,
    /// The org has the standard `Invoice` object (Revenue Cloud / Order Management).
    pub invoice_object: bool,
    /// Rows per query page.
    pub query_page_size: usize,
    /// Status polls that still show `InProgress` after `UploadComplete`.
    pub bulk_in_progress_polls: u32,
    /// Extra fields, per object.
    pub extra_fields: Vec<(String, FieldDef)>,
}

impl Default for OrgOptions {
    fn default() -> Self {
        OrgOptions {
            client_id: "sim-client-id".into(),
            client_secret: "sim-client-secret".into(),
            run_as_user: true,
            rest_api_enabled: true,
            token_ttl: Duration::from_secs(2 * 3600),
            daily_limit: 100_000,
            api_used: 0,
            stages: STANDARD_STAGES.iter().map(|s| s.to_string()).collect(),
            invoice_object: false,
            query_page_size: 2000,
            bulk_in_progress_polls: 1,
            extra_fields: Vec::new(),
        }
    }
}

/// A whole-request fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 401 `INVALID_SESSION_ID` (and every token issued so far is revoked).
    InvalidSession,
    /// 503 `SERVER_UNAVAILABLE`.
    ServiceUnavailable,
    /// 500 `UNKNOWN_EXCEPTION`.
    InternalError,
    /// 403 `REQUEST_LIMIT_EXCEEDED` (TotalRequests).
    RequestLimit,
    /// 403 `REQUEST_LIMIT_EXCEEDED` (ConcurrentPerOrgLongTxn).
    ConcurrentLimit,
    /// Answer after a delay (client time-outs).
    Slow(Duration),
    /// Apply the request, then break the connection mid-response.
    LostResponse,
    /// Apply the request, then answer 502 from "the proxy".
    BadGateway,
}

/// One logged request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path (no query string).
    pub path: String,
    /// Counted against the daily allowance.
    pub api_call: bool,
    /// Status answered.
    pub status: u16,
}

struct FaultRule {
    fault: Fault,
    remaining: u32,
    path_contains: Option<String>,
}

struct RecordFault {
    code: String,
    message: String,
    remaining: u32,
}

struct Org {
    opts: OrgOptions,
    data: org::Data,
    tokens: HashMap<String, Instant>,
    used: u64,
    daily_limit: u64,
    log: Vec<RequestRecord>,
    faults: VecDeque<FaultRule>,
    record_faults: HashMap<String, RecordFault>,
    chaos: Option<(f64, StdRng)>,
    cursors: HashMap<String, (Vec<Value>, usize)>,
    jobs: HashMap<String, bulk::Job>,
    /// The next Bulk job to run stops after this many rows and ends `Failed`.
    job_stop_after: Option<u64>,
    next: u64,
    rng: StdRng,
    url: String,
}

impl Org {
    fn record_fault(&mut self, ext: &str) -> Option<(String, String)> {
        if let Some(f) = self.record_faults.get_mut(ext) {
            if f.remaining > 0 {
                f.remaining -= 1;
                return Some((f.code.clone(), f.message.clone()));
            }
        }
        if let Some((rate, rng)) = self.chaos.as_mut() {
            if rng.random_bool((*rate / 4.0).clamp(0.0, 1.0)) {
                return Some((
                    "UNABLE_TO_LOCK_ROW".into(),
                    "unable to obtain exclusive access to this record or 1 records".into(),
                ));
            }
        }
        None
    }

    fn take_fault(&mut self, path: &str) -> Option<Fault> {
        if let Some(pos) = self.faults.iter().position(|r| {
            r.remaining > 0
                && r.path_contains
                    .as_deref()
                    .map(|p| path.contains(p))
                    .unwrap_or(true)
        }) {
            let rule = &mut self.faults[pos];
            rule.remaining -= 1;
            let f = rule.fault.clone();
            if rule.remaining == 0 {
                self.faults.remove(pos);
            }
            return Some(f);
        }
        if let Some((rate, rng)) = self.chaos.as_mut() {
            if rng.random_bool(rate.clamp(0.0, 1.0)) {
                let pick = rng.random_range(0..5);
                return Some(match pick {
                    0 => Fault::ServiceUnavailable,
                    1 => Fault::InternalError,
                    2 => Fault::LostResponse,
                    3 => Fault::BadGateway,
                    _ => Fault::Slow(Duration::from_millis(50)),
                });
            }
        }
        None
    }

    fn new_token(&mut self) -> String {
        let n: u64 = self.rng.random();
        let token = format!("00DSIM0000000001!AQ{n:016x}");
        self.tokens.insert(token.clone(), Instant::now());
        token
    }
}

/// Starts orgs.
pub struct OrgSim;

impl OrgSim {
    /// Binds `127.0.0.1:0` and serves an org on a detached task, until the tokio runtime that
    /// started it ends.
    pub async fn start(opts: OrgOptions) -> std::io::Result<OrgHandle> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let mut schema = org::default_schema(opts.invoice_object);
        for (object, f) in &opts.extra_fields {
            if let Some(o) = schema.iter_mut().find(|o| &o.name == object) {
                o.fields.push(f.clone());
            }
        }
        let org = Org {
            data: org::Data::new(schema, opts.stages.clone()),
            tokens: HashMap::new(),
            used: opts.api_used,
            daily_limit: opts.daily_limit,
            log: Vec::new(),
            faults: VecDeque::new(),
            record_faults: HashMap::new(),
            chaos: None,
            cursors: HashMap::new(),
            jobs: HashMap::new(),
            job_stop_after: None,
            next: 0,
            rng: StdRng::seed_from_u64(7),
            url: format!("http://{addr}"),
            opts,
        };
        let inner = Arc::new(Mutex::new(org));
        let state = inner.clone();
        let app = axum::Router::new()
            .fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let state = state.clone();
                    async move { front(state, method, uri, headers, body).await }
                },
            )
            // Bulk uploads reach 100 MB; axum's default body limit is 2 MB.
            .layer(axum::extract::DefaultBodyLimit::max(
                bulk::MAX_UPLOAD_BYTES + 1024 * 1024,
            ));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(OrgHandle { inner, addr })
    }
}

/// A running org: its address, its data and its switches.
#[derive(Clone)]
pub struct OrgHandle {
    inner: Arc<Mutex<Org>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for OrgHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OrgHandle({})", self.addr)
    }
}

impl OrgHandle {
    fn org(&self) -> MutexGuard<'_, Org> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:port`: serves as My Domain and as `instance_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Snapshot of every Account.
    pub fn accounts(&self) -> Vec<SObject> {
        self.org().data.all("Account")
    }

    /// Snapshot of every Opportunity.
    pub fn opportunities(&self) -> Vec<SObject> {
        self.org().data.all("Opportunity")
    }

    /// Snapshot of any object's records.
    pub fn records(&self, object: &str) -> Vec<SObject> {
        self.org().data.all(object)
    }

    /// A record by Id.
    pub fn record(&self, id: &str) -> Option<SObject> {
        self.org().data.get(id).cloned()
    }

    /// Records of `object` whose `field` equals `value` exactly.
    pub fn find(&self, object: &str, field: &str, value: &str) -> Vec<SObject> {
        self.org()
            .data
            .records_of(object)
            .iter()
            .filter(|r| r.text(field).as_deref() == Some(value))
            .cloned()
            .collect()
    }

    /// Values of `field` carried by more than one record of `object` (external ids: always
    /// empty unless seeded so; names: duplicates created by name).
    pub fn duplicates(&self, object: &str, field: &str) -> Vec<String> {
        let org = self.org();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for r in org.data.records_of(object) {
            if let Some(v) = r.text(field) {
                *seen.entry(v).or_default() += 1;
            }
        }
        let mut d: Vec<String> = seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(v, _)| v)
            .collect();
        d.sort();
        d
    }

    /// Inserts a record as an admin would (no validation, no API call). Returns its Id.
    pub fn seed(&self, object: &str, fields: Value) -> String {
        let map = fields.as_object().cloned().unwrap_or_default();
        self.org().data.seed(object, map)
    }

    /// Changes fields of a record as a user would in the UI (no validation, no API call).
    /// False when no record has that Id.
    pub fn edit(&self, id: &str, fields: Value) -> bool {
        let map = fields.as_object().cloned().unwrap_or_default();
        self.org().data.edit(id, map)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.org().log.clone()
    }

    /// Requests counted as API calls so far.
    pub fn api_calls(&self) -> usize {
        self.org().log.iter().filter(|r| r.api_call).count()
    }

    /// Token requests so far.
    pub fn token_calls(&self) -> usize {
        self.org()
            .log
            .iter()
            .filter(|r| r.path == "/services/oauth2/token")
            .count()
    }

    /// Every request (token and API) so far.
    pub fn total_calls(&self) -> usize {
        self.org().log.len()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.org().log.clear();
    }

    /// `(used, max)` of the daily allowance.
    pub fn api_usage(&self) -> (u64, u64) {
        let o = self.org();
        (o.used, o.daily_limit)
    }

    /// Sets the daily allowance and what is spent.
    pub fn set_api_usage(&self, used: u64, max: u64) {
        let mut o = self.org();
        o.used = used;
        o.daily_limit = max;
    }

    /// Revokes every token (an admin's "revoke" or a session timeout).
    pub fn revoke_tokens(&self) {
        self.org().tokens.clear();
    }

    /// Changes the inactivity timeout of tokens.
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.org().opts.token_ttl = ttl;
    }

    /// Replaces the Opportunity stage picklist.
    pub fn set_stages(&self, stages: &[&str]) {
        self.org().data.stages = stages.iter().map(|s| s.to_string()).collect();
    }

    /// The next `times` API calls fail with `fault`.
    pub fn fail_next(&self, fault: Fault, times: u32) {
        self.org().faults.push_back(FaultRule {
            fault,
            remaining: times,
            path_contains: None,
        });
    }

    /// The next `times` API calls whose path contains `path_contains` fail with `fault`.
    pub fn fail_path(&self, path_contains: &str, fault: Fault, times: u32) {
        self.org().faults.push_back(FaultRule {
            fault,
            remaining: times,
            path_contains: Some(path_contains.to_string()),
        });
    }

    /// The next `times` writes of the record with this external-id value fail with
    /// `code` (e.g. `UNABLE_TO_LOCK_ROW`, `FIELD_CUSTOM_VALIDATION_EXCEPTION`).
    pub fn fail_record(&self, ext_value: &str, code: &str, message: &str, times: u32) {
        self.org().record_faults.insert(
            ext_value.to_string(),
            RecordFault {
                code: code.into(),
                message: message.into(),
                remaining: times,
            },
        );
    }

    /// The next `times` writes of this record answer `UNABLE_TO_LOCK_ROW`.
    pub fn lock_record(&self, ext_value: &str, times: u32) {
        self.fail_record(
            ext_value,
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record or 1 records",
            times,
        );
    }

    /// The next Bulk job to run stops after `rows` rows and ends `Failed`; the rest is listed
    /// in its `unprocessedrecords`.
    pub fn stop_next_job_after(&self, rows: u64) {
        self.org().job_stop_after = Some(rows);
    }

    /// Chaos mode: each API call fails with probability `rate` (503, 500, lost response,
    /// 502, slow), and each record write is locked with probability `rate / 4`; seeded.
    pub fn set_chaos(&self, rate: f64, seed: u64) {
        self.org().chaos = if rate > 0.0 {
            Some((rate, StdRng::seed_from_u64(seed)))
        } else {
            None
        };
    }

    /// Clears every fault switch (chaos included).
    pub fn clear_faults(&self) {
        let mut o = self.org();
        o.faults.clear();
        o.record_faults.clear();
        o.job_stop_after = None;
        o.chaos = None;
    }
}

/// A response before HTTP framing.
struct Reply {
    status: u16,
    body: ReplyBody,
    headers: Vec<(String, String)>,
}

enum ReplyBody {
    Json(Value),
    Csv(String),
    Empty,
}

impl Reply {
    fn json(status: u16, v: Value) -> Self {
        Reply {
            status,
            body: ReplyBody::Json(v),
            headers: Vec::new(),
        }
    }
    fn error(status: u16, code: &str, message: &str) -> Self {
        Reply::json(status, json!([{"message": message, "errorCode": code}]))
    }
    fn body_json(&self) -> Value {
        match &self.body {
            ReplyBody::Json(v) => v.clone(),
            ReplyBody::Csv(s) => Value::String(s.clone()),
            ReplyBody::Empty => Value::Null,
        }
    }
}

fn http_response(r: Reply) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (k, v) in &r.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let body = match r.body {
        ReplyBody::Json(v) => {
            b = b.header("content-type", "application/json;charset=UTF-8");
            Body::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        ReplyBody::Csv(s) => {
            b = b.header("content-type", "text/csv");
            Body::from(s)
        }
        ReplyBody::Empty => Body::empty(),
    };
    b.body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn front(
    state: Arc<Mutex<Org>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().map(|s| s.to_string());
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());

    if path == "/services/oauth2/token" {
        let reply = {
            let mut org = lock();
            let r = token(&mut org, &method, &headers, &body);
            org.log.push(RequestRecord {
                method: method.to_string(),
                path: path.clone(),
                api_call: false,
                status: r.status,
            });
            r
        };
        return http_response(reply);
    }
    if !path.starts_with("/services/data/") {
        let mut org = lock();
        org.log.push(RequestRecord {
            method: method.to_string(),
            path: path.clone(),
            api_call: false,
            status: 404,
        });
        return http_response(Reply::error(
            404,
            "NOT_FOUND",
            "The requested resource does not exist",
        ));
    }

    // Authentication, allowance and faults, decided under the lock.
    let (pre, fault) = {
        let mut org = lock();
        let pre = check_session(&mut org, &headers);
        let pre = match pre {
            Some(r) => Some(r),
            None if org.used >= org.daily_limit => Some(Reply::error(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            )),
            None => None,
        };
        let fault = if pre.is_none() {
            org.take_fault(&path)
        } else {
            None
        };
        (pre, fault)
    };
    let mut apply_then: Option<Fault> = None;
    let early: Option<Reply> = match (pre, fault) {
        (Some(r), _) => Some(r),
        (None, Some(Fault::InvalidSession)) => {
            lock().tokens.clear();
            Some(Reply::error(401, "INVALID_SESSION_ID", "Session expired or invalid"))
        }
        (None, Some(Fault::ServiceUnavailable)) => Some(Reply::error(
            503,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable",
        )),
        (None, Some(Fault::InternalError)) => Some(Reply::error(
            500,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
        )),
        (None, Some(Fault::RequestLimit)) => Some(Reply::error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")),
        (None, Some(Fault::ConcurrentLimit)) => Some(Reply::error(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "ConcurrentPerOrgLongTxn Limit exceeded.",
        )),
        (None, Some(Fault::Slow(d))) => {
            tokio::time::sleep(d).await;
            None
        }
        (None, Some(f)) => {
            apply_then = Some(f);
            None
        }
        (None, None) => None,
    };
    let mut reply = match early {
        Some(r) => {
            let mut org = lock();
            let counted = r.status != 401 && !(r.status == 403 && org.used >= org.daily_limit);
            if counted {
                org.used += 1;
            }
            org.log.push(RequestRecord {
                method: method.to_string(),
                path: path.clone(),
                api_call: counted,
                status: r.status,
            });
            r
        }
        None => {
            let mut org = lock();
            org.used += 1;
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let r = if path.ends_with("/composite") && method == Method::POST {
                composite(&mut org, &path, &body)
            } else {
                api(&mut org, &method, &path, query.as_deref(), &body, &ct)
            };
            org.log.push(RequestRecord {
                method: method.to_string(),
                path: path.clone(),
                api_call: true,
                status: match apply_then {
                    Some(Fault::BadGateway) => 502,
                    _ => r.status,
                },
            });
            r
        }
    };
    {
        let org = lock();
        reply.headers.push((
            "Sforce-Limit-Info".into(),
            format!("api-usage={}/{}", org.used, org.daily_limit),
        ));
    }
    match apply_then {
        Some(Fault::LostResponse) => {
            let stream = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other(
                    "connection reset by simulated fault",
                ))
            });
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
        Some(Fault::BadGateway) => Response::builder()
            .status(502)
            .header("content-type", "text/html")
            .body(Body::from("<html><body>502 Bad Gateway</body></html>"))
            .unwrap_or_else(|_| Response::new(Body::empty())),
        _ => http_response(reply),
    }
}

fn check_session(org: &mut Org, headers: &HeaderMap) -> Option<Reply> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|s| s.trim().to_string());
    let ttl = org.opts.token_ttl;
    let valid = match token.as_ref().and_then(|t| org.tokens.get_mut(t)) {
        Some(last) if last.elapsed() < ttl => {
            *last = Instant::now();
            true
        }
        _ => false,
    };
    if !valid {
        if let Some(t) = token {
            org.tokens.remove(&t);
        }
        return Some(Reply::error(
            401,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        ));
    }
    if !org.opts.rest_api_enabled {
        return Some(Reply::error(
            401,
            "INVALID_SESSION_ID",
            "This session is not valid for use with the REST API",
        ));
    }
    None
}

fn token(org: &mut Org, method: &Method, headers: &HeaderMap, body: &[u8]) -> Reply {
    let err = |e: &str, d: &str| Reply::json(400, json!({"error": e, "error_description": d}));
    if method != Method::POST {
        return err("invalid_request", "must use HTTP POST");
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let (mut id, mut secret) = (
        form.get("client_id").cloned(),
        form.get("client_secret").cloned(),
    );
    if let Some(basic) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) {
            if let Some((i, s)) = String::from_utf8_lossy(&raw).split_once(':') {
                id = Some(i.to_string());
                secret = Some(s.to_string());
            }
        }
    }
    if form.get("grant_type").map(|s| s.as_str()) != Some("client_credentials") {
        return err("unsupported_grant_type", "grant type not supported");
    }
    if id.as_deref() != Some(org.opts.client_id.as_str()) {
        return err("invalid_client_id", "client identifier invalid");
    }
    if secret.as_deref() != Some(org.opts.client_secret.as_str()) {
        return err("invalid_client", "invalid client credentials");
    }
    if !org.opts.run_as_user {
        return err("invalid_grant", "no client credentials user enabled");
    }
    let token = org.new_token();
    let issued = chrono::Utc::now().timestamp_millis();
    Reply::json(
        200,
        json!({
            "access_token": token,
            "signature": "c2ltdWxhdGVkLXNpZ25hdHVyZQ==",
            "scope": "api",
            "instance_url": org.url,
            "id": format!("{}/id/00DSIM0000000001AAA/005SIM000000001AAA", org.url),
            "token_type": "Bearer",
            "issued_at": issued.to_string(),
        }),
    )
}

fn pct_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_version(seg: &str) -> Option<f64> {
    seg.strip_prefix('v')?.parse::<f64>().ok()
}

fn collection_result(r: &WriteResult, with_created: bool) -> Value {
    match r {
        WriteResult::Ok { id, created } => {
            if with_created {
                json!({"id": id, "success": true, "errors": [], "created": created})
            } else {
                json!({"id": id, "success": true, "errors": []})
            }
        }
        WriteResult::Multiple(ids) => json!({"success": false, "errors": [{
            "statusCode": "DUPLICATE_EXTERNAL_ID",
            "message": format!("More than 1 record found for external id field: {}", ids.join(", ")),
            "fields": []}]}),
        WriteResult::Err(e) => json!({"success": false, "errors": [e.collection_json()]}),
    }
}

/// Routes one REST request (top level or composite subrequest). The caller counted the call.
fn api(
    org: &mut Org,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    content_type: &str,
) -> Reply {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // services / data / vNN.0 / rest...
    if segs.len() < 3 || segs[0] != "services" || segs[1] != "data" {
        return Reply::error(404, "NOT_FOUND", "The requested resource does not exist");
    }
    let Some(version) = parse_version(segs[2]) else {
        return Reply::error(404, "NOT_FOUND", "The requested resource does not exist");
    };
    if version < 20.0 {
        return Reply::error(410, "API_DISABLED_FOR_ORG", "This API version is retired");
    }
    let rest: Vec<String> = segs[3..]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| pct_decode(s))
        .collect();
    let rest: Vec<&str> = rest.iter().map(|s| s.as_str()).collect();
    let json_body = || -> Result<Value, Reply> {
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(body).map_err(|e| {
            Reply::error(
                400,
                "JSON_PARSER_ERROR",
                &format!("Unexpected character: {e}"),
            )
        })
    };
    match (method.as_str(), rest.as_slice()) {
        ("GET", ["limits"]) => Reply::json(
            200,
            json!({"DailyApiRequests": {"Max": org.daily_limit, "Remaining": org.daily_limit.saturating_sub(org.used)}}),
        ),
        ("GET", ["sobjects"]) => {
            let list: Vec<Value> = org
                .data
                .schema
                .iter()
                .map(|o| json!({"name": o.name, "keyPrefix": o.prefix, "createable": o.createable}))
                .collect();
            Reply::json(
                200,
                json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": list}),
            )
        }
        ("GET", ["sobjects", obj, "describe"]) => match org.data.describe(obj) {
            Some(d) => Reply::json(200, d),
            None => Reply::error(404, "NOT_FOUND", "The requested resource does not exist"),
        },
        ("GET", ["sobjects", obj, id]) => match org.data.get(id) {
            Some(r) if r.object == *obj => {
                let mut m = r.fields.clone();
                m.insert("Id".into(), Value::String(r.id.clone()));
                m.insert("attributes".into(), json!({"type": obj}));
                Reply::json(200, Value::Object(m))
            }
            _ => Reply::error(404, "NOT_FOUND", "The requested resource does not exist"),
        },
        ("PATCH", ["sobjects", obj, id]) => {
            let b = match json_body() {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Reply::error(400, "JSON_PARSER_ERROR", "expected a JSON object"),
                Err(r) => return r,
            };
            match org.data.update(obj, id, &b) {
                WriteResult::Ok { .. } => Reply {
                    status: 204,
                    body: ReplyBody::Empty,
                    headers: Vec::new(),
                },
                WriteResult::Err(e) if e.code == "NOT_FOUND" => {
                    Reply::json(404, json!([e.top_json()]))
                }
                WriteResult::Err(e) => Reply::json(400, json!([e.top_json()])),
                WriteResult::Multiple(_) => Reply::error(300, "MULTIPLE_CHOICES", "multiple"),
            }
        }
        ("PATCH", ["sobjects", obj, field, value]) => {
            let b = match json_body() {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Reply::error(400, "JSON_PARSER_ERROR", "expected a JSON object"),
                Err(r) => return r,
            };
            if let Some((code, msg)) = org.record_fault(value) {
                return Reply::json(
                    400,
                    json!([{"message": msg, "errorCode": code, "fields": []}]),
                );
            }
            match org.data.upsert(obj, field, value, &b) {
                WriteResult::Ok { id, created } => {
                    if version < 46.0 && !created {
                        Reply {
                            status: 204,
                            body: ReplyBody::Empty,
                            headers: Vec::new(),
                        }
                    } else {
                        Reply::json(
                            if created { 201 } else { 200 },
                            json!({"id": id, "success": true, "errors": [], "created": created}),
                        )
                    }
                }
                WriteResult::Multiple(ids) => {
                    let urls: Vec<String> = ids
                        .iter()
                        .map(|i| format!("/services/data/{}/sobjects/{obj}/{i}", segs[2]))
                        .collect();
                    Reply::json(300, json!(urls))
                }
                WriteResult::Err(e) if e.code == "NOT_FOUND" => {
                    Reply::json(404, json!([e.top_json()]))
                }
                WriteResult::Err(e) => Reply::json(400, json!([e.top_json()])),
            }
        }
        ("PATCH", ["composite", "sobjects", obj, field]) => {
            let b = match json_body() {
                Ok(v) => v,
                Err(r) => return r,
            };
            collection_upsert(org, obj, field, &b)
        }
        ("PATCH", ["composite", "sobjects"]) => {
            let b = match json_body() {
                Ok(v) => v,
                Err(r) => return r,
            };
            collection_update(org, &b)
        }
        ("GET", ["query"]) => {
            let q = query
                .and_then(|qs| {
                    url::form_urlencoded::parse(qs.as_bytes())
                        .find(|(k, _)| k == "q")
                        .map(|(_, v)| v.into_owned())
                })
                .unwrap_or_default();
            run_query(org, &q, segs[2])
        }
        ("GET", ["query", locator]) => next_page(org, locator, segs[2]),
        ("POST", ["jobs", "ingest"]) => {
            let b = match json_body() {
                Ok(v) => v,
                Err(r) => return r,
            };
            create_job(org, &b, version)
        }
        ("GET", ["jobs", "ingest", id]) => {
            let Some(job) = org.jobs.get_mut(*id) else {
                return Reply::error(404, "NOT_FOUND", "The requested resource does not exist");
            };
            if job.state == "UploadComplete" || job.state == "InProgress" {
                if job.polls_left > 0 {
                    job.polls_left -= 1;
                    job.state = "InProgress".into();
                } else {
                    let mut job = job.clone();
                    let mut data = std::mem::take(&mut org.data);
                    let stop_after = org.job_stop_after.take();
                    {
                        let mut rf = |ext: &str| org.record_fault(ext);
                        bulk::process(&mut job, &mut data, &mut rf, stop_after);
                    }
                    org.data = data;
                    org.jobs.insert(job.id.clone(), job);
                }
            }
            let info = org.jobs.get(*id).map(|j| j.info()).unwrap_or(Value::Null);
            Reply::json(200, info)
        }
        ("PATCH", ["jobs", "ingest", id]) => {
            let b = match json_body() {
                Ok(v) => v,
                Err(r) => return r,
            };
            let polls = org.opts.bulk_in_progress_polls;
            let Some(job) = org.jobs.get_mut(*id) else {
                return Reply::error(404, "NOT_FOUND", "The requested resource does not exist");
            };
            match b.get("state").and_then(|s| s.as_str()) {
                Some("UploadComplete") if job.state == "Open" => {
                    job.state = "UploadComplete".into();
                    job.polls_left = polls;
                    Reply::json(200, job.info())
                }
                Some("Aborted") if job.state != "JobComplete" => {
                    job.state = "Aborted".into();
                    job.unprocessed_csv = job.data.take().unwrap_or_default();
                    Reply::json(200, job.info())
                }
                _ => Reply::error(
                    400,
                    "INVALIDJOBSTATE",
                    &format!("Invalid state transition from {}", job.state),
                ),
            }
        }
        ("PUT", ["jobs", "ingest", id, "batches"]) => {
            let Some(job) = org.jobs.get_mut(*id) else {
                return Reply::error(404, "NOT_FOUND", "The requested resource does not exist");
            };
            if !content_type.starts_with("text/csv") {
                return Reply::error(400, "INVALIDCONTENTTYPE", "Content-Type must be text/csv");
            }
            if job.state != "Open" || job.data.is_some() {
                return Reply::error(
                    400,
                    "INVALIDJOBSTATE",
                    "data can be uploaded only once, to an Open job",
                );
            }
            if body.len() > bulk::MAX_UPLOAD_BYTES {
                return Reply::error(400, "INVALIDBATCH", "upload exceeds 100 MB");
            }
            job.data = Some(String::from_utf8_lossy(body).into_owned());
            Reply {
                status: 201,
                body: ReplyBody::Empty,
                headers: Vec::new(),
            }
        }
        ("GET", ["jobs", "ingest", id, which]) => {
            let Some(job) = org.jobs.get(*id) else {
                return Reply::error(404, "NOT_FOUND", "The requested resource does not exist");
            };
            let csv = match *which {
                "successfulResults" => job.success_csv.clone(),
                "failedResults" => job.failed_csv.clone(),
                "unprocessedrecords" => job.unprocessed_csv.clone(),
                _ => {
                    return Reply::error(404, "NOT_FOUND", "The requested resource does not exist")
                }
            };
            Reply {
                status: 200,
                body: ReplyBody::Csv(csv),
                headers: Vec::new(),
            }
        }
        _ => Reply::error(404, "NOT_FOUND", "The requested resource does not exist"),
    }
}

fn records_of(body: &Value) -> Result<(bool, Vec<Value>), Reply> {
    let Some(records) = body.get("records").and_then(|r| r.as_array()) else {
        return Err(Reply::error(
            400,
            "JSON_PARSER_ERROR",
            "records: expected an array",
        ));
    };
    if records.len() > 200 {
        return Err(Reply::error(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    let all_or_none = body
        .get("allOrNone")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    Ok((all_or_none, records.clone()))
}

fn collection_upsert(org: &mut Org, obj: &str, field: &str, body: &Value) -> Reply {
    let (all_or_none, records) = match records_of(body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match org.data.object(obj) {
        Some(def) if def.field(field).map(|f| f.external_id).unwrap_or(false) => {}
        _ => {
            return Reply::error(
                400,
                "INVALID_FIELD",
                &format!("Provided external ID field does not exist or is not accessible: {field}"),
            )
        }
    }
    let mut out = Vec::with_capacity(records.len());
    for r in &records {
        let Some(m) = r.as_object() else {
            out.push(collection_result(
                &WriteResult::Err(RecErr::new("JSON_PARSER_ERROR", "expected an object", &[])),
                true,
            ));
            continue;
        };
        let ty = m
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(|t| t.as_str());
        if ty != Some(obj) {
            out.push(collection_result(
                &WriteResult::Err(RecErr::new(
                    "INVALID_TYPE",
                    "attributes.type must name the object of the URL",
                    &[],
                )),
                true,
            ));
            continue;
        }
        let ext = match m.get(field) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                out.push(collection_result(
                    &WriteResult::Err(RecErr::new(
                        "MISSING_ARGUMENT",
                        format!("{field} not specified"),
                        &[field],
                    )),
                    true,
                ));
                continue;
            }
        };
        if let Some((code, msg)) = org.record_fault(&ext) {
            out.push(collection_result(
                &WriteResult::Err(RecErr::new(&code, msg, &[])),
                true,
            ));
            continue;
        }
        let res = org.data.upsert(obj, field, &ext, m);
        out.push(collection_result(&res, true));
    }
    if all_or_none && out.iter().any(|r| r["success"] != json!(true)) {
        // Our writes are not transactional; the connector always sends allOrNone:false.
        tracing::warn!("allOrNone:true collection had failures; the simulator does not roll back");
    }
    Reply::json(200, Value::Array(out))
}

fn collection_update(org: &mut Org, body: &Value) -> Reply {
    let (_, records) = match records_of(body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut out = Vec::with_capacity(records.len());
    for r in &records {
        let m = r.as_object().cloned().unwrap_or_default();
        let ty = m
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_string();
        let id = m
            .get("Id")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let res = org.data.update(&ty, &id, &m);
        out.push(collection_result(&res, false));
    }
    Reply::json(200, Value::Array(out))
}

fn run_query(org: &mut Org, q: &str, version: &str) -> Reply {
    let parsed = match soql::parse(q) {
        Ok(p) => p,
        Err(e) => return Reply::error(400, "MALFORMED_QUERY", &e),
    };
    let Some(def) = org.data.object(&parsed.object).cloned() else {
        return Reply::error(
            400,
            "INVALID_TYPE",
            &format!("sObject type '{}' is not supported.", parsed.object),
        );
    };
    for f in &parsed.fields {
        if f != "Id" && def.field(f).is_none() {
            return Reply::error(
                400,
                "INVALID_FIELD",
                &format!("No such column '{f}' on entity '{}'.", parsed.object),
            );
        }
    }
    let mut rows = Vec::new();
    for r in org.data.records_of(&parsed.object) {
        let get = |f: &str| -> Option<String> {
            if f == "Id" {
                Some(r.id.clone())
            } else {
                r.text(f)
            }
        };
        if parsed
            .condition
            .as_ref()
            .map(|c| c.eval(&get))
            .unwrap_or(true)
        {
            let mut m = Map::new();
            m.insert(
                "attributes".into(),
                json!({"type": parsed.object, "url": format!("/services/data/{version}/sobjects/{}/{}", parsed.object, r.id)}),
            );
            for f in &parsed.fields {
                let v = if f == "Id" {
                    Value::String(r.id.clone())
                } else {
                    r.fields.get(f).cloned().unwrap_or(Value::Null)
                };
                m.insert(f.clone(), v);
            }
            rows.push(Value::Object(m));
        }
        if let Some(l) = parsed.limit {
            if rows.len() >= l {
                break;
            }
        }
    }
    let total = rows.len();
    page(org, rows, 0, total, version)
}

fn page(org: &mut Org, rows: Vec<Value>, start: usize, total: usize, version: &str) -> Reply {
    let size = org.opts.query_page_size.max(1);
    let end = (start + size).min(rows.len());
    let records: Vec<Value> = rows[start..end].to_vec();
    let done = end >= rows.len();
    let mut body = json!({"totalSize": total, "done": done, "records": records});
    if !done {
        org.next += 1;
        let locator = format!("01gSIM{:08}-{end}", org.next);
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{locator}"));
        org.cursors.insert(locator, (rows, end));
    }
    Reply::json(200, body)
}

fn next_page(org: &mut Org, locator: &str, version: &str) -> Reply {
    let Some((rows, start)) = org.cursors.remove(locator) else {
        return Reply::error(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    let total = rows.len();
    page(org, rows, start, total, version)
}

fn create_job(org: &mut Org, body: &Value, version: f64) -> Reply {
    let object = body
        .get("object")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let operation = body
        .get("operation")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let ext = body
        .get("externalIdFieldName")
        .and_then(|v| v.as_str())
        .map(|s| s.to_string());
    if org.data.object(&object).is_none() {
        return Reply::error(
            404,
            "NOT_FOUND",
            &format!("sObject type '{object}' is not supported"),
        );
    }
    if !["insert", "upsert", "update", "delete"].contains(&operation.as_str()) {
        return Reply::error(400, "INVALIDJOB", &format!("unknown operation {operation}"));
    }
    if operation == "upsert" {
        let ok = ext
            .as_deref()
            .and_then(|e| org.data.object(&object).and_then(|o| o.field(e)))
            .map(|f| f.external_id)
            .unwrap_or(false);
        if !ok {
            return Reply::error(
                400,
                "INVALIDJOB",
                "External ID was blank or not an external id field",
            );
        }
    }
    if body
        .get("contentType")
        .and_then(|v| v.as_str())
        .unwrap_or("CSV")
        != "CSV"
    {
        return Reply::error(400, "INVALIDJOB", "contentType must be CSV");
    }
    org.next += 1;
    let id = format!("750SIM{:09}AAA", org.next);
    let job = bulk::Job {
        id: id.clone(),
        object,
        operation,
        ext_field: ext,
        line_ending: body
            .get("lineEnding")
            .and_then(|v| v.as_str())
            .unwrap_or("LF")
            .to_string(),
        state: "Open".into(),
        data: None,
        polls_left: 0,
        processed: 0,
        failed: 0,
        success_csv: String::new(),
        failed_csv: String::new(),
        unprocessed_csv: String::new(),
        api_version: version,
        error_message: None,
    };
    let info = job.info();
    org.jobs.insert(id, job);
    Reply::json(200, info)
}

/// Resolves `@{ref.path}` placeholders in a string against earlier results.
fn resolve_refs(s: &str, results: &HashMap<String, Value>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated reference in {s}"));
        };
        let expr = &after[..end];
        let v = eval_ref(expr, results).ok_or_else(|| format!("No value for {expr} found"))?;
        match v {
            Value::String(x) => out.push_str(&x),
            Value::Null => return Err(format!("No value for {expr} found")),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn eval_ref(expr: &str, results: &HashMap<String, Value>) -> Option<Value> {
    let name_end = expr.find(['.', '[']).unwrap_or(expr.len());
    let mut cur = results.get(&expr[..name_end])?.clone();
    let mut rest = &expr[name_end..];
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?.clone();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let i: usize = r[..end].parse().ok()?;
            cur = cur.get(i)?.clone();
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(cur)
}

fn resolve_value(v: &Value, results: &HashMap<String, Value>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(resolve_refs(s, results)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| resolve_value(x, results))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut o = Map::new();
            for (k, x) in m {
                o.insert(k.clone(), resolve_value(x, results)?);
            }
            Value::Object(o)
        }
        other => other.clone(),
    })
}

/// `/composite`: ≤ 25 subrequests, ≤ 5 of them collections or queries, run in order, one call.
fn composite(org: &mut Org, _path: &str, body: &[u8]) -> Reply {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Reply::error(
                400,
                "JSON_PARSER_ERROR",
                &format!("Unexpected character: {e}"),
            )
        }
    };
    let Some(subs) = req.get("compositeRequest").and_then(|v| v.as_array()) else {
        return Reply::error(
            400,
            "JSON_PARSER_ERROR",
            "compositeRequest: expected an array",
        );
    };
    if subs.len() > 25 {
        return Reply::error(
            400,
            "INVALID_BATCH_REQUEST",
            "Too many subrequests: a composite request can have at most 25 subrequests",
        );
    }
    let heavy = subs
        .iter()
        .filter(|s| {
            let url = s.get("url").and_then(|u| u.as_str()).unwrap_or("");
            url.contains("/composite/sobjects") || url.contains("/query")
        })
        .count();
    if heavy > 5 {
        return Reply::error(
            400,
            "INVALID_BATCH_REQUEST",
            "A composite request can have at most 5 sObject Collections or query subrequests",
        );
    }
    let all_or_none = req
        .get("allOrNone")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let mut results: HashMap<String, Value> = HashMap::new();
    let mut out = Vec::new();
    let mut halted = false;
    for s in subs {
        let reference = s
            .get("referenceId")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        if reference.is_empty()
            || !reference
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Reply::error(
                400,
                "INVALID_BATCH_REQUEST",
                "referenceId must be letters, digits and underscores",
            );
        }
        if halted {
            out.push(json!({"body": [{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another operation in the same transaction failed."}],
                "httpHeaders": {}, "httpStatusCode": 400, "referenceId": reference}));
            continue;
        }
        let method = s
            .get("method")
            .and_then(|v| v.as_str())
            .unwrap_or("GET")
            .to_uppercase();
        let url = s.get("url").and_then(|v| v.as_str()).unwrap_or("");
        let resolved = resolve_refs(url, &results).and_then(|u| {
            let b = s
                .get("body")
                .map(|b| resolve_value(b, &results))
                .transpose()?;
            Ok((u, b))
        });
        let (url, sub_body) = match resolved {
            Ok(x) => x,
            Err(e) => {
                out.push(json!({"body": [{"errorCode": "PROCESSING_HALTED",
                    "message": format!("Invalid reference specified. {e}. Provided referenceId ({reference}).")}],
                    "httpHeaders": {}, "httpStatusCode": 400, "referenceId": reference}));
                if all_or_none {
                    halted = true;
                }
                continue;
            }
        };
        if url.ends_with("/composite") || url.contains("/jobs/") {
            out.push(json!({"body": [{"errorCode": "INVALID_BATCH_REQUEST", "message": "this resource is not supported in a composite subrequest"}],
                "httpHeaders": {}, "httpStatusCode": 400, "referenceId": reference}));
            continue;
        }
        let (p, q) = match url.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (url.clone(), None),
        };
        let m = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        let bytes = sub_body
            .map(|b| serde_json::to_vec(&b).unwrap_or_default())
            .unwrap_or_default();
        let r = api(org, &m, &p, q.as_deref(), &bytes, "application/json");
        let rb = r.body_json();
        if r.status >= 400 && all_or_none {
            halted = true;
        }
        results.insert(reference.clone(), rb.clone());
        out.push(json!({"body": if rb.is_null() { Value::Null } else { rb }, "httpHeaders": {}, "httpStatusCode": r.status, "referenceId": reference}));
    }
    Reply::json(200, json!({"compositeResponse": out}))
}
