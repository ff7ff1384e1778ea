//! The long-running daemon with `--listen`: signed triggers start exactly one poll, bad ones
//! are refused, repeated ones coalesce, and SIGTERM exits cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mlc_core::secret::SecretString;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ml-connector");
const TRIGGER_SECRET: &str = "trigger-secret-for-tests";

fn config(syspro: &str, sf: &str) -> String {
    format!(
        r#"
[settings]
state_path = "state.db"

[[flows]]
id = "acme-sf"
schedule = "1h"
trigger_secret = "env:T_TRIGGER"
[flows.syspro]
base_url = "{syspro}"
company = "DEMO"
operator = "OP"
password = "env:T_SYSPRO"
[[flows.entities]]
entity = "ArCustomer"
change_detection = "full-scan"
[flows.entities.mapping]
Name = {{ from = "Name", trim = true }}
[flows.destination]
kind = "salesforce"
my_domain_url = "{sf}"
client_id = "env:T_SF_ID"
client_secret = "env:T_SF_SECRET"
stage_map = {{ open = "Prospecting", overdue = "Negotiation/Review", paid = "Closed Won" }}
"#
    )
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    flow: &str,
    ts: i64,
    id: &str,
    secret: &str,
    body: &str,
) -> (u16, Value) {
    let sig = mlc_trigger::sign(
        &SecretString::from(secret.to_string()),
        ts,
        id,
        body.as_bytes(),
    );
    let r = client
        .post(format!("{base}/flows/{flow}/sync"))
        .header("X-MLC-Timestamp", ts.to_string())
        .header("X-MLC-Request-Id", id)
        .header("X-MLC-Signature", sig)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn last_poll_seq(client: &reqwest::Client, base: &str) -> (bool, Option<String>) {
    let v: Value = client
        .get(format!("{base}/flows"))
        .send()
        .await
        .expect("flows")
        .json()
        .await
        .expect("json");
    let f = &v[0];
    (
        f["running"].as_bool().unwrap_or(false),
        f["last_run"].as_str().map(str::to_string),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_triggers_start_one_poll_and_sigterm_exits_cleanly() {
    let syspro = sim_syspro::SysproSim::start(sim_syspro::SimOptions {
        company_id: "DEMO".into(),
        operators: vec![("OP".into(), "pw".into())],
        ..Default::default()
    })
    .await
    .expect("syspro sim");
    let sf = sim_salesforce::OrgSim::start(Default::default())
        .await
        .expect("sf sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("flows.toml");
    std::fs::write(&cfg, config(&syspro.base_url(), &sf.url())).expect("write config");

    let mut child = Command::new(BIN)
        .args([
            "sync",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--coalesce-secs",
            "0",
        ])
        .env("T_TRIGGER", TRIGGER_SECRET)
        .env("T_SYSPRO", "pw")
        .env("T_SF_ID", "sim-client-id")
        .env("T_SF_SECRET", "sim-client-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start daemon");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect("address line")
        .to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    // The scheduled poll at start-up runs first; wait for it to finish.
    let t = Instant::now();
    let first = loop {
        let (running, last) = last_poll_seq(&client, &base).await;
        if !running && last.is_some() {
            break last;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "initial poll never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let accounts_before = sf.accounts().len();
    assert!(accounts_before > 0);
    // Past the coalescing window of that scheduled poll.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let now = chrono::Utc::now().timestamp();
    // Refused: wrong secret, stale timestamp, unknown flow.
    assert_eq!(
        post(&client, &base, "acme-sf", now, "r1", "wrong", "{}")
            .await
            .0,
        401
    );
    assert_eq!(
        post(
            &client,
            &base,
            "acme-sf",
            now - 600,
            "r2",
            TRIGGER_SECRET,
            "{}"
        )
        .await
        .0,
        401
    );
    let (s, body) = post(&client, &base, "nope", now, "r3", TRIGGER_SECRET, "{}").await;
    assert_eq!(s, 404);
    assert_eq!(body["error"], "not found");

    // Accepted: one new poll; the same request again is a replay; a second trigger right
    // away joins the first.
    let (s, a) = post(
        &client,
        &base,
        "acme-sf",
        now,
        "r4",
        TRIGGER_SECRET,
        r#"{"invoice":"100045"}"#,
    )
    .await;
    assert_eq!(s, 202, "{a}");
    assert_eq!(a["coalesced"], false);
    assert_eq!(
        post(
            &client,
            &base,
            "acme-sf",
            now,
            "r4",
            TRIGGER_SECRET,
            r#"{"invoice":"100045"}"#
        )
        .await
        .0,
        409
    );
    let (s, b) = post(&client, &base, "acme-sf", now, "r5", TRIGGER_SECRET, "{}").await;
    assert_eq!(s, 202);
    assert_eq!(b["coalesced"], true, "{b}");

    let t = Instant::now();
    loop {
        let (running, last) = last_poll_seq(&client, &base).await;
        if !running && last != first {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "triggered poll never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // SIGTERM: exits cleanly.
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "daemon did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");

    // Exactly two polls ran: the scheduled one and one triggered (the coalesced trigger and
    // the replay started nothing).
    let out = Command::new(BIN)
        .args(["--json", "status", "--config", cfg.to_str().unwrap()])
        .output()
        .expect("status");
    let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(v[0]["last_poll"], "acme-sf:2", "{v}");
    assert_eq!(sf.accounts().len(), accounts_before, "nothing duplicated");
}
