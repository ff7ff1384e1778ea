//! Invoice status, due date and aging: derived values that change with the calendar.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

/// The status the destinations see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    /// Balance not zero, not yet due.
    Open,
    /// Balance not zero, due date before today.
    Overdue,
    /// Balance zero.
    Paid,
}

impl InvoiceStatus {
    /// `open`, `overdue`, `paid`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Open => "open",
            InvoiceStatus::Overdue => "overdue",
            InvoiceStatus::Paid => "paid",
        }
    }
}

/// Status from balance, due date and today. Balances are compared in cents so `0.001` noise
/// from decimal(14,2) columns read as floats never counts as open.
pub fn status(balance: f64, due: Option<NaiveDate>, today: NaiveDate) -> InvoiceStatus {
    if (balance * 100.0).round() == 0.0 {
        InvoiceStatus::Paid
    } else if due.is_some_and(|d| d < today) {
        InvoiceStatus::Overdue
    } else {
        InvoiceStatus::Open
    }
}

/// Aging bucket: `current`, `1-30`, `31-60`, `61-90`, `90+` days past due; paid invoices are
/// `current`.
pub fn aging_bucket(
    status: InvoiceStatus,
    due: Option<NaiveDate>,
    today: NaiveDate,
) -> &'static str {
    let Some(due) = due else { return "current" };
    if status == InvoiceStatus::Paid || due >= today {
        return "current";
    }
    match (today - due).num_days() {
        ..=30 => "1-30",
        31..=60 => "31-60",
        61..=90 => "61-90",
        _ => "90+",
    }
}

/// Due date from invoice date and terms (days). SYSPRO `ArInvoice` has no due date column;
/// `TblArTerms.DueDays` gives the days. Terms that use a fixed day of the month are a known
/// simplification (see the SYSPRO notes).
pub fn due_from_terms(invoice_date: NaiveDate, due_days: u32) -> NaiveDate {
    invoice_date
        .checked_add_days(Days::new(u64::from(due_days)))
        .unwrap_or(invoice_date)
}

/// Parses a SYSPRO business date: `YYYY-MM-DD`, `YYYY-MM-DDT00:00:00(+02:00|Z)`; the date part
/// is taken as written (never shifted through UTC). `0000-00-00` and empty mean no date.
pub fn parse_business_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if s.is_empty() || s.starts_with("0000-00-00") {
        return None;
    }
    let date_part = s.get(..10)?;
    // Every invoice row carries dates: the plain `YYYY-MM-DD` form is read without chrono's
    // format parser, anything else goes through it.
    ymd(date_part.as_bytes()).or_else(|| NaiveDate::parse_from_str(date_part, "%Y-%m-%d").ok())
}

/// Exactly `YYYY-MM-DD` (four, two and two ASCII digits): the date, if it exists.
fn ymd(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(
        i32::try_from(digits(0..4)?).ok()?,
        digits(5..7)?,
        digits(8..10)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn business_dates_parse_like_chrono() {
        for s in [
            "2026-11-24",
            "2026-11-24T00:00:00Z",
            " 2024-02-29 ",
            "0999-01-01",
            "2026-02-30",
            "2026-13-01",
            "2026-1-05xx",
            "26-11-2024",
            "2026/11/24",
            "",
            "0000-00-00",
        ] {
            let chrono = {
                let t = s.trim();
                if t.is_empty() || t.starts_with("0000-00-00") {
                    None
                } else {
                    t.get(..10)
                        .and_then(|p| NaiveDate::parse_from_str(p, "%Y-%m-%d").ok())
                }
            };
            assert_eq!(parse_business_date(s), chrono, "{s:?}");
        }
        assert_eq!(parse_business_date("2024-02-29"), Some(d("2024-02-29")));
    }

    #[test]
    fn status_and_aging() {
        let today = d("2026-11-24");
        assert_eq!(
            status(0.0, Some(d("2026-01-01")), today),
            InvoiceStatus::Paid
        );
        assert_eq!(
            status(0.004, Some(d("2026-01-01")), today),
            InvoiceStatus::Paid
        );
        assert_eq!(
            status(10.0, Some(d("2026-11-24")), today),
            InvoiceStatus::Open
        );
        assert_eq!(
            status(10.0, Some(d("2026-11-23")), today),
            InvoiceStatus::Overdue
        );
        assert_eq!(
            aging_bucket(InvoiceStatus::Overdue, Some(d("2026-11-23")), today),
            "1-30"
        );
        assert_eq!(
            aging_bucket(InvoiceStatus::Overdue, Some(d("2026-10-24")), today),
            "31-60"
        );
        assert_eq!(
            aging_bucket(InvoiceStatus::Overdue, Some(d("2026-08-01")), today),
            "90+"
        );
    }

    #[test]
    fn dates_taken_as_written() {
        assert_eq!(
            parse_business_date("2026-11-24T00:00:00+02:00"),
            Some(d("2026-11-24"))
        );
        assert_eq!(parse_business_date("0000-00-00"), None);
        assert_eq!(parse_business_date(" 2026-01-02 "), Some(d("2026-01-02")));
    }
}
