//! Queue semantics (SQS FIFO with a redrive policy).

use std::time::Duration;

use super::{batch, flow_id};
use crate::ports::Queue;

const VIS: Duration = Duration::from_secs(30);

/// Drains every visible message of `flow` (other cases may share the queue).
async fn receive_flow(
    q: &dyn Queue,
    flow: &str,
    max: usize,
    vis: Duration,
) -> Vec<crate::ports::Delivery> {
    let mut mine = Vec::new();
    for _ in 0..10 {
        let got = q.receive(10.min(max.max(1)), vis).await.expect("receive");
        if got.is_empty() {
            break;
        }
        for d in got {
            if d.batch.flow == flow {
                mine.push(d);
            } else {
                // Not ours: hand it straight back.
                q.nack(&d.receipt, Duration::ZERO)
                    .await
                    .expect("nack foreign");
            }
        }
        if mine.len() >= max {
            break;
        }
    }
    mine
}

/// Sent batches come back intact, and an acked message never comes back.
pub async fn send_receive_ack_roundtrip(q: &dyn Queue) {
    let flow = flow_id("rt");
    let b = batch(&flow, &flow, &["C001", "C002 "], 1);
    q.send(std::slice::from_ref(&b)).await.expect("send");
    let got = receive_flow(q, &flow, 1, VIS).await;
    assert_eq!(got.len(), 1, "one message");
    assert_eq!(got[0].batch, b, "batch intact (padding, unicode)");
    assert_eq!(got[0].receive_count, 1);
    q.ack(&got[0].receipt).await.expect("ack");
    assert!(
        receive_flow(q, &flow, 1, VIS).await.is_empty(),
        "acked message gone"
    );
}

/// A message neither acked nor nacked becomes visible again after its visibility timeout.
pub async fn unacked_message_returns_after_visibility(q: &dyn Queue) {
    let flow = flow_id("vis");
    q.send(&[batch(&flow, &flow, &["A"], 1)])
        .await
        .expect("send");
    let first = receive_flow(q, &flow, 1, Duration::from_secs(1)).await;
    assert_eq!(first.len(), 1);
    assert!(
        receive_flow(q, &flow, 1, VIS).await.is_empty(),
        "hidden while in flight"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let again = receive_flow(q, &flow, 1, VIS).await;
    assert_eq!(again.len(), 1, "visible again after timeout");
    assert_eq!(again[0].receive_count, 2);
    q.ack(&again[0].receipt).await.expect("ack");
}

/// Nack with a delay hides the message for that delay, then delivers it again.
pub async fn nack_delays_redelivery(q: &dyn Queue) {
    let flow = flow_id("nack");
    q.send(&[batch(&flow, &flow, &["A"], 1)])
        .await
        .expect("send");
    let d = receive_flow(q, &flow, 1, VIS).await;
    assert_eq!(d.len(), 1);
    q.nack(&d[0].receipt, Duration::from_secs(2))
        .await
        .expect("nack");
    assert!(receive_flow(q, &flow, 1, VIS).await.is_empty(), "delayed");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let again = receive_flow(q, &flow, 1, VIS).await;
    assert_eq!(again.len(), 1, "redelivered after delay");
    q.ack(&again[0].receipt).await.expect("ack");
}

/// Messages of one stream come out in the order they were sent.
pub async fn fifo_order_within_stream(q: &dyn Queue) {
    let flow = flow_id("fifo");
    let batches: Vec<_> = (0..5u64)
        .map(|i| batch(&flow, &flow, &[&format!("K{i}")], i + 1))
        .collect();
    q.send(&batches).await.expect("send");
    let mut seen = Vec::new();
    for _ in 0..10 {
        let got = receive_flow(q, &flow, 10, VIS).await;
        if got.is_empty() {
            break;
        }
        for d in got {
            seen.push(d.batch.events[0].key.raw.clone());
            q.ack(&d.receipt).await.expect("ack");
        }
    }
    assert_eq!(seen, vec!["K0", "K1", "K2", "K3", "K4"]);
}

/// While a stream's message is in flight, later messages of that stream are not delivered;
/// other streams still are.
pub async fn stream_blocked_while_in_flight(q: &dyn Queue) {
    let flow = flow_id("blk");
    let s1 = format!("{flow}:a");
    let s2 = format!("{flow}:b");
    q.send(&[batch(&flow, &s1, &["A1"], 1)])
        .await
        .expect("send");
    q.send(&[batch(&flow, &s1, &["A2"], 2)])
        .await
        .expect("send");
    q.send(&[batch(&flow, &s2, &["B1"], 1)])
        .await
        .expect("send");
    let first = receive_flow(q, &flow, 1, VIS).await;
    assert!(!first.is_empty());
    let held: Vec<_> = first
        .iter()
        .map(|d| d.batch.events[0].key.raw.clone())
        .collect();
    // Collect whatever else is deliverable now.
    let more = receive_flow(q, &flow, 10, VIS).await;
    let mut keys: Vec<String> = held.clone();
    keys.extend(more.iter().map(|d| d.batch.events[0].key.raw.clone()));
    assert!(keys.contains(&"A1".to_string()), "A1 delivered: {keys:?}");
    assert!(
        keys.contains(&"B1".to_string()),
        "other stream not blocked: {keys:?}"
    );
    assert!(
        !keys.contains(&"A2".to_string()),
        "A2 must wait for A1: {keys:?}"
    );
    for d in first.iter().chain(more.iter()) {
        q.ack(&d.receipt).await.expect("ack");
    }
    let rest = receive_flow(q, &flow, 10, VIS).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].batch.events[0].key.raw, "A2");
    q.ack(&rest[0].receipt).await.expect("ack");
}

