//! What the poll emits and the queue carries.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::entity::Entity;
use crate::outcome::Failure;

/// A source row or a mapped destination record: field name → JSON value.
pub type Record = serde_json::Map<String, serde_json::Value>;

/// A SYSPRO key as read from the source.
///
/// SYSPRO keys are fixed-width, case-sensitive and compared with ANSI padding: leading zeros
/// and case are significant, trailing blanks are not. `raw` keeps what the source sent;
/// [`RecordKey::id`] is the identity used for external ids, record state and hashes, so one
/// record can never land under two ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordKey {
    /// The key exactly as read, padding included (composite parts joined by `|`).
    pub raw: String,
}

impl RecordKey {
    /// A key from one raw value.
    pub fn new(raw: impl Into<String>) -> Self {
        RecordKey { raw: raw.into() }
    }

    /// A composite key from its raw parts (e.g. Customer, Invoice, DocumentType).
    pub fn composite<S: AsRef<str>>(parts: &[S]) -> Self {
        RecordKey {
            raw: parts
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join("|"),
        }
    }

    /// The identity: each part without trailing blanks, leading zeros and case kept.
    pub fn id(&self) -> String {
        // Built in one buffer: called for every record a poll reads.
        let mut id = String::with_capacity(self.raw.len());
        for (i, part) in self.raw.split('|').enumerate() {
            if i > 0 {
                id.push('|');
            }
            id.push_str(part.trim_end());
        }
        id
    }

    /// The identity's parts.
    pub fn parts(&self) -> Vec<String> {
        self.raw
            .split('|')
            .map(|p| p.trim_end().to_string())
            .collect()
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// The version of one observation of a record, ordered so that a later observation is greater.
///
/// SYSPRO has no last-modified column and derived values (overdue, aging) change with the
/// calendar, not the data. So the ordering is the poll sequence of the flow (polls of a flow
/// never overlap: they hold a lease), then the row version when the entity exposes one.
/// A sink never applies a version lower than or equal to the one it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceVersion {
    /// The poll sequence number of the flow that observed this state.
    pub poll_seq: u64,
    /// SQL `TimeStamp` rowversion (big-endian u64) when the entity exposes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_version: Option<u64>,
}

impl fmt::Display for SourceVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.row_version {
            Some(rv) => write!(f, "{}.{rv:016x}", self.poll_seq),
            None => write!(f, "{}", self.poll_seq),
        }
    }
}

/// One changed record, as polled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// The flow that polled it.
    pub flow: String,
    /// What it is in SYSPRO.
    pub entity: Entity,
    /// Its key, kept raw.
    pub key: RecordKey,
    /// The version of this observation.
    pub version: SourceVersion,
    /// Hash of what the destination will see (mapped record with derived status and aging).
    pub content_hash: String,
    /// The poll that observed it (`{flow}:{poll_seq}`).
    pub poll_id: String,
    /// When that poll ran (UTC).
    pub polled_at: DateTime<Utc>,
    /// The source row plus derived fields (`_Status`, `_DueDate`, `_Aging`, `_Balance`).
    pub record: Record,
    /// How many times a sink has tried this event already.
    #[serde(default)]
    pub attempt: u32,
    /// Why it was dead-lettered, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// When its retry horizon starts, if not when it was polled: a replay starts a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_since: Option<DateTime<Utc>>,
}

impl ChangeEvent {
    /// When this record's retries started counting against the retry horizon.
    pub fn retrying_since(&self) -> DateTime<Utc> {
        self.retry_since.unwrap_or(self.polled_at)
    }
}

impl ChangeEvent {
    /// A compact label for logs: `flow/entity/key`.
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.flow, self.entity, self.key.id())
    }
}

