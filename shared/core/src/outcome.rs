//! Per-record results.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happened to one record in one step. Stored in audit entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncOutcome {
    /// Read from SYSPRO and put on the queue.
    Queued,
    /// Created in the destination.
    Created,
    /// Updated in the destination.
    Updated,
    /// Skipped: the destination already has this version or a newer one (same hash).
    Unchanged,
    /// Failed, will be retried.
    FailedRetryable,
    /// Failed for good: dead-lettered with its reason.
    FailedPermanent,
    /// Moved from the dead-letter queue back to the main queue.
    Replayed,
}

impl SyncOutcome {
    /// The stable name used in storage and `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Queued => "queued",
            SyncOutcome::Created => "created",
            SyncOutcome::Updated => "updated",
            SyncOutcome::Unchanged => "unchanged",
            SyncOutcome::FailedRetryable => "failed-retryable",
            SyncOutcome::FailedPermanent => "failed-permanent",
            SyncOutcome::Replayed => "replayed",
        }
    }

    /// Parses [`SyncOutcome::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            SyncOutcome::Queued,
            SyncOutcome::Created,
            SyncOutcome::Updated,
            SyncOutcome::Unchanged,
            SyncOutcome::FailedRetryable,
            SyncOutcome::FailedPermanent,
            SyncOutcome::Replayed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// Why a record failed: enough to act on (which field, which code, which request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Retryable or not.
    pub kind: FailureKind,
    /// One line for people: which record, which field, why.
    pub message: String,
    /// The field at fault, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The error chain, outermost first.
    #[serde(default)]
    pub chain: Vec<crate::audit::ErrorLink>,
}

/// Retryable or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Try again later.
    Retryable,
    /// Do not retry: dead-letter.
    Permanent,
    /// Not attempted: a budget or the destination's throttle says "later". Not a failure of
    /// the record and never counted as an attempt (a backfill may wait many windows).
    Deferred,
}

impl Failure {
    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> Self {
        Failure {
            kind: FailureKind::Permanent,
            message: message.into(),
            field: None,
            chain: Vec::new(),
        }
    }

    /// A retryable failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        Failure {
            kind: FailureKind::Retryable,
            message: message.into(),
            field: None,
            chain: Vec::new(),
        }
    }

    /// A deferral: the record was not attempted because a budget or a throttle says later.
    pub fn deferred(message: impl Into<String>) -> Self {
        Failure {
            kind: FailureKind::Deferred,
            message: message.into(),
            field: None,
            chain: Vec::new(),
        }
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds a link to the error chain.
    pub fn with_link(mut self, link: crate::audit::ErrorLink) -> Self {
        self.chain.push(link);
        self
    }
}

/// What a sink did with one record it was asked to write.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// Written. `created` tells created from updated; ids are the destination's.
    Applied {
        /// True when the destination record was created.
        created: bool,
        /// Destination ids (Salesforce Id; Monday board and item id).
        destination_ids: BTreeMap<String, String>,
    },
    /// The destination already held exactly this (e.g. an idempotent replay was detected).
    Unchanged {
        /// Destination ids, when the sink learned them.
        destination_ids: BTreeMap<String, String>,
    },
    /// Not written now: try again after the delay (server's `retry_in_seconds` etc.).
    Retry {
        /// How long to wait, when the server said.
        after: Option<Duration>,
        /// Why.
        failure: Failure,
    },
    /// Not written, never will be as is: dead-letter with this reason.
    Permanent(Failure),
}

impl RecordOutcome {
    /// A retry for every record of a batch (throttled, 503 …).
    pub fn retry(after: Option<Duration>, failure: Failure) -> Self {
        RecordOutcome::Retry { after, failure }
    }
}
