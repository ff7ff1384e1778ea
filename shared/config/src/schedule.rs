//! Poll schedules: `5m`, `15m`, `1h`, `1d`, between one minute and seven days.

use std::time::Duration;

const MIN: u64 = 60;
const MAX: u64 = 7 * 86_400;

/// Parses a schedule (`<n>m`, `<n>h` or `<n>d`) into its period; refuses anything outside
/// 1m..=7d (EventBridge's floor is one minute; a poll less than weekly is not a sync).
pub fn schedule_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("schedule {s:?} is not a period like 5m, 15m, 1h or 1d");
    let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (n, unit) = t.split_at(digits);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3_600),
        "d" => n.checked_mul(86_400),
        _ => return Err(bad()),
    }
    .ok_or_else(bad)?;
    if !(MIN..=MAX).contains(&secs) {
        return Err(format!("schedule {s:?} is outside 1m..7d"));
    }
    Ok(Duration::from_secs(secs))
}

/// The EventBridge rate expression of a schedule: `15m` → `rate(15 minutes)`, `1h` →
/// `rate(1 hour)`, `2d` → `rate(2 days)`, `90m` → `rate(90 minutes)`. Meant for validated
/// schedules (every `FlowConfig` from [`crate::load`] is); anything else gives the default
/// schedule's `rate(15 minutes)`.
pub fn eventbridge_rate(s: &str) -> String {
    let minutes = schedule_duration(s).map(|d| d.as_secs() / 60).unwrap_or(15);
    let (n, unit) = if minutes % 1_440 == 0 {
        (minutes / 1_440, "day")
    } else if minutes % 60 == 0 {
        (minutes / 60, "hour")
    } else {
        (minutes, "minute")
    };
    if n == 1 {
        format!("rate(1 {unit})")
    } else {
        format!("rate({n} {unit}s)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_within_bounds() {
        assert_eq!(schedule_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(schedule_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            schedule_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(schedule_duration("1m").unwrap(), Duration::from_secs(60));
        for bad in [
            "0m",
            "8d",
            "15",
            "m",
            "",
            "1.5h",
            "-5m",
            "5 m",
            "5M",
            "10s",
            "99999999999999999999d",
        ] {
            assert!(schedule_duration(bad).is_err(), "{bad}");
        }
        assert!(schedule_duration("8d")
            .unwrap_err()
            .contains("outside 1m..7d"));
    }

    #[test]
    fn rates_use_eventbridge_units() {
        assert_eq!(eventbridge_rate("15m"), "rate(15 minutes)");
        assert_eq!(eventbridge_rate("1m"), "rate(1 minute)");
        assert_eq!(eventbridge_rate("60m"), "rate(1 hour)");
        assert_eq!(eventbridge_rate("2h"), "rate(2 hours)");
        assert_eq!(eventbridge_rate("1d"), "rate(1 day)");
        assert_eq!(eventbridge_rate("48h"), "rate(2 days)");
        assert_eq!(eventbridge_rate("90m"), "rate(90 minutes)");
    }
}