/// The changes of one stream, in poll order: what one queue message carries.
///
/// A Lambda reading a FIFO queue gets at most 10 messages per invocation, so one record per
/// message would cap every destination call at 10 records. A batch holds as many changes of one
/// stream as fit the queue's message size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeBatch {
    /// The flow the batch belongs to.
    pub flow: String,
    /// The ordering stream (FIFO message group): one per flow for Salesforce, one per board for
    /// Monday.com.
    pub stream: String,
    /// The changes, in poll order.
    pub events: Vec<ChangeEvent>,
    /// Set on batches that re-send known versions on purpose (replay, partial retry) so the
    /// queue's dedup window does not swallow them; poll batches leave it empty, so a poll re-run
    /// after a crash is deduplicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl ChangeBatch {
    /// Deduplication id: a hash of the batch's (entity, key, version, hash) tuples, so that the
    /// same batch sent twice (a poll re-run after a crash) is recognised by the queue.
    pub fn dedup_id(&self) -> String {
        let mut h = dedup_start(&self.flow, &self.stream, self.nonce.as_deref());
        for e in &self.events {
            dedup_add(&mut h, e.entity, &e.key.id(), e.version, &e.content_hash);
        }
        dedup_finish(h)
    }

    /// The serialised size, as the queue will see it.
    pub fn encoded_len(&self) -> usize {
        serde_json::to_vec(self)
            .map(|v| v.len())
            .unwrap_or(usize::MAX)
    }
}

/// The dedup hash of a batch: its flow, stream and nonce first …
fn dedup_start(flow: &str, stream: &str, nonce: Option<&str>) -> Sha256 {
    let mut h = Sha256::new();
    h.update(flow.as_bytes());
    h.update([0]);
    h.update(stream.as_bytes());
    if let Some(n) = nonce {
        h.update([1]);
        h.update(n.as_bytes());
    }
    h
}

/// … then each event's identity, version and content hash, in order.
fn dedup_add(h: &mut Sha256, entity: Entity, key_id: &str, version: SourceVersion, hash: &str) {
    h.update([0]);
    h.update(entity.as_str().as_bytes());
    h.update([0]);
    h.update(key_id.as_bytes());
    h.update([0]);
    // `version.to_string()`, without a heap string per event.
    let mut buf = [0u8; 48];
    let mut w = &mut buf[..];
    let written = std::io::Write::write_fmt(&mut w, format_args!("{version}")).is_ok();
    let left = w.len();
    if written {
        h.update(&buf[..buf.len() - left]);
    } else {
        h.update(version.to_string().as_bytes());
    }
    h.update([0]);
    h.update(hash.as_bytes());
}

fn dedup_finish(h: Sha256) -> String {
    hex::encode(&h.finalize()[..16])
}

/// `{"flow":…,"stream":…,"events":[`: how a batch without a nonce starts.
fn batch_head(flow: &str, stream: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Head<'a> {
        flow: &'a str,
        stream: &'a str,
    }
    let mut head = serde_json::to_vec(&Head { flow, stream }).unwrap_or_else(|_| b"{}".to_vec());
    head.pop();
    head.extend_from_slice(b",\"events\":[");
    head
}

/// A change batch serialised once: the JSON body a queue stores, with its dedup id.
///
/// The poll builds these straight from [`EncodedEvent`]s ([`pack_encoded`]), so each record is
/// serialised exactly once on its way to the queue (its hash is taken from the same bytes);
/// other senders encode a [`ChangeBatch`] with [`EncodedBatch::encode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// The ordering stream (message group).
    pub stream: String,
    /// [`ChangeBatch::dedup_id`] of the batch the JSON decodes to.
    pub dedup_id: String,
    /// How many events it carries (for error messages).
    pub events: usize,
    /// The batch as JSON; decodes to a [`ChangeBatch`].
    pub json: String,
}

impl EncodedBatch {
    /// Serialises a batch.
    pub fn encode(batch: &ChangeBatch) -> serde_json::Result<Self> {
        Ok(EncodedBatch {
            stream: batch.stream.clone(),
            dedup_id: batch.dedup_id(),
            events: batch.events.len(),
            json: serde_json::to_string(batch)?,
        })
    }
}

/// A mapped record serialised once: its canonical JSON and the hash of those bytes
/// ([`content_hash`] of the same record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordJson {
    /// Canonical JSON (keys sorted).
    pub json: Vec<u8>,
    /// Its content hash.
    pub hash: String,
}

