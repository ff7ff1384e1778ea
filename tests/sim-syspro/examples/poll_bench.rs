//! Streaming benchmark: polls N `ArInvoice` rows (default 1,000,000) through the OData reader
//! page by page and prints rows/s and peak RSS.
//!
//! The simulator runs in a child process (this same binary with `serve N`), so the peak RSS
//! printed (`VmHWM` from /proc/self/status) is the reader's alone: it must stay flat — about
//! one 5,000-row page — however many rows are polled.
//!
//! `cargo run -p sim-syspro --release --example poll_bench -- 1000000`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mlc_core::config::{ReadPath, SysproAuth, SysproConnection};
use mlc_core::ports::{Secrets, Source};
use mlc_core::query::SourceQuery;
use mlc_core::secret::{SecretRef, SecretString};
use mlc_core::{Entity, PortResult};
use sim_syspro::{CompanyCounts, SimOptions, SysproSim};

struct Pw;

#[async_trait]
impl Secrets for Pw {
    async fn get(&self, _r: &SecretRef) -> PortResult<SecretString> {
        Ok(SecretString::from("sim-password".to_string()))
    }
    async fn invalidate(&self, _r: &SecretRef) {}
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let n: usize = args
            .get(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        let sim = SysproSim::start(SimOptions {
            counts: CompanyCounts {
                customers: 2_000,
                invoices: n,
                payments: 0,
                suppliers: 0,
                ap_invoices: 0,
                purchase_orders: 0,
            },
            ..SimOptions::default()
        })
        .await?;
        println!("{}", sim.base_url());
        // Serve until the parent closes our stdin.
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return Ok(());
    }
    let n: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    eprintln!("generating {n} invoices in the simulator process…");
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut base = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut base)?;
    let conn = SysproConnection {
        base_url: base.trim().to_string(),
        odata_path: "/SYSPRO8Odata/SYSPROOData".into(),
        enet_path: "/SYSPROWCFService/Rest".into(),
        company: "EDU1".into(),
        auth: SysproAuth::Basic,
        read_path: ReadPath::Odata,
        operator: "ADMIN".into(),
        password: SecretRef::Env("UNUSED".into()),
        company_password: None,
        terms_source: Default::default(),
        terms_days: Default::default(),
        default_due_days: 30,
        timeout_secs: 120,
        page_size: 5000,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let src = mlc_syspro::SysproSource::new(&conn, Arc::new(Pw), http)?;
    let q = SourceQuery {
        entity: Entity::ArInvoice,
        fields: ["InvoiceDate", "InvoiceBal1", "TermsCode", "TimeStamp"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        filter: None,
        page_size: 5000,
    };
    let start = Instant::now();
    let mut rows = 0usize;
    let mut pages = 0usize;
    let mut cursor = None;
    let mut hwm_after_first = 0;
    loop {
        let page = src.read_page(&q, cursor.as_ref()).await?;
        rows += page.rows.len();
        pages += 1;
        if pages == 1 {
            hwm_after_first = status_kb("VmHWM:");
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(child.stdin.take());
    let _ = child.wait();
    println!(
        "rows={rows} pages={pages} seconds={secs:.1} rows_per_sec={:.0} peak_rss_kb={} peak_rss_after_first_page_kb={hwm_after_first}",
        rows as f64 / secs,
        status_kb("VmHWM:")
    );
    if rows != n {
        return Err(format!("read {rows} rows, expected {n}").into());
    }
    Ok(())
}
