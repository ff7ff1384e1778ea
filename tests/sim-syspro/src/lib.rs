//! SYSPRO simulator: e.net REST and OData v4 on loopback, with faults.
//!
//! Used by the `mlc-syspro` tests, the benchmark and `ml-connector demo`. It speaks the wire
//! shapes recorded from real servers (see `../shared/api-notes/syspro.md`):
//! - e.net `{enet_path}/Logon|Logoff|GetVersion|Query/Query` (paths case-insensitive, every
//!   answer `application/octet-stream`, HTTP 200 `ERROR:` bodies, a token of 34 upper-case hex
//!   characters plus two trailing blanks, one session per operator — a second logon evicts the
//!   first, Windows-1252 XML with right-aligned numbers and `0000-00-00` empty dates);
//! - OData v4 `{odata_path}/{company}/{Table}` and `$metadata`, HTTP Basic, `$filter`,
//!   `$select`, `$orderby`, `$top`, `$skip`, a 5,000-row cap, optional server-driven paging
//!   (`@odata.nextLink`). Bad queries get a 400 with an OData error body.
//!
//! Module map:
//! - [`data`]: schemas, SQL comparison semantics, [`Company`] and its seeded generator
//! - [`filter`]: `$filter` / COMFND `Where` parsing and evaluation
//! - `server`: routing, OData, faults; `enet`: e.net sessions and `COMFND`
//!
//! Control (Rust methods on [`SimHandle`], and `GET /_sim/snapshot`, `GET /_sim/counters`):
//! mutate data between polls, read a snapshot, count requests per endpoint, switch faults.

pub mod data;
mod enet;
pub mod filter;
mod server;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{Map, Value};

pub use data::{Company, CompanyCounts};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Seed of the data generator (and of tokens).
    pub seed: u64,
    /// Rows to generate (ignored when `company` is given).
    pub counts: CompanyCounts,
    /// "Today" for the generator.
    pub today: NaiveDate,
    /// Prebuilt data; `None` generates from `seed`, `counts`, `today`.
    pub company: Option<Company>,
    /// Company id (URL segment for OData, `CompanyId` for e.net).
    pub company_id: String,
    /// Company password (e.net).
    pub company_password: String,
    /// Operators and their passwords (both e.net and OData).
    pub operators: Vec<(String, String)>,
    /// OData service path.
    pub odata_path: String,
    /// e.net REST path.
    pub enet_path: String,
    /// Most rows one OData response carries (SYSPRO: 5,000).
    pub max_page: usize,
    /// Server-driven paging: when set, at most this many rows per response and an
    /// `@odata.nextLink` to the rest.
    pub server_page: Option<usize>,
    /// Offset written after dates on OData (`2026-11-24T00:00:00+02:00`).
    pub date_offset: String,
    /// Tables whose `$metadata` hides `TimeStamp` (old SYSPRO versions).
    pub hide_row_version: Vec<String>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 7,
            counts: CompanyCounts::default(),
            today: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default(),
            company: None,
            company_id: "EDU1".into(),
            company_password: String::new(),
            operators: vec![("ADMIN".into(), "sim-password".into())],
            odata_path: "/SYSPRO8Odata/SYSPROOData".into(),
            enet_path: "/SYSPROWCFService/Rest".into(),
            max_page: 5000,
            server_page: None,
            date_offset: "+02:00".into(),
            hide_row_version: Vec::new(),
        }
    }
}

type Hook = Box<dyn FnOnce(&mut Company) + Send>;

/// Fault switches. Counters of "next n" faults decrease as they fire.
pub(crate) struct Faults {
    pub delay: Duration,
    pub next_5xx: u32,
    pub next_truncated: u32,
    pub next_error_body: VecDeque<String>,
    pub evict_every: Option<u32>,
    pub fault_rate: f64,
    pub rng: StdRng,
    pub after_page: VecDeque<Hook>,
}

pub(crate) struct Shared {
    pub opts: SimOptions,
    pub base_url: String,
    pub company: Mutex<Company>,
    pub passwords: Mutex<HashMap<String, String>>,
    /// Operator (upper-case) → the one live token.
    pub sessions: Mutex<HashMap<String, String>>,
    pub counters: Mutex<BTreeMap<String, u64>>,
    pub faults: Mutex<Faults>,
    pub token_rng: Mutex<StdRng>,
}

/// Locks a mutex, recovering from poisoning (a panicking test must not wedge the server).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn count(&self, name: &str) {
        self.count_n(name, 1);
    }

    /// Adds `n` to a counter (rows served).
    pub fn count_n(&self, name: &str, n: u64) {
        *lock(&self.counters).entry(name.to_string()).or_insert(0) += n;
    }
}

/// The simulator.
pub struct SysproSim;

