//! Kill-and-restart support: simulators served by one process, the connector in another.
//!
//! `--serve DIR` starts the simulators, writes `DIR/flows.toml` and `DIR/demo.json` (the control
//! endpoint's address), and answers `GET /verify` with the same comparison the in-process demo
//! makes. `--attach DIR` syncs against them with its state in `DIR/state.db`; killing it at any
//! point and running it again must end converged.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlc_core::Clock;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::verify::{verify, MustExist, Verification};
use super::world::{World, WorldSize};
use super::{converge, dead_letters, print_summary, replay_all, summarize, DemoArgs};
use crate::app::{App, AppError};

#[derive(Debug, Serialize, Deserialize)]
struct DemoFile {
    control: String,
    monday_window_ms: u64,
    today: chrono::NaiveDate,
}

/// Serves the simulators until the process is killed.
pub async fn serve(args: DemoArgs, dir: PathBuf, clock: Arc<dyn Clock>) -> Result<u8, AppError> {
    let today = clock.today(chrono_tz::Tz::Africa__Johannesburg);
    let size = WorldSize {
        customers: args.customers,
        invoices: args.invoices,
        pos: args.pos,
        suppliers: args.suppliers,
    };
    let window = Duration::from_millis(args.monday_window_ms.max(50));
    let world = World::start(size, args.seed, today, clock.clone(), window)
        .await
        .map_err(|e| AppError::Runtime(format!("cannot start the simulators: {e}")))?;
    world.set_faults(args.faults, args.seed);
    std::fs::create_dir_all(&dir).map_err(|e| AppError::Runtime(e.to_string()))?;
    let config_path = dir.join("flows.toml");
    std::fs::write(&config_path, &world.config_toml)
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    let config = mlc_config::load(&config_path).map_err(|e| AppError::Config(e.to_string()))?;
    let mut must = MustExist::default();
    must.add_open_now(&world, &config, today);

    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    let file = DemoFile {
        control: format!("{addr}"),
        monday_window_ms: window.as_millis() as u64,
        today,
    };
    // Written last, atomically: its presence means everything is up.
    let tmp = dir.join("demo.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&file).unwrap_or_default())
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    std::fs::rename(&tmp, dir.join("demo.json")).map_err(|e| AppError::Runtime(e.to_string()))?;
    eprintln!(
        "simulators up; control on http://{addr}; flows file {}",
        config_path.display()
    );

    let world = Arc::new(world);
    let config = Arc::new(config);
    loop {
        let (mut sock, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => continue,
        };
        let mut buf = vec![0u8; 4096];
        let n = sock.read(&mut buf).await.unwrap_or(0);
        let req = String::from_utf8_lossy(&buf[..n]);
        let (status, body) = if req.starts_with("GET /verify") {
            let v = verify(&world, &config, today, &must);
            ("200 OK", serde_json::to_string(&v).unwrap_or_default())
        } else if req.starts_with("POST /clear-faults") {
            world.clear_faults();
            ("200 OK", "{}".to_string())
        } else {
            ("404 Not Found", "{}".to_string())
        };
        let resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = sock.write_all(resp.as_bytes()).await;
    }
}

async fn control(addr: &str, request: &str) -> Result<String, AppError> {
    let mut sock = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| AppError::Runtime(format!("demo control endpoint {addr}: {e}")))?;
    sock.write_all(
        format!("{request} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| AppError::Runtime(e.to_string()))?;
    let mut out = String::new();
    sock.read_to_string(&mut out)
        .await
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

/// Syncs against served simulators, replays dead letters, and prints the verification.
pub async fn attach(
    args: DemoArgs,
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    json: bool,
) -> Result<u8, AppError> {
    let started = Instant::now();
    let file: DemoFile = std::fs::read(dir.join("demo.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            AppError::Config(format!(
                "no simulators served from {} (run demo --serve there first)",
                dir.display()
            ))
        })?;
    let config_path = dir.join("flows.toml");
    let config = mlc_config::load(&config_path).map_err(|e| AppError::Config(e.to_string()))?;
    let mut app = App::with_config(
        config,
        &config_path,
        None,
        clock,
        Arc::new(super::world::secrets()),
    )?;
    app.monday_window = Some(Duration::from_millis(file.monday_window_ms));
    app.lease_ttl = Duration::from_secs(5);
    let mut rounds = converge(&app, &args, json, "sync").await?;
    control(&file.control, "POST /clear-faults").await?;
    let replayed = replay_all(&app).await?;
    if replayed > 0 {
        rounds += converge(&app, &args, json, "after replay").await?;
    }
    let dead = dead_letters(&app).await?;
    let body = control(&file.control, "GET /verify").await?;
    let v: Verification = serde_json::from_str(&body)
        .map_err(|e| AppError::Runtime(format!("bad verification answer: {e}")))?;
    let summary = summarize(v, dead, replayed, rounds, &args, file.today, started);
    print_summary(&summary, json, &dir);
    Ok(if summary.converged { 0 } else { 3 })
}
