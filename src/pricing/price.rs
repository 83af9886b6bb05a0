//! [`ModelPrice`]: the rates of one model, with an optional long-context tier.

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::Rate;

/// The five rates of one price level, as written in the table; cache rates may be absent.
///
/// Absent rates are filled by [`RateCard::resolve`]; see the [module docs](super) for why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateCard {
    /// Uncached prompt tokens.
    pub input: Rate,
    /// Output tokens.
    pub output: Rate,
    /// Cache writes with the 5-minute TTL (and cache writes not attributed to a TTL).
    pub cache_write_5m: Option<Rate>,
    /// Cache writes with the 1-hour TTL.
    pub cache_write_1h: Option<Rate>,
    /// Cache reads (hits).
    pub cache_read: Option<Rate>,
}

/// Every rate of one price level, with nothing absent: what a request is billed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EffectiveRates {
    /// Uncached prompt tokens.
    pub input: Rate,
    /// Output tokens.
    pub output: Rate,
    /// Cache writes with the 5-minute TTL or no TTL attributed.
    pub cache_write_5m: Rate,
    /// Cache writes with the 1-hour TTL.
    pub cache_write_1h: Rate,
    /// Cache reads.
    pub cache_read: Rate,
}

/// A long-context price level: once a request's prompt exceeds `threshold_tokens`, every
/// token of it is billed at `prices`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriceTier {
    /// Prompt size (input + cache writes + cache reads) above which the tier applies:
    /// 200,000 for `above_200k_tokens`, 100,000 for `above_100k_tokens`.
    pub threshold_tokens: u64,
    /// The rates of the tier.
    pub prices: RateCard,
}

/// The price of one model in USD per million tokens.
///
/// Deserializes from a `pricing-reference.json` entry or a config `[pricing."model"]` table:
/// `input`, `output` (required), `cache_write_5m`, `cache_write_1h`, `cache_read` (optional,
/// `null` = absent), and at most one of `above_200k_tokens` / `above_100k_tokens` with the same
/// five fields. `provider_specific_entry`, `deprecation_date`, `note` and `from` are accepted
/// and not used; any other field is an error, so a typo is not silently unpriced.
///
/// ```
/// use llm_gateway::pricing::{ModelPrice, Rate};
///
/// let price: ModelPrice = serde_json::from_str(r#"{"input": 3.0, "output": 15.0, "cache_read": 0.3}"#)?;
/// assert_eq!(price.input, Rate::from_micros_per_mtok(3_000_000));
/// assert_eq!(price.cache_write_5m, None);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelPrice {
    /// Uncached prompt tokens.
    pub input: Rate,
    /// Output tokens, thinking included.
    pub output: Rate,
    /// Cache writes with the 5-minute TTL (and cache writes not attributed to a TTL).
    pub cache_write_5m: Option<Rate>,
    /// Cache writes with the 1-hour TTL.
    pub cache_write_1h: Option<Rate>,
    /// Cache reads.
    pub cache_read: Option<Rate>,
    /// The long-context tier, if the model has one.
    pub tier: Option<PriceTier>,
}

// === impl RateCard ===

impl RateCard {
    /// Fills absent rates: cache read and 5m write at the input rate, 1h write at the 5m rate.
    ///
    /// Never reaches into another level, so a request is billed at one level only.
    pub fn resolve(&self) -> EffectiveRates {
        let cache_write_5m = self.cache_write_5m.unwrap_or(self.input);
        EffectiveRates {
            input: self.input,
            output: self.output,
            cache_write_5m,
            cache_write_1h: self.cache_write_1h.unwrap_or(cache_write_5m),
            cache_read: self.cache_read.unwrap_or(self.input),
        }
    }
}

// === impl ModelPrice ===

impl ModelPrice {
    /// A price with input and output rates only, no cache rates and no tier.
    pub const fn flat(input: Rate, output: Rate) -> ModelPrice {
        ModelPrice {
            input,
            output,
            cache_write_5m: None,
            cache_write_1h: None,
            cache_read: None,
            tier: None,
        }
    }

    /// The base level's rates as written.
    pub const fn base(&self) -> RateCard {
        RateCard {
            input: self.input,
            output: self.output,
            cache_write_5m: self.cache_write_5m,
            cache_write_1h: self.cache_write_1h,
            cache_read: self.cache_read,
        }
    }

    /// The rates a request with `prompt_tokens` prompt tokens is billed at, and whether the
    /// long-context tier applies (strictly more than its threshold).
    pub fn rates_for_prompt(&self, prompt_tokens: u64) -> (EffectiveRates, bool) {
        match &self.tier {
            Some(tier) if prompt_tokens > tier.threshold_tokens => (tier.prices.resolve(), true),
            _ => (self.base().resolve(), false),
        }
    }
}

impl<'de> Deserialize<'de> for ModelPrice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ModelPrice, D::Error> {
        let raw = RawModelPrice::deserialize(deserializer)?;
        raw.into_price().map_err(serde::de::Error::custom)
    }
}

