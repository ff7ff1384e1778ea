//! SYSPRO client: reads SYSPRO tables page by page through OData (HTTP Basic) or the e.net
//! `COMFND` business object (session token), and implements [`mlc_core::ports::Source`].
//!
//! Vendor facts it follows are in `../shared/api-notes/syspro.md`. Change-detection bookkeeping
//! (watermarks, open items, hashes) is the engine's; this crate makes the engine's filters
//! (`InvoiceDate ge …`, `TimeStamp gt …`, `InvoiceBal1 ne 0`, `Filter::keys(…)`) work exactly.
//!
//! # Paging: keyset, not `$skip`
//! Pages are read with **keyset paging**: ordered by the full key (`$orderby`), each next page
//! asks for the original filter AND "key > last key of the previous page" (lexicographic over
//! the composite key, spelled with `or`/`and`). `$skip` paging is wrong on a live ERP: when a
//! row before the offset is deleted (or moves) between two page reads, every later row shifts
//! one place left and the row at the page boundary is never read; an insert shifts rows right
//! and one is read twice. With keyset paging every row that exists for the whole poll is read
//! exactly once, whatever happens around it. A server that caps pages below `$top` answers with
//! an `@odata.nextLink`, which pages by `$skip`: the reader never follows it. The link (or a
//! full page) only says "more rows"; the next request is the reader's own keyset query, with the
//! same `$top`, whatever page size the server returned. A page that is short and has no link
//! ends the read. The cursor handed to the engine ([`mlc_core::query::PageCursor`]) is opaque:
//! base64 of the last key read.
//!
//! # Columns come from `$metadata`
//! The columns a query `$select`s are checked against the entity set's properties in the
//! server's `$metadata` before the request goes out: a column the server does not have fails
//! the read as `Rejected`, naming it, instead of a bare HTTP 400. `ping` reports the same
//! mismatches up front. The built-in column lists ([`mlc_core::Entity::known_fields`]) play no
//! part here. e.net has no `$metadata`: there COMFND itself refuses an unknown column with a
//! business error that names it.
//!
//! # Sessions (e.net)
//! `Logon` sends all four parameters; the token (34 hex + two blanks, sometimes JSON-quoted or
//! in `<string>`) is trimmed, kept for the life of the process and passed as `UserId`. One
//! session at a time: a tokio mutex serialises every e.net call, because a second logon by the
//! same operator evicts the first. SYSPRO answers errors with HTTP 200: `UserID is invalid`
//! means the session expired — log on again once and retry once; other logon errors are
//! authentication failures, never retried; `<ErrorNumber>` XML is a business error. Query
//! strings carry passwords, so every URL in a log line or error is redacted.
//!
//! # Retries
//! Transport errors, 5xx/429 and truncated or invalid bodies are retried with exponential
//! backoff and full jitter ([`RetryPolicy`]), then reported as `Transient`. Auth failures and
//! rejected requests are not retried.
//!
//! Module map:
//! - [`error`]: constructor errors
//! - [`metadata`]: `$metadata` (CSDL) parsing
//! - [`query`]: `Filter` → OData `$filter` / COMFND `Where`, keyset predicate, page cursor
//! - [`comfnd`]: COMFND `XmlIn` and output parsing (Windows-1252)
//! - [`value`]: row normalisation
//! - [`redact`]: query-string redaction
//! - `fuzzing` (hidden): the private parsing steps, for `fuzz/` and the corpus replay tests

pub mod comfnd;
pub mod error;
pub mod metadata;
pub mod query;
pub mod redact;
pub mod value;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mlc_core::config::{ReadPath, SysproAuth, SysproConnection};
use mlc_core::ports::{Secrets, SourceError, SourceInfo};
use mlc_core::query::{PageCursor, SourcePage, SourceQuery};
use mlc_core::secret::{ExposeSecret, SecretString};
use mlc_core::{Entity, Record};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::Rng;
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};

pub use error::{Result, SysproError};
use metadata::Metadata;
use query::{Cursor, Simple};
use redact::{describe_reqwest, redact_url};

/// Characters left as they are in query values: RFC 3986 unreserved.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Most rows an OData response carries.
pub const MAX_PAGE: u32 = 5000;

/// Retries of transient failures: exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first included).
    pub attempts: u32,
    /// First backoff ceiling.
    pub base: Duration,
    /// Largest backoff ceiling.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The sleep before retry number `n` (1-based): uniform in [0, min(cap, base·2ⁿ⁻¹)].
    pub fn backoff(&self, n: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.cap);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }
}

