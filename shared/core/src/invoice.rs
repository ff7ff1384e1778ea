//! Invoice status, due date and aging: derived values that change with the calendar.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::money::{round_half_up, Decimal};

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

/// Which way a document's balance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// An invoice or debit note: the balance is owed to the company and falls due.
    Debit,
    /// A credit note: the company owes the balance; it never falls overdue.
    Credit,
}

impl DocumentKind {
    /// From SYSPRO's `DocumentType` (`C` is a credit note; `I`, `D`, blank … are debits).
    pub fn from_document_type(t: Option<&str>) -> Self {
        match t.map(str::trim) {
            Some("C") => DocumentKind::Credit,
            _ => DocumentKind::Debit,
        }
    }
}

/// Status from balance, due date and today. Balances are compared in cents, so sub-cent noise
/// never counts as open. Only a balance owed to the company can be overdue: a credit note, or
/// any document with a credit (negative) balance, stays open until it is settled.
pub fn status(
    balance: Decimal,
    due: Option<NaiveDate>,
    today: NaiveDate,
    kind: DocumentKind,
) -> InvoiceStatus {
    let cents = round_half_up(balance, 2);
    if cents.is_zero() {
        InvoiceStatus::Paid
    } else if kind == DocumentKind::Credit || cents.is_sign_negative() {
        InvoiceStatus::Open
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

    fn dec(s: &str) -> Decimal {
        crate::money::parse(s).unwrap()
    }

    #[test]
    fn status_and_aging() {
        let today = d("2026-11-24");
        let debit = DocumentKind::Debit;
        let st = |b: &str, due: &str, k| status(dec(b), Some(d(due)), today, k);
        assert_eq!(st("0", "2026-01-01", debit), InvoiceStatus::Paid);
        assert_eq!(st("0.004", "2026-01-01", debit), InvoiceStatus::Paid);
        assert_eq!(st("0.005", "2026-01-01", debit), InvoiceStatus::Overdue);
        assert_eq!(st("10", "2026-11-24", debit), InvoiceStatus::Open);
        assert_eq!(st("10", "2026-11-23", debit), InvoiceStatus::Overdue);
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
    fn credits_never_fall_overdue() {
        let today = d("2026-11-24");
        let long_ago = Some(d("2025-01-01"));
        let credit = DocumentKind::from_document_type(Some("C "));
        assert_eq!(credit, DocumentKind::Credit);
        assert_eq!(
            status(dec("-250.00"), long_ago, today, credit),
            InvoiceStatus::Open
        );
        assert_eq!(
            status(dec("0.00"), long_ago, today, credit),
            InvoiceStatus::Paid
        );
        // A credit balance on a debit document (an over-payment) is owed to the customer too.
        let debit = DocumentKind::from_document_type(Some("I"));
        assert_eq!(
            status(dec("-5"), long_ago, today, debit),
            InvoiceStatus::Open
        );
        assert_eq!(
            DocumentKind::from_document_type(Some("D")),
            DocumentKind::Debit
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
