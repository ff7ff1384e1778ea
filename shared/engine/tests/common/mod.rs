//! The engine test world: the real SQLite stores and queue, an in-memory SYSPRO table that
//! honours `$select` and filters, and a recording destination.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use mlc_core::config::{ConnectorConfig, FlowConfig};
use mlc_core::ports::{PendingWrite, Sink, SinkError, Source, SourceError, SourceInfo};
use mlc_core::query::{Filter, Literal, Op, PageCursor, SourcePage, SourceQuery};
use mlc_core::{Entity, Failure, FixedClock, Record, RecordOutcome};
use mlc_embedded::{QueueOptions, SqliteQueue, SqliteStore};
use mlc_engine::local::{drain, DrainOptions};
use mlc_engine::{poll_flow, FlowRuntime, SinkSet};
use serde_json::{json, Value};

// ---------------------------------------------------------------- in-memory SYSPRO tables

#[derive(Default)]
pub struct Tables {
    pub rows: HashMap<Entity, Vec<Record>>,
    pub reads: usize,
}

#[derive(Clone, Default)]
pub struct MemSource(pub Arc<Mutex<Tables>>);

pub fn cmp_value(v: Option<&Value>, op: Op, lit: &Literal) -> bool {
    use std::cmp::Ordering;
    let ord = match (v, lit) {
        (Some(Value::String(s)), Literal::Str(l)) => s.trim_end().cmp(l.trim_end()),
        (Some(Value::String(s)), Literal::Date(d)) => {
            match NaiveDate::parse_from_str(&s[..10.min(s.len())], "%Y-%m-%d") {
                Ok(x) => x.cmp(d),
                Err(_) => return false,
            }
        }
        (Some(Value::Number(n)), Literal::Num(l)) => n
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(l)
            .unwrap_or(Ordering::Equal),
        (Some(Value::Number(n)), Literal::RowVersion(l)) => n.as_u64().unwrap_or(0).cmp(l),
        _ => return false,
    };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
    }
}

pub fn eval(f: &Filter, r: &Record) -> bool {
    match f {
        Filter::Cmp { field, op, value } => cmp_value(r.get(field), *op, value),
        Filter::And(v) => v.iter().all(|x| eval(x, r)),
        Filter::Or(v) => v.iter().any(|x| eval(x, r)),
    }
}