impl RecordJson {
    /// Serialises and hashes a record.
    pub fn new(record: &Record) -> Self {
        Self::seeded("", record)
    }

    /// Serialises a record and hashes it after `seed` (the entity's mapping fingerprint,
    /// [`crate::view::DestinationView`]): the same record under another mapping hashes apart.
    pub fn seeded(seed: &str, record: &Record) -> Self {
        let json = serde_json::to_vec(record).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(seed.as_bytes());
        h.update(&json);
        let hash = hex::encode(&h.finalize()[..16]);
        RecordJson { json, hash }
    }
}

/// The content hash a forced re-send (`resync`) carries: apart from the record's own hash, so
/// a sink that already applied the content writes it again; the poll keeps the record's own
/// hash as sent, so the next poll does not send it once more.
pub fn resync_hash(hash: &str, poll_seq: u64) -> String {
    let mut h = Sha256::new();
    h.update(b"resync:");
    h.update(poll_seq.to_be_bytes());
    h.update(hash.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// One change event already serialised as queue JSON, with what a batch's dedup id needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    /// The entity.
    pub entity: Entity,
    /// The key's identity.
    pub key_id: String,
    /// The version.
    pub version: SourceVersion,
    /// The content hash.
    pub content_hash: String,
    /// The event as JSON; decodes to a [`ChangeEvent`].
    pub json: Vec<u8>,
}

/// Serialises the events of one poll: the fields every event of the poll shares (flow, poll,
/// time, attempt 0) are encoded once, then each event adds its own fields and its record's JSON
/// as is.
#[derive(Debug, Clone)]
pub struct EventEncoder {
    /// `{"flow":…,"poll_id":…,"polled_at":…,"attempt":0,`
    prefix: Vec<u8>,
}

#[derive(Serialize)]
struct EventShared<'a> {
    flow: &'a str,
    poll_id: &'a str,
    polled_at: DateTime<Utc>,
    attempt: u32,
}

#[derive(Serialize)]
struct EventOwn<'a> {
    entity: Entity,
    key: &'a RecordKey,
    version: SourceVersion,
    content_hash: &'a str,
}

impl EventEncoder {
    /// An encoder for the events of one poll.
    pub fn new(flow: &str, poll_id: &str, polled_at: DateTime<Utc>) -> Self {
        let mut prefix = serde_json::to_vec(&EventShared {
            flow,
            poll_id,
            polled_at,
            attempt: 0,
        })
        .unwrap_or_else(|_| b"{}".to_vec());
        // `{…}` → `{…,` so the event's own fields follow.
        prefix.pop();
        prefix.push(b',');
        EventEncoder { prefix }
    }

    /// The event JSON of one record, its record serialised already (see [`RecordJson`]).
    /// `key_id` is `key.id()`, which the caller has already.
    pub fn encode(
        &self,
        entity: Entity,
        key: &RecordKey,
        key_id: String,
        version: SourceVersion,
        record: RecordJson,
    ) -> EncodedEvent {
        let mut json = Vec::with_capacity(self.prefix.len() + record.json.len() + 160);
        self.encode_into(&mut json, entity, key, version, &record.hash, &record.json);
        EncodedEvent {
            entity,
            key_id,
            version,
            content_hash: record.hash,
            json,
        }
    }

    /// Appends the event JSON of one record to `out` (a batch body being built, see
    /// [`BatchPacker`]): the record's canonical JSON is copied in as is.
    pub fn encode_into(
        &self,
        out: &mut Vec<u8>,
        entity: Entity,
        key: &RecordKey,
        version: SourceVersion,
        content_hash: &str,
        record_json: &[u8],
    ) {
        out.extend_from_slice(&self.prefix);
        let own_at = out.len();
        let own = EventOwn {
            entity,
            key,
            version,
            content_hash,
        };
        if serde_json::to_writer(&mut *out, &own).is_ok() && out.len() >= own_at + 2 {
            // `{"entity":…}` without its braces: the prefix ends with `,` already.
            out.remove(own_at);
            out.pop();
            out.extend_from_slice(b",\"record\":");
        } else {
            out.truncate(own_at);
            out.extend_from_slice(b"\"record\":");
        }
        out.extend_from_slice(record_json);
        out.push(b'}');
    }
}