/// What one attempt produced.
enum Attempt<T> {
    Done(T),
    /// Worth another attempt (transport, 5xx, truncated body).
    Retry(String),
    /// Final (auth, rejected).
    Fail(SourceError),
}

/// What an e.net call answered, once transport problems are out of the way.
enum EnetAnswer {
    Body(String),
    SessionInvalid,
}

/// The SYSPRO source.
pub struct SysproSource {
    base: String,
    conn: SysproConnection,
    secrets: Arc<dyn Secrets>,
    http: reqwest::Client,
    retry: RetryPolicy,
    metadata: OnceCell<Metadata>,
    /// The e.net session token; the lock serialises every e.net call.
    session: Mutex<Option<String>>,
    /// e.net: whether an entity exposes `TimeStamp` (probed once).
    enet_row_version: Mutex<HashMap<Entity, bool>>,
    /// e.net: the server version, read on the first successful check.
    enet_version: OnceCell<String>,
    logons: AtomicU64,
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn enc(v: &str) -> String {
    utf8_percent_encode(v, QUERY_VALUE).to_string()
}

impl SysproSource {
    /// A source for one SYSPRO connection. `http` should carry a timeout; each request also
    /// gets `conn.timeout_secs`. Plain `http://` is accepted only for loopback hosts.
    pub fn new(
        conn: &SysproConnection,
        secrets: Arc<dyn Secrets>,
        http: reqwest::Client,
    ) -> Result<Self> {
        let trimmed = conn.base_url.trim().trim_end_matches('/');
        let parsed = url::Url::parse(trimmed).map_err(|source| SysproError::InvalidUrl {
            url: redact_url(trimmed),
            source,
        })?;
        let loopback = parsed.host().as_ref().is_some_and(is_loopback);
        match parsed.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(SysproError::Insecure(redact_url(trimmed))),
        }
        if parsed.query().is_some() {
            return Err(SysproError::Config(
                "base_url must not carry a query string".into(),
            ));
        }
        if conn.company.trim().is_empty() || conn.operator.trim().is_empty() {
            return Err(SysproError::Config(
                "company and operator are required".into(),
            ));
        }
        if conn.read_path == ReadPath::Enet && conn.auth == SysproAuth::Basic {
            tracing::warn!("read_path enet uses an e.net session whatever `auth` says");
        }
        Ok(SysproSource {
            base: trimmed.to_string(),
            conn: conn.clone(),
            secrets,
            http,
            retry: RetryPolicy::default(),
            metadata: OnceCell::new(),
            session: Mutex::new(None),
            enet_row_version: Mutex::new(HashMap::new()),
            enet_version: OnceCell::new(),
            logons: AtomicU64::new(0),
        })
    }

