//! The calendar without re-reading SYSPRO: an open invoice's status and aging bucket move
//! with the business date alone. Each sent mark keeps the due date of such a record; on a new
//! business date the poll re-reads, by key, exactly the records whose visible status or bucket
//! moved between the last business date and today, whatever the change detection.

use chrono::NaiveDate;
use mlc_core::entity::derived;
use mlc_core::invoice::{aging_bucket, parse_business_date, status, DocumentKind, InvoiceStatus};
use mlc_core::money::Decimal;
use mlc_core::view::DestinationView;
use mlc_core::Record;
use serde_json::Value;

/// True when the destination reads a field the calendar moves.
pub fn visible(view: &DestinationView) -> bool {
    view.fields.contains(derived::STATUS) || view.fields.contains(derived::AGING)
}

/// The due date to keep with a record's sent mark: set for an open record whose derived status
/// is open or overdue (read after derivation, before the record is projected).
pub fn due_to_keep(record: &Record, open: bool) -> Option<NaiveDate> {
    if !open {
        return None;
    }
    match record.get(derived::STATUS).and_then(Value::as_str) {
        Some("open" | "overdue") => record
            .get(derived::DUE_DATE)
            .and_then(Value::as_str)
            .and_then(parse_business_date),
        _ => None,
    }
}

/// True when a record due on `due` shows another status or aging bucket on `to` than on
/// `from`. Computed as for a debit with a balance: for a credit note it may say "moved" where
/// nothing visible moves, which costs one read by key and no write (the hash decides).
pub fn moved(due: NaiveDate, from: NaiveDate, to: NaiveDate) -> bool {
    class(due, from) != class(due, to)
}

fn class(due: NaiveDate, day: NaiveDate) -> (InvoiceStatus, &'static str) {
    let st = status(Decimal::ONE, Some(due), day, DocumentKind::Debit);
    (st, aging_bucket(st, Some(due), day))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn status_and_bucket_boundaries_move_records() {
        let due = d("2026-11-30");
        // Due date itself: still open; the day after: overdue.
        assert!(!moved(due, d("2026-11-29"), d("2026-11-30")));
        assert!(moved(due, d("2026-11-30"), d("2026-12-01")));
        // Within 1-30 nothing moves; day 31 enters 31-60.
        assert!(!moved(due, d("2026-12-01"), d("2026-12-30")));
        assert!(moved(due, d("2026-12-30"), d("2026-12-31")));
        // A long gap across several boundaries is one move.
        assert!(moved(due, d("2026-11-01"), d("2027-06-01")));
        assert!(!moved(due, d("2027-06-01"), d("2027-07-01")));
    }
}
