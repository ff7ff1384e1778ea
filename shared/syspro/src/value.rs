//! Row normalisation: whatever the read path, a row becomes a JSON object with numbers as
//! numbers, business dates as `YYYY-MM-DD` (the date part as written, never shifted through
//! UTC; `0000-00-00` → null), strings raw (padding and case kept — the engine trims key
//! identities) and the `TimeStamp` rowversion as a u64 (big-endian bytes).

use base64::Engine;
use mlc_core::invoice::parse_business_date;
use serde_json::{json, Value};

use crate::metadata::PropKind;

/// A number from its decimal text, exactly as written (`1234.50`, `0.333333`, 18-digit
/// quantities): never through `f64`. Not a number: `None`.
pub fn num_text(text: &str) -> Option<Value> {
    let t = text.trim();
    let d = mlc_core::money::parse(t).ok()?;
    // Normalised (`+1.0` and ` 1.00` alike), then as a JSON number with that exact text.
    Some(mlc_core::money::to_json(d))
}

/// A business date string → `YYYY-MM-DD`, or null when empty / `0000-00-00`.
pub fn date(s: &str) -> Value {
    match parse_business_date(s) {
        // Already in that form (the usual case): copied, not formatted again.
        Some(_) if s.trim_start().as_bytes().get(..10).is_some_and(canonical) => {
            Value::String(s.trim_start()[..10].to_string())
        }
        Some(d) => Value::String(d.format("%Y-%m-%d").to_string()),
        None => Value::Null,
    }
}

/// `YYYY-MM-DD` in ASCII digits.
fn canonical(b: &[u8]) -> bool {
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// A rowversion from OData's base64 (url-safe or standard, padding optional) → u64.
pub fn row_version_b64(s: &str) -> Option<u64> {
    use base64::engine::general_purpose::{GeneralPurpose, NO_PAD};
    // Read on every row: decoded into a stack buffer with the alphabet the text uses.
    const URL: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, NO_PAD);
    const STD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, NO_PAD);
    let clean = s.trim().trim_end_matches('=');
    if clean.contains(['-', '_']) && clean.contains(['+', '/']) {
        // Both alphabets in one value: read as one, as servers that mix them mean.
        let unified: String = clean
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        let bytes = URL.decode(unified.as_bytes()).ok()?;
        return be_u64(&bytes);
    }
    let engine = if clean.contains(['+', '/']) {
        &STD
    } else {
        &URL
    };
    let mut buf = [0u8; 64];
    let n = engine.decode_slice(clean.as_bytes(), &mut buf).ok()?;
    be_u64(&buf[..n])
}

/// A rowversion as e.net prints it: hex (optionally `0x`), or decimal.
pub fn row_version_text(s: &str) -> Option<u64> {
    let t = s.trim();
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok();
    }
    if t.len() == 16 {
        return u64::from_str_radix(t, 16).ok();
    }
    t.parse().ok()
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Normalises one OData JSON value given the property's kind from `$metadata` (`None` when
/// the property is not described: then only `TimeStamp` is special).
pub fn odata_value(name: &str, kind: Option<PropKind>, v: Value) -> Value {
    let kind = kind.or((name == "TimeStamp").then_some(PropKind::Binary));
    match (kind, v) {
        (_, Value::Null) => Value::Null,
        (Some(PropKind::Binary), Value::String(s)) => row_version_b64(&s)
            .map(|n| json!(n))
            .unwrap_or(Value::String(s)),
        (Some(PropKind::Date), Value::String(s)) => date(&s),
        // IEEE754Compatible servers send decimals as strings.
        (Some(PropKind::Number), Value::String(s)) => num_text(&s).unwrap_or(Value::String(s)),
        (_, v) => v,
    }
}

/// The kind of a column read through e.net, where the wire carries no types: `TimeStamp`,
/// columns named like dates, and the known decimal columns of the SYSPRO tables we read.
pub fn enet_kind(name: &str) -> Option<PropKind> {
    const NUMBERS: &[&str] = &[
        "CreditLimit",
        "HighestBalance",
        "OutstOrdVal",
        "CurrencyValue",
        "InvoiceBal1",
        "InvoiceBal2",
        "InvoiceBal3",
        "TaxPortion",
        "DiscBal",
        "EntryNumber",
        "TrnValue",
        "DiscValue",
        "PostValue",
        "Journal",
        "CurrentBalance",
        "OrigInvValue",
        "MthInvBal1",
        "MthInvBal2",
        "MthInvBal3",
        "Line",
        "MOrderQty",
        "MReceivedQty",
        "MPrice",
        "JournalEntry",
        "OrigGrnValue",
        "QtyReceived",
        "PurchaseOrderLin",
        "DueDays",
    ];
    if name.eq_ignore_ascii_case("TimeStamp") {
        Some(PropKind::Binary)
    } else if NUMBERS.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        Some(PropKind::Number)
    } else if name.contains("Date") {
        Some(PropKind::Date)
    } else {
        None
    }
}