    /// Replaces the retry policy (tests use short backoffs).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// e.net logons attempted by this process.
    pub fn logon_count(&self) -> u64 {
        self.logons.load(Ordering::Relaxed)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.conn.timeout_secs.max(1))
    }

    fn odata_root(&self) -> String {
        format!(
            "{}{}/{}",
            self.base,
            self.conn.odata_path.trim_end_matches('/'),
            enc(&self.conn.company)
        )
    }

    fn enet_url(&self, op: &str, params: &[(&str, &str)]) -> String {
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        format!(
            "{}{}/{op}?{}",
            self.base,
            self.conn.enet_path.trim_end_matches('/'),
            q.join("&")
        )
    }

    async fn password(&self) -> std::result::Result<SecretString, SourceError> {
        self.secrets.get(&self.conn.password).await.map_err(|e| {
            if e.is_transient() {
                SourceError::Transient(format!("SYSPRO password could not be read: {e}"))
            } else {
                SourceError::Auth(format!("SYSPRO password could not be read: {e}"))
            }
        })
    }

    /// Runs `attempt` until it is done, fails for good, or the policy's attempts are spent.
    async fn retrying<T, F, Fut>(
        &self,
        what: &str,
        mut attempt: F,
    ) -> std::result::Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt<T>>,
    {
        let attempts = self.retry.attempts.max(1);
        let mut last = String::new();
        for n in 1..=attempts {
            match attempt().await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(msg) => {
                    tracing::warn!(what, attempt = n, error = %msg, "SYSPRO call failed, will retry");
                    last = msg;
                    if n < attempts {
                        tokio::time::sleep(self.retry.backoff(n)).await;
                    }
                }
            }
        }
        Err(SourceError::Transient(format!(
            "{what}: gave up after {attempts} attempts: {last}"
        )))
    }

    // ---------------------------------------------------------------- OData

    /// One OData GET with Basic auth; the body as bytes, classified.
    async fn odata_get_once(&self, url: &str, password: &SecretString) -> Attempt<bytes::Bytes> {
        let shown = redact_url(url);
        tracing::debug!(url = %shown, "SYSPRO OData GET");
        let resp = self
            .http
            .get(url)
            .basic_auth(&self.conn.operator, Some(password.expose_secret()))
            .timeout(self.timeout())
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(format!("GET {shown}: {}", describe_reqwest(e))),
        };
        let status = resp.status();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Attempt::Retry(format!("GET {shown}: {}", describe_reqwest(e))),
        };
        if status.is_success() {
            return Attempt::Done(body);
        }
        let detail = odata_error_message(&body);
        match status.as_u16() {
            401 | 403 => {
                self.secrets.invalidate(&self.conn.password).await;
                Attempt::Fail(SourceError::Auth(format!(
                    "SYSPRO OData refused operator {:?} (HTTP {status}): wrong password, or the operator is not enabled for OData (the service loads its operator list at start-up: a newly enabled operator needs a service restart){detail}",
                    self.conn.operator
                )))
            }
            408 | 429 | 500..=599 => Attempt::Retry(format!("GET {shown}: HTTP {status}{detail}")),
            _ => Attempt::Fail(SourceError::Rejected(format!(
                "GET {shown}: HTTP {status}{detail}"
            ))),
        }
    }

    async fn metadata(&self) -> std::result::Result<&Metadata, SourceError> {
        self.metadata
            .get_or_try_init(|| async {
                let url = format!("{}/$metadata", self.odata_root());
                let password = self.password().await?;
                self.retrying("reading SYSPRO $metadata", || async {
                    match self.odata_get_once(&url, &password).await {
                        Attempt::Done(b) => match Metadata::parse(&String::from_utf8_lossy(&b)) {
                            Ok(m) => Attempt::Done(m),
                            Err(e) => Attempt::Retry(e),
                        },
                        Attempt::Retry(m) => Attempt::Retry(m),
                        Attempt::Fail(e) => Attempt::Fail(e),
                    }
                })
                .await
            })
            .await
    }

    fn key_fields(&self, entity: Entity, meta: Option<&Metadata>) -> Vec<String> {
        meta.and_then(|m| m.sets.get(entity.as_str()))
            .filter(|s| !s.keys.is_empty())
            .map(|s| s.keys.clone())
            .unwrap_or_else(|| entity.key_fields().iter().map(|s| s.to_string()).collect())
    }

    /// Columns to ask for: the requested source columns plus the key. Derived (`_Status`) and
    /// related (`Customer.Name`) names are not columns of this table. Empty = every column.
    fn columns(
        &self,
        q: &SourceQuery,
        keys: &[String],
    ) -> std::result::Result<Vec<String>, SourceError> {
        let mut cols: Vec<String> = Vec::new();
        for f in q
            .fields
            .iter()
            .filter(|f| !f.starts_with('_') && !f.contains('.'))
        {
            query::check_field(f)?;
            if !cols.contains(f) {
                cols.push(f.clone());
            }
        }
        if cols.is_empty() {
            return Ok(cols);
        }
        for k in keys {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
        Ok(cols)
    }

    async fn read_odata(
        &self,
        q: &SourceQuery,
        cursor: Option<&PageCursor>,
    ) -> std::result::Result<SourcePage, SourceError> {
        let meta = self.metadata().await?;
        let set = meta.sets.get(q.entity.as_str()).ok_or_else(|| {
            SourceError::Rejected(format!(
                "SYSPRO entity set {} is not in the server's $metadata",
                q.entity
            ))
        })?;
        let keys = self.key_fields(q.entity, Some(meta));
        let cols = self.columns(q, &keys)?;
        check_columns(q.entity, set, &q.fields)?;
        let kind_of = |f: &str| set.props.get(f).copied();
        let page_size = page_size(q.page_size);
        let cur = cursor.map(|c| Cursor::decode(&c.0)).transpose()?;
        let filter = match query::page_filter(q.filter.as_ref(), &keys, cur.as_ref())? {
            Simple::Nothing => return Ok(SourcePage::default()),
            Simple::All => None,
            Simple::Some(f) => Some(query::to_odata(&f, &kind_of)?),
        };
        let url = self.odata_url(q.entity, &cols, filter.as_deref(), &keys, page_size);
        let page = self.odata_page(q.entity, &url).await?;
        // A nextLink pages by `$skip`: it is taken as "more rows" and never followed.
        let more = page.next_link.is_some();
        let rows = odata_rows(page.value, &kind_of);
        let next = next_cursor(&rows, &keys, more, page_size)?;
        Ok(SourcePage { rows, next })
    }

    /// The keyset query of one page: `$select`, `$filter`, `$orderby` over the full key, `$top`.
    fn odata_url(
        &self,
        entity: Entity,
        cols: &[String],
        filter: Option<&str>,
        keys: &[String],
        page_size: u32,
    ) -> String {
        let mut params: Vec<String> = Vec::new();
        if !cols.is_empty() {
            params.push(format!("$select={}", enc(&cols.join(","))));
        }
        if let Some(f) = filter {
            params.push(format!("$filter={}", enc(f)));
        }
        params.push(format!("$orderby={}", enc(&keys.join(","))));
        params.push(format!("$top={page_size}"));
        format!(
            "{}/{}?{}",
            self.odata_root(),
            enc(entity.as_str()),
            params.join("&")
        )
    }

    /// One OData page, with retries.
    async fn odata_page(
        &self,
        entity: Entity,
        url: &str,
    ) -> std::result::Result<ODataPage, SourceError> {
        let password = self.password().await?;
        self.retrying(&format!("reading SYSPRO {entity}"), || async {
            match self.odata_get_once(url, &password).await {
                Attempt::Done(b) => match serde_json::from_slice::<ODataPage>(&b) {
                    Ok(p) => Attempt::Done(p),
                    Err(e) => Attempt::Retry(format!(
                        "truncated or invalid OData body ({} bytes): {e}",
                        b.len()
                    )),
                },
                Attempt::Retry(m) => Attempt::Retry(m),
                Attempt::Fail(e) => Attempt::Fail(e),
            }
        })
        .await
    }

    // ---------------------------------------------------------------- e.net

    /// One e.net GET: the decoded body, with transport problems retried.
    async fn enet_get(
        &self,
        op: &str,
        params: &[(&str, &str)],
    ) -> std::result::Result<String, SourceError> {
        let url = self.enet_url(op, params);
        let shown = redact_url(&url);
        self.retrying(&format!("SYSPRO e.net {op}"), || async {
            tracing::debug!(url = %shown, "SYSPRO e.net GET");
            let resp = match self.http.get(&url).timeout(self.timeout()).send().await {
                Ok(r) => r,
                Err(e) => return Attempt::Retry(format!("GET {shown}: {}", describe_reqwest(e))),
            };
            let status = resp.status();
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => return Attempt::Retry(format!("GET {shown}: {}", describe_reqwest(e))),
            };
            match status.as_u16() {
                200..=299 => Attempt::Done(comfnd::decode_body(&body)),
                408 | 429 | 500..=599 => Attempt::Retry(format!("GET {shown}: HTTP {status}")),
                _ => Attempt::Fail(SourceError::Rejected(format!("GET {shown}: HTTP {status}"))),
            }
        })
        .await
    }

    async fn logon(&self) -> std::result::Result<String, SourceError> {
        let password = self.password().await?;
        let company_password = match &self.conn.company_password {
            Some(r) => Some(self.secrets.get(r).await.map_err(|e| {
                SourceError::Auth(format!("SYSPRO company password could not be read: {e}"))
            })?),
            None => None,
        };
        self.logons.fetch_add(1, Ordering::Relaxed);
        let body = self
            .enet_get(
                "Logon",
                &[
                    ("Operator", &self.conn.operator),
                    ("OperatorPassword", password.expose_secret()),
                    ("CompanyId", &self.conn.company),
                    (
                        "CompanyPassword",
                        company_password
                            .as_ref()
                            .map(|s| s.expose_secret())
                            .unwrap_or(""),
                    ),
                ],
            )
            .await?;
        match parse_token(&body) {
            Ok(t) => {
                tracing::info!(operator = %self.conn.operator, "SYSPRO e.net logon");
                Ok(t)
            }
            Err(msg) => {
                self.secrets.invalidate(&self.conn.password).await;
                Err(SourceError::Auth(format!(
                    "SYSPRO e.net logon of operator {:?} to company {:?} failed: {msg}",
                    self.conn.operator, self.conn.company
                )))
            }
        }
    }

    /// An e.net call inside the session: logs on when needed; on `UserID is invalid` logs on
    /// again once and retries once.
    async fn enet_call(
        &self,
        op: &str,
        params: &[(&str, &str)],
    ) -> std::result::Result<String, SourceError> {
        let mut session = self.session.lock().await;
        let mut relogged = false;
        loop {
            let token = match session.as_ref() {
                Some(t) => t.clone(),
                None => {
                    let t = self.logon().await?;
                    *session = Some(t.clone());
                    t
                }
            };
            let mut all: Vec<(&str, &str)> = vec![("UserId", &token)];
            all.extend_from_slice(params);
            let body = self.enet_get(op, &all).await?;
            match classify_enet(body)? {
                EnetAnswer::Body(b) => return Ok(b),
                EnetAnswer::SessionInvalid if !relogged => {
                    tracing::info!("SYSPRO e.net session expired or evicted: logging on again");
                    relogged = true;
                    *session = None;
                }
                EnetAnswer::SessionInvalid => {
                    *session = None;
                    return Err(SourceError::Transient(
                        "SYSPRO e.net session was invalidated again right after logging on (another process using the same operator?)".into(),
                    ));
                }
            }
        }
    }

    /// A COMFND query; the body's rows. Truncated bodies are asked for again.
    async fn comfnd(
        &self,
        table: &str,
        columns: &[String],
        filter: &[query::WhereExpr],
        order_by: &[String],
        return_rows: u32,
    ) -> std::result::Result<Vec<Record>, SourceError> {
        let xml = comfnd::xml_in(table, columns, filter, order_by, return_rows);
        let attempts = self.retry.attempts.max(1);
        let mut last = String::new();
        for n in 1..=attempts {
            let body = self
                .enet_call(
                    "Query/Query",
                    &[("BusinessObject", "COMFND"), ("XmlIn", &xml)],
                )
                .await?;
            match comfnd::parse_rows(&body, columns) {
                Ok(rows) => return Ok(rows),
                Err(e) => {
                    tracing::warn!(attempt = n, error = %e, "SYSPRO COMFND body unreadable, will retry");
                    last = e;
                    if n < attempts {
                        tokio::time::sleep(self.retry.backoff(n)).await;
                    }
                }
            }
        }
        Err(SourceError::Transient(format!(
            "SYSPRO COMFND {table}: gave up after {attempts} attempts: {last}"
        )))
    }

    async fn read_enet(
        &self,
        q: &SourceQuery,
        cursor: Option<&PageCursor>,
    ) -> std::result::Result<SourcePage, SourceError> {
        let keys = self.key_fields(q.entity, None);
        let page_size = page_size(q.page_size);
        let cur = cursor.map(|c| Cursor::decode(&c.0)).transpose()?;
        let wheres = match query::page_filter(q.filter.as_ref(), &keys, cur.as_ref())? {
            Simple::Nothing => return Ok(SourcePage::default()),
            Simple::All => Vec::new(),
            Simple::Some(f) => query::to_comfnd(&f)?,
        };
        let cols = self.columns(q, &keys)?;
        let rows = self
            .comfnd(q.entity.as_str(), &cols, &wheres, &keys, page_size)
            .await?;
        // COMFND has no link: only a full page says there may be more.
        let next = next_cursor(&rows, &keys, false, page_size)?;
        Ok(SourcePage { rows, next })
    }

    async fn enet_version(&self) -> std::result::Result<&String, SourceError> {
        self.enet_version
            .get_or_try_init(|| async {
                let body = self.enet_get("GetVersion", &[]).await?;
                let t = body.trim();
                if t.starts_with("ERROR") {
                    return Err(SourceError::Rejected(format!(
                        "SYSPRO e.net GetVersion: {t}"
                    )));
                }
                Ok(t.trim_matches('"').to_string())
            })
            .await
    }
}

