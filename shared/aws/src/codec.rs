//! SQS message bodies: a change batch as JSON, gzip-compressed (base64, behind a marker) only
//! when the JSON alone would not fit one message.
//!
//! Most batches travel as plain JSON, readable in the console and by any tool. SQS bodies may
//! only hold XML characters: JSON escapes control characters already, and the two noncharacters
//! U+FFFE and U+FFFF (the only other code points a Rust string can hold that SQS refuses) are
//! written as `\uXXXX` escapes, which decode back to the same string.

use std::io::{Read, Write};

use base64::Engine as _;
use mlc_core::event::EncodedBatch;
use mlc_core::ChangeBatch;

use crate::error::{Error, Result};

/// The SQS message size limit (body plus attributes; we send no attributes).
pub const SQS_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Prefix of a compressed body. JSON bodies start with `{`, so the two never collide.
pub const GZIP_MARKER: &str = "mlc-gz1:";

/// Decompressed bodies larger than this are refused (a corrupt or hostile body must not
/// exhaust a Lambda's memory).
const MAX_DECOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;

/// Encodes a batch as an SQS body: JSON when it fits, compressed when that is what makes it
/// fit, an error naming the size when even that does not.
pub fn encode_body(batch: &ChangeBatch) -> Result<String> {
    let encoded = EncodedBatch::encode(batch).map_err(|e| Error::Body {
        message: "cannot encode change batch".into(),
        source: Some(Box::new(e)),
    })?;
    encoded_body(encoded)
}

/// [`encode_body`] for a batch serialised already.
pub fn encoded_body(batch: EncodedBatch) -> Result<String> {
    let EncodedBatch {
        stream,
        events,
        json,
        ..
    } = batch;
    let json = if json.contains(['\u{FFFE}', '\u{FFFF}']) {
        json.replace('\u{FFFE}', "\\ufffe")
            .replace('\u{FFFF}', "\\uffff")
    } else {
        json
    };
    if json.len() <= SQS_MAX_MESSAGE_BYTES {
        return Ok(json);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let compressed = gz
        .write_all(json.as_bytes())
        .and_then(|()| gz.finish())
        .map_err(|e| Error::Body {
            message: "cannot compress change batch".into(),
            source: Some(Box::new(e)),
        })?;
    let body = format!(
        "{GZIP_MARKER}{}",
        base64::engine::general_purpose::STANDARD.encode(compressed)
    );
    if body.len() > SQS_MAX_MESSAGE_BYTES {
        return Err(Error::TooLarge {
            stream,
            events,
            bytes: body.len(),
            limit: SQS_MAX_MESSAGE_BYTES,
        });
    }
    Ok(body)
}

/// Decodes an SQS message body (plain or compressed) into a change batch. The Lambda sink
/// handlers call this on each record of an SQS event.
pub fn parse_sqs_body(body: &str) -> Result<ChangeBatch> {
    let parsed = match body.strip_prefix(GZIP_MARKER) {
        None => serde_json::from_str(body),
        Some(b64) => {
            let compressed = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| Error::Body {
                    message: "compressed body is not base64".into(),
                    source: Some(Box::new(e)),
                })?;
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(compressed.as_slice())
                .take(MAX_DECOMPRESSED_BYTES + 1)
                .read_to_end(&mut json)
                .map_err(|e| Error::Body {
                    message: "compressed body does not decompress".into(),
                    source: Some(Box::new(e)),
                })?;
            if json.len() as u64 > MAX_DECOMPRESSED_BYTES {
                return Err(Error::body(format!(
                    "decompressed body exceeds {MAX_DECOMPRESSED_BYTES} bytes"
                )));
            }
            serde_json::from_slice(&json)
        }
    };
    parsed.map_err(|e| Error::Body {
        message: format!("invalid change batch json: {e}"),
        source: Some(Box::new(e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlc_core::{ChangeEvent, Entity, RecordKey, SourceVersion};

    fn batch(n: usize, pad: impl Fn(usize) -> String) -> ChangeBatch {
        let events = (0..n)
            .map(|i| {
                let mut record = mlc_core::Record::new();
                record.insert("Pad".into(), serde_json::Value::String(pad(i)));
                ChangeEvent {
                    flow: "f".into(),
                    entity: Entity::ArInvoice,
                    key: RecordKey::new(format!("{i:09} ")),
                    version: SourceVersion {
                        poll_seq: 1,
                        row_version: Some(i as u64),
                    },
                    content_hash: format!("h{i}"),
                    poll_id: "f:1".into(),
                    polled_at: chrono::DateTime::UNIX_EPOCH,
                    record,
                    attempt: 0,
                    failure: None,
                    retry_since: None,
                }
            })
            .collect();
        ChangeBatch {
            flow: "f".into(),
            stream: "f".into(),
            events,
            nonce: None,
        }
    }

    #[test]
    fn small_batches_stay_plain_json() {
        let b = batch(3, |_| "x\u{FFFE}y\u{FFFF}\u{0001}".into());
        let body = encode_body(&b).unwrap();
        assert!(body.starts_with('{'));
        assert!(!body.contains(['\u{FFFE}', '\u{FFFF}', '\u{0001}']));
        assert_eq!(parse_sqs_body(&body).unwrap(), b);
    }

    #[test]
    fn oversized_json_is_compressed_and_round_trips() {
        let b = batch(2000, |i| format!("{i} {}", "repetitive ".repeat(20)));
        assert!(b.encoded_len() > SQS_MAX_MESSAGE_BYTES);
        let body = encode_body(&b).unwrap();
        assert!(body.starts_with(GZIP_MARKER));
        assert!(body.len() <= SQS_MAX_MESSAGE_BYTES);
        assert_eq!(parse_sqs_body(&body).unwrap(), b);
    }

    #[test]
    fn incompressible_batch_is_an_error_naming_its_size() {
        // Hex of sha256 chains: high entropy, compresses poorly.
        let b = batch(1500, |i| {
            use sha2::Digest;
            (0..6)
                .map(|j| hex::encode(sha2::Sha256::digest(format!("{i}-{j}"))))
                .collect::<String>()
        });
        let err = encode_body(&b).unwrap_err().to_string();
        assert!(
            err.contains("1500 events") && err.contains("262144"),
            "{err}"
        );
    }

    #[test]
    fn garbage_bodies_are_errors() {
        assert!(parse_sqs_body("not json").is_err());
        assert!(parse_sqs_body("mlc-gz1:!!!").is_err());
        assert!(parse_sqs_body("mlc-gz1:aGVsbG8=").is_err());
    }
}
