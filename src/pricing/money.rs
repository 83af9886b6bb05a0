//! [`Money`]: an exact amount of US dollars, counted in pico-dollars.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

/// Pico-dollars in one dollar.
const PICOS_PER_USD: u128 = 1_000_000_000_000;

/// An exact, non-negative amount of US dollars held as whole pico-dollars (1e-12 USD).
///
/// One token at one micro-dollar per million tokens is exactly one pico-dollar, so every
/// cost in the price table is a whole number here and sums never round.
///
/// ```
/// use llm_gateway::pricing::Money;
///
/// let a = Money::from_picos(12_300_000_000); // 0.0123 USD
/// let total: Money = [a, a].into_iter().sum();
/// assert_eq!(total.to_string(), "0.0246");
/// ```
///
/// Addition with `+`, `+=` and `sum` saturates at [`Money::MAX`] (about 3.4e26 USD, far
/// beyond any real total) instead of panicking; use [`Money::checked_add`] to notice it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(u128);

// === impl Money ===

impl Money {
    /// Zero dollars.
    pub const ZERO: Money = Money(0);

    /// The largest amount that can be held.
    pub const MAX: Money = Money(u128::MAX);

    /// An amount of `picos` pico-dollars (1e-12 USD each).
    pub const fn from_picos(picos: u128) -> Money {
        Money(picos)
    }

    /// The amount in whole pico-dollars.
    pub const fn picos(self) -> u128 {
        self.0
    }

    /// Whether the amount is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The sum, or `None` if it would not fit.
    pub const fn checked_add(self, other: Money) -> Option<Money> {
        match self.0.checked_add(other.0) {
            Some(picos) => Some(Money(picos)),
            None => None,
        }
    }

    /// The sum, held at [`Money::MAX`] if it would not fit.
    pub const fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// The nearest `f64` to the exact amount in USD, for rendering at the edge only.
    ///
    /// Never add these up: sum [`Money`] values and convert the total.
    pub fn to_usd_f64(self) -> f64 {
        // Parsing the exact decimal text gives the correctly rounded f64 in one step.
        match self.to_string().parse::<f64>() {
            Ok(usd) => usd,
            // Unreachable for our own Display output; keep a close answer rather than panic.
            Err(_) => (self.0 / PICOS_PER_USD) as f64 + (self.0 % PICOS_PER_USD) as f64 / 1e12,
        }
    }
}

impl Add for Money {
    type Output = Money;

    fn add(self, other: Money) -> Money {
        self.saturating_add(other)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, other: Money) {
        *self = self.saturating_add(other);
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Money::saturating_add)
    }
}

impl<'a> Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Money {
        iter.copied().sum()
    }
}

/// Exact decimal USD with no trailing zeros: `0`, `0.0123`, `12.5`, `7`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / PICOS_PER_USD;
        let frac = self.0 % PICOS_PER_USD;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:012}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// Serializes a [`Money`] as a JSON number of USD through `f64` (the nearest double).
///
/// For the edge only (API answers, audit JSON): `#[serde(serialize_with = "serialize_usd")]`.
/// Precision past about 15 significant digits is lost in the output, never in the sums.
pub fn serialize_usd<S: serde::Serializer>(
    money: &Money,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(money.to_usd_f64())
}

/// Like [`serialize_usd`] for an optional amount: `None` (unpriced) becomes `null`, never `0`.
pub fn serialize_usd_opt<S: serde::Serializer>(
    money: &Option<Money>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match money {
        Some(money) => serializer.serialize_f64(money.to_usd_f64()),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_exact_and_trimmed() {
        assert_eq!(Money::ZERO.to_string(), "0");
        assert_eq!(Money::from_picos(12_300_000_000).to_string(), "0.0123");
        assert_eq!(Money::from_picos(12_500_000_000_000).to_string(), "12.5");
        assert_eq!(Money::from_picos(7_000_000_000_000).to_string(), "7");
        assert_eq!(Money::from_picos(1).to_string(), "0.000000000001");
        assert_eq!(
            Money::from_picos(1_000_000_000_001).to_string(),
            "1.000000000001"
        );
        assert_eq!(
            Money::MAX.to_string(),
            "340282366920938463463374607.431768211455"
        );
    }

    #[test]
    fn addition_is_exact_and_never_panics() {
        let a = Money::from_picos(1);
        let b = Money::from_picos(2);
        assert_eq!((a + b).picos(), 3);
        let mut c = a;
        c += b;
        assert_eq!(c, Money::from_picos(3));
        assert_eq!([a, b, c].iter().sum::<Money>(), Money::from_picos(6));
        assert_eq!(Money::MAX.checked_add(a), None);
        assert_eq!(Money::MAX + a, Money::MAX);
        assert_eq!(a.checked_add(b), Some(Money::from_picos(3)));
    }

    #[test]
    fn to_usd_f64_is_nearest_double() {
        assert_eq!(Money::from_picos(12_300_000_000).to_usd_f64(), 0.0123);
        assert_eq!(Money::from_picos(12_500_000_000_000).to_usd_f64(), 12.5);
        assert_eq!(Money::ZERO.to_usd_f64(), 0.0);
    }

    #[test]
    fn serialize_helpers_render_numbers_and_null() {
        #[derive(serde::Serialize)]
        struct Record {
            #[serde(serialize_with = "serialize_usd")]
            cost: Money,
            #[serde(serialize_with = "serialize_usd_opt")]
            priced: Option<Money>,
            #[serde(serialize_with = "serialize_usd_opt")]
            unpriced: Option<Money>,
        }
        let record = Record {
            cost: Money::from_picos(12_300_000_000),
            priced: Some(Money::ZERO),
            unpriced: None,
        };
        let json = serde_json::to_string(&record).expect("serializes");
        assert_eq!(json, r#"{"cost":0.0123,"priced":0.0,"unpriced":null}"#);
    }
}
