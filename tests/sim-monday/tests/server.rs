//! The simulator's own behaviour: validation, idempotency, throttle bodies.

use std::time::Duration;

use serde_json::{json, Value};
use sim_monday::{Fault, MondayOptions, MondaySim};

async fn post(url: &str, key: Option<&str>, body: Value) -> (u16, Value, bool) {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut rb = c
        .post(url)
        .header("Authorization", "sim-token")
        .header("API-Version", "2026-10")
        .json(&body);
    if let Some(k) = key {
        rb = rb.header("Idempotency-Key", k);
    }
    let r = rb.send().await.unwrap();
    let st = r.status().as_u16();
    let replayed = r.headers().get("idempotency-replayed").is_some();
    let v = r.json::<Value>().await.unwrap_or(Value::Null);
    (st, v, replayed)
}

fn create(cv: &str) -> Value {
    json!({"query": "mutation($b: ID!, $n: String!, $cv: JSON) { m0: create_item(board_id: $b, item_name: $n, column_values: $cv) { id } }",
           "variables": {"b": "1", "n": "INV 1", "cv": cv}})
}

#[tokio::test]
async fn rejects_what_monday_rejects() {
    let sim = MondaySim::start(MondayOptions::default()).await;
    sim.create_board("1", "B", &[("d", "Due", "date", Value::Null)]);
    // Unknown field: validation error, nothing executed.
    let (_, v, _) = post(&sim.url(), None, json!({"query": "{ boards { nope } }"})).await;
    assert_eq!(
        v["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    // Double-encoded value: the date column gets a string.
    let (_, v, _) = post(
        &sim.url(),
        None,
        create(&json!({"d": json!({"date": "2026-11-24"}).to_string()}).to_string()),
    )
    .await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "ColumnValueException");
    assert_eq!(v["errors"][0]["path"][0], "m0");
    assert!(v["data"]["m0"].is_null());
    // Invalid JSON in a JSON variable: no code, `problems`.
    let (_, v, _) = post(&sim.url(), None, create("{not json")).await;
    assert!(v["errors"][0]["extensions"]["problems"].is_array());
    // Unknown column.
    let (_, v, _) = post(&sim.url(), None, create(r#"{"x": "1"}"#)).await;
    assert_eq!(
        v["errors"][0]["extensions"]["code"],
        "InvalidColumnIdException"
    );
    assert!(sim.items("1").is_empty());
    // Revoked token.
    sim.revoke_token();
    let (st, _, _) = post(&sim.url(), None, create("{}")).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn idempotency_replays_and_conflicts() {
    let sim = MondaySim::start(MondayOptions::default()).await;
    sim.create_board("1", "B", &[("d", "Due", "date", Value::Null)]);
    sim.inject(Fault::Slow(Duration::from_millis(400)), 1);
    let url = sim.url();
    let body = create(r#"{"d": {"date": "2026-11-24"}}"#);
    let first = tokio::spawn({
        let (u, b) = (url.clone(), body.clone());
        async move { post(&u, Some("k1"), b).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (st, v, _) = post(&url, Some("k1"), body.clone()).await;
    // Executed but slow: the answer is cached before the delay, so this is a replay; before
    // execution it would be a 409 conflict. Either way nothing runs twice.
    assert!(st == 200 || st == 409, "{st} {v}");
    let (st1, v1, _) = first.await.unwrap();
    assert_eq!(st1, 200);
    let (st2, v2, replayed) = post(&url, Some("k1"), body).await;
    assert_eq!((st2, replayed), (200, true));
    assert_eq!(v1["data"], v2["data"]);
    assert_eq!(sim.items("1").len(), 1);
}

#[tokio::test]
async fn limits_answer_with_real_bodies() {
    let sim = MondaySim::start(MondayOptions {
        requests_per_window: 2,
        window: Duration::from_secs(60),
        ..MondayOptions::default()
    })
    .await;
    sim.create_board("1", "B", &[]);
    let q = json!({"query": "{ complexity { after reset_in_x_seconds } }"});
    let (_, v, _) = post(&sim.url(), None, q.clone()).await;
    assert!(v["data"]["complexity"]["after"].as_u64().is_some());
    post(&sim.url(), None, q.clone()).await;
    let (st, v, _) = post(&sim.url(), None, q).await;
    assert_eq!(st, 429);
    assert_eq!(
        v["errors"][0]["extensions"]["code"],
        "MINUTE_RATE_LIMIT_EXCEEDED"
    );
    assert!(
        v["errors"][0]["extensions"]["retry_in_seconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(sim.stats().throttles, 1);
}
