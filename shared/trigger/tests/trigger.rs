//! Replay refusal and coalescing over the real SQLite stores.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mlc_core::ports::WatermarkStore;
use mlc_core::secret::SecretString;
use mlc_embedded::SqliteStore;
use mlc_trigger::{claim_request_id, decide, sign, verify, SignedRequest, TriggerError};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
}

#[tokio::test]
async fn a_request_id_is_accepted_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let secret = SecretString::from("k".to_string());
    let sig = sign(&secret, now().timestamp(), "abc-1", b"");
    let ts = now().timestamp().to_string();
    let req = SignedRequest {
        timestamp: Some(&ts),
        request_id: Some("abc-1"),
        signature: Some(&sig),
        body: b"",
    };
    let v = verify(&req, &secret, now()).unwrap();
    claim_request_id(&store, "acme", &v).await.unwrap();
    // The same signed request a minute later: still inside the skew, refused as a replay.
    let later = now() + chrono::Duration::seconds(60);
    let v2 = verify(&req, &secret, later).unwrap();
    assert_eq!(
        claim_request_id(&store, "acme", &v2).await,
        Err(TriggerError::Replayed)
    );
    // Another flow's request id space is separate.
    claim_request_id(&store, "other", &v2).await.unwrap();
}

#[tokio::test]
async fn triggers_join_a_running_or_recent_poll() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let window = Duration::from_secs(60);
    let d = decide(&store, "acme", window, now()).await.unwrap();
    assert!(!d.coalesced, "nothing ran yet: start one");
    let lease = store
        .acquire_lease("acme", "poller", Duration::from_secs(300), now())
        .await
        .unwrap()
        .unwrap();
    let d = decide(&store, "acme", window, now()).await.unwrap();
    assert!(d.coalesced);
    assert_eq!(d.run_id, lease.poll_id(), "joins the running poll");
    store.release_lease(&lease, true, now()).await.unwrap();
    let d = decide(
        &store,
        "acme",
        window,
        now() + chrono::Duration::seconds(30),
    )
    .await
    .unwrap();
    assert!(d.coalesced, "within the window after the last poll");
    let d = decide(
        &store,
        "acme",
        window,
        now() + chrono::Duration::seconds(90),
    )
    .await
    .unwrap();
    assert!(!d.coalesced, "after the window: a new poll");
}
