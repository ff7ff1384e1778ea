//! The long-running `ml-connector sync`: every flow on its schedule and, with `--listen`, the
//! same signed `POST /flows/{flow}/sync` as the AWS trigger, plus `GET /healthz` and
//! `GET /flows`. SIGTERM or Ctrl-C finishes the batch in flight and exits cleanly.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use mlc_core::ports::{Queue, WatermarkStore};
use mlc_engine::local::DrainOptions;
use mlc_trigger::{
    claim_request_id, decide, verify, SignedRequest, HEADER_REQUEST_ID, HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::app::{App, AppError};
use crate::commands::{shutdown_signal, sync_pass};

struct Daemon {
    app: Arc<App>,
    flows: Vec<String>,
    wake: mpsc::UnboundedSender<String>,
    /// Flows with a triggered run queued but not started, with its run id.
    pending: Mutex<BTreeMap<String, String>>,
    next_run: Mutex<BTreeMap<String, DateTime<Utc>>>,
    last_run: Mutex<BTreeMap<String, DateTime<Utc>>>,
    /// Triggers within this long after a poll started join it.
    coalesce: Duration,
    /// Flows whose sync pass (poll, then delivery) is in progress, with the run id triggers
    /// that arrive meanwhile join.
    busy: Mutex<BTreeMap<String, String>>,
}

/// Runs the daemon until a shutdown signal.
pub async fn run(
    app: App,
    only: Option<&str>,
    listen: Option<SocketAddr>,
    coalesce: Duration,
) -> Result<u8, AppError> {
    let flows = app.flows(only)?;
    let app = Arc::new(app);
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let daemon = Arc::new(Daemon {
        app: app.clone(),
        flows: flows.iter().map(|f| f.id.clone()).collect(),
        wake: tx,
        pending: Mutex::new(BTreeMap::new()),
        next_run: Mutex::new(BTreeMap::new()),
        last_run: Mutex::new(BTreeMap::new()),
        coalesce,
        busy: Mutex::new(BTreeMap::new()),
    });

    let mut shutdown = Box::pin(shutdown_signal());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = match listen {
        Some(addr) => {
            if !addr.ip().is_loopback() {
                warn!(%addr, "listening beyond loopback: put TLS in front of this endpoint");
            }
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| AppError::Runtime(format!("cannot listen on {addr}: {e}")))?;
            let bound = listener
                .local_addr()
                .map_err(|e| AppError::Runtime(e.to_string()))?;
            // Scripts and tests read the bound address (port 0 picks a free one).
            println!("listening on http://{bound}");
            let router = Router::new()
                .route("/healthz", get(healthz))
                .route("/flows", get(flows_status))
                .route("/flows/{flow}/sync", post(trigger))
                .with_state(daemon.clone());
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stop.changed().await;
                    })
                    .await;
            }))
        }
        None => None,
    };

    let mut next: BTreeMap<String, tokio::time::Instant> = daemon
        .flows
        .iter()
        .map(|f| (f.clone(), tokio::time::Instant::now()))
        .collect();
    info!("running flows on their schedules; Ctrl-C or SIGTERM stops after the batch in flight");
    loop {
        let now = tokio::time::Instant::now();
        let due: Vec<String> = next
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(f, _)| f.clone())
            .collect();
        for f in due {
            run_flow(&daemon, &f, &mut next).await;
        }
        let wake_at = next
            .values()
            .min()
            .copied()
            .unwrap_or(now + Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at) => {}
            Some(f) = rx.recv() => {
                // Several triggers for one flow queued meanwhile are one run.
                let mut flows = BTreeSet::from([f]);
                while let Ok(more) = rx.try_recv() {
                    flows.insert(more);
                }
                for f in flows {
                    run_flow(&daemon, &f, &mut next).await;
                }
            }
            _ = &mut shutdown => {
                info!("shutting down");
                let _ = stop_tx.send(true);
                if let Some(s) = server {
                    let _ = s.await;
                }
                return Ok(0);
            }
        }
    }
}

async fn run_flow(daemon: &Daemon, flow: &str, next: &mut BTreeMap<String, tokio::time::Instant>) {
    let Some(cfg) = daemon.app.config.flow(flow) else {
        return;
    };
    let every = mlc_config::schedule_duration(&cfg.schedule).unwrap_or(Duration::from_secs(900));
    // Busy before anything else is visible in `GET /flows`: a last run with `running: false`
    // means that run has finished.
    let started = daemon.app.clock.now();
    let triggered = daemon.pending.lock().ok().and_then(|mut p| p.remove(flow));
    let run_id = triggered.unwrap_or_else(|| format!("{flow}:scheduled-{}", started.timestamp()));
    if let Ok(mut b) = daemon.busy.lock() {
        b.insert(flow.to_string(), run_id);
    }
    next.insert(flow.to_string(), tokio::time::Instant::now() + every);
    if let Ok(mut l) = daemon.last_run.lock() {
        l.insert(flow.to_string(), started);
    }
    if let Ok(mut n) = daemon.next_run.lock() {
        n.insert(
            flow.to_string(),
            started + chrono::Duration::from_std(every).unwrap_or_default(),
        );
    }
    let opts = DrainOptions {
        max_wait: Duration::from_secs(5),
        ..Default::default()
    };
    match sync_pass(&daemon.app, Some(flow), false, &opts).await {
        Ok(s) => info!(
            flow,
            queued = s.polls.iter().map(|p| p.queued()).sum::<usize>(),
            "flow synced"
        ),
        Err(e) => warn!(flow, error = %e, "flow sync failed"),
    }
    if let Ok(mut b) = daemon.busy.lock() {
        b.remove(flow);
    }
}

