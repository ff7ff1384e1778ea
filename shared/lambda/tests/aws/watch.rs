//! The real runtime wiring shared by the `cargo lambda` tests: a function's binary, built like
//! any other by cargo, served by `cargo lambda watch --only-lambda-apis` (runtime API emulator
//! on loopback only, nothing compiled inside it), started by the test with the runtime-API
//! environment the emulator prints, and invoked with `cargo lambda invoke --data-file`.
//!
//! `cargo-lambda` comes from `tests/requirements.txt` (`tests/run` puts `.venv/bin` on PATH); a
//! missing tool fails the test.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Stack;

/// Kills a child we started when the test ends, however it ends.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

pub fn cargo_lambda() -> PathBuf {
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

/// Builds the binary `bin` of workspace package `package` (a no-op when it is fresh) and
/// returns its path.
pub fn binary(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "-p",
            package,
            "--bin",
            bin,
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("running cargo build");
    assert!(out.status.success(), "cargo build -p {package} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["reason"] == "compiler-artifact"
                && v["target"]["name"] == bin
                && v["target"]["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo build reported no {bin} executable"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn wait_for_port(port: u16, within: Duration) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < within,
            "cargo lambda watch did not listen on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `cargo lambda watch --only-lambda-apis` on a free loopback port.
pub struct Watch {
    pub tool: PathBuf,
    pub port: u16,
    /// `AWS_LAMBDA_RUNTIME_API` for the function process.
    pub runtime_api: String,
    _process: Reaped,
}

impl Watch {
    pub fn start() -> Watch {
        let tool = cargo_lambda();
        let port = free_port();
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
        Watch {
            tool,
            port,
            runtime_api,
            _process: watch,
        }
    }

    /// The function process as Lambda starts it: runtime-API variables, the stack's tables and
    /// queues, AWS pointed at moto, `flows` as `MLC_FLOWS_TOML`; stdout goes to `log`.
    /// Callers add their function's own variables and spawn it.
    pub fn function(&self, binary: &Path, stack: &Stack, flows: &str, log: &Path) -> Command {
        let endpoint = std::env::var(mlc_aws::context::TEST_ENDPOINT_ENV).unwrap();
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &self.runtime_api)
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
            .env("MLC_FLOWS_TOML", flows)
            .env("MLC_AUDIT_TTL_DAYS", "30")
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(Stdio::inherit());
        cmd
    }

    /// `cargo lambda invoke` with an event file written to `dir`; the function's JSON answer.
    pub fn invoke(&self, dir: &Path, name: &str, event: &Value) -> Value {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, event.to_string()).unwrap();
        let out = Command::new(&self.tool)
            .current_dir(workspace_root())
            .args([
                "lambda",
                "invoke",
                "-A",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
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
}