fn page_size(n: u32) -> u32 {
    if n == 0 {
        MAX_PAGE
    } else {
        n.min(MAX_PAGE)
    }
}

fn key_values(row: &Record, keys: &[String]) -> std::result::Result<Vec<Value>, SourceError> {
    keys.iter()
        .map(|k| {
            row.get(k).cloned().ok_or_else(|| {
                SourceError::Transient(format!("key column {k} missing from a SYSPRO row"))
            })
        })
        .collect()
}

/// The cursor after a page. More rows are signalled by a full page or by the server (`more`:
/// a nextLink); either way the next page is the keyset query after this page's last key. An
/// empty page ends the read even with a link: asking again after the same key would loop.
fn next_cursor(
    rows: &[Record],
    keys: &[String],
    more: bool,
    page_size: u32,
) -> std::result::Result<Option<PageCursor>, SourceError> {
    let Some(last) = rows.last() else {
        return Ok(None);
    };
    if !more && rows.len() < page_size as usize {
        return Ok(None);
    }
    let cursor = Cursor {
        k: key_values(last, keys)?,
    };
    Ok(Some(PageCursor(cursor.encode())))
}

/// Requested columns of this table (derived `_…` and related `X.Y` names are not) that the
/// entity set does not have.
fn missing_columns<'a>(set: &metadata::EntitySetMeta, fields: &'a [String]) -> Vec<&'a str> {
    fields
        .iter()
        .map(String::as_str)
        .filter(|f| !f.starts_with('_') && !f.contains('.'))
        .filter(|f| !set.props.contains_key(*f))
        .collect()
}

