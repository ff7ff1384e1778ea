//! The `trigger` function under `cargo lambda watch`, invoked by `cargo lambda invoke` with
//! function-URL events (the shape AWS documents), against moto: the trigger secret comes from
//! Secrets Manager, replay claims and the coalescing unit live in DynamoDB, and the poll is
//! started by an asynchronous Invoke (`InvocationType=Event`) of a poll function created in
//! moto's Lambda.
//!
//! moto (5.x) answers that Invoke with 202 without Docker: it runs the invocation in-line, fails
//! to reach Docker, and writes one log stream to `/aws/lambda/<function>` per invocation (also
//! when Docker runs it). The number of streams is how this test counts poll starts.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use mlc_core::secret::SecretString;
use serde_json::{json, Value};

use crate::common::{offline_flows, unique, Stack, SF_FLOW};
use crate::watch::{self, workspace_root, Reaped, Watch};

const TRIGGER_KEY: &str = "acme-trigger-key-from-secrets-manager";

/// The Python of the `.venv` `tests/run` installs (moto brings boto3): moto's IAM and Lambda
/// have no Rust SDK in this workspace.
fn python() -> PathBuf {
    let p = workspace_root().join(".venv/bin/python3");
    assert!(
        p.is_file(),
        "{} is missing: run the tests through tests/run (it installs moto and boto3 into .venv)",
        p.display()
    );
    p
}