/// Splits encoded events into batch bodies whose JSON stays under `max_bytes` and `max_events`,
/// in order, computing each batch's dedup id on the way (the same as [`ChangeBatch::dedup_id`]
/// of the decoded batch). An event larger than the limit on its own travels alone (the queue
/// adapter then rejects it with a clear error rather than losing it silently).
pub fn pack_encoded(
    flow: &str,
    stream: &str,
    events: Vec<EncodedEvent>,
    max_bytes: usize,
    max_events: usize,
) -> Vec<EncodedBatch> {
    let mut packer = BatchPacker::new(flow, stream, max_bytes, max_events);
    for e in events {
        packer.push((), e.entity, &e.key_id, e.version, &e.content_hash, |out| {
            out.extend_from_slice(&e.json)
        });
    }
    packer.seal();
    packer.take_sealed().into_iter().map(|(b, _)| b).collect()
}

/// Builds the batch bodies of one stream as events arrive: each event is written straight into
/// the open body (no per-event buffer, no second copy), and a body that reaches `max_bytes` or
/// `max_events` is sealed with its dedup id. Each event carries a tag (the poll's sent mark)
/// that comes back with the sealed batch holding it, so what is recorded as sent is exactly
/// what the queue accepted. Memory is the open body plus the sealed ones not yet taken.
#[derive(Debug)]
pub struct BatchPacker<T> {
    flow: String,
    stream: String,
    head: Vec<u8>,
    max_bytes: usize,
    max_events: usize,
    body: Vec<u8>,
    hasher: Sha256,
    tags: Vec<T>,
    sealed: Vec<(EncodedBatch, Vec<T>)>,
    sealed_events: usize,
}

const BATCH_CLOSE: &[u8] = b"]}";

impl<T> BatchPacker<T> {
    /// A packer for `stream` of `flow` with these limits.
    pub fn new(flow: &str, stream: &str, max_bytes: usize, max_events: usize) -> Self {
        let head = batch_head(flow, stream);
        let body = Self::start(&head, max_bytes);
        BatchPacker {
            flow: flow.to_string(),
            stream: stream.to_string(),
            head,
            max_bytes,
            max_events: max_events.max(1),
            body,
            hasher: dedup_start(flow, stream, None),
            tags: Vec::new(),
            sealed: Vec::new(),
            sealed_events: 0,
        }
    }

    fn start(head: &[u8], max_bytes: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(max_bytes.min(1 << 20).max(head.len() + 2));
        v.extend_from_slice(head);
        v
    }

    /// Adds one event: `write` appends its JSON (see [`EventEncoder::encode_into`]); the other
    /// arguments are what the batch's dedup id covers.
    pub fn push(
        &mut self,
        tag: T,
        entity: Entity,
        key_id: &str,
        version: SourceVersion,
        content_hash: &str,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let before = self.body.len();
        let open = self.tags.len();
        if open > 0 {
            self.body.push(b',');
        }
        let event_at = self.body.len();
        write(&mut self.body);
        if open > 0
            && (self.body.len() + BATCH_CLOSE.len() > self.max_bytes || open >= self.max_events)
        {
            // It does not fit: the open batch is sealed without it and it starts the next one
            // (the one copy of an event's bytes, once per batch).
            let event = self.body[event_at..].to_vec();
            self.body.truncate(before);
            self.seal();
            self.body.extend_from_slice(&event);
        }
        dedup_add(&mut self.hasher, entity, key_id, version, content_hash);
        self.tags.push(tag);
    }

