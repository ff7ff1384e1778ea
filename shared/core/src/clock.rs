//! The one clock. Everything that depends on today's date (overdue, aging) reads it, so tests and
//! operators can pin it (`--today`, `ML_CONNECTOR_TODAY`) and every run is reproducible.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// A source of "now".
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current UTC instant.
    fn now(&self) -> DateTime<Utc>;

    /// Today's date in the company's time zone: at 23:00 in Sydney the UTC date is still
    /// yesterday, and the business date is what overdue means.
    fn today(&self, tz: Tz) -> NaiveDate {
        tz.from_utc_datetime(&self.now().naive_utc()).date_naive()
    }
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock pinned to a business date, with the time of day still moving (so leases and
/// timestamps keep working), or fully fixed for unit tests.
#[derive(Debug, Clone)]
pub struct FixedClock {
    today: Option<NaiveDate>,
    now: Option<DateTime<Utc>>,
}

impl FixedClock {
    /// Pins "today" for every time zone; `now()` still follows the machine.
    pub fn today(date: NaiveDate) -> Self {
        FixedClock {
            today: Some(date),
            now: None,
        }
    }

    /// Pins the instant itself.
    pub fn at(now: DateTime<Utc>) -> Self {
        FixedClock {
            today: None,
            now: Some(now),
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }

    fn today(&self, tz: Tz) -> NaiveDate {
        match self.today {
            Some(d) => d,
            None => tz.from_utc_datetime(&self.now().naive_utc()).date_naive(),
        }
    }
}

/// Parses a `--today` value (`YYYY-MM-DD`).
pub fn parse_today(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| format!("--today {s:?}: expected YYYY-MM-DD ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn today_follows_company_time_zone() {
        let c = FixedClock::at(Utc.with_ymd_and_hms(2026, 11, 23, 13, 0, 0).unwrap());
        let sydney: Tz = "Australia/Sydney".parse().unwrap();
        assert_eq!(
            c.today(sydney),
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
        );
        assert_eq!(
            c.today(chrono_tz::UTC),
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
        );
    }
}
