//! [`Rate`]: an exact price per million tokens, counted in micro-dollars.

use std::fmt;
use std::str::FromStr;

use super::Money;

/// Micro-dollars in one dollar.
const MICROS_PER_USD: u64 = 1_000_000;

/// An exact price in USD per million tokens, held as whole micro-dollars per million tokens.
///
/// `0.006` USD/Mtok is `6_000`, `18.75` is `18_750_000`. One token at one micro-dollar per
/// million tokens costs one pico-dollar, so [`Rate::cost_of`] is a single exact product.
/// Rates finer than 1e-6 USD/Mtok, negative, NaN or infinite are refused, never rounded.
///
/// ```
/// use llm_gateway::pricing::{Money, Rate};
///
/// let rate: Rate = "0.006".parse()?;
/// assert_eq!(rate.micros_per_mtok(), 6_000);
/// assert_eq!(rate.cost_of(1_000), Money::from_picos(6_000_000));
/// assert!(Rate::from_f64(1e-7).is_err());
/// # Ok::<(), llm_gateway::pricing::RateError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u64);

/// Why a number could not become a [`Rate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateError {
    /// Below zero: prices are never negative.
    Negative,
    /// NaN or infinite.
    NotFinite,
    /// Needs a digit finer than 1e-6 USD per million tokens.
    TooPrecise,
    /// Does not fit in `u64` micro-dollars per million tokens.
    TooLarge,
    /// Not a decimal number.
    Malformed,
}

// === impl Rate ===

impl Rate {
    /// Free: zero USD per million tokens.
    pub const ZERO: Rate = Rate(0);

    /// A rate of `micros` micro-dollars per million tokens.
    pub const fn from_micros_per_mtok(micros: u64) -> Rate {
        Rate(micros)
    }

    /// The rate in whole micro-dollars per million tokens.
    pub const fn micros_per_mtok(self) -> u64 {
        self.0
    }

    /// A rate of a whole number of USD per million tokens.
    pub fn from_usd_per_mtok(usd: u64) -> Result<Rate, RateError> {
        usd.checked_mul(MICROS_PER_USD)
            .map(Rate)
            .ok_or(RateError::TooLarge)
    }

    /// The exact cost of `tokens` tokens at this rate (tokens × micro$/Mtok = pico$).
    pub fn cost_of(self, tokens: u64) -> Money {
        // u64 × u64 always fits in u128.
        Money::from_picos(u128::from(tokens) * u128::from(self.0))
    }

    /// Parses decimal USD per million tokens such as `"18.75"`, `"0.006"`, `"3"` or `"3.75e0"`.
    ///
    /// Exact: the digits are read as an integer, never through a float.
    pub fn from_decimal_str(text: &str) -> Result<Rate, RateError> {
        let lower = text.to_ascii_lowercase();
        let unsigned = lower.strip_prefix('-').unwrap_or(&lower);
        if matches!(unsigned, "nan" | "inf" | "infinity") {
            return Err(RateError::NotFinite);
        }
        let negative = unsigned.len() != lower.len();
        let number = Decimal::parse(unsigned)?;
        let micros = number.to_micros()?;
        if negative && micros != 0 {
            return Err(RateError::Negative);
        }
        Ok(Rate(micros))
    }

    /// Converts an `f64` of USD per million tokens, refusing any value that is not exactly a
    /// whole number of micro-dollars per million tokens.
    ///
    /// The `f64` is read as its shortest round-trip decimal (what `{}` prints, which is the
    /// text a JSON or TOML number was written with), and that decimal must need at most six
    /// fractional digits: `0.165` is accepted, `1e-7` and `0.1 + 0.2` are refused.
    pub fn from_f64(usd_per_mtok: f64) -> Result<Rate, RateError> {
        if !usd_per_mtok.is_finite() {
            return Err(RateError::NotFinite);
        }
        if usd_per_mtok < 0.0 {
            return Err(RateError::Negative);
        }
        if usd_per_mtok == 0.0 {
            return Ok(Rate::ZERO);
        }
        // Rust's float Display is the shortest round-trip decimal and never uses exponents.
        Rate::from_decimal_str(&usd_per_mtok.to_string())
    }
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Rate, RateError> {
        Rate::from_decimal_str(text)
    }
}

/// Exact decimal USD per million tokens with no trailing zeros: `18.75`, `0.006`, `0`.
impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / MICROS_PER_USD;
        let frac = self.0 % MICROS_PER_USD;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:06}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// Reads a JSON or TOML number (or a decimal string, for exactness) of USD per million tokens.
impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Rate, D::Error> {
        deserializer.deserialize_any(RateVisitor)
    }
}

struct RateVisitor;

impl serde::de::Visitor<'_> for RateVisitor {
    type Value = Rate;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative price in USD per million tokens, at most 6 decimals")
    }

    fn visit_u64<E: serde::de::Error>(self, usd: u64) -> Result<Rate, E> {
        Rate::from_usd_per_mtok(usd).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, usd: i64) -> Result<Rate, E> {
        let usd = u64::try_from(usd).map_err(|_| E::custom(RateError::Negative))?;
        self.visit_u64(usd)
    }

    fn visit_f64<E: serde::de::Error>(self, usd: f64) -> Result<Rate, E> {
        Rate::from_f64(usd).map_err(E::custom)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Rate, E> {
        Rate::from_decimal_str(text).map_err(E::custom)
    }
}

// === impl RateError ===

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RateError::Negative => "price is negative",
            RateError::NotFinite => "price is not a finite number",
            RateError::TooPrecise => "price is finer than 0.000001 USD per million tokens",
            RateError::TooLarge => "price is too large",
            RateError::Malformed => "price is not a decimal number",
        })
    }
}

impl std::error::Error for RateError {}

// === impl Decimal ===

/// An unsigned decimal `digits × 10^exponent`, as written (no float in between).
struct Decimal {
    digits: String,
    exponent: Exponent,
}

/// A decimal exponent; absurd ones are kept as a direction only.
enum Exponent {
    Small(i64),
    HugePositive,
    HugeNegative,
}

impl Decimal {
    /// Parses `int[.frac][e[+-]exp]` with at least one digit on each side of a `.`.
    fn parse(text: &str) -> Result<Decimal, RateError> {
        let (mantissa, exp_text) = match text.find('e') {
            Some(at) => (&text[..at], Some(&text[at + 1..])),
            None => (text, None),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
            None => (mantissa, ""),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_part) || (mantissa.contains('.') && !all_digits(frac_part)) {
            return Err(RateError::Malformed);
        }
        let written = match exp_text {
            None => Exponent::Small(0),
            Some(exp) => {
                let (negative, magnitude) = match exp.as_bytes().first() {
                    Some(b'-') => (true, &exp[1..]),
                    Some(b'+') => (false, &exp[1..]),
                    _ => (false, exp),
                };
                if !all_digits(magnitude) {
                    return Err(RateError::Malformed);
                }
                // More than six digits cannot be a sane exponent: keep its direction only.
                let magnitude = magnitude.trim_start_matches('0');
                if magnitude.len() > 6 {
                    if negative {
                        Exponent::HugeNegative
                    } else {
                        Exponent::HugePositive
                    }
                } else {
                    let m: i64 = magnitude.parse().unwrap_or(0); // "" (all zeros) is 0
                    Exponent::Small(if negative { -m } else { m })
                }
            }
        };
        // Fold the fractional digits into the exponent: 18.75 = 1875 × 10^-2.
        let frac_len = i64::try_from(frac_part.len()).map_err(|_| RateError::Malformed)?;
        let exponent = match written {
            Exponent::Small(e) => Exponent::Small(e.saturating_sub(frac_len)),
            other => other,
        };
        Ok(Decimal {
            digits: format!("{int_part}{frac_part}"),
            exponent,
        })
    }