    /// Seals the open batch, if it holds any event.
    pub fn seal(&mut self) {
        if self.tags.is_empty() {
            return;
        }
        let mut body = std::mem::replace(&mut self.body, Self::start(&self.head, self.max_bytes));
        body.extend_from_slice(BATCH_CLOSE);
        let hasher = std::mem::replace(
            &mut self.hasher,
            dedup_start(&self.flow, &self.stream, None),
        );
        let tags = std::mem::take(&mut self.tags);
        self.sealed_events += tags.len();
        self.sealed.push((
            EncodedBatch {
                stream: self.stream.clone(),
                dedup_id: dedup_finish(hasher),
                events: tags.len(),
                // Built from serde_json output and ASCII punctuation only.
                json: String::from_utf8(body).unwrap_or_default(),
            },
            tags,
        ));
    }

    /// Events in sealed batches not yet taken.
    pub fn sealed_events(&self) -> usize {
        self.sealed_events
    }

    /// Events in the open batch.
    pub fn open_events(&self) -> usize {
        self.tags.len()
    }

    /// The sealed batches, in order, each with its events' tags.
    pub fn take_sealed(&mut self) -> Vec<(EncodedBatch, Vec<T>)> {
        self.sealed_events = 0;
        std::mem::take(&mut self.sealed)
    }
}