/// Refuses a query for columns the server does not have: its own answer would be a 400 that
/// does not say which mapping is wrong.
fn check_columns(
    entity: Entity,
    set: &metadata::EntitySetMeta,
    fields: &[String],
) -> std::result::Result<(), SourceError> {
    let missing = missing_columns(set, fields);
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = missing.iter().map(|c| format!("{c:?}")).collect();
    let (noun, verb) = if missing.len() == 1 {
        ("column", "is")
    } else {
        ("columns", "are")
    };
    Err(SourceError::Rejected(format!(
        "SYSPRO {entity}: {noun} {} {verb} not in the server's $metadata (no such property of entity set {entity}; check the flow's mapping)",
        names.join(", ")
    )))
}

/// An OData error body's message, for error text.
fn odata_error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(|m| format!(": {}", redact::redact_text(m)))
        })
        .unwrap_or_default()
}

/// Unwraps a logon answer: a plain token (trailing blanks trimmed), a JSON string, or a
/// `<string>` element. `ERROR:` bodies and anything that is not a token are refused.
pub fn parse_token(body: &str) -> std::result::Result<String, String> {
    let t = body.trim();
    // `get`, not `[..5]`: byte 5 may fall inside a character (found by fuzz target enet_token).
    if t.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("ERROR")) {
        return Err(t.to_string());
    }
    let t = if t.starts_with('"') {
        serde_json::from_str::<String>(t).map_err(|_| "logon answer is not a token".to_string())?
    } else if t.starts_with('<') {
        let start = t.find('>').map(|i| i + 1).unwrap_or(0);
        let end = t.rfind("</").unwrap_or(t.len());
        if start > end {
            return Err("logon answer is not a token".into());
        }
        t[start..end].to_string()
    } else {
        t.to_string()
    };
    let t = t.trim().to_string();
    if t.is_empty() || t.len() > 200 || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err("logon answer is not a token".into());
    }
    Ok(t)
}

