//! On-demand sync triggers ("sync now"): what SYSPRO triggers, workflows, scripts or people call
//! when an invoice posts, in AWS (the `trigger` function) and locally (`ml-connector sync
//! --listen`).
//!
//! A request is `POST /flows/{flow}/sync` with three headers:
//! - `X-MLC-Timestamp`: Unix seconds; refused outside ±5 minutes of the server's clock;
//! - `X-MLC-Request-Id`: unique per request (1–128 of `[A-Za-z0-9._-]`); a second use is refused;
//! - `X-MLC-Signature`: `sha256=` + hex HMAC-SHA256 over `{timestamp}.{request id}.{body}` with
//!   the flow's trigger secret.
//!
//! Answers carry no detail an attacker can use: `401` for every authentication failure, `404`
//! for an unknown flow, `409` for a replayed request id, `202` with a run id otherwise. A trigger
//! while a poll of the flow runs, or within the coalescing window after the last one, joins it
//! (`coalesced: true`) instead of starting a second poll; the poll lease would refuse a second
//! concurrent poll anyway.
//!
//! Module map: this file holds the signature check ([`verify`]), the replay guard
//! ([`claim_request_id`]) and the coalescing decision ([`decide`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use mlc_core::ports::{Budget, WatermarkStore};
use mlc_core::secret::{ExposeSecret, SecretString};
use mlc_core::PortError;
use serde::Serialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Header carrying the timestamp.
pub const HEADER_TIMESTAMP: &str = "x-mlc-timestamp";
/// Header carrying the request id.
pub const HEADER_REQUEST_ID: &str = "x-mlc-request-id";
/// Header carrying the signature.
pub const HEADER_SIGNATURE: &str = "x-mlc-signature";
/// Allowed clock skew.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// Why a trigger was refused. The `Display` is what the caller sees: deliberately terse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// Missing or malformed headers, stale timestamp, wrong signature: all look alike outside.
    #[error("unauthorized")]
    Unauthorized(AuthFailure),
    /// No such flow (or it has no trigger secret).
    #[error("not found")]
    UnknownFlow,
    /// The request id was used before.
    #[error("request id already used")]
    Replayed,
    /// A store failed.
    #[error("temporarily unavailable")]
    Unavailable(String),
}

impl TriggerError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            TriggerError::Unauthorized(_) => 401,
            TriggerError::UnknownFlow => 404,
            TriggerError::Replayed => 409,
            TriggerError::Unavailable(_) => 503,
        }
    }
}

/// The precise reason of a 401, for the server's own logs (never sent to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// A header is missing.
    MissingHeader,
    /// The timestamp is not an integer.
    BadTimestamp,
    /// The timestamp is outside the allowed skew.
    StaleTimestamp,
    /// The request id has the wrong shape.
    BadRequestId,
    /// The signature is not `sha256=<hex>`.
    BadSignatureFormat,
    /// The signature does not match.
    WrongSignature,
}

/// The signed parts of a request.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `X-MLC-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `X-MLC-Request-Id`.
    pub request_id: Option<&'a str>,
    /// `X-MLC-Signature`.
    pub signature: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

/// Computes the signature header value for a request (clients and tests).
pub fn sign(secret: &SecretString, timestamp: i64, request_id: &str, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(format!("{timestamp}.{request_id}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn mac(secret: &SecretString) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this never takes the fallback branch.
    match <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes()) {
        Ok(m) => m,
        Err(_) => <Hmac<Sha256> as Mac>::new(&Default::default()),
    }
}

/// A request whose signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    /// Its request id.
    pub request_id: &'a str,
    /// Its signed timestamp.
    pub timestamp: DateTime<Utc>,
}

/// Checks headers and signature.
pub fn verify<'a>(
    req: &SignedRequest<'a>,
    secret: &SecretString,
    now: DateTime<Utc>,
) -> Result<Verified<'a>, TriggerError> {
    let fail = |f| Err(TriggerError::Unauthorized(f));
    let (Some(ts), Some(id), Some(sig)) = (req.timestamp, req.request_id, req.signature) else {
        return fail(AuthFailure::MissingHeader);
    };
    let Ok(ts_n) = ts.trim().parse::<i64>() else {
        return fail(AuthFailure::BadTimestamp);
    };
    if (now.timestamp() - ts_n).unsigned_abs() > MAX_SKEW.as_secs() {
        return fail(AuthFailure::StaleTimestamp);
    }
    let id_ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !id_ok {
        return fail(AuthFailure::BadRequestId);
    }
    let Some(hex_sig) = sig.trim().strip_prefix("sha256=") else {
        return fail(AuthFailure::BadSignatureFormat);
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return fail(AuthFailure::BadSignatureFormat);
    };
    let mut m = mac(secret);
    m.update(format!("{ts_n}.{id}.").as_bytes());
    m.update(req.body);
    let expected = m.finalize().into_bytes();
    if expected.as_slice().ct_eq(&given).into() {
        Ok(Verified {
            request_id: id,
            timestamp: DateTime::from_timestamp(ts_n, 0).unwrap_or(now),
        })
    } else {
        fail(AuthFailure::WrongSignature)
    }
}

