//! SQS adapter behaviour beyond the conformance suite, against moto.

mod common;

use std::time::Duration;

use mlc_aws::{delivery_from_lambda_record, message_group_of_lambda_record, parse_sqs_body};
use mlc_core::conformance::{batch, flow_id};
use mlc_core::ports::Queue;
use mlc_core::{ChangeBatch, PortError};

const VIS: Duration = Duration::from_secs(30);

/// `n` events padded by `pad`; `poll_seq` tells batches apart (the dedup id hashes keys,
/// versions and hashes, not the padding).
fn padded(
    flow: &str,
    stream: &str,
    n: usize,
    poll_seq: u64,
    pad: impl Fn(usize) -> String,
) -> ChangeBatch {
    let keys: Vec<String> = (0..n).map(|i| format!("{i:09}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut b = batch(flow, stream, &refs, poll_seq);
    for (i, e) in b.events.iter_mut().enumerate() {
        e.record
            .insert("Pad".into(), serde_json::Value::String(pad(i)));
    }
    b
}

async fn drain(q: &mlc_aws::SqsQueue) -> Vec<mlc_core::ports::Delivery> {
    let mut out = Vec::new();
    for _ in 0..50 {
        let got = q.receive(10, VIS).await.expect("receive");
        if got.is_empty() {
            break;
        }
        for d in got {
            q.ack(&d.receipt).await.expect("ack");
            out.push(d);
        }
    }
    out
}

#[tokio::test]
async fn oversized_batch_travels_compressed() {
    let q = common::queue().await;
    let flow = flow_id("gz");
    let b = padded(&flow, &flow, 2500, 1, |i| {
        format!("{i} {}", "overdue 1-30 ".repeat(10))
    });
    assert!(
        b.encoded_len() > 256 * 1024,
        "test batch must exceed the limit raw"
    );
    q.send(std::slice::from_ref(&b))
        .await
        .expect("send compressed");
    let got = drain(&q).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].batch, b);
}

#[tokio::test]
async fn batch_that_cannot_fit_is_an_error_naming_its_size_and_sends_nothing() {
    use sha2::Digest;
    let q = common::queue().await;
    let flow = flow_id("huge");
    let ok = batch(&flow, &flow, &["A"], 1);
    let huge = padded(&flow, &flow, 1500, 1, |i| {
        (0..6)
            .map(|j| hex::encode(sha2::Sha256::digest(format!("{i}-{j}"))))
            .collect()
    });
    let err = q.send(&[ok, huge]).await.unwrap_err();
    assert!(matches!(err, PortError::Permanent { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("1500 events") && msg.contains("bytes") && msg.contains("262144"),
        "{msg}"
    );
    assert!(
        drain(&q).await.is_empty(),
        "nothing sent when one batch cannot fit"
    );
}

#[tokio::test]
async fn many_batches_split_by_count_and_size_keep_stream_order() {
    let q = common::queue().await;
    let flow = flow_id("many");
    let mut batches = Vec::new();
    // 23 small batches over three streams, then 4 batches of ~100 KiB in one stream (a call
    // holds at most 256 KiB in total, so these need several calls).
    for i in 0..23u64 {
        let stream = format!("{flow}:{}", i % 3);
        batches.push(batch(&flow, &stream, &[&format!("S{i:02}")], i + 1));
    }
    for i in 0..4usize {
        let stream = format!("{flow}:big");
        batches.push(padded(&flow, &stream, 300, 100 + i as u64, move |j| {
            format!("{i}-{j}-{}", "y".repeat(300))
        }));
    }
    q.send(&batches).await.expect("send");
    let got = drain(&q).await;
    assert_eq!(got.len(), batches.len(), "every batch delivered once");
    for s in ["0", "1", "2", "big"] {
        let stream = format!("{flow}:{s}");
        let sent: Vec<_> = batches.iter().filter(|b| b.stream == stream).collect();
        let recv: Vec<_> = got
            .iter()
            .map(|d| &d.batch)
            .filter(|b| b.stream == stream)
            .collect();
        assert_eq!(recv, sent, "stream {s} in order");
    }
}

#[tokio::test]
async fn lambda_event_record_becomes_a_delivery() {
    let ctx = common::ctx().await;
    let q = common::queue().await;
    let flow = flow_id("lambda");
    let b = batch(&flow, &format!("{flow}:board-1"), &["0000C01 "], 4);
    q.send(std::slice::from_ref(&b)).await.expect("send");
    // What the event source mapping would receive, in the shape Lambda hands it over.
    let resp = ctx
        .sqs()
        .receive_message()
        .queue_url(&q.urls().main)
        .max_number_of_messages(1)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive raw");
    let m = &resp.messages()[0];
    let attributes: serde_json::Map<String, serde_json::Value> = m
        .attributes()
        .expect("attributes")
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), serde_json::Value::String(v.clone())))
        .collect();
    let event = serde_json::json!({
        "messageId": m.message_id(),
        "receiptHandle": m.receipt_handle(),
        "body": m.body(),
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": m.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q.fifo",
        "awsRegion": "us-east-1"
    });
    let record: aws_lambda_events::sqs::SqsMessage =
        serde_json::from_value(event).expect("event shape");
    let d = delivery_from_lambda_record(&record).expect("delivery");
    assert_eq!(d.batch, b);
    assert_eq!(d.receive_count, 1);
    assert_eq!(d.message_id, m.message_id().unwrap_or_default());
    assert_eq!(
        message_group_of_lambda_record(&record),
        Some(b.stream.as_str())
    );
    assert_eq!(
        parse_sqs_body(m.body().unwrap_or_default()).expect("body"),
        b
    );
    q.ack(&d.receipt)
        .await
        .expect("ack with the event's receipt");
    assert!(drain(&q).await.is_empty());
}

#[tokio::test]
async fn dead_letters_are_counted_and_deduplicated_by_content() {
    let q = common::queue().await;
    let flow = flow_id("dl");
    let mut b = batch(&flow, &flow, &["BAD"], 2);
    b.events[0].failure = Some(mlc_core::Failure::permanent("INVALID_FIELD: Amount"));
    q.dead_letter(&b).await.expect("dead letter");
    q.dead_letter(&b).await.expect("same dead letter again");
    let depth = q.depth().await.expect("depth");
    assert_eq!(depth.dead, 1, "{depth:?}");
    b.events[0].attempt = 1;
    q.dead_letter(&b)
        .await
        .expect("a later attempt is a new dead letter");
    assert_eq!(q.depth().await.expect("depth").dead, 2);
}

#[tokio::test]
async fn long_delays_are_capped_at_twelve_hours() {
    let q = common::queue().await;
    let flow = flow_id("cap");
    q.send(&[batch(&flow, &flow, &["A"], 1)])
        .await
        .expect("send");
    let d = q.receive(1, VIS).await.expect("receive");
    assert_eq!(d.len(), 1);
    q.nack(&d[0].receipt, Duration::from_secs(3 * 24 * 3600))
        .await
        .expect("nack capped, not refused");
    let depth = q.depth().await.expect("depth");
    assert_eq!(depth.in_flight, 1, "{depth:?}");
}