/// Classifies an HTTP-200 e.net answer.
fn classify_enet(body: String) -> std::result::Result<EnetAnswer, SourceError> {
    let t = body.trim_start();
    if t.to_ascii_lowercase().contains("userid is invalid") && !t.starts_with('<') {
        return Ok(EnetAnswer::SessionInvalid);
    }
    if t.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("ERROR:")) {
        return Err(SourceError::Rejected(format!(
            "SYSPRO e.net: {}",
            redact::redact_text(t.trim_end())
        )));
    }
    if let Some(msg) = comfnd::business_error(t) {
        return Err(SourceError::Rejected(msg));
    }
    Ok(EnetAnswer::Body(body))
}

#[derive(serde::Deserialize)]
struct ODataPage {
    #[serde(default)]
    value: Vec<serde_json::Map<String, Value>>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

/// An OData page's rows, normalised: `@odata.*` annotations dropped, values by their kind.
fn odata_rows(
    value: Vec<serde_json::Map<String, Value>>,
    kind_of: &dyn Fn(&str) -> Option<metadata::PropKind>,
) -> Vec<Record> {
    // Normalised in place: the parsed maps are reused, not rebuilt.
    let mut rows = value;
    let mut kinds: Vec<(String, Option<metadata::PropKind>)> = Vec::new();
    for row in &mut rows {
        // Annotations (`@odata.etag` …) sort before "A", where field names start: the sorted
        // keys are read only that far, not walked whole.
        let notes: Vec<String> = row
            .keys()
            .take_while(|k| k.as_str() < "A")
            .filter(|k| k.starts_with('@'))
            .cloned()
            .collect();
        for k in notes {
            row.remove(&k);
        }
        for (i, (k, v)) in row.iter_mut().enumerate() {
            if matches!(v, Value::Null) {
                continue;
            }
            // Rows of a page have the same columns in the same (sorted) order: the kind found
            // for column i of an earlier row is checked with one comparison, not looked up.
            let kind = match kinds.get(i) {
                Some((name, kind)) if name == k => *kind,
                _ => {
                    let kind = kind_of(k);
                    if i < kinds.len() {
                        kinds[i] = (k.clone(), kind);
                    } else if i == kinds.len() {
                        kinds.push((k.clone(), kind));
                    }
                    kind
                }
            };
            let raw = std::mem::take(v);
            *v = value::odata_value(k, kind, raw);
        }
    }
    rows
}

/// Entry points for the fuzz targets (`fuzz/`) and the corpus replay tests: the private
/// parsing steps of the read paths, exactly as `read_page` runs them. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// An OData page body → its normalised rows and `@odata.nextLink`, as `read_odata` reads
    /// it (`Err` is what `read_odata` retries as "truncated or invalid OData body").
    pub fn odata_page(
        body: &[u8],
        set: Option<&metadata::EntitySetMeta>,
    ) -> std::result::Result<(Vec<Record>, Option<String>), String> {
        let page = serde_json::from_slice::<ODataPage>(body).map_err(|e| e.to_string())?;
        let kind_of = |f: &str| set.and_then(|s| s.props.get(f).copied());
        Ok((odata_rows(page.value, &kind_of), page.next_link))
    }