/// Claims a request id once, atomically, through the shared budget store: a budget of one unit
/// per (flow, request id), in the window of the request's own signed timestamp. A replay carries
/// the same timestamp, so it lands in the same window and finds the unit spent. Stores keep a
/// window for days (DynamoDB: TTL two days after it), far beyond the ±5 minutes after which the
/// timestamp check refuses the request anyway.
pub async fn claim_request_id(
    budget: &dyn Budget,
    flow: &str,
    verified: &Verified<'_>,
) -> Result<(), TriggerError> {
    let scope = format!("trigger:{flow}:{}", verified.request_id);
    let got = budget
        .take(&scope, verified.timestamp, 1, 1)
        .await
        .map_err(unavailable)?;
    if got == 0 {
        Err(TriggerError::Replayed)
    } else {
        Ok(())
    }
}

fn unavailable(e: PortError) -> TriggerError {
    TriggerError::Unavailable(e.to_string())
}

/// What a valid trigger does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerDecision {
    /// The run the caller can follow: the poll in progress or last started (coalesced), or the
    /// new run id.
    pub run_id: String,
    /// True when the trigger joined a running or recent poll instead of starting one.
    pub coalesced: bool,
}

/// Decides whether to start a poll: a poll running now, or one started within `window`, is
/// joined.
pub async fn decide(
    watermarks: &dyn WatermarkStore,
    flow: &str,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<TriggerDecision, TriggerError> {
    let info = watermarks.run_info(flow).await.map_err(unavailable)?;
    if let Some(running) = info.running.as_ref().filter(|l| l.expires_at > now) {
        return Ok(TriggerDecision {
            run_id: running.poll_id(),
            coalesced: true,
        });
    }
    let recent = info
        .last_started_at
        .is_some_and(|t| now - t < chrono::Duration::from_std(window).unwrap_or_default());
    if recent && info.last_poll_seq > 0 {
        return Ok(TriggerDecision {
            run_id: format!("{flow}:{}", info.last_poll_seq),
            coalesced: true,
        });
    }
    Ok(TriggerDecision {
        run_id: format!("{flow}:trigger-{}", uuid::Uuid::new_v4().simple()),
        coalesced: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("s3cret-for-acme".to_string())
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
    }

    fn req<'a>(ts: &'a str, id: &'a str, sig: &'a str, body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest {
            timestamp: Some(ts),
            request_id: Some(id),
            signature: Some(sig),
            body,
        }
    }

    #[test]
    fn valid_signature_passes() {
        let ts = now().timestamp().to_string();
        let sig = sign(
            &secret(),
            now().timestamp(),
            "r-1",
            b"{\"invoice\":\"100045\"}",
        );
        let v = verify(
            &req(&ts, "r-1", &sig, b"{\"invoice\":\"100045\"}"),
            &secret(),
            now(),
        )
        .unwrap();
        assert_eq!(v.request_id, "r-1");
        assert_eq!(v.timestamp, now());
    }

    #[test]
    fn tampering_and_staleness_are_refused() {
        let t = now().timestamp();
        let sig = sign(&secret(), t, "r-1", b"body");
        let ts = t.to_string();
        let wrong = |r: SignedRequest<'_>| verify(&r, &secret(), now()).unwrap_err();
        assert_eq!(
            wrong(req(&ts, "r-1", &sig, b"body!")),
            TriggerError::Unauthorized(AuthFailure::WrongSignature)
        );
        assert_eq!(
            wrong(req(&ts, "r-2", &sig, b"body")),
            TriggerError::Unauthorized(AuthFailure::WrongSignature)
        );
        let old = (t - 301).to_string();
        let old_sig = sign(&secret(), t - 301, "r-1", b"body");
        assert_eq!(
            wrong(req(&old, "r-1", &old_sig, b"body")),
            TriggerError::Unauthorized(AuthFailure::StaleTimestamp)
        );
        let other = sign(&SecretString::from("other".to_string()), t, "r-1", b"body");
        assert_eq!(
            wrong(req(&ts, "r-1", &other, b"body")),
            TriggerError::Unauthorized(AuthFailure::WrongSignature)
        );
        assert_eq!(
            wrong(req(&ts, "r 1", &sig, b"body")),
            TriggerError::Unauthorized(AuthFailure::BadRequestId)
        );
        assert_eq!(
            wrong(req(&ts, "r-1", "md5=00", b"body")),
            TriggerError::Unauthorized(AuthFailure::BadSignatureFormat)
        );
        let missing = SignedRequest {
            signature: None,
            ..req(&ts, "r-1", &sig, b"body")
        };
        assert_eq!(
            wrong(missing),
            TriggerError::Unauthorized(AuthFailure::MissingHeader)
        );
        // What the caller sees says nothing about which check failed.
        assert_eq!(
            TriggerError::Unauthorized(AuthFailure::StaleTimestamp).to_string(),
            "unauthorized"
        );
    }
}