impl SysproSim {
    /// Binds 127.0.0.1:0 and serves until the handle is dropped.
    pub async fn start(opts: SimOptions) -> std::io::Result<SimHandle> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let company = opts
            .company
            .clone()
            .unwrap_or_else(|| Company::generate(opts.seed, opts.counts, opts.today));
        let shared = Arc::new(Shared {
            base_url: format!("http://{addr}"),
            company: Mutex::new(company),
            passwords: Mutex::new(
                opts.operators
                    .iter()
                    .map(|(o, p)| (o.to_ascii_uppercase(), p.clone()))
                    .collect(),
            ),
            sessions: Mutex::new(HashMap::new()),
            counters: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(Faults {
                delay: Duration::ZERO,
                next_5xx: 0,
                next_truncated: 0,
                next_error_body: VecDeque::new(),
                evict_every: None,
                fault_rate: 0.0,
                rng: StdRng::seed_from_u64(opts.seed),
                after_page: VecDeque::new(),
            }),
            token_rng: Mutex::new(StdRng::seed_from_u64(opts.seed ^ 0x5eed)),
            opts,
        });
        let app = server::router(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SimHandle { shared, addr, task })
    }
}

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The options it was started with.
    pub fn options(&self) -> &SimOptions {
        &self.shared.opts
    }

    /// Runs `f` on the data (any mutation, atomically between requests).
    pub fn with_company<R>(&self, f: impl FnOnce(&mut Company) -> R) -> R {
        f(&mut lock(&self.shared.company))
    }

    /// Current rows of every table, plain JSON (dates `YYYY-MM-DD`, rowversions as numbers).
    pub fn snapshot(&self) -> BTreeMap<String, Vec<Map<String, Value>>> {
        lock(&self.shared.company).snapshot()
    }

    /// `TblArTerms` as terms code → due days.
    pub fn terms_days(&self) -> BTreeMap<String, u32> {
        lock(&self.shared.company).terms_days()
    }

    /// Posts an AR invoice (`DocumentType` `'I '`); returns the invoice number.
    pub fn post_invoice(
        &self,
        customer: &str,
        date: NaiveDate,
        amount: f64,
        terms: &str,
    ) -> String {
        self.with_company(|c| c.post_invoice(customer, date, amount, terms))
    }

    /// Posts a payment against an invoice: only `InvoiceBal1` (and `TimeStamp`) of the invoice
    /// change. Returns the new balance.
    pub fn post_payment(&self, customer: &str, invoice: &str, amount: f64) -> Result<f64, String> {
        let today = self.shared.opts.today;
        self.with_company(|c| c.post_payment_on(customer, invoice, "I ", amount, today))
    }

    /// Edits customer columns.
    pub fn edit_customer(
        &self,
        customer: &str,
        changes: &Map<String, Value>,
    ) -> Result<(), String> {
        self.with_company(|c| c.update("ArCustomer", &[customer], changes))
    }

    /// Inserts a row.
    pub fn insert(&self, table: &str, row: &Map<String, Value>) -> Result<(), String> {
        self.with_company(|c| c.insert(table, row))
    }

    /// Updates a row.
    pub fn update(
        &self,
        table: &str,
        key: &[&str],
        changes: &Map<String, Value>,
    ) -> Result<(), String> {
        self.with_company(|c| c.update(table, key, changes))
    }

    /// Deletes a row; true when it existed.
    pub fn delete(&self, table: &str, key: &[&str]) -> Result<bool, String> {
        self.with_company(|c| c.delete(table, key))
    }

    /// Requests per endpoint (`logon`, `logoff`, `getversion`, `query`, `odata`, `metadata`),
    /// OData data requests that carried `$skip` (`odata_skip`), OData rows served
    /// (`odata_rows`, and per table `odata_rows:{Table}`), and faults fired (`fault_5xx`, `fault_truncated`, `fault_error_body`, `evicted`,
    /// `unauthorized`, `logon_failed`).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.counters).clone()
    }

    /// One counter.
    pub fn count(&self, name: &str) -> u64 {
        lock(&self.shared.counters).get(name).copied().unwrap_or(0)
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        lock(&self.shared.counters).clear();
    }

    /// Ends every e.net session now (as another logon or an idle timeout would).
    pub fn evict_sessions(&self) {
        lock(&self.shared.sessions).clear();
        self.shared.count("evicted");
    }

    /// Ends the session before every n-th e.net query (`None` = never).
    pub fn evict_every(&self, n: Option<u32>) {
        lock(&self.shared.faults).evict_every = n;
    }

    /// Delays every response.
    pub fn set_delay(&self, d: Duration) {
        lock(&self.shared.faults).delay = d;
    }

    /// The next `n` data requests answer 503.
    pub fn fail_next(&self, n: u32) {
        lock(&self.shared.faults).next_5xx = n;
    }

    /// The next `n` data responses are cut in half (truncated JSON / XML).
    pub fn truncate_next(&self, n: u32) {
        lock(&self.shared.faults).next_truncated = n;
    }

    /// The next data request answers HTTP 200 with `ERROR: {text}` (once per call).
    pub fn error_body_next(&self, text: &str) {
        lock(&self.shared.faults)
            .next_error_body
            .push_back(text.to_string());
    }

    /// Runs `f` on the data right after the next data page is served: "a page that changes
    /// between two page reads".
    pub fn after_next_page(&self, f: impl FnOnce(&mut Company) + Send + 'static) {
        lock(&self.shared.faults).after_page.push_back(Box::new(f));
    }

    /// Changes an operator's password (the client's is now wrong).
    pub fn set_password(&self, operator: &str, password: &str) {
        lock(&self.shared.passwords).insert(operator.to_ascii_uppercase(), password.to_string());
    }

    /// Chaos: each data request suffers a random transient fault (503, truncated body, 300 ms
    /// delay, or e.net session eviction) with probability `rate`, drawn from `seed`.
    pub fn set_fault_rate(&self, rate: f64, seed: u64) {
        let mut f = lock(&self.shared.faults);
        f.fault_rate = rate;
        f.rng = StdRng::seed_from_u64(seed);
    }

    /// Clears every fault switch.
    pub fn clear_faults(&self) {
        let mut f = lock(&self.shared.faults);
        f.delay = Duration::ZERO;
        f.next_5xx = 0;
        f.next_truncated = 0;
        f.next_error_body.clear();
        f.evict_every = None;
        f.fault_rate = 0.0;
        f.after_page.clear();
    }
}