/// Runs `script` with boto3 pointed at moto; its stdout.
fn boto3(script: &str, args: &[&str]) -> String {
    let endpoint = std::env::var(mlc_aws::context::TEST_ENDPOINT_ENV).unwrap();
    let out = Command::new(python())
        .arg("-c")
        .arg(format!(
            "import boto3, io, json, sys, zipfile\n\
             kw = dict(endpoint_url={endpoint:?}, region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\n\
             {script}"
        ))
        .args(args)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "boto3 on moto failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An IAM role and a `provided.al2023` function with a placeholder `bootstrap`, both on moto.
fn create_poll_function(name: &str) {
    boto3(
        "name = sys.argv[1]\n\
         trust = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', \
         'Principal': {'Service': 'lambda.amazonaws.com'}, 'Action': 'sts:AssumeRole'}]}\n\
         role = boto3.client('iam', **kw).create_role(RoleName=name, \
         AssumeRolePolicyDocument=json.dumps(trust))['Role']['Arn']\n\
         buf = io.BytesIO()\n\
         with zipfile.ZipFile(buf, 'w') as z: z.writestr('bootstrap', '#!/bin/sh\\n')\n\
         boto3.client('lambda', **kw).create_function(FunctionName=name, \
         Runtime='provided.al2023', Role=role, Handler='bootstrap', \
         Code={'ZipFile': buf.getvalue()})\n",
        &[name],
    );
}

/// How many times moto's Lambda invoked `name` (one log stream per invocation).
fn invocations(name: &str) -> usize {
    let n = boto3(
        "logs = boto3.client('logs', **kw)\n\
         try:\n    \
             print(len(logs.describe_log_streams(logGroupName='/aws/lambda/' + sys.argv[1])['logStreams']))\n\
         except logs.exceptions.ResourceNotFoundException:\n    \
             print(0)\n",
        &[name],
    );
    n.parse()
        .unwrap_or_else(|_| panic!("log stream count: {n}"))
}

/// A function-URL event for `POST /flows/{flow}/sync`, signed with `key`.
fn request(flow: &str, ts: i64, id: &str, key: &str, body: &str) -> Value {
    let sig = mlc_trigger::sign(
        &SecretString::from(key.to_string()),
        ts,
        id,
        body.as_bytes(),
    );
    json!({
        "version": "2.0",
        "rawPath": format!("/flows/{flow}/sync"),
        "rawQueryString": "",
        "headers": {"x-mlc-timestamp": ts.to_string(), "x-mlc-request-id": id, "x-mlc-signature": sig, "content-type": "application/json"},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefgh", "domainName": "abcdefgh.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefgh", "requestId": format!("aws-{id}"), "routeKey": "$default", "stage": "$default",
            "time": "24/Nov/2026:10:00:05 +0000", "timeEpoch": ts * 1000,
            "http": {"method": "POST", "path": format!("/flows/{flow}/sync"), "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "curl"}
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// Status and JSON body of a function-URL response.
fn answer(r: &Value) -> (i64, Value) {
    let body = r["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (r["statusCode"].as_i64().unwrap_or_default(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_function_handles_function_url_events_under_cargo_lambda_watch() {
    let started = Instant::now();
    let stack = Stack::new().await;
    let secret = unique("mlcl-trigger");
    stack
        .aws
        .secrets()
        .create_secret()
        .name(&secret)
        .secret_string(json!({ "trigger": TRIGGER_KEY }).to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating the trigger secret on moto: {e:?}"));
    let poll = unique("mlcl-poll");
    let poll_fn = poll.clone();
    tokio::task::spawn_blocking(move || create_poll_function(&poll_fn))
        .await
        .unwrap();
    let binary = tokio::task::spawn_blocking(|| watch::binary("trigger", "trigger"))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let watch = tokio::task::spawn_blocking(Watch::start).await.unwrap();
    let flows = offline_flows(&format!(
        "trigger_secret = \"secretsmanager:{secret}#trigger\""
    ));
    let function = watch
        .function(&binary, &stack, &flows, &dir.path().join("function.log"))
        .env("MLC_POLL_FUNCTION", &poll)
        // A day-long window: both valid triggers fall in one coalescing bucket unless the test
        // straddles midnight UTC.
        .env("MLC_TRIGGER_COALESCE_SECS", "86400")
        .spawn()
        .expect("starting the trigger binary");
    let _function = Reaped(function);

    let dir_path = dir.path().to_path_buf();
    let calls = tokio::task::spawn_blocking(move || {
        let ts = Utc::now().timestamp();
        let body = r#"{"invoice":"100045"}"#;
        let call = |name: &str, event: Value| answer(&watch.invoke(&dir_path, name, &event));
        [
            call("valid", request(SF_FLOW, ts, "req-1", TRIGGER_KEY, body)),
            call("replay", request(SF_FLOW, ts, "req-1", TRIGGER_KEY, body)),
            call("forged", request(SF_FLOW, ts, "req-2", "guess", body)),
            call("unknown", request("globex", ts, "req-3", TRIGGER_KEY, body)),
            call("joined", request(SF_FLOW, ts, "req-4", TRIGGER_KEY, "")),
        ]
    });
    let answers = tokio::time::timeout(Duration::from_secs(60), calls).await;
    let log = std::fs::read_to_string(dir.path().join("function.log")).unwrap_or_default();
    let [valid, replay, forged, unknown, joined] = match answers {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => panic!("{e}\nfunction log:\n{log}"),
        Err(_) => panic!("the invocations did not finish within 60 s\nfunction log:\n{log}"),
    };

    assert_eq!(valid.0, 202, "{valid:?}\nfunction log:\n{log}");
    assert_eq!(valid.1["coalesced"], false, "{valid:?}");
    let run_id = valid.1["run_id"].as_str().unwrap_or_default().to_string();
    assert!(
        run_id.starts_with(&format!("{SF_FLOW}:trigger-")),
        "{valid:?}"
    );
    // The replay claim is a conditional write in DynamoDB: the same request id is refused.
    assert_eq!(replay.0, 409, "{replay:?}");
    assert_eq!(forged, (401, json!({"error": "unauthorized"})));
    assert_eq!(unknown, (404, json!({"error": "not found"})));
    assert_eq!(
        joined,
        (202, json!({"run_id": run_id, "coalesced": true})),
        "a second trigger in the window joins the first run"
    );
    // Exactly one asynchronous Invoke reached the poll function.
    let poll_fn = poll.clone();
    let n = tokio::task::spawn_blocking(move || invocations(&poll_fn))
        .await
        .unwrap();
    assert_eq!(
        n, 1,
        "poll function invocations on moto\nfunction log:\n{log}"
    );
    eprintln!(
        "trigger end to end took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