/// A table entry as written, before its tier is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModelPrice {
    input: Rate,
    output: Rate,
    cache_write_5m: Option<Rate>,
    cache_write_1h: Option<Rate>,
    cache_read: Option<Rate>,
    above_200k_tokens: Option<RateCard>,
    above_100k_tokens: Option<RateCard>,
    // Descriptive fields of pricing-reference.json; the multipliers need a request's
    // inference_geo/speed, which `Usage` does not carry.
    #[serde(rename = "provider_specific_entry")]
    _provider_specific_entry: Option<IgnoredAny>,
    #[serde(rename = "deprecation_date")]
    _deprecation_date: Option<IgnoredAny>,
    #[serde(rename = "note")]
    _note: Option<IgnoredAny>,
    #[serde(rename = "from")]
    _from: Option<IgnoredAny>,
}

impl RawModelPrice {
    fn into_price(self) -> Result<ModelPrice, &'static str> {
        let tier = match (self.above_200k_tokens, self.above_100k_tokens) {
            (Some(_), Some(_)) => {
                return Err("both above_200k_tokens and above_100k_tokens; one tier is supported")
            }
            (Some(prices), None) => Some(PriceTier {
                threshold_tokens: 200_000,
                prices,
            }),
            (None, Some(prices)) => Some(PriceTier {
                threshold_tokens: 100_000,
                prices,
            }),
            (None, None) => None,
        };
        Ok(ModelPrice {
            input: self.input,
            output: self.output,
            cache_write_5m: self.cache_write_5m,
            cache_write_1h: self.cache_write_1h,
            cache_read: self.cache_read,
            tier,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(micros: u64) -> Rate {
        Rate::from_micros_per_mtok(micros)
    }

    #[test]
    fn absent_cache_rates_fall_back_within_the_level() {
        // azure/gpt-4o shape: no cache writes, a cache-read rate.
        let card = RateCard {
            input: rate(2_500_000),
            output: rate(10_000_000),
            cache_write_5m: None,
            cache_write_1h: None,
            cache_read: Some(rate(1_250_000)),
        };
        let eff = card.resolve();
        assert_eq!(eff.cache_write_5m, rate(2_500_000));
        assert_eq!(eff.cache_write_1h, rate(2_500_000));
        assert_eq!(eff.cache_read, rate(1_250_000));

        // deepseek/deepseek-chat shape: an explicit zero 5m write, no 1h write.
        let card = RateCard {
            cache_write_5m: Some(Rate::ZERO),
            cache_read: None,
            ..card
        };
        let eff = card.resolve();
        assert_eq!(eff.cache_write_5m, Rate::ZERO);
        assert_eq!(eff.cache_write_1h, Rate::ZERO);
        assert_eq!(eff.cache_read, rate(2_500_000));
    }

    #[test]
    fn tier_applies_strictly_above_threshold() {
        let tier = RateCard {
            input: rate(6_000_000),
            output: rate(22_500_000),
            cache_write_5m: Some(rate(7_500_000)),
            cache_write_1h: None,
            cache_read: Some(rate(600_000)),
        };
        let price = ModelPrice {
            tier: Some(PriceTier {
                threshold_tokens: 200_000,
                prices: tier,
            }),
            ..ModelPrice::flat(rate(3_000_000), rate(15_000_000))
        };
        let (base, applied) = price.rates_for_prompt(200_000);
        assert!(!applied);
        assert_eq!(base.input, rate(3_000_000));
        let (high, applied) = price.rates_for_prompt(200_001);
        assert!(applied);
        assert_eq!(high.input, rate(6_000_000));
        // The tier's absent 1h rate comes from the tier's 5m rate, not the base level.
        assert_eq!(high.cache_write_1h, rate(7_500_000));
    }

    #[test]
    fn deserializes_entries_and_refuses_bad_ones() {
        let price: ModelPrice = serde_json::from_str(
            r#"{"input": 0.1, "output": 0.5, "cache_write_5m": 0.125, "cache_write_1h": 0.2,
                "cache_read": 0.01, "note": "x", "from": "y", "deprecation_date": "2026-01-01",
                "provider_specific_entry": {"us": 1.1, "fast": 2},
                "above_100k_tokens": {"input": 0.5, "output": 2.5, "cache_write_5m": 0.625,
                                      "cache_write_1h": 1.0, "cache_read": 0.05}}"#,
        )
        .expect("valid entry");
        let tier = price.tier.expect("has a tier");
        assert_eq!(tier.threshold_tokens, 100_000);
        assert_eq!(tier.prices.cache_write_5m, Some(rate(625_000)));
        assert_eq!(price.cache_read, Some(rate(10_000)));

        let bad = [
            r#"{"input": 1.0}"#,
            r#"{"input": 1.0, "output": 2.0, "cache_reed": 0.1}"#,
            r#"{"input": -1.0, "output": 2.0}"#,
            r#"{"input": 1e-7, "output": 2.0}"#,
            r#"{"input": 1.0, "output": 2.0, "above_200k_tokens": {"input": 2.0, "output": 4.0},
                "above_100k_tokens": {"input": 2.0, "output": 4.0}}"#,
            r#"{"input": 1.0, "output": 2.0, "above_200k_tokens": {"input": 2.0}}"#,
        ];
        for json in bad {
            assert!(serde_json::from_str::<ModelPrice>(json).is_err(), "{json}");
        }
    }
}