/// Normalises one e.net text value. Numbers are right-aligned with blanks; an unknown column
/// whose text is blank-padded on the left and parses as a number is taken as a number (SYSPRO
/// left-pads only numbers); everything else stays raw text.
pub fn enet_value(name: &str, text: &str) -> Value {
    match enet_kind(name) {
        Some(PropKind::Binary) => row_version_text(text)
            .map(|n| json!(n))
            .unwrap_or_else(|| Value::String(text.to_string())),
        Some(PropKind::Date) if text.trim().is_empty() || looks_like_date(text) => date(text),
        Some(PropKind::Number) => match num_text(text) {
            Some(n) => n,
            None if text.trim().is_empty() => Value::Null,
            None => Value::String(text.to_string()),
        },
        _ if text.starts_with(' ') && !text.trim().is_empty() => {
            num_text(text).unwrap_or_else(|| Value::String(text.to_string()))
        }
        _ => Value::String(text.to_string()),
    }
}

fn looks_like_date(s: &str) -> bool {
    let b = s.trim().as_bytes();
    b.len() >= 10 && b[4] == b'-' && b[7] == b'-' && b[..4].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decimals keep every digit SYSPRO sent: 18-digit quantities and 5-decimal prices never
    /// pass through `f64`.
    #[test]
    fn decimals_are_exact() {
        for (text, want) in [
            ("  123456789012.123456", "123456789012.123456"),
            ("0.333333", "0.333333"),
            ("12.34567", "12.34567"),
            ("1000.10", "1000.1"),
            ("-0.01", "-0.01"),
        ] {
            let v = enet_value("MOrderQty", text);
            assert_eq!(v.to_string(), want, "{text:?}");
            let v = odata_value("MOrderQty", Some(PropKind::Number), json!(text));
            assert_eq!(v.to_string(), want, "{text:?}");
        }
        // An OData JSON number is kept as the server wrote it.
        let body = r#"{"q": 123456789012.123456}"#;
        let parsed: Value = serde_json::from_str(body).expect("json");
        assert_eq!(parsed["q"].to_string(), "123456789012.123456");
    }

    #[test]
    fn odata_values() {
        // OData JSON as SYSPRO sends it: DateTimeOffset with the server's offset, base64
        // rowversion (8 bytes, big-endian).
        assert_eq!(
            odata_value(
                "InvoiceDate",
                Some(PropKind::Date),
                json!("2026-11-24T00:00:00+02:00")
            ),
            json!("2026-11-24")
        );
        assert_eq!(
            odata_value("InvoiceDate", Some(PropKind::Date), json!("0000-00-00")),
            Value::Null
        );
        assert_eq!(
            odata_value("TimeStamp", Some(PropKind::Binary), json!("AAAAAAAAB9E=")),
            json!(2001)
        );
        assert_eq!(
            odata_value("TimeStamp", None, json!("AAAAAAAAB9E")),
            json!(2001)
        );
        assert_eq!(
            odata_value("InvoiceBal1", Some(PropKind::Number), json!("12.50")),
            json!(12.5)
        );
        assert_eq!(
            odata_value("Customer", Some(PropKind::Text), json!("0000012 ")),
            json!("0000012 ")
        );
    }

    #[test]
    fn enet_values() {
        // e.net output as recorded (wildland/syspro-ruby cassettes): right-aligned numbers,
        // 0000-00-00 for no date.
        assert_eq!(enet_value("InvoiceBal1", "        1234.50"), json!(1234.5));
        assert_eq!(enet_value("Mass", "     2.2046"), json!(2.2046));
        assert_eq!(enet_value("DateLastSale", "0000-00-00"), Value::Null);
        assert_eq!(enet_value("InvoiceDate", "2026-11-24"), json!("2026-11-24"));
        assert_eq!(enet_value("Customer", "0000012 "), json!("0000012 "));
        assert_eq!(enet_value("TimeStamp", "00000000000007D1"), json!(2001));
        assert_eq!(enet_value("Name", ""), json!(""));
    }

    #[test]
    fn row_versions_decode_from_either_alphabet() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        for v in [0u64, 1, 2001, 0x00FF_FE3F_0000_FBFF, u64::MAX] {
            let bytes = v.to_be_bytes();
            assert_eq!(row_version_b64(&STANDARD.encode(bytes)), Some(v), "{v}");
            assert_eq!(
                row_version_b64(&URL_SAFE_NO_PAD.encode(bytes)),
                Some(v),
                "{v}"
            );
            assert_eq!(
                row_version_b64(&format!(" {} ", STANDARD.encode(bytes))),
                Some(v)
            );
        }
        // SQL Server's 8-byte rowversion 0x00000000000007D1, as OData sends it.
        assert_eq!(row_version_b64("AAAAAAAAB9E="), Some(2001));
        // Both alphabets in one value are read as one.
        assert_eq!(
            row_version_b64("//-_"),
            URL_SAFE_NO_PAD.decode("__-_").ok().and_then(|b| be_u64(&b))
        );
        assert_eq!(row_version_b64("not base64!"), None);
        // Longer than a u64.
        assert_eq!(row_version_b64(&STANDARD.encode([1u8; 9])), None);
        assert_eq!(row_version_b64(&STANDARD.encode([1u8; 100])), None);
    }
}
