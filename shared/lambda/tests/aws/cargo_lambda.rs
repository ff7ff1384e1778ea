//! The `replay` function under `cargo lambda watch`, invoked by `cargo lambda invoke` (the
//! wiring is in `watch`).

use std::time::Duration;

use chrono::Utc;
use mlc_core::{ChangeBatch, ChangeEvent, Entity, Failure, RecordKey, SourceVersion};
use serde_json::json;

use crate::common::{offline_flows, Stack, SF_FLOW};
use crate::watch::{self, Reaped, Watch};

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
        retry_since: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_function_runs_under_cargo_lambda_watch() {
    let stack = Stack::new().await;
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
    let binary = tokio::task::spawn_blocking(|| watch::binary("replay", "replay"))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let watch = tokio::task::spawn_blocking(Watch::start).await.unwrap();
    let function = watch
        .function(
            &binary,
            &stack,
            &offline_flows(""),
            &dir.path().join("function.log"),
        )
        .spawn()
        .expect("starting the replay binary");
    let _function = Reaped(function);

    let dir_path = dir.path().to_path_buf();
    let invocations = tokio::task::spawn_blocking(move || {
        let dry = watch.invoke(
            &dir_path,
            "dry",
            &json!({"flow": SF_FLOW, "keys": ["100045"], "limit": 500, "dry_run": true}),
        );
        // The dry run hid the message for a second.
        std::thread::sleep(Duration::from_millis(1_200));
        let real = watch.invoke(
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
