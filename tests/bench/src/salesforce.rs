//! `salesforce`: Salesforce API calls per 1,000 records through the real pipeline (poll →
//! SQLite queue → `mlc_engine::local::drain` → `SalesforceSink`), counted by the org simulator
//! (token requests included), for three workloads on one company:
//! 1. the first sync (backfill) of every customer and invoice;
//! 2. steady state: ≥ 5,000 invoices change balance in SYSPRO, the next sync carries them;
//! 3. a re-poll where nothing changed (must write nothing);
//!
//! and, for the ratio, the steady-state records pushed again by a naive client: one token, then
//! one `PATCH /sobjects/Opportunity/SYSPRO_Invoice__c/{id}` per record.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlc_core::config::{ConnectorConfig, Destination};
use mlc_core::ports::{RecordStateStore, Sink, Source};
use mlc_engine::local::{drain, DrainOptions, DrainReport};
use mlc_engine::{poll_flow, PollReport, SinkSet};
use serde_json::{json, Map, Value};
use sim_salesforce::{OrgHandle, OrgOptions, OrgSim};
use sim_syspro::{SimHandle, SimOptions, SysproSim};

use crate::common::{self, per_1000, Local, Res};

const STAGES: [(&str, &str); 4] = [
    ("open", "Proposal/Price Quote"),
    ("overdue", "Negotiation/Review"),
    ("paid", "Closed Won"),
    ("removed", "Closed Lost"),
];

/// The demo's Salesforce flow (customers by rowversion, invoices as open items), with the
/// default `bulk_threshold` (5,000) and batch settings.
fn flow_toml(syspro: &str, sf: &str, terms: &str) -> String {
    let stage_map: Vec<String> = STAGES.iter().map(|(k, v)| format!("{k} = {v:?}")).collect();
    format!(
        r#"[settings]
state_path = "state.db"

[[flows]]
id = "bench-sf"
timezone = "Africa/Johannesburg"
schedule = "15m"

{syspro_toml}terms_days = {{ {terms} }}

[[flows.entities]]
entity = "ArCustomer"
change_detection = "rowversion"
[flows.entities.mapping]
Name = {{ from = "Name", trim = true }}
Phone = {{ from = "Telephone", trim = true }}
BillingStreet = {{ concat = ["SoldToAddr1", "SoldToAddr2", "SoldToAddr3"], separator = ", " }}
BillingPostalCode = {{ from = "SoldPostalCode", trim = true }}
CurrencyIsoCode = {{ from = "Currency", trim = true }}
SYSPRO_Email__c = {{ from = "Email", trim = true }}
SYSPRO_Credit_Limit__c = {{ from = "CreditLimit", type = "number" }}

[[flows.entities]]
entity = "ArInvoice"
change_detection = "open-items"
[flows.entities.mapping]
Amount = {{ from = "CurrencyValue", type = "number" }}

[flows.destination]
kind = "salesforce"
my_domain_url = "{sf}"
client_id = "env:BENCH_SF_CLIENT_ID"
client_secret = "env:BENCH_SF_CLIENT_SECRET"
aging_field = "SYSPRO_Aging__c"
balance_field = "SYSPRO_Balance__c"
stage_map = {{ {stage_map} }}
"#,
        syspro_toml = common::syspro_toml(syspro),
        stage_map = stage_map.join(", "),
    )
}

struct Bench {
    syspro: SimHandle,
    org: OrgHandle,
    config: ConnectorConfig,
    local: Local,
    http: reqwest::Client,
}

/// One sync's figures.
struct Sync {
    poll: PollReport,
    drain: DrainReport,
    /// Every request the org saw (token included).
    calls: usize,
    /// Token requests among them.
    tokens: usize,
    /// Requests by kind (`POST composite`, `GET jobs/ingest/{id}` …).
    kinds: BTreeMap<String, usize>,
    seconds: f64,
}

/// A request's kind: method and path with ids and the API version blanked.
fn kind(r: &sim_salesforce::RequestRecord) -> String {
    let segs: Vec<&str> = r
        .path
        .trim_start_matches("/services/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let norm: Vec<String> = segs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if (i == 1 && s.starts_with('v'))
                || s.len() >= 15 && s.chars().any(|c| c.is_ascii_digit())
            {
                "{id}".to_string()
            } else {
                (*s).to_string()
            }
        })
        .collect();
    format!("{} {}", r.method, norm.join("/"))
}

