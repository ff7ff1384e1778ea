//! Money and quantities as decimals, never binary floating point: parsed from the text SYSPRO
//! sends (JSON numbers or space-padded XML text), rounded half-up where a rule says so, and
//! written back as exact decimal text.

use std::str::FromStr;

pub use rust_decimal::Decimal;
use rust_decimal::RoundingStrategy;
use serde_json::Value;

/// A value as a decimal: `None` for null, missing or blank; an error names the text.
pub fn decimal(v: Option<&Value>) -> Result<Option<Decimal>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => parse(&n.to_string()).map(Some),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse(s.trim()).map(Some),
        Some(other) => Err(format!("{other} is not a number")),
    }
}

/// Decimal text (`12.50`, `-3`, `  2.2046`, `1e-7`) → `Decimal`.
pub fn parse(s: &str) -> Result<Decimal, String> {
    let t = s.trim();
    Decimal::from_str(t)
        .or_else(|_| Decimal::from_scientific(t))
        .map_err(|_| format!("{s:?} is not a number"))
}

/// Rounded half-up (away from zero on a tie) to `places` decimals, as SYSPRO shows values.
pub fn round_half_up(d: Decimal, places: u32) -> Decimal {
    d.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero)
}

/// A decimal as a JSON number with exactly its decimal text (trailing zeros dropped).
pub fn to_json(d: Decimal) -> Value {
    let text = d.normalize().to_string();
    serde_json::Number::from_str(&text)
        .map(Value::Number)
        .unwrap_or(Value::String(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_padded_text_and_numbers() {
        assert_eq!(
            decimal(Some(&json!("     2.2046"))).unwrap(),
            Some(parse("2.2046").unwrap())
        );
        assert_eq!(decimal(Some(&json!(" "))).unwrap(), None);
        assert_eq!(decimal(None).unwrap(), None);
        assert_eq!(
            decimal(Some(&json!(1234567.89))).unwrap(),
            Some(parse("1234567.89").unwrap())
        );
        assert!(decimal(Some(&json!("12,50")))
            .unwrap_err()
            .contains("12,50"));
    }

    #[test]
    fn rounds_half_up_to_cents() {
        assert_eq!(
            round_half_up(parse("2.345").unwrap(), 2),
            parse("2.35").unwrap()
        );
        assert_eq!(
            round_half_up(parse("-2.345").unwrap(), 2),
            parse("-2.35").unwrap()
        );
        assert_eq!(
            round_half_up(parse("2.3449").unwrap(), 2),
            parse("2.34").unwrap()
        );
    }

    #[test]
    fn sums_exactly() {
        // 0.1 + 0.2 in binary floating point is 0.30000000000000004.
        let s = parse("0.1").unwrap() + parse("0.2").unwrap();
        assert_eq!(to_json(s).to_string(), "0.3");
        assert_eq!(to_json(parse("12.50").unwrap()).to_string(), "12.5");
    }
}