    /// An HTTP-200 e.net answer classified: `Ok(None)` when the session is invalid,
    /// `Ok(Some(body))` for a usable body, `Err` for an error answer.
    pub fn classify_enet(body: String) -> std::result::Result<Option<String>, SourceError> {
        match super::classify_enet(body)? {
            EnetAnswer::Body(b) => Ok(Some(b)),
            EnetAnswer::SessionInvalid => Ok(None),
        }
    }
}

#[async_trait]
impl mlc_core::ports::Source for SysproSource {
    async fn read_page(
        &self,
        query: &SourceQuery,
        cursor: Option<&PageCursor>,
    ) -> std::result::Result<SourcePage, SourceError> {
        match self.conn.read_path {
            ReadPath::Odata => self.read_odata(query, cursor).await,
            ReadPath::Enet => self.read_enet(query, cursor).await,
        }
    }

    async fn has_row_version(&self, entity: Entity) -> std::result::Result<bool, SourceError> {
        match self.conn.read_path {
            ReadPath::Odata => Ok(self
                .metadata()
                .await?
                .sets
                .get(entity.as_str())
                .is_some_and(|s| s.has_row_version())),
            ReadPath::Enet => {
                if let Some(v) = self.enet_row_version.lock().await.get(&entity) {
                    return Ok(*v);
                }
                let keys = self.key_fields(entity, None);
                let mut cols = keys.clone();
                cols.push("TimeStamp".into());
                let v = match self.comfnd(entity.as_str(), &cols, &[], &keys, 1).await {
                    Ok(_) => true,
                    Err(SourceError::Rejected(_)) => false,
                    Err(e) => return Err(e),
                };
                self.enet_row_version.lock().await.insert(entity, v);
                Ok(v)
            }
        }
    }

    async fn ping(
        &self,
        fields: &[(Entity, Vec<String>)],
    ) -> std::result::Result<SourceInfo, SourceError> {
        let mut mismatches = Vec::new();
        let summary = match self.conn.read_path {
            ReadPath::Odata => {
                let meta = self.metadata().await?;
                for (entity, cols) in fields {
                    let Some(set) = meta.sets.get(entity.as_str()) else {
                        mismatches.push(format!("entity set {entity} is not in $metadata"));
                        continue;
                    };
                    for c in missing_columns(set, cols) {
                        mismatches.push(format!("{entity}.{c} is not in $metadata"));
                    }
                }
                format!(
                    "SYSPRO OData {} company {}: {} entity sets",
                    redact_url(&self.base),
                    self.conn.company,
                    meta.sets.len()
                )
            }
            ReadPath::Enet => {
                let version = self.enet_version().await?.clone();
                for (entity, cols) in fields {
                    let keys = self.key_fields(*entity, None);
                    let q = SourceQuery {
                        entity: *entity,
                        fields: cols.clone(),
                        filter: None,
                        page_size: 1,
                    };
                    let cols = self.columns(&q, &keys)?;
                    match self.comfnd(entity.as_str(), &cols, &[], &keys, 1).await {
                        Ok(_) => {}
                        Err(SourceError::Rejected(m)) => mismatches.push(format!("{entity}: {m}")),
                        Err(e) => return Err(e),
                    }
                }
                format!(
                    "SYSPRO e.net {} version {version} company {} operator {}",
                    redact_url(&self.base),
                    self.conn.company,
                    self.conn.operator
                )
            }
        };
        Ok(SourceInfo {
            summary,
            mismatches,
        })
    }