impl Bench {
    /// Poll once, then drain the queue through a fresh sink (a new process or Lambda
    /// invocation: its first call fetches a token), counting the org's requests.
    async fn sync(&self, bulk_threshold: Option<usize>) -> Res<Sync> {
        let mut flow = self.config.flows.first().ok_or("no flow")?.clone();
        if let (Some(t), Destination::Salesforce(sf)) = (bulk_threshold, &mut flow.destination) {
            sf.bulk_threshold = t;
        }
        let flow = &flow;
        let rt = self.local.runtime(&self.config, flow);
        self.org.clear_requests();
        let t0 = Instant::now();
        let source =
            mlc_syspro::SysproSource::new(&flow.syspro, common::secrets(), self.http.clone())?;
        let poll = poll_flow(&rt, &source, "bench").await?;
        source.close().await;
        let state: Arc<dyn RecordStateStore> = Arc::new(self.local.store.clone());
        let sink = mlc_salesforce::SalesforceSink::new(
            flow,
            common::secrets(),
            self.http.clone(),
            common::clock(),
            state,
        )?
        // Bulk job status polls scaled down (2 s → 50 ms): the simulator answers `InProgress`
        // for a fixed number of polls, so the calls counted are the same, only sooner.
        .with_options(mlc_salesforce::SinkOptions {
            bulk_poll_interval: Duration::from_millis(50),
            bulk_poll_max: Duration::from_millis(200),
            ..mlc_salesforce::SinkOptions::default()
        });
        let mut sinks = SinkSet::new();
        sinks.insert(flow.id.clone(), (rt, Arc::new(sink) as Arc<dyn Sink>));
        let opts = DrainOptions {
            max_wait: Duration::from_secs(120),
            ..DrainOptions::default()
        };
        let drain = drain(self.local.queue.as_ref(), &sinks, &opts).await?;
        let seconds = t0.elapsed().as_secs_f64();
        Ok(Sync {
            poll,
            drain,
            calls: self.org.total_calls(),
            tokens: self.org.token_calls(),
            kinds: self
                .org
                .requests()
                .iter()
                .fold(BTreeMap::new(), |mut m, r| {
                    *m.entry(kind(r)).or_insert(0) += 1;
                    m
                }),
            seconds,
        })
    }
}

fn sync_json(s: &Sync) -> Value {
    json!({
        "rows_read": s.poll.read(),
        "queued": s.poll.queued(),
        "created": s.drain.created,
        "updated": s.drain.updated,
        "unchanged": s.drain.unchanged,
        "retried": s.drain.retried,
        "dead_lettered": s.drain.dead_lettered,
        "messages": s.drain.messages,
        "left_queued": s.drain.left_queued,
        "calls": s.calls,
        "token_calls": s.tokens,
        "calls_by_kind": s.kinds,
        "seconds": common::round(s.seconds, 2),
    })
}

fn describe(label: &str, s: &Sync) {
    eprintln!(
        "salesforce {label}: read {} queued {} → created {} updated {} unchanged {} dead {} left {} in {} messages; {} calls ({} token) in {:.1} s",
        s.poll.read(),
        s.poll.queued(),
        s.drain.created,
        s.drain.updated,
        s.drain.unchanged,
        s.drain.dead_lettered,
        s.drain.left_queued,
        s.drain.messages,
        s.calls,
        s.tokens,
        s.seconds
    );
    eprintln!("  calls by kind: {:?}", s.kinds);
}

/// Runs the three workloads and the baseline; prints the figures.
pub async fn run(records: usize, changed: usize) -> Res<()> {
    let customers = 2_000.min(records / 2).max(1);
    let invoices = records.saturating_sub(customers);
    eprintln!("salesforce: generating {customers} customers and {invoices} invoices…");
    let syspro = SysproSim::start(SimOptions {
        counts: sim_syspro::CompanyCounts {
            customers,
            invoices,
            payments: 0,
            suppliers: 0,
            ap_invoices: 0,
            purchase_orders: 0,
        },
        today: common::today(),
        operators: vec![(
            common::SYSPRO_OPERATOR.into(),
            common::SYSPRO_PASSWORD.into(),
        )],
        ..SimOptions::default()
    })
    .await?;
    let org = OrgSim::start(OrgOptions {
        client_id: common::SF_CLIENT_ID.into(),
        client_secret: common::SF_CLIENT_SECRET.into(),
        daily_limit: 100_000_000,
        ..OrgOptions::default()
    })
    .await?;
    let terms: Vec<String> = syspro
        .terms_days()
        .iter()
        .map(|(k, v)| format!("{:?} = {v}", k.trim()))
        .collect();
    let config = common::parse_config(&flow_toml(
        &syspro.base_url(),
        &org.url(),
        &terms.join(", "),
    ))?;
    let dir = tempfile::Builder::new().prefix("mlc-bench-sf-").tempdir()?;
    let bench = Bench {
        local: Local::open(dir.path(), "salesforce")?,
        syspro,
        org,
        config,
        http: common::http()?,
    };

    // 1. Backfill.
    let backfill = bench.sync(None).await?;
    describe("backfill", &backfill);
    let backfill_records = backfill.poll.queued();
    if backfill.drain.dead_lettered > 0 || backfill.drain.left_queued > 0 {
        return Err(format!(
            "backfill did not complete: {} dead-lettered, {} left queued",
            backfill.drain.dead_lettered, backfill.drain.left_queued
        )
        .into());
    }

    // 2. Steady state: partial payments on `changed` invoices (balance only; they stay open).
    let changed_keys = pay_part(&bench.syspro, changed, 0)?;
    let steady = bench.sync(None).await?;
    describe("steady state", &steady);
    let steady_records = steady.poll.queued();

    // 2b. The same again with Bulk off (threshold above any pass): Composite only, for the
    // comparison of the two paths at the pass sizes the drain produces.
    pay_part(&bench.syspro, changed, 1)?;
    let composite = bench.sync(Some(usize::MAX)).await?;
    describe("steady state, composite only", &composite);

    // 3. Nothing changed.
    let unchanged = bench.sync(None).await?;
    describe("unchanged re-poll", &unchanged);
    let unchanged_writes = unchanged.calls - unchanged.tokens;

    // Baseline: the same changed records, one PATCH each.
    let (baseline_calls, baseline_records, baseline_secs) =
        naive_client(&bench.org, &bench.http, &changed_keys).await?;
    eprintln!(
        "salesforce baseline: {baseline_records} records, {baseline_calls} calls in {baseline_secs:.1} s"
    );
    if bench
        .org
        .duplicates("Opportunity", "SYSPRO_Invoice__c")
        .len()
        + bench.org.duplicates("Account", "SYSPRO_Customer__c").len()
        > 0
    {
        return Err("duplicate records in the org".into());
    }

    common::emit(&json!({
        "bench": "salesforce",
        "backfill": sync_json(&backfill),
        "steady": sync_json(&steady),
        "steady_composite_only": sync_json(&composite),
        "unchanged": sync_json(&unchanged),
        "baseline": {"records": baseline_records, "calls": baseline_calls, "seconds": common::round(baseline_secs, 2)},
        "sf_calls_per_1000_backfill": per_1000(backfill.calls, backfill_records).map(|x| common::round(x, 3)),
        "sf_calls_per_1000": per_1000(steady.calls, steady_records).map(|x| common::round(x, 3)),
        "sf_calls_per_1000_composite_only": per_1000(composite.calls, composite.poll.queued()).map(|x| common::round(x, 3)),
        "sf_calls_per_1000_unchanged": per_1000(unchanged_writes, unchanged.poll.read()).map(|x| common::round(x, 3)),
        "baseline_calls_per_1000": per_1000(baseline_calls, baseline_records).map(|x| common::round(x, 3)),
    }));
    Ok(())
}

