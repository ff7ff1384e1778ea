//! The real runtime wiring: the `replay` binary, built like any other, served by
//! `cargo lambda watch` (runtime API emulator on loopback only) and invoked with
//! `cargo lambda invoke`. The binary is already built by cargo, so the emulator runs with
//! `--only-lambda-apis` and this test starts the binary with the runtime-API environment that
//! `cargo lambda watch` prints: nothing is compiled inside the emulator.
//!
//! `cargo-lambda` comes from `tests/requirements.txt` (`tests/run` puts `.venv/bin` on PATH); a
//! missing tool fails this test.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use mlc_core::{ChangeBatch, ChangeEvent, Entity, Failure, RecordKey, SourceVersion};
use serde_json::{json, Value};

use crate::common::{Stack, SF_FLOW};

/// Kills a child we started when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

fn cargo_lambda() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("cargo-lambda"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "cargo-lambda is not on PATH: run the tests through tests/run (it installs cargo-lambda from tests/requirements.txt into .venv and puts .venv/bin on PATH)"
        )
    })
}

/// Builds the `replay` binary (a no-op when it is fresh) and returns its path.
fn replay_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "-p",
            "replay",
            "--bin",
            "replay",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("running cargo build");
    assert!(out.status.success(), "cargo build -p replay failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "replay")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .expect("cargo build reported no replay executable")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for_port(port: u16, within: Duration) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < within,
            "cargo lambda watch did not listen on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `cargo lambda invoke` with an event file; the function's JSON answer.
fn invoke(tool: &Path, port: u16, dir: &Path, name: &str, event: &Value) -> Value {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, event.to_string()).unwrap();
    let out = Command::new(tool)
        .current_dir(workspace_root())
        .args([
            "lambda",
            "invoke",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "--data-file",
        ])
        .arg(&file)
        .arg("_")
        .output()
        .expect("running cargo lambda invoke");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo lambda invoke failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn event(key: &str, reason: Option<&str>) -> ChangeEvent {
    ChangeEvent {
        flow: SF_FLOW.into(),
        entity: Entity::ArInvoice,
        key: RecordKey::composite(&["C0001", key, "I"]),
        version: SourceVersion {
            poll_seq: 1,
            row_version: Some(7),
        },
        content_hash: format!("hash-{key}"),
        poll_id: format!("{SF_FLOW}:1"),
        polled_at: Utc::now(),
        record: Default::default(),
        attempt: 1,
        failure: reason.map(Failure::permanent),
    }
}

/// A flows file the function validates at cold start (no endpoint is contacted by a replay).
const FLOWS: &str = r#"
[[flows]]
id = "acme-sf"
[flows.syspro]
base_url = "http://127.0.0.1:9"
company = "ACME"
operator = "MLC"
password = "secretsmanager:acme/syspro#password"
[[flows.entities]]
entity = "ArInvoice"
change_detection = "open-items"
[flows.entities.mapping]
Amount = { from = "CurrencyValue", type = "number" }
[flows.destination]
kind = "salesforce"
my_domain_url = "http://127.0.0.1:9"
client_id = "secretsmanager:acme/sf#client_id"
client_secret = "secretsmanager:acme/sf#client_secret"
stage_map = { open = "Proposal/Price Quote", overdue = "Negotiation/Review", paid = "Closed Won" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_function_runs_under_cargo_lambda_watch() {
    let tool = cargo_lambda();
    let stack = Stack::new().await;
    let endpoint = std::env::var(mlc_aws::context::TEST_ENDPOINT_ENV).unwrap();
    let queue: &dyn mlc_core::ports::Queue = &*stack.ports().salesforce;
    // One dead-lettered message holding two records: only the matching one moves.
    queue
        .dead_letter(&ChangeBatch {
            flow: SF_FLOW.into(),
            stream: SF_FLOW.into(),
            events: vec![
                event("100045", Some("REQUIRED_FIELD_MISSING: CloseDate")),
                event("100046", Some("FIELD_CUSTOM_VALIDATION_EXCEPTION")),
            ],
            nonce: None,
        })
        .await
        .unwrap();
    let binary = tokio::task::spawn_blocking(replay_binary).await.unwrap();

    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let watch = Command::new(&tool)
        .current_dir(workspace_root())
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
        ])
        .args(["--timeout", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting cargo lambda watch");
    let mut watch = Reaped(watch);
    // The runtime API address it prints (`AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:PORT/.rt`);
    // the reader keeps draining so the emulator never blocks on a full pipe.
    let stdout = watch.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let runtime_api = loop {
        let left = Duration::from_secs(30).saturating_sub(started.elapsed());
        let line = rx
            .recv_timeout(left)
            .expect("cargo lambda watch printed no AWS_LAMBDA_RUNTIME_API within 30 s");
        if let Some((_, v)) = line.split_once("AWS_LAMBDA_RUNTIME_API=") {
            break v.trim().to_string();
        }
    };
    assert_eq!(runtime_api, format!("http://127.0.0.1:{port}/.rt"));
    wait_for_port(port, Duration::from_secs(30));

    let function = Command::new(&binary)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", &runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("MLC_CONTROL_TABLE", &stack.tables.control)
        .env("MLC_RECORDS_TABLE", &stack.tables.records)
        .env("MLC_AUDIT_TABLE", &stack.tables.audit)
        .env("MLC_SALESFORCE_QUEUE_URL", &stack.salesforce.main)
        .env("MLC_SALESFORCE_DLQ_URL", &stack.salesforce.dead)
        .env("MLC_MONDAY_QUEUE_URL", &stack.monday.main)
        .env("MLC_MONDAY_DLQ_URL", &stack.monday.dead)
        .env("MLC_FLOWS_TOML", FLOWS)
        .env("MLC_AUDIT_TTL_DAYS", "30")
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(dir.path().join("function.log")).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the replay binary");
    let _function = Reaped(function);

    let dir_path = dir.path().to_path_buf();
    let invocations = tokio::task::spawn_blocking(move || {
        let dry = invoke(
            &tool,
            port,
            &dir_path,
            "dry",
            &json!({"flow": SF_FLOW, "keys": ["100045"], "limit": 500, "dry_run": true}),
        );
        // The dry run hid the message for a second.
        std::thread::sleep(Duration::from_millis(1_200));
        let real = invoke(
            &tool,
            port,
            &dir_path,
            "real",
            &json!({"flow": SF_FLOW, "keys": ["100045"]}),
        );
        (dry, real)
    });
    let answers = tokio::time::timeout(Duration::from_secs(120), invocations).await;
    let log = std::fs::read_to_string(dir.path().join("function.log")).unwrap_or_default();
    let answers = match answers {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => panic!("{e}\nfunction log:\n{log}"),
        Err(_) => panic!("the invocations did not finish within 2 minutes\nfunction log:\n{log}"),
    };
    let (dry, real) = answers;
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["moved"], 1, "{dry}");
    assert_eq!(dry["left"], 1, "{dry}");
    let rec = &dry["destinations"]["salesforce"]["records"][0];
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("REQUIRED_FIELD_MISSING"),
        "{dry}"
    );
    assert_eq!(real["moved"], 1, "{real}");
    assert_eq!(real["dry_run"], false, "{real}");
    // The matching record is back on the main queue; the other stays dead-lettered.
    assert_eq!(stack.count(&stack.salesforce.main).await, 1);
    assert_eq!(stack.count(&stack.salesforce.dead).await, 1);
}