    async fn close(&self) {
        let mut session = self.session.lock().await;
        if let Some(token) = session.take() {
            let url = self.enet_url("Logoff", &[("UserId", &token)]);
            match self.http.get(&url).timeout(self.timeout()).send().await {
                Ok(_) => tracing::info!("SYSPRO e.net logoff"),
                Err(e) => {
                    tracing::warn!(error = %describe_reqwest(e), "SYSPRO e.net logoff failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_column_is_read_by_its_kind_whatever_the_rows_hold() {
        // Rows with different columns: the per-position kind memo must not carry a kind over
        // to another column.
        let set = metadata::EntitySetMeta {
            keys: vec!["Invoice".into()],
            props: [
                ("Amount", metadata::PropKind::Number),
                ("DueDate", metadata::PropKind::Date),
                ("Invoice", metadata::PropKind::Text),
                ("Note", metadata::PropKind::Text),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        };
        let body = br#"{"value":[
            {"Amount":"1.50","DueDate":"2026-12-01T00:00:00Z","Invoice":"1"},
            {"DueDate":"2026-12-02T00:00:00Z","Invoice":"2","Note":"2026-12-03"},
            {"Amount":"3","Invoice":"3","Note":"12.5"}]}"#;
        let (rows, _) = fuzzing::odata_page(body, Some(&set)).expect("page");
        assert_eq!(rows[0]["Amount"], serde_json::json!(1.5));
        assert_eq!(rows[0]["DueDate"], serde_json::json!("2026-12-01"));
        assert_eq!(rows[1]["DueDate"], serde_json::json!("2026-12-02"));
        assert_eq!(rows[1]["Note"], serde_json::json!("2026-12-03"));
        assert_eq!(rows[2]["Amount"], serde_json::json!(3));
        assert_eq!(rows[2]["Note"], serde_json::json!("12.5"));
    }

    #[test]
    fn annotations_are_dropped_wherever_they_sit() {
        // Also guards the sorted-map assumption of `odata_rows`: were serde_json's
        // `preserve_order` switched on, the annotation after `Customer` would survive.
        let body = br#"{"value":[{"Customer":"C1  ","@odata.etag":"W/\"1\"","Name":"A",
            "@odata.id":"x"}],"@odata.nextLink":"http://127.0.0.1/next"}"#;
        let (rows, next) = fuzzing::odata_page(body, None).expect("page");
        let keys: Vec<&str> = rows[0].keys().map(String::as_str).collect();
        assert_eq!(keys, ["Customer", "Name"]);
        assert_eq!(next.as_deref(), Some("http://127.0.0.1/next"));
    }

    #[test]
    fn tokens_are_unwrapped() {
        // The recorded logon answer (wildland/syspro-ruby test/cassettes/test_logon.yml):
        // 34 upper-case hex characters and two trailing blanks.
        let plain = "8B8E0E2A1D59AA4A8D87C3D9CBFD3D9E00  ";
        assert_eq!(parse_token(plain).unwrap(), plain.trim());
        assert_eq!(parse_token("\"ABC123  \"").unwrap(), "ABC123");
        assert_eq!(
            parse_token("<string xmlns=\"http://schemas.microsoft.com/2003/10/Serialization/\">ABC123  </string>").unwrap(),
            "ABC123"
        );
        assert!(parse_token("ERROR: Invalid operator password").is_err());
        assert!(parse_token("").is_err());
    }

    #[test]
    fn enet_answers_are_classified() {
        assert!(matches!(
            classify_enet(
                "ERROR: The supplied UserID is invalid. Either you were not logged in".into()
            ),
            Ok(EnetAnswer::SessionInvalid)
        ));
        assert!(matches!(
            classify_enet("The supplied userid is INVALID".into()),
            Ok(EnetAnswer::SessionInvalid)
        ));
        assert!(matches!(
            classify_enet("ERROR: Something else".into()),
            Err(SourceError::Rejected(_))
        ));
        assert!(matches!(
            classify_enet("<ErrorMessage><ErrorNumber>1</ErrorNumber><ErrorDescription>x</ErrorDescription></ErrorMessage>".into()),
            Err(SourceError::Rejected(_))
        ));
    }

    #[test]
    fn backoff_is_bounded() {
        let p = RetryPolicy::default();
        for n in 1..20 {
            assert!(p.backoff(n) <= p.cap);
        }
    }
}
