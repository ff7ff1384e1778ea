//! `poll`: the real poll (`mlc_engine::poll_flow` with `SysproSource` over OData → SQLite queue
//! batches + SQLite record state and audit) of N `ArInvoice` rows, on one core, against the
//! SYSPRO simulator served by a child process (this binary, `serve-syspro`), so the CPU time
//! and peak RSS measured are the poll's own.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use mlc_core::ports::Source;
use serde_json::json;

use crate::common::{self, Res};

/// A SYSPRO simulator in a child process; killed when dropped.
pub struct SimChild {
    child: Child,
    /// Its base URL.
    pub base_url: String,
}

impl SimChild {
    /// Starts `serve-syspro` with these counts (`customers`, `invoices`, `suppliers`,
    /// `ap_invoices`, `purchase_orders`); `cpu` pins it to one CPU with `taskset` when given.
    pub fn start(counts: [usize; 5], cpu: Option<usize>) -> Res<SimChild> {
        let exe = std::env::current_exe()?;
        let mut args: Vec<String> = vec!["serve-syspro".into()];
        for (name, n) in ["customers", "invoices", "suppliers", "ap", "pos"]
            .iter()
            .zip(counts)
        {
            args.push(format!("--{name}"));
            args.push(n.to_string());
        }
        let mut cmd = match cpu.filter(|_| which("taskset")) {
            Some(c) => {
                let mut c2 = Command::new("taskset");
                c2.arg("-c").arg(c.to_string()).arg(&exe).args(&args);
                c2
            }
            None => {
                let mut c2 = Command::new(&exe);
                c2.args(&args);
                c2
            }
        };
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let mut line = String::new();
        let out = child.stdout.take().ok_or("simulator child: no stdout")?;
        BufReader::new(out).read_line(&mut line)?;
        let base_url = line.trim().to_string();
        if !base_url.starts_with("http://127.0.0.1:") {
            let _ = child.kill();
            return Err(format!("simulator child did not start: {line:?}").into());
        }
        Ok(SimChild { child, base_url })
    }
}

impl SimChild {
    /// CPU seconds the simulator has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        common::cpu_seconds_of(&self.child.id().to_string())
    }
}

impl Drop for SimChild {
    fn drop(&mut self) {
        // Closing stdin ends the child; kill it if it lingers.
        drop(self.child.stdin.take());
        if matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

fn which(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The flow the poll benchmark runs: invoices to Salesforce, detected by rowversion (a first
/// poll reads every row), with the default Opportunity name template (so each page also looks
/// up its customers' names, 50 keys per query, cached for the poll).
fn flow_toml(base_url: &str) -> String {
    format!(
        r#"[settings]
state_path = "state.db"

[[flows]]
id = "bench-poll"
timezone = "Africa/Johannesburg"
schedule = "15m"

{syspro}
[[flows.entities]]
entity = "ArInvoice"
change_detection = "rowversion"
[flows.entities.mapping]
Amount = {{ from = "CurrencyValue", type = "number" }}

[flows.destination]
kind = "salesforce"
my_domain_url = "http://127.0.0.1:9"
client_id = "env:BENCH_SF_CLIENT_ID"
client_secret = "env:BENCH_SF_CLIENT_SECRET"
balance_field = "SYSPRO_Balance__c"
aging_field = "SYSPRO_Aging__c"
stage_map = {{ open = "Proposal/Price Quote", overdue = "Negotiation/Review", paid = "Closed Won", removed = "Closed Lost" }}
"#,
        syspro = common::syspro_toml(base_url)
    )
}

/// Runs one poll of `rows` invoices and prints its figures.
pub fn run(rows: usize, sim_cpu: Option<usize>) -> Res<()> {
    let customers = 2_000.min(rows.max(1));
    eprintln!("poll: generating {rows} invoices in the simulator child…");
    let sim = SimChild::start([customers, rows, 0, 0, 0], sim_cpu)?;
    // One core: the poll and its SQLite work share a current-thread runtime (SQLite calls run
    // on the blocking pool, one at a time, as in a Lambda).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let hwm_before = common::status_kb("VmHWM:");
    let dir = tempfile::Builder::new()
        .prefix("mlc-bench-poll-")
        .tempdir()?;
    let config = common::parse_config(&flow_toml(&sim.base_url))?;
    let flow = config.flows.first().ok_or("no flow")?.clone();
    let local = common::Local::open(dir.path(), "salesforce")?;
    let runtime = local.runtime(&config, &flow);
    let source = mlc_syspro::SysproSource::new(&flow.syspro, common::secrets(), common::http()?)?;
    let cpu0 = common::cpu_seconds();
    let sim_cpu0 = sim.cpu_seconds();
    let t0 = Instant::now();
    let report = rt.block_on(mlc_engine::poll_flow(&runtime, &source, "bench"))?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = common::cpu_seconds() - cpu0;
    let sim_cpu = sim.cpu_seconds() - sim_cpu0;
    rt.block_on(source.close());
    let depth = rt.block_on(mlc_core::ports::Queue::depth(local.queue.as_ref()))?;
    let read = report.read();
    if read != rows {
        return Err(format!("poll read {read} rows, expected {rows}").into());
    }
    let hwm = common::status_kb("VmHWM:");
    eprintln!(
        "poll: {read} rows in {secs:.2} s ({:.0} rows/s), {cpu:.2} CPU s (simulator {sim_cpu:.2} CPU s), {} messages, peak RSS {} MB",
        read as f64 / secs,
        depth.queued,
        hwm / 1024
    );
    common::emit(&json!({
        "bench": "poll",
        "rows": read,
        "queued": report.queued(),
        "messages": depth.queued,
        "seconds": common::round(secs, 3),
        "cpu_seconds": common::round(cpu, 3),
        "sim_cpu_seconds": common::round(sim_cpu, 3),
        "records_per_s": common::round(read as f64 / secs, 0),
        "records_per_cpu_s": common::round(read as f64 / cpu.max(0.001), 0),
        "peak_rss_mb": common::round(hwm as f64 / 1024.0, 1),
        "rss_before_poll_mb": common::round(hwm_before as f64 / 1024.0, 1),
    }));
    Ok(())
}

/// `serve-syspro`: the simulator, until stdin closes. Prints its base URL on stdout.
pub fn serve(counts: [usize; 5]) -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sim = sim_syspro::SysproSim::start(sim_syspro::SimOptions {
            counts: sim_syspro::CompanyCounts {
                customers: counts[0],
                invoices: counts[1],
                payments: 0,
                suppliers: counts[2],
                ap_invoices: counts[3],
                purchase_orders: counts[4],
            },
            today: common::today(),
            operators: vec![(
                common::SYSPRO_OPERATOR.into(),
                common::SYSPRO_PASSWORD.into(),
            )],
            ..sim_syspro::SimOptions::default()
        })
        .await?;
        println!("{}", sim.base_url());
        // Serve until the parent closes our stdin (or dies).
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await?;
        drop(sim);
        Ok(())
    })
}