/// Hash of a mapped record: SHA-256 over its canonical JSON (keys sorted by `serde_json`'s map).
pub fn content_hash(record: &Record) -> String {
    RecordJson::new(record).hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_identity_drops_trailing_blanks_only() {
        let k = RecordKey::composite(&["0000C01 ", "000100045", "I "]);
        assert_eq!(k.id(), "0000C01|000100045|I");
        assert_eq!(k.raw, "0000C01 |000100045|I ");
        assert_ne!(RecordKey::new("c01").id(), RecordKey::new("C01").id());
        assert_ne!(RecordKey::new("001").id(), RecordKey::new("1").id());
    }

    #[test]
    fn versions_order_by_poll_then_row_version() {
        let a = SourceVersion {
            poll_seq: 1,
            row_version: Some(99),
        };
        let b = SourceVersion {
            poll_seq: 2,
            row_version: Some(5),
        };
        assert!(a < b);
    }

    /// The reference packer: the same splitting over `ChangeEvent`s, serialising each one.
    fn pack_batches(
        flow: &str,
        stream: &str,
        events: Vec<ChangeEvent>,
        max_bytes: usize,
        max_events: usize,
    ) -> Vec<ChangeBatch> {
        // The exact envelope: `{"flow":…,"stream":…,"events":[` and `]}` (as `pack_encoded`).
        let overhead = batch_head(flow, stream).len() + 2;
        let mut out = Vec::new();
        let mut current: Vec<ChangeEvent> = Vec::new();
        let mut size = overhead;
        for e in events {
            let len = serde_json::to_vec(&e).map(|v| v.len()).unwrap_or(0)
                + usize::from(!current.is_empty());
            if !current.is_empty() && (size + len > max_bytes || current.len() >= max_events) {
                out.push(ChangeBatch {
                    flow: flow.to_string(),
                    stream: stream.to_string(),
                    events: std::mem::take(&mut current),
                    nonce: None,
                });
                size = overhead;
                size += len - 1;
            } else {
                size += len;
            }
            current.push(e);
        }
        if !current.is_empty() {
            out.push(ChangeBatch {
                flow: flow.to_string(),
                stream: stream.to_string(),
                events: current,
                nonce: None,
            });
        }
        out
    }

    fn event(key: &str, poll_seq: u64, note: &str) -> ChangeEvent {
        let mut record = Record::new();
        record.insert("Invoice".into(), serde_json::json!(key));
        record.insert("Note".into(), serde_json::json!(note));
        record.insert("Amount".into(), serde_json::json!(12.5));
        ChangeEvent {
            flow: "acme-sf".into(),
            entity: Entity::ArInvoice,
            key: RecordKey::composite(&["C01 ", key, "I"]),
            version: SourceVersion {
                poll_seq,
                row_version: Some(0x1234),
            },
            content_hash: content_hash(&record),
            poll_id: format!("acme-sf:{poll_seq}"),
            polled_at: DateTime::<Utc>::from_timestamp(1_780_000_000, 5).unwrap_or_default(),
            record,
            attempt: 0,
            failure: None,
            retry_since: None,
        }
    }

    /// Each event encoded on its own, its hash checked against the one `event` computed.
    fn encode_all(enc: &EventEncoder, events: &[ChangeEvent]) -> Vec<EncodedEvent> {
        events
            .iter()
            .map(|e| {
                let rec = RecordJson::new(&e.record);
                assert_eq!(rec.hash, e.content_hash);
                enc.encode(e.entity, &e.key, e.key.id(), e.version, rec)
            })
            .collect()
    }

    #[test]
    fn encoded_events_pack_into_the_batches_pack_batches_builds() {
        let events: Vec<ChangeEvent> = (0..50)
            .map(|i| event(&format!("{i:06}"), 7, &"x\"é\u{1}".repeat(i % 7)))
            .collect();
        let enc = EventEncoder::new("acme-sf", "acme-sf:7", events[0].polled_at);
        let encoded = encode_all(&enc, &events);
        for (e, x) in events.iter().zip(&encoded) {
            let back: ChangeEvent = serde_json::from_slice(&x.json).expect("event json");
            assert_eq!(&back, e);
        }
        // Small limits force several batches by size and by count.
        for (max_bytes, max_events) in [(2_000, 1000), (100_000, 7), (1, 1000)] {
            let plain = pack_batches("acme-sf", "s", events.clone(), max_bytes, max_events);
            let packed = pack_encoded("acme-sf", "s", encoded.clone(), max_bytes, max_events);
            assert_eq!(plain.len(), packed.len(), "limits {max_bytes}/{max_events}");
            for (b, p) in plain.iter().zip(&packed) {
                let back: ChangeBatch = serde_json::from_str(&p.json).expect("batch json");
                assert_eq!(&back, b);
                assert_eq!(p.dedup_id, b.dedup_id());
                assert_eq!(p.events, b.events.len());
                assert!(
                    p.json.len() <= max_bytes || p.events == 1,
                    "{}",
                    p.json.len()
                );
                assert_eq!(
                    EncodedBatch::encode(b).expect("encode").dedup_id,
                    p.dedup_id
                );
            }
        }
    }

    #[test]
    fn events_written_into_the_packer_give_the_same_batches_and_their_tags_back() {
        let events: Vec<ChangeEvent> = (0..40)
            .map(|i| event(&format!("{i:06}"), 3, &"ab\\\"".repeat(i % 5)))
            .collect();
        let enc = EventEncoder::new("acme-sf", "acme-sf:3", events[0].polled_at);
        for (max_bytes, max_events) in [(1_500, 1000), (100_000, 6), (1, 1000)] {
            let expected = pack_encoded(
                "acme-sf",
                "s",
                encode_all(&enc, &events),
                max_bytes,
                max_events,
            );
            let mut packer = BatchPacker::new("acme-sf", "s", max_bytes, max_events);
            let mut sealed = Vec::new();
            for (i, e) in events.iter().enumerate() {
                let rec = RecordJson::new(&e.record);
                packer.push(i, e.entity, &e.key.id(), e.version, &rec.hash, |out| {
                    enc.encode_into(out, e.entity, &e.key, e.version, &rec.hash, &rec.json)
                });
                // Taking sealed batches midway changes nothing in what is built.
                if i % 9 == 0 {
                    sealed.extend(packer.take_sealed());
                    assert_eq!(packer.sealed_events(), 0);
                }
            }
            packer.seal();
            assert_eq!(packer.open_events(), 0);
            sealed.extend(packer.take_sealed());
            assert_eq!(
                sealed.len(),
                expected.len(),
                "limits {max_bytes}/{max_events}"
            );
            let mut next_tag = 0;
            for ((batch, tags), want) in sealed.iter().zip(&expected) {
                assert_eq!(batch, want);
                assert_eq!(tags.len(), batch.events);
                for t in tags {
                    assert_eq!(*t, next_tag, "tags come back in push order");
                    next_tag += 1;
                }
                let back: ChangeBatch = serde_json::from_str(&batch.json).expect("batch json");
                assert_eq!(back.dedup_id(), batch.dedup_id);
            }
            assert_eq!(next_tag, events.len());
        }
    }
}