    /// The value in millionths, if it is a whole number of them that fits in `u64`.
    fn to_micros(&self) -> Result<u64, RateError> {
        let significant = self.digits.trim_start_matches('0');
        let trimmed = significant.trim_end_matches('0');
        if trimmed.is_empty() {
            return Ok(0);
        }
        let trailing_zeros = i64::try_from(significant.len() - trimmed.len()).unwrap_or(i64::MAX);
        let scale = match self.exponent {
            Exponent::Small(e) => e.saturating_add(6).saturating_add(trailing_zeros),
            Exponent::HugePositive => return Err(RateError::TooLarge),
            Exponent::HugeNegative => return Err(RateError::TooPrecise),
        };
        if scale < 0 {
            return Err(RateError::TooPrecise);
        }
        let base: u64 = trimmed.parse().map_err(|_| RateError::TooLarge)?;
        let power = u32::try_from(scale).map_err(|_| RateError::TooLarge)?;
        10u64
            .checked_pow(power)
            .and_then(|p| base.checked_mul(p))
            .ok_or(RateError::TooLarge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> Result<u64, RateError> {
        Rate::from_decimal_str(text).map(Rate::micros_per_mtok)
    }

    #[test]
    fn decimal_strings_parse_exactly() {
        assert_eq!(micros("0.006"), Ok(6_000));
        assert_eq!(micros("0.165"), Ok(165_000));
        assert_eq!(micros("18.75"), Ok(18_750_000));
        assert_eq!(micros("0.125"), Ok(125_000));
        assert_eq!(micros("3"), Ok(3_000_000));
        assert_eq!(micros("3.000000000"), Ok(3_000_000));
        assert_eq!(micros("0.000001"), Ok(1));
        assert_eq!(micros("007.5"), Ok(7_500_000));
        assert_eq!(micros("1.5e1"), Ok(15_000_000));
        assert_eq!(micros("3E-7"), Err(RateError::TooPrecise));
        assert_eq!(micros("3e-6"), Ok(3));
        assert_eq!(micros("0e-999999999999"), Ok(0));
        assert_eq!(micros("-0"), Ok(0));
    }

    #[test]
    fn bad_strings_are_refused() {
        assert_eq!(micros("0.0000001"), Err(RateError::TooPrecise));
        assert_eq!(micros("1e-999999999999"), Err(RateError::TooPrecise));
        assert_eq!(micros("-0.5"), Err(RateError::Negative));
        assert_eq!(micros("NaN"), Err(RateError::NotFinite));
        assert_eq!(micros("-inf"), Err(RateError::NotFinite));
        assert_eq!(micros("18446744073709.551616"), Err(RateError::TooLarge));
        assert_eq!(micros("18446744073709.551615"), Ok(u64::MAX));
        assert_eq!(micros("1e999999999999"), Err(RateError::TooLarge));
        assert_eq!(micros("1e30"), Err(RateError::TooLarge));
        for bad in [
            "", ".", "1.", ".5", "+1", "--1", "1e", "1e+", "0x10", "1,5", " 1", "abc",
        ] {
            assert_eq!(micros(bad), Err(RateError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn floats_convert_only_when_exact_at_micro_resolution() {
        let from = |x: f64| Rate::from_f64(x).map(Rate::micros_per_mtok);
        assert_eq!(from(0.006), Ok(6_000));
        assert_eq!(from(0.165), Ok(165_000));
        assert_eq!(from(18.75), Ok(18_750_000));
        assert_eq!(from(0.125), Ok(125_000));
        assert_eq!(from(0.028), Ok(28_000));
        assert_eq!(from(1.32), Ok(1_320_000));
        assert_eq!(from(0.0), Ok(0));
        assert_eq!(from(-0.0), Ok(0));
        assert_eq!(from(1e-7), Err(RateError::TooPrecise));
        assert_eq!(from(0.1 + 0.2), Err(RateError::TooPrecise));
        assert_eq!(from(-1.0), Err(RateError::Negative));
        assert_eq!(from(f64::NAN), Err(RateError::NotFinite));
        assert_eq!(from(f64::INFINITY), Err(RateError::NotFinite));
        assert_eq!(from(1e300), Err(RateError::TooLarge));
    }

    #[test]
    fn deserializes_from_json_numbers_and_strings() {
        let parse = |json: &str| serde_json::from_str::<Rate>(json).map(Rate::micros_per_mtok);
        assert_eq!(parse("0.006").ok(), Some(6_000));
        assert_eq!(parse("2").ok(), Some(2_000_000));
        assert_eq!(parse("\"0.30\"").ok(), Some(300_000));
        assert!(parse("1e-7").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("-0.5").is_err());
        assert!(parse("null").is_err());
        assert!(parse("true").is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in ["18.75", "0.006", "0", "3", "0.000001", "1.32"] {
            let rate: Rate = text.parse().expect("valid");
            assert_eq!(rate.to_string(), text);
        }
    }

    #[test]
    fn cost_is_tokens_times_micros_in_picos() {
        let rate = Rate::from_micros_per_mtok(18_750_000);
        assert_eq!(rate.cost_of(3), Money::from_picos(56_250_000));
        assert_eq!(
            Rate::from_micros_per_mtok(u64::MAX).cost_of(u64::MAX),
            Money::from_picos(u128::from(u64::MAX) * u128::from(u64::MAX))
        );
    }
}
