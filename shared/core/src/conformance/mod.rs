//! Conformance suites for the storage and queue ports.
//!
//! Each case is a plain async fn taking the port; each adapter's test crate runs every case as a
//! named test through the macros below, so SQLite and DynamoDB/SQS are held to one semantics.
//! Cases use random flow ids so they can share one emulator.

pub mod audit;
pub mod budget;
pub mod queue;
pub mod state;
pub mod watermark;

use chrono::{DateTime, Utc};

use crate::entity::Entity;
use crate::event::{ChangeBatch, ChangeEvent, RecordKey, SourceVersion};

/// A random flow id, so cases can share one store.
pub fn flow_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A fixed instant to build times from.
pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// A test event.
pub fn event(flow: &str, key: &str, poll_seq: u64) -> ChangeEvent {
    let mut record = crate::event::Record::new();
    record.insert(
        "Customer".into(),
        serde_json::Value::String(key.to_string()),
    );
    record.insert(
        "Name".into(),
        serde_json::Value::String(format!("Customer {key} ünïcode")),
    );
    ChangeEvent {
        flow: flow.to_string(),
        entity: Entity::ArCustomer,
        key: RecordKey::new(key),
        version: SourceVersion {
            poll_seq,
            row_version: None,
        },
        content_hash: format!("h-{key}-{poll_seq}"),
        poll_id: format!("{flow}:{poll_seq}"),
        polled_at: t0(),
        record,
        attempt: 0,
        failure: None,
        retry_since: None,
    }
}

/// A test batch of `keys` in `stream`.
pub fn batch(flow: &str, stream: &str, keys: &[&str], poll_seq: u64) -> ChangeBatch {
    ChangeBatch {
        flow: flow.to_string(),
        stream: stream.to_string(),
        events: keys.iter().map(|k| event(flow, k, poll_seq)).collect(),
        nonce: None,
    }
}

/// Runs every queue case as a named `#[tokio::test]`. `$make` is an async expression that
/// returns a fresh queue (an `impl Queue`), e.g. `queue_conformance!(async { make().await });`.
#[macro_export]
macro_rules! queue_conformance {
    ($make:expr) => {
        $crate::conformance_cases!(
            queue,
            $make,
            [
                send_receive_ack_roundtrip,
                unacked_message_returns_after_visibility,
                nack_delays_redelivery,
                fifo_order_within_stream,
                stream_blocked_while_in_flight,
                duplicate_send_is_stored_once,
                redrive_after_max_receives,
                dead_letter_and_read_back,
                dead_letter_nack_makes_it_visible,
                depth_counts,
                large_batch_roundtrip,
            ]
        );
    };
}

/// Runs every watermark-store case.
#[macro_export]
macro_rules! watermark_conformance {
    ($make:expr) => {
        $crate::conformance_cases!(
            watermark,
            $make,
            [
                lease_is_exclusive,
                lapsed_lease_can_be_taken,
                poll_seq_increases,
                released_lease_is_free,
                renew_keeps_lease,
                renew_after_loss_conflicts,
                save_is_optimistic,
                load_missing_is_none,
                list_and_run_info,
                pause_and_resume,
            ]
        );
    };
}

/// Runs every record-state-store case.
#[macro_export]
macro_rules! state_conformance {
    ($make:expr) => {
        $crate::conformance_cases!(
            state,
            $make,
            [
                missing_state_is_absent,
                sent_and_applied_do_not_clobber,
                applied_never_regresses,
                destination_ids_merge,
                open_keys_track_open_flag,
                calendar_keys_carry_the_latest_due_date,
                unapplied_lists_old_sends_no_sink_applied,
                older_polls_sent_marks_are_refused,
                get_many_large,
                last_sent_is_the_poll_side,
            ]
        );
    };
}

/// Runs every audit-log case. `$make` returns a store that is also the record-state store
/// (sent marks are `queued` entries).
#[macro_export]
macro_rules! audit_conformance {
    ($make:expr) => {
        $crate::conformance_cases!(
            audit,
            $make,
            [
                history_in_order,
                history_filters_by_flow,
                by_outcome_since,
                entries_are_append_only,
                sent_marks_are_queued_entries,
            ]
        );
    };
}

/// Runs every budget case. `$make` must return a `Clone` budget (an `Arc`-backed handle).
#[macro_export]
macro_rules! budget_conformance {
    ($make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn grants_stop_at_limit() {
            let port = $make.await;
            $crate::conformance::budget::grants_stop_at_limit(&port).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_takers_share_limit() {
            let port = $make.await;
            $crate::conformance::budget::concurrent_takers_share_limit(&port).await;
        }
    };
}

/// Helper for the suite macros.
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_cases {
    ($suite:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let port = $make.await;
                $crate::conformance::$suite::$case(&port).await;
            }
        )*
    };
}