/// The same batch sent twice (a poll re-run after a crash) is stored once.
pub async fn duplicate_send_is_stored_once(q: &dyn Queue) {
    let flow = flow_id("dup");
    let b = batch(&flow, &flow, &["A", "B"], 7);
    q.send(std::slice::from_ref(&b)).await.expect("send");
    q.send(std::slice::from_ref(&b)).await.expect("send again");
    let got = receive_flow(q, &flow, 10, VIS).await;
    assert_eq!(got.len(), 1, "deduplicated");
    q.ack(&got[0].receipt).await.expect("ack");
    assert!(receive_flow(q, &flow, 10, VIS).await.is_empty());
}

/// A message received more than the max receive count moves to the dead-letter queue.
/// Adapters under test must be built with a max receive count of 3.
pub async fn redrive_after_max_receives(q: &dyn Queue) {
    let flow = flow_id("redrive");
    q.send(&[batch(&flow, &flow, &["POISON"], 1)])
        .await
        .expect("send");
    for i in 1..=3 {
        let d = receive_flow(q, &flow, 1, VIS).await;
        assert_eq!(d.len(), 1, "receive {i}");
        assert_eq!(d[0].receive_count, i);
        q.nack(&d[0].receipt, Duration::ZERO).await.expect("nack");
    }
    assert!(
        receive_flow(q, &flow, 1, VIS).await.is_empty(),
        "moved out after 3 receives"
    );
    let dead = receive_dead_flow(q, &flow).await;
    assert_eq!(dead.len(), 1, "in the DLQ");
    assert_eq!(dead[0].batch.events[0].key.raw, "POISON");
    q.ack_dead(&dead[0].receipt).await.expect("ack dead");
}

async fn receive_dead_flow(q: &dyn Queue, flow: &str) -> Vec<crate::ports::Delivery> {
    let mut mine = Vec::new();
    let mut foreign = Vec::new();
    for _ in 0..10 {
        let got = q
            .receive_dead(10, Duration::from_secs(5))
            .await
            .expect("receive dead");
        if got.is_empty() {
            break;
        }
        for d in got {
            if d.batch.flow == flow {
                mine.push(d);
            } else {
                foreign.push(d);
            }
        }
        if !mine.is_empty() {
            break;
        }
    }
    mine
}

/// Dead-lettered events keep their failure reason.
pub async fn dead_letter_and_read_back(q: &dyn Queue) {
    let flow = flow_id("dlq");
    let mut b = batch(&flow, &flow, &["BAD"], 3);
    b.events[0].failure =
        Some(crate::outcome::Failure::permanent("REQUIRED_FIELD_MISSING: Name").with_field("Name"));
    q.dead_letter(&b).await.expect("dead letter");
    let dead = receive_dead_flow(q, &flow).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].batch, b, "failure kept");
    q.ack_dead(&dead[0].receipt).await.expect("ack dead");
    assert!(receive_dead_flow(q, &flow).await.is_empty());
}

/// Depth reports queued, in-flight and dead messages.
pub async fn depth_counts(q: &dyn Queue) {
    let before = q.depth().await.expect("depth");
    let flow = flow_id("depth");
    q.send(&[
        batch(&flow, &format!("{flow}:1"), &["A"], 1),
        batch(&flow, &format!("{flow}:2"), &["B"], 1),
    ])
    .await
    .expect("send");
    let after = q.depth().await.expect("depth");
    assert!(
        after.queued + after.in_flight >= before.queued + before.in_flight + 2,
        "before {before:?} after {after:?}"
    );
    for d in receive_flow(q, &flow, 10, VIS).await {
        q.ack(&d.receipt).await.expect("ack");
    }
}

/// A batch near the message size limit (about 200 KiB) survives the round trip.
pub async fn large_batch_roundtrip(q: &dyn Queue) {
    // Each event below encodes to about 555 bytes: 380 of them make about 206 KiB.
    const EVENTS: usize = 380;
    let flow = flow_id("big");
    let keys: Vec<String> = (0..EVENTS).map(|i| format!("{i:015}")).collect();
    let refs: Vec<&str> = keys.iter().map(|s| s.as_str()).collect();
    let mut b = batch(&flow, &flow, &refs, 1);
    for e in &mut b.events {
        e.record
            .insert("Pad".into(), serde_json::Value::String("x".repeat(200)));
    }
    let len = b.encoded_len();
    assert!(
        len > 150 * 1024 && len < 240 * 1024,
        "test batch size {len}"
    );
    q.send(std::slice::from_ref(&b)).await.expect("send large");
    let got = receive_flow(q, &flow, 1, VIS).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].batch.events.len(), EVENTS);
    assert_eq!(got[0].batch, b);
    q.ack(&got[0].receipt).await.expect("ack");
}

/// A dead letter handed back (a dry-run replay) is visible again at once and keeps its content.
pub async fn dead_letter_nack_makes_it_visible(q: &dyn Queue) {
    let flow = flow_id("dlqnack");
    let b = batch(&flow, &flow, &["LOOKED-AT"], 1);
    q.dead_letter(&b).await.expect("dead letter");
    let first = receive_dead_flow(q, &flow).await;
    assert_eq!(first.len(), 1);
    q.nack_dead(&first[0].receipt, Duration::ZERO)
        .await
        .expect("nack dead");
    let again = receive_dead_flow(q, &flow).await;
    assert_eq!(again.len(), 1, "visible again right after the hand-back");
    assert_eq!(again[0].batch.events, b.events);
    q.ack_dead(&again[0].receipt).await.expect("ack dead");
}