#[async_trait]
impl Source for MemSource {
    async fn read_page(
        &self,
        q: &SourceQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<SourcePage, SourceError> {
        let mut t = self.0.lock().unwrap();
        t.reads += 1;
        let mut rows: Vec<Record> = t
            .rows
            .get(&q.entity)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| q.filter.as_ref().is_none_or(|f| eval(f, r)))
            .collect();
        let key = |r: &Record| {
            q.entity
                .key_fields()
                .iter()
                .map(|k| r.get(*k).map(|v| v.to_string()).unwrap_or_default())
                .collect::<Vec<_>>()
        };
        rows.sort_by_key(key);
        let skip: usize = cursor.map(|c| c.0.parse().unwrap()).unwrap_or(0);
        // Like a server's `$select`: only the columns asked for.
        let page: Vec<Record> = rows
            .iter()
            .skip(skip)
            .take(q.page_size as usize)
            .map(|r| {
                r.iter()
                    .filter(|(k, _)| q.fields.is_empty() || q.fields.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect();
        let next =
            (skip + page.len() < rows.len()).then(|| PageCursor((skip + page.len()).to_string()));
        Ok(SourcePage { rows: page, next })
    }
    async fn has_row_version(&self, e: Entity) -> Result<bool, SourceError> {
        // Like `$metadata`: a table has a rowversion when its rows carry `TimeStamp`.
        let t = self.0.lock().unwrap();
        Ok(t.rows
            .get(&e)
            .is_some_and(|rows| rows.iter().any(|r| r.contains_key("TimeStamp"))))
    }
    async fn ping(&self, _f: &[(Entity, Vec<String>)]) -> Result<SourceInfo, SourceError> {
        Ok(SourceInfo {
            summary: "mem".into(),
            mismatches: vec![],
        })
    }
}

impl MemSource {
    pub fn upsert(&self, e: Entity, row: Value) {
        let row = row.as_object().unwrap().clone();
        let mut t = self.0.lock().unwrap();
        let rows = t.rows.entry(e).or_default();
        let k = |r: &Record| {
            e.key_fields()
                .iter()
                .map(|f| r.get(*f).cloned())
                .collect::<Vec<_>>()
        };
        rows.retain(|r| k(r) != k(&row));
        rows.push(row);
    }
}

// ---------------------------------------------------------------- recording destination

#[derive(Default)]
pub struct Dest {
    /// key → (record as last written, number of creates)
    pub records: BTreeMap<String, (Record, usize)>,
    pub writes: usize,
    /// keys that fail permanently while present
    pub reject: HashSet<String>,
    /// whole calls that answer "later"
    pub throttle_calls: usize,
    /// whole calls refused for credentials
    pub auth_fail_calls: usize,
    /// the "later" throttled calls ask for (300 ms when zero)
    pub throttle_after: Duration,
}

#[derive(Clone, Default)]
pub struct MemSink(pub Arc<Mutex<Dest>>);

#[async_trait]
impl Sink for MemSink {
    fn destination(&self) -> &'static str {
        "salesforce"
    }
    async fn ping(&self) -> Result<Vec<String>, SinkError> {
        Ok(vec![])
    }
    /// The record beside what was last written for its key (every field of the event).
    async fn preview(
        &self,
        batch: &[PendingWrite],
    ) -> Result<Vec<mlc_core::preview::Preview>, SinkError> {
        use mlc_core::preview::{field, Preview};
        let d = self.0.lock().unwrap();
        Ok(batch
            .iter()
            .map(|w| {
                let id = w.event.key.id();
                let stored = d.records.get(&id).map(|(r, _)| r);
                let fields = w
                    .event
                    .record
                    .iter()
                    .map(|(k, v)| {
                        let now = stored.map(|r| r.get(k).cloned().unwrap_or(Value::Null));
                        field(k.clone(), v.clone(), now)
                    })
                    .collect();
                Preview::from_fields("mem".into(), stored.map(|_| format!("001{id}")), fields)
            })
            .collect())
    }
    async fn write(&self, batch: &[PendingWrite]) -> Result<Vec<RecordOutcome>, SinkError> {
        let mut d = self.0.lock().unwrap();
        if d.auth_fail_calls > 0 {
            d.auth_fail_calls -= 1;
            return Err(SinkError::Auth(
                "INVALID_SESSION_ID: session expired".into(),
            ));
        }
        if d.throttle_calls > 0 {
            d.throttle_calls -= 1;
            return Ok(batch
                .iter()
                .map(|_| {
                    RecordOutcome::retry(
                        Some(if d.throttle_after.is_zero() {
                            Duration::from_millis(300)
                        } else {
                            d.throttle_after
                        }),
                        Failure::retryable("throttled"),
                    )
                })
                .collect());
        }
        let mut out = Vec::new();
        for w in batch {
            let id = w.event.key.id();
            if d.reject.contains(&id) {
                out.push(RecordOutcome::Permanent(
                    Failure::permanent("REQUIRED_FIELD_MISSING: Name").with_field("Name"),
                ));
                continue;
            }
            d.writes += 1;
            let created = !d.records.contains_key(&id);
            let entry = d.records.entry(id.clone()).or_insert((Record::new(), 0));
            entry.0 = w.event.record.clone();
            if created {
                entry.1 += 1;
            }
            out.push(RecordOutcome::Applied {
                created,
                destination_ids: BTreeMap::from([(
                    "salesforce_id".to_string(),
                    format!("001{id}"),
                )]),
            });
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- world

pub struct World {
    pub _dir: tempfile::TempDir,
    pub store: SqliteStore,
    pub queue: Arc<SqliteQueue>,
    pub source: MemSource,
    pub dest: MemSink,
    pub flow: Arc<FlowConfig>,
}

pub const CONFIG: &str = r#"
[[flows]]
id = "acme-sf"
timezone = "Africa/Johannesburg"
[flows.syspro]
base_url = "http://127.0.0.1:1"
company = "ACME"
operator = "MLC"
password = "env:SYSPRO_PASSWORD"
page_size = 7
terms_days = { "30" = 30 }
[[flows.entities]]
entity = "ArCustomer"
change_detection = "full-scan"
[flows.entities.mapping]
Name = { from = "Name", trim = true }
[[flows.entities]]
entity = "ArInvoice"
change_detection = "open-items"
[flows.entities.mapping]
Amount = { from = "CurrencyValue", type = "number" }
Balance__c = "InvoiceBal1"
[flows.destination]
kind = "salesforce"
my_domain_url = "http://127.0.0.1:2"
client_id = "env:SF_ID"
client_secret = "env:SF_SECRET"
# The destination reads the status (the Opportunity stage), so status changes are changes.
stage_map = { open = "Open", overdue = "Late", paid = "Won", removed = "Lost" }
"#;

impl World {
    /// The world with its flow changed by `edit` (a flows-file edit between runs).
    pub fn reconfigure(&mut self, edit: impl FnOnce(&mut FlowConfig)) {
        let mut f = (*self.flow).clone();
        edit(&mut f);
        self.flow = Arc::new(f);
    }

    pub fn queued(r: &mlc_engine::PollReport, entity: &str) -> usize {
        r.entities
            .iter()
            .filter(|e| e.entity == entity)
            .map(|e| e.queued)
            .sum()
    }

    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let cfg: ConnectorConfig = toml::from_str(CONFIG).unwrap();
        World {
            store: SqliteStore::open(&path).unwrap(),
            queue: Arc::new(
                SqliteQueue::open(
                    &path,
                    QueueOptions {
                        // As the CLI: the sink dead-letters by the retry horizon, with the reason.
                        max_receive_count: 1000,
                        ..Default::default()
                    },
                )
                .unwrap(),
            ),
            _dir: dir,
            source: MemSource::default(),
            dest: MemSink::default(),
            flow: Arc::new(cfg.flows[0].clone()),
        }
    }

    pub fn runtime(&self, today: &str) -> FlowRuntime {
        let store = Arc::new(self.store.clone());
        FlowRuntime {
            flow: self.flow.clone(),
            settings: Arc::new(mlc_core::config::Settings {
                max_attempts: 5,
                ..Default::default()
            }),
            watermarks: store.clone(),
            state: store.clone(),
            audit: store,
            queue: self.queue.clone(),
            clock: Arc::new(FixedClock::today(
                NaiveDate::parse_from_str(today, "%Y-%m-%d").unwrap(),
            )),
            lease_ttl: Duration::from_secs(60),
        }
    }

    pub fn sinks(&self, today: &str) -> SinkSet {
        let mut s = SinkSet::new();
        s.insert(
            self.flow.id.clone(),
            (
                self.runtime(today),
                Arc::new(self.dest.clone()) as Arc<dyn Sink>,
            ),
        );
        s
    }

    pub async fn sync(&self, today: &str) -> mlc_engine::PollReport {
        let r = poll_flow(&self.runtime(today), &self.source, "test")
            .await
            .unwrap();
        drain(
            self.queue.as_ref(),
            &self.sinks(today),
            &DrainOptions {
                max_wait: Duration::from_secs(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        r
    }

    pub fn seed(&self, customers: usize, invoices: usize) {
        for c in 0..customers {
            self.source.upsert(
                Entity::ArCustomer,
                json!({"Customer": format!("{c:07} "), "Name": format!("Customer {c}")}),
            );
        }
        for i in 0..invoices {
            self.source.upsert(
                Entity::ArInvoice,
                json!({"Customer": format!("{:07} ", i % customers.max(1)), "Invoice": format!("{:09}", 100000 + i), "DocumentType": "I ",
                       "InvoiceDate": "2026-11-01", "TermsCode": "30", "CurrencyValue": 100.0 + i as f64, "InvoiceBal1": 100.0 + i as f64}),
            );
        }
    }
}

pub fn inv_key(i: usize, customers: usize) -> String {
    format!("{:07}|{:09}|I", i % customers, 100000 + i)
}

pub fn rule(toml_rule: &str) -> mlc_core::config::FieldMapping {
    #[derive(serde::Deserialize)]
    struct R {
        r: mlc_core::config::FieldMapping,
    }
    toml::from_str::<R>(&format!("r = {toml_rule}")).unwrap().r
}
