//! SQLite queue behaviour beyond the conformance suite: crashes, reopening, several handles and
//! processes on one file, stale receipts, dedup window, size limit.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlc_core::conformance::batch;
use mlc_core::ports::Queue;
use mlc_core::PortError;
use mlc_embedded::{QueueOptions, SqliteQueue, MAX_MESSAGE_BYTES};

const VIS: Duration = Duration::from_secs(30);

fn opts() -> QueueOptions {
    QueueOptions {
        max_receive_count: 3,
        dedup_window: Duration::from_secs(300),
    }
}

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.sqlite");
    (dir, path)
}

#[tokio::test]
async fn unacked_message_survives_drop_and_reopen() {
    let (_dir, path) = temp_db();
    {
        let q = SqliteQueue::open(&path, opts()).expect("open");
        q.send(&[batch("f", "f", &["A"], 1), batch("f", "f", &["B"], 2)])
            .await
            .expect("send");
        let got = q.receive(1, Duration::from_secs(1)).await.expect("receive");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].batch.events[0].key.raw, "A");
        // Dropped without ack or nack: as if the process died here.
    }
    let q = SqliteQueue::open(&path, opts()).expect("reopen");
    // A second handle (another connection, as another process would have) sees the same state.
    let other = SqliteQueue::open(&path, opts()).expect("second handle");
    let d = other.depth().await.expect("depth");
    assert_eq!((d.queued, d.in_flight, d.dead), (1, 1, 0), "{d:?}");
    assert!(
        q.receive(10, VIS).await.expect("receive").is_empty(),
        "A still in flight blocks B"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let again = q.receive(10, VIS).await.expect("receive");
    let keys: Vec<_> = again
        .iter()
        .map(|d| d.batch.events[0].key.raw.as_str())
        .collect();
    assert_eq!(keys, vec!["A", "B"], "A back first, then B, in one receive");
    assert_eq!(again[0].receive_count, 2);
    assert_eq!(again[1].receive_count, 1);
    for d in &again {
        other
            .ack(&d.receipt)
            .await
            .expect("ack through the other handle");
    }
    assert_eq!(q.depth().await.expect("depth"), Default::default());
}

/// Child half of `process_crash_loses_nothing`: runs only when the parent sets the variable.
#[tokio::test]
#[ignore = "run by process_crash_loses_nothing in a child process"]
async fn crash_child() {
    let Ok(path) = std::env::var("MLC_EMBEDDED_CRASH_DB") else {
        return;
    };
    let q = SqliteQueue::open(Path::new(&path), opts()).expect("open");
    q.send(&[batch("f", "s1", &["A"], 1), batch("f", "s2", &["B"], 1)])
        .await
        .expect("send");
    let got = q.receive(1, Duration::from_secs(1)).await.expect("receive");
    assert_eq!(got.len(), 1);
    println!("CHILD-RECEIVED {}", got[0].batch.events[0].key.raw);
    // No destructors, no ack: the hardest way to die.
    std::process::abort();
}

