//! The trigger function's handler over real stores (SQLite here; the same ports run on
//! DynamoDB in AWS): valid triggers start exactly one poll, bad ones are refused with no detail.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use mlc_core::secret::{SecretRef, SecretString};
use mlc_core::FixedClock;
use mlc_embedded::{QueueOptions, SqliteQueue, SqliteStore, StaticSecrets};
use mlc_lambda::{LambdaContext, Ports};
use mlc_trigger_fn::{handle, PollStarter};
use serde_json::{json, Value};

const SECRET: &str = "acme-trigger-secret";

#[derive(Default)]
struct Starts(Mutex<Vec<String>>);

#[async_trait]
impl PollStarter for Starts {
    async fn start(&self, flow: &str, run_id: &str) -> Result<(), String> {
        self.0.lock().unwrap().push(format!("{flow} {run_id}"));
        Ok(())
    }
}

const FLOWS: &str = r#"
[[flows]]
id = "acme-sf"
trigger_secret = "env:ACME_TRIGGER"
[flows.syspro]
base_url = "http://127.0.0.1:9"
company = "DEMO"
operator = "OP"
password = "env:P"
[[flows.entities]]
entity = "ArCustomer"
change_detection = "rowversion"
[flows.destination]
kind = "salesforce"
my_domain_url = "http://127.0.0.1:9"
client_id = "env:A"
client_secret = "env:B"
"#;

fn context(dir: &std::path::Path, now: chrono::DateTime<chrono::Utc>) -> LambdaContext {
    let config = mlc_config::parse("flows.toml", FLOWS).expect("config");
    let path = dir.join("state.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let q = |n: &str| Arc::new(SqliteQueue::open_named(&path, n, QueueOptions::default()).unwrap());
    let secrets = StaticSecrets::new([(
        SecretRef::Env("ACME_TRIGGER".into()),
        SecretString::from(SECRET.to_string()),
    )]);
    let ports = Ports {
        watermarks: store.clone(),
        state: store.clone(),
        audit: store.clone(),
        budget: store,
        salesforce: q("salesforce"),
        monday: q("monday"),
        secrets: Arc::new(secrets),
    };
    LambdaContext::new(config, ports, Arc::new(FixedClock::at(now))).expect("context")
}

fn request(flow: &str, ts: i64, id: &str, secret: &str, body: &str) -> LambdaFunctionUrlRequest {
    let sig = mlc_trigger::sign(
        &SecretString::from(secret.to_string()),
        ts,
        id,
        body.as_bytes(),
    );
    serde_json::from_value(json!({
        "version": "2.0",
        "rawPath": format!("/flows/{flow}/sync"),
        "rawQueryString": "",
        "headers": {"x-mlc-timestamp": ts.to_string(), "x-mlc-request-id": id, "x-mlc-signature": sig, "content-type": "application/json"},
        // The shape AWS documents for function URL invocations.
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefgh", "domainName": "abcdefgh.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefgh", "requestId": format!("aws-{id}"), "routeKey": "$default", "stage": "$default",
            "time": "24/Nov/2026:10:00:05 +0000", "timeEpoch": ts * 1000,
            "http": {"method": "POST", "path": format!("/flows/{flow}/sync"), "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "curl"}
        },
        "body": body,
        "isBase64Encoded": false
    }))
    .expect("function URL event")
}

fn body(r: &aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlResponse) -> Value {
    serde_json::from_str(r.body.as_deref().unwrap_or("null")).unwrap_or(Value::Null)
}

#[tokio::test]
async fn signed_trigger_starts_one_poll_and_the_rest_is_refused_or_joined() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-24T10:00:05Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let ctx = context(dir.path(), now);
    let starts = Starts::default();
    let win = Duration::from_secs(60);
    let ts = now.timestamp();

    let r = handle(
        &ctx,
        &starts,
        win,
        &request("acme-sf", ts, "req-1", SECRET, r#"{"invoice":"100045"}"#),
    )
    .await;
    assert_eq!(r.status_code, 202, "{:?}", r.body);
    assert_eq!(body(&r)["coalesced"], false);
    assert_eq!(
        starts.0.lock().unwrap().len(),
        1,
        "exactly one poll started"
    );

    // The same request again: a replay.
    let r = handle(
        &ctx,
        &starts,
        win,
        &request("acme-sf", ts, "req-1", SECRET, r#"{"invoice":"100045"}"#),
    )
    .await;
    assert_eq!(r.status_code, 409);
    // Another trigger within the window joins the first run.
    let r2 = handle(
        &ctx,
        &starts,
        win,
        &request("acme-sf", ts, "req-2", SECRET, ""),
    )
    .await;
    assert_eq!(r2.status_code, 202);
    assert_eq!(body(&r2)["coalesced"], true, "{:?}", r2.body);
    assert_eq!(starts.0.lock().unwrap().len(), 1, "still one poll");

    // Refused without detail: wrong secret, expired timestamp, unknown flow, bad path.
    let r = handle(
        &ctx,
        &starts,
        win,
        &request("acme-sf", ts, "req-3", "guess", ""),
    )
    .await;
    assert_eq!(
        (r.status_code, body(&r)),
        (401, json!({"error": "unauthorized"}))
    );
    let r = handle(
        &ctx,
        &starts,
        win,
        &request("acme-sf", ts - 301, "req-4", SECRET, ""),
    )
    .await;
    assert_eq!(
        (r.status_code, body(&r)),
        (401, json!({"error": "unauthorized"}))
    );
    let r = handle(
        &ctx,
        &starts,
        win,
        &request("globex", ts, "req-5", SECRET, ""),
    )
    .await;
    assert_eq!(
        (r.status_code, body(&r)),
        (404, json!({"error": "not found"}))
    );
    let mut bad = request("acme-sf", ts, "req-6", SECRET, "");
    bad.raw_path = Some("/admin".into());
    assert_eq!(handle(&ctx, &starts, win, &bad).await.status_code, 404);
    assert_eq!(
        starts.0.lock().unwrap().len(),
        1,
        "nothing else started a poll"
    );
}

#[tokio::test]
async fn a_trigger_during_a_running_poll_joins_it() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-24T10:00:05Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let ctx = context(dir.path(), now);
    let lease = ctx
        .ports()
        .watermarks
        .acquire_lease("acme-sf", "scheduled-poll", Duration::from_secs(300), now)
        .await
        .unwrap()
        .unwrap();
    let starts = Starts::default();
    let r = handle(
        &ctx,
        &starts,
        Duration::from_secs(0),
        &request("acme-sf", now.timestamp(), "req-9", SECRET, ""),
    )
    .await;
    assert_eq!(r.status_code, 202);
    assert_eq!(
        body(&r),
        json!({"run_id": lease.poll_id(), "coalesced": true})
    );
    assert!(
        starts.0.lock().unwrap().is_empty(),
        "no second concurrent poll"
    );
}