async fn healthz() -> &'static str {
    "ok"
}

#[derive(Debug, Serialize)]
struct FlowView {
    flow: String,
    last_run: Option<DateTime<Utc>>,
    next_run: Option<DateTime<Utc>>,
    lag_seconds: Option<i64>,
    queued: u64,
    dead_lettered: u64,
    running: bool,
}

async fn flows_status(State(d): State<Arc<Daemon>>) -> Response {
    let now = d.app.clock.now();
    let mut out = Vec::new();
    for f in &d.flows {
        let Some(cfg) = d.app.config.flow(f) else {
            continue;
        };
        let info = match d.app.store.run_info(f).await {
            Ok(i) => i,
            Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        };
        let depth = d.app.queue_for(cfg).depth().await.unwrap_or_default();
        out.push(FlowView {
            flow: f.clone(),
            last_run: info
                .last_started_at
                .or_else(|| d.last_run.lock().ok().and_then(|l| l.get(f).copied())),
            next_run: d.next_run.lock().ok().and_then(|n| n.get(f).copied()),
            lag_seconds: info.last_finished_at.map(|t| (now - t).num_seconds()),
            queued: depth.queued + depth.in_flight,
            dead_lettered: depth.dead,
            running: info.running.is_some_and(|l| l.expires_at > now)
                || d.busy.lock().map(|b| b.contains_key(f)).unwrap_or(false),
        });
    }
    Json(out).into_response()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn trigger(
    State(d): State<Arc<Daemon>>,
    Path(flow): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let refuse = |status: u16, msg: &str| {
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(json!({ "error": msg })),
        )
            .into_response()
    };
    let Some(secret_ref) = d
        .flows
        .contains(&flow)
        .then(|| {
            d.app
                .config
                .flow(&flow)
                .and_then(|f| f.trigger_secret.clone())
        })
        .flatten()
    else {
        return refuse(404, "not found");
    };
    let secret = match d.app.secrets.get(&secret_ref).await {
        Ok(s) => s,
        Err(e) => {
            warn!(flow, error = %e, "trigger secret unavailable");
            return refuse(503, "temporarily unavailable");
        }
    };
    let now = d.app.clock.now();
    let req = SignedRequest {
        timestamp: header(&headers, HEADER_TIMESTAMP),
        request_id: header(&headers, HEADER_REQUEST_ID),
        signature: header(&headers, HEADER_SIGNATURE),
        body: &body,
    };
    let verified = match verify(&req, &secret, now) {
        Ok(v) => v,
        Err(e) => {
            if let mlc_trigger::TriggerError::Unauthorized(why) = &e {
                warn!(flow, reason = ?why, "trigger refused");
            }
            return refuse(e.status(), &e.to_string());
        }
    };
    if let Err(e) = claim_request_id(&d.app.store, &flow, &verified).await {
        warn!(
            flow,
            request_id = verified.request_id,
            "trigger refused: {e}"
        );
        return refuse(e.status(), &e.to_string());
    }
    // A run queued by an earlier trigger, or a pass in progress, is joined.
    let joined = d
        .pending
        .lock()
        .ok()
        .and_then(|p| p.get(&flow).cloned())
        .or_else(|| d.busy.lock().ok().and_then(|b| b.get(&flow).cloned()));
    if let Some(run_id) = joined {
        return (
            StatusCode::ACCEPTED,
            Json(json!({ "run_id": run_id, "coalesced": true })),
        )
            .into_response();
    }
    let decision = match decide(&d.app.store, &flow, d.coalesce, now).await {
        Ok(x) => x,
        Err(e) => return refuse(e.status(), &e.to_string()),
    };
    if !decision.coalesced {
        if let Ok(mut p) = d.pending.lock() {
            p.insert(flow.clone(), decision.run_id.clone());
        }
        let _ = d.wake.send(flow.clone());
    }
    info!(flow, run_id = %decision.run_id, coalesced = decision.coalesced, "trigger accepted");
    (StatusCode::ACCEPTED, Json(decision)).into_response()
}