#[tokio::test]
async fn process_crash_loses_nothing() {
    let (_dir, path) = temp_db();
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MLC_EMBEDDED_CRASH_DB", &path)
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "child must have aborted");
    assert!(
        stdout.contains("CHILD-RECEIVED A"),
        "child output: {stdout}"
    );

    let q = SqliteQueue::open(&path, opts()).expect("open after crash");
    let first = q.receive(10, VIS).await.expect("receive");
    let keys: Vec<_> = first
        .iter()
        .map(|d| d.batch.events[0].key.raw.clone())
        .collect();
    assert_eq!(keys, vec!["B"], "only the other stream is visible at once");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let back = q.receive(10, VIS).await.expect("receive");
    assert_eq!(
        back.len(),
        1,
        "the crashed delivery comes back after its visibility timeout"
    );
    assert_eq!(back[0].batch.events[0].key.raw, "A");
    assert_eq!(back[0].receive_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_handles_never_share_a_message() {
    let (_dir, path) = temp_db();
    let producer = SqliteQueue::open(&path, opts()).expect("open");
    const STREAMS: usize = 20;
    const PER_STREAM: u64 = 10;
    let mut batches = Vec::new();
    for i in 0..PER_STREAM {
        for s in 0..STREAMS {
            batches.push(batch("f", &format!("s{s}"), &[&format!("s{s}-{i}")], i + 1));
        }
    }
    producer.send(&batches).await.expect("send");

    // (stream, key) in the order they were received, across both consumers.
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let q = SqliteQueue::open(&path, opts()).expect("open consumer");
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut idle = 0;
            while idle < 20 {
                let got = q.receive(3, VIS).await.expect("receive");
                if got.is_empty() {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                idle = 0;
                for d in got {
                    seen.lock()
                        .expect("lock")
                        .push((d.batch.stream.clone(), d.batch.events[0].key.raw.clone()));
                    ids.push(d.message_id.clone());
                    q.ack(&d.receipt).await.expect("ack");
                }
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(
        all.len(),
        STREAMS * PER_STREAM as usize,
        "every message received"
    );
    assert_eq!(unique.len(), all.len(), "no message received twice");
    let mut per_stream: HashMap<String, Vec<String>> = HashMap::new();
    for (stream, key) in seen.lock().expect("lock").iter() {
        per_stream
            .entry(stream.clone())
            .or_default()
            .push(key.clone());
    }
    for (stream, keys) in per_stream {
        let want: Vec<_> = (0..PER_STREAM).map(|i| format!("{stream}-{i}")).collect();
        assert_eq!(keys, want, "order within {stream}");
    }
    assert_eq!(producer.depth().await.expect("depth"), Default::default());
}

#[tokio::test]
async fn stale_receipt_never_settles_a_newer_delivery() {
    let (_dir, path) = temp_db();
    let q = SqliteQueue::open(&path, opts()).expect("open");
    q.send(&[batch("f", "f", &["A"], 1)]).await.expect("send");
    let first = q
        .receive(1, Duration::from_millis(300))
        .await
        .expect("receive")
        .remove(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = q.receive(1, VIS).await.expect("receive").remove(0);
    assert_eq!(second.message_id, first.message_id);
    assert_ne!(second.receipt, first.receipt, "a new receipt per receive");
    let stale = q.ack(&first.receipt).await;
    assert!(matches!(stale, Err(PortError::Conflict(_))), "{stale:?}");
    let stale = q.nack(&first.receipt, Duration::ZERO).await;
    assert!(matches!(stale, Err(PortError::Conflict(_))), "{stale:?}");
    assert_eq!(
        q.depth().await.expect("depth").in_flight,
        1,
        "newer delivery untouched"
    );
    q.ack(&second.receipt).await.expect("current receipt acks");
    let twice = q.ack(&second.receipt).await;
    assert!(matches!(twice, Err(PortError::Conflict(_))), "{twice:?}");
}

#[tokio::test]
async fn nacked_receipt_is_spent() {
    let (_dir, path) = temp_db();
    let q = SqliteQueue::open(&path, opts()).expect("open");
    q.send(&[batch("f", "f", &["A"], 1)]).await.expect("send");
    let d = q.receive(1, VIS).await.expect("receive").remove(0);
    q.nack(&d.receipt, Duration::from_secs(60))
        .await
        .expect("nack");
    assert!(
        q.ack(&d.receipt).await.is_err(),
        "handed back: the receipt is spent"
    );
    let depth = q.depth().await.expect("depth");
    assert_eq!(
        (depth.queued, depth.in_flight),
        (1, 0),
        "delayed counts as queued"
    );
}

#[tokio::test]
async fn dedup_window_expires() {
    let (_dir, path) = temp_db();
    let q = SqliteQueue::open(
        &path,
        QueueOptions {
            max_receive_count: 3,
            dedup_window: Duration::from_millis(300),
        },
    )
    .expect("open");
    let b = batch("f", "f", &["A"], 1);
    q.send(std::slice::from_ref(&b)).await.expect("send");
    q.send(std::slice::from_ref(&b)).await.expect("send again");
    assert_eq!(
        q.depth().await.expect("depth").queued,
        1,
        "deduplicated in the window"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    q.send(std::slice::from_ref(&b))
        .await
        .expect("send after window");
    assert_eq!(
        q.depth().await.expect("depth").queued,
        2,
        "stored again after the window"
    );
}

#[tokio::test]
async fn dedup_is_shared_by_handles_on_one_file() {
    let (_dir, path) = temp_db();
    let a = SqliteQueue::open(&path, opts()).expect("open");
    let b = SqliteQueue::open(&path, opts()).expect("open");
    let x = batch("f", "f", &["A"], 1);
    a.send(std::slice::from_ref(&x)).await.expect("send");
    b.send(std::slice::from_ref(&x)).await.expect("send");
    assert_eq!(a.depth().await.expect("depth").queued, 1);
}

#[tokio::test]
async fn redrive_moves_head_and_unblocks_the_stream() {
    let (_dir, path) = temp_db();
    let q = SqliteQueue::open(&path, opts()).expect("open");
    q.send(&[
        batch("f", "f", &["POISON"], 1),
        batch("f", "f", &["NEXT"], 2),
    ])
    .await
    .expect("send");
    for _ in 0..3 {
        let d = q.receive(1, VIS).await.expect("receive");
        assert_eq!(d[0].batch.events[0].key.raw, "POISON");
        q.nack(&d[0].receipt, Duration::ZERO).await.expect("nack");
    }
    let d = q.receive(10, VIS).await.expect("receive");
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].batch.events[0].key.raw, "NEXT",
        "poison moved out, stream continues"
    );
    let depth = q.depth().await.expect("depth");
    assert_eq!((depth.in_flight, depth.dead), (1, 1));
    let dead = q.receive_dead(10, VIS).await.expect("receive dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].receive_count, 1,
        "counts restart in the dead-letter queue"
    );
}

#[tokio::test]
async fn named_queues_in_one_file_are_separate() {
    let (_dir, path) = temp_db();
    let sf = SqliteQueue::open_named(&path, "salesforce", opts()).expect("open");
    let mo = SqliteQueue::open_named(&path, "monday", opts()).expect("open");
    sf.send(&[batch("f", "f", &["A"], 1)]).await.expect("send");
    assert!(mo.receive(10, VIS).await.expect("receive").is_empty());
    assert_eq!(sf.receive(10, VIS).await.expect("receive").len(), 1);
}

#[tokio::test]
async fn oversized_batch_is_refused_whole() {
    let (_dir, path) = temp_db();
    let q = SqliteQueue::open(&path, opts()).expect("open");
    let mut big = batch("f", "f", &["A"], 1);
    big.events[0].record.insert(
        "Pad".into(),
        serde_json::Value::String("x".repeat(MAX_MESSAGE_BYTES)),
    );
    let r = q.send(&[batch("f", "g", &["OK"], 1), big]).await;
    assert!(matches!(r, Err(PortError::Permanent { .. })), "{r:?}");
    assert_eq!(q.depth().await.expect("depth").queued, 0, "nothing stored");
}

#[test]
fn zero_max_receive_count_is_refused() {
    let (_dir, path) = temp_db();
    let r = SqliteQueue::open(
        &path,
        QueueOptions {
            max_receive_count: 0,
            ..QueueOptions::default()
        },
    );
    assert!(r.is_err());
}