/// Partial payments on `n` invoices spread over the table (starting at `offset`): only the
/// balance changes and every invoice stays open. Returns their external ids.
fn pay_part(syspro: &SimHandle, n: usize, offset: usize) -> Res<Vec<String>> {
    let snap = syspro.snapshot();
    let rows = snap.get("ArInvoice").cloned().unwrap_or_default();
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let mut keys: Vec<String> = Vec::new();
    let step = (rows.len() / n.max(1)).max(1);
    for row in rows.iter().skip(offset).step_by(step).take(n) {
        let bal = row
            .get("InvoiceBal1")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if bal <= 1.0 {
            continue;
        }
        let (cust, inv) = (s(row.get("Customer")), s(row.get("Invoice")));
        syspro
            .post_payment(&cust, &inv, (bal / 2.0 * 100.0).round() / 100.0)
            .map_err(|e| format!("payment on {inv}: {e}"))?;
        keys.push(format!("{}|{}|I", cust.trim_end(), inv.trim_end()));
    }
    Ok(keys)
}

/// The naive client: one token, then one upsert-by-external-id PATCH per record, sending the
/// fields the connector maps (name, stage, close date, amount, balance, aging).
async fn naive_client(
    org: &OrgHandle,
    http: &reqwest::Client,
    keys: &[String],
) -> Res<(usize, usize, f64)> {
    let wanted: HashSet<&str> = keys.iter().map(String::as_str).collect();
    let opps: Vec<Map<String, Value>> = org
        .opportunities()
        .into_iter()
        .filter(|o| {
            o.fields
                .get("SYSPRO_Invoice__c")
                .and_then(Value::as_str)
                .is_some_and(|e| wanted.contains(e))
        })
        .map(|o| o.fields)
        .collect();
    org.clear_requests();
    let t0 = Instant::now();
    let token: Value = http
        .post(format!("{}/services/oauth2/token", org.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", common::SF_CLIENT_ID),
            ("client_secret", common::SF_CLIENT_SECRET),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let access = token
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or("no access_token")?;
    let instance = token
        .get("instance_url")
        .and_then(Value::as_str)
        .ok_or("no instance_url")?;
    for o in &opps {
        let ext = o
            .get("SYSPRO_Invoice__c")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut body = Map::new();
        for f in [
            "Name",
            "StageName",
            "CloseDate",
            "Amount",
            "SYSPRO_Balance__c",
            "SYSPRO_Aging__c",
        ] {
            if let Some(v) = o.get(f) {
                body.insert(f.to_string(), v.clone());
            }
        }
        let url = format!(
            "{instance}/services/data/v62.0/sobjects/Opportunity/SYSPRO_Invoice__c/{}",
            url_path_segment(ext)
        );
        let r = http
            .patch(url)
            .bearer_auth(access)
            .json(&body)
            .send()
            .await?;
        if !r.status().is_success() {
            return Err(
                format!("naive PATCH {ext}: HTTP {} {}", r.status(), r.text().await?).into(),
            );
        }
    }
    Ok((org.total_calls(), opps.len(), t0.elapsed().as_secs_f64()))
}

/// Percent-encodes a path segment (external ids hold `|`).
fn url_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
