//! Exact USD amounts from decimal text: a budget of `50.0` in the config or `"12.5"` in
//! the API becomes [`Money`] without passing through float arithmetic.

use crate::pricing::Money;

/// Pico-dollars in one dollar.
const PICOS_PER_USD: u128 = 1_000_000_000_000;

/// Parse decimal USD (`"50"`, `"12.5"`, `"0.000001"`) into exact [`Money`].
///
/// The text is read digit by digit; at most 12 fractional digits (one pico-dollar).
/// Negative, NaN, infinite and malformed amounts are refused with a sentence saying why.
///
/// ```
/// use llm_gateway::keys::parse_usd;
/// assert_eq!(parse_usd("12.5").unwrap().to_string(), "12.5");
/// assert!(parse_usd("-1").is_err());
/// ```
pub fn parse_usd(text: &str) -> Result<Money, String> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let unsigned = lower.strip_prefix('+').unwrap_or(&lower);
    if matches!(unsigned.trim_start_matches('-'), "nan" | "inf" | "infinity") {
        return Err("must be a finite number".to_owned());
    }
    if let Some(magnitude) = unsigned.strip_prefix('-') {
        if parse_unsigned(magnitude).is_ok_and(|money| money.is_zero()) {
            return Ok(Money::ZERO);
        }
        return Err("must not be negative".to_owned());
    }
    parse_unsigned(unsigned)
}

/// Parse the exact decimal text of `usd` (its shortest round-trip form, which is the text
/// a TOML or JSON number was written with).
pub fn usd_from_f64(usd: f64) -> Result<Money, String> {
    if !usd.is_finite() {
        return Err("must be a finite number".to_owned());
    }
    if usd < 0.0 {
        return Err("must not be negative".to_owned());
    }
    // Rust's float Display is the shortest round-trip decimal and never uses exponents.
    parse_usd(&usd.to_string())
}

fn parse_unsigned(text: &str) -> Result<Money, String> {
    let malformed = || format!("{text:?} is not a decimal amount of USD");
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(frac) {
        return Err(malformed());
    }
    if text.contains('.') && frac.is_empty() {
        return Err(malformed());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 12 {
        return Err("is finer than 0.000000000001 USD".to_owned());
    }
    let too_large = || "is too large".to_owned();
    let whole: u128 = whole.trim_start_matches('0').parse().or_else(|_| {
        if whole.trim_start_matches('0').is_empty() {
            Ok(0)
        } else {
            Err(too_large())
        }
    })?;
    let frac_picos: u128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<12}").parse().map_err(|_| malformed())?
    };
    whole
        .checked_mul(PICOS_PER_USD)
        .and_then(|picos| picos.checked_add(frac_picos))
        .map(Money::from_picos)
        .ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_is_exact() {
        assert_eq!(
            parse_usd("50").unwrap(),
            Money::from_picos(50 * PICOS_PER_USD)
        );
        assert_eq!(
            parse_usd("0.1").unwrap(),
            Money::from_picos(100_000_000_000)
        );
        assert_eq!(parse_usd("0.000000000001").unwrap(), Money::from_picos(1));
        assert_eq!(parse_usd("12.50").unwrap().to_string(), "12.5");
        assert_eq!(parse_usd("-0").unwrap(), Money::ZERO);
        assert_eq!(
            usd_from_f64(0.1).unwrap(),
            Money::from_picos(100_000_000_000)
        );
        assert_eq!(usd_from_f64(500.0).unwrap().to_string(), "500");
    }

    #[test]
    fn bad_amounts_say_why() {
        assert!(parse_usd("-1").unwrap_err().contains("negative"));
        assert!(parse_usd("NaN").unwrap_err().contains("finite"));
        assert!(usd_from_f64(f64::NAN).unwrap_err().contains("finite"));
        assert!(usd_from_f64(-0.5).unwrap_err().contains("negative"));
        assert!(parse_usd("0.0000000000001").unwrap_err().contains("finer"));
        assert!(parse_usd("1e3").unwrap_err().contains("decimal"));
        assert!(parse_usd("").unwrap_err().contains("decimal"));
        assert!(parse_usd("1.").unwrap_err().contains("decimal"));
        assert!(parse_usd(&"9".repeat(40)).unwrap_err().contains("large"));
    }
}
