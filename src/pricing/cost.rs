//! [`cost`] and [`cost_breakdown`]: what one answer's [`Usage`] costs at a [`ModelPrice`].

use super::{ModelPrice, Money};
use crate::usage::Usage;

/// The token counts a request is billed for, read from a [`Usage`] (`None` counts as zero).
///
/// The cache-write total is `cache_creation_input_tokens`; when it is absent it is
/// `5m + 1h`, and when it is smaller than `5m + 1h` (inconsistent) the split wins. Whatever
/// the total has beyond the split is "unattributed" and billed at the 5m rate, as litellm does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BillableTokens {
    /// Uncached prompt tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Cache writes reported with the 5-minute TTL.
    pub cache_write_5m: u64,
    /// Cache writes reported with the 1-hour TTL.
    pub cache_write_1h: u64,
    /// Cache writes in the total but in neither TTL (billed at the 5m rate).
    pub cache_write_unattributed: u64,
    /// Cache reads.
    pub cache_read: u64,
}

/// What one answer costs, part by part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CostBreakdown {
    /// Uncached prompt tokens × input rate.
    pub input: Money,
    /// Output tokens × output rate.
    pub output: Money,
    /// (5m + unattributed cache writes) × 5m write rate.
    pub cache_write_5m: Money,
    /// 1h cache writes × 1h write rate.
    pub cache_write_1h: Money,
    /// Cache reads × cache-read rate.
    pub cache_read: Money,
    /// The sum of the five parts.
    pub total: Money,
    /// Whether the long-context tier priced every part.
    pub tier_applied: bool,
    /// The counts that were billed.
    pub tokens: BillableTokens,
}

// === impl BillableTokens ===

impl BillableTokens {
    /// The billed counts of `usage`.
    pub fn from_usage(usage: &Usage) -> BillableTokens {
        let cache_write_5m = usage.cache_write_5m_tokens.unwrap_or(0);
        let cache_write_1h = usage.cache_write_1h_tokens.unwrap_or(0);
        let split = cache_write_5m.saturating_add(cache_write_1h);
        let total = usage.cache_creation_input_tokens.unwrap_or(split);
        BillableTokens {
            input: usage.input_tokens.unwrap_or(0),
            output: usage.output_tokens.unwrap_or(0),
            cache_write_5m,
            cache_write_1h,
            cache_write_unattributed: total.saturating_sub(split),
            cache_read: usage.cache_read_input_tokens.unwrap_or(0),
        }
    }

    /// All cache writes: 5m + 1h + unattributed.
    pub fn cache_write_total(&self) -> u64 {
        self.cache_write_5m
            .saturating_add(self.cache_write_1h)
            .saturating_add(self.cache_write_unattributed)
    }

    /// The whole prompt: uncached input + cache writes + cache reads (decides the tier).
    pub fn prompt(&self) -> u64 {
        self.input
            .saturating_add(self.cache_write_total())
            .saturating_add(self.cache_read)
    }
}

/// The cost of `usage` at `price`; see [`cost_breakdown`].
///
/// ```
/// use llm_gateway::pricing::{cost, Money, PriceTable};
/// use llm_gateway::usage::Usage;
///
/// let table = PriceTable::builtin();
/// let price = table.lookup(None, "claude-haiku-4-5").expect("priced");
/// let usage = Usage { input_tokens: Some(1_000), output_tokens: Some(100), ..Usage::default() };
/// // tokens × micro$/Mtok = pico$: 1_000 × 1_000_000 + 100 × 5_000_000 = 0.0015 USD.
/// assert_eq!(cost(price, &usage), Money::from_picos(1_500_000_000));
/// ```
pub fn cost(price: &ModelPrice, usage: &Usage) -> Money {
    cost_breakdown(price, usage).total
}

/// The cost of `usage` at `price`, part by part.
///
/// `input×in + (5m + unattributed)×w5m + 1h×w1h + read×r + output×out`, every product exact
/// in pico-dollars. When the price has a tier and the prompt (input + cache writes + cache
/// reads) is strictly above its threshold, every rate is the tier's.
pub fn cost_breakdown(price: &ModelPrice, usage: &Usage) -> CostBreakdown {
    let tokens = BillableTokens::from_usage(usage);
    let (rates, tier_applied) = price.rates_for_prompt(tokens.prompt());
    let input = rates.input.cost_of(tokens.input);
    let output = rates.output.cost_of(tokens.output);
    let cache_write_5m = rates.cache_write_5m.cost_of(tokens.cache_write_5m)
        + rates
            .cache_write_5m
            .cost_of(tokens.cache_write_unattributed);
    let cache_write_1h = rates.cache_write_1h.cost_of(tokens.cache_write_1h);
    let cache_read = rates.cache_read.cost_of(tokens.cache_read);
    CostBreakdown {
        input,
        output,
        cache_write_5m,
        cache_write_1h,
        cache_read,
        total: input + output + cache_write_5m + cache_write_1h + cache_read,
        tier_applied,
        tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::{PriceTable, Rate};

    fn builtin(model: &str) -> ModelPrice {
        *PriceTable::builtin()
            .lookup(None, model)
            .unwrap_or_else(|| panic!("{model} is in the built-in table"))
    }

    fn usage(input: u64, output: u64, w5m: u64, w1h: u64, read: u64) -> Usage {
        Usage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            cache_creation_input_tokens: Some(w5m + w1h),
            cache_write_5m_tokens: Some(w5m),
            cache_write_1h_tokens: Some(w1h),
            cache_read_input_tokens: Some(read),
        }
    }

    #[test]
    fn sonnet_4_5_all_five_parts() {
        // claude-sonnet-4-5: 3 / 15 / 3.75 / 6 / 0.3 USD per Mtok; tokens × micro$/Mtok = picos:
        //   input   1_000 × 3_000_000  =  3_000_000_000
        //   output    500 × 15_000_000 =  7_500_000_000
        //   5m      2_000 × 3_750_000  =  7_500_000_000
        //   1h      1_000 × 6_000_000  =  6_000_000_000
        //   read   10_000 × 300_000    =  3_000_000_000
        //   total                        27_000_000_000 picos = 0.027 USD
        let b = cost_breakdown(
            &builtin("claude-sonnet-4-5"),
            &usage(1_000, 500, 2_000, 1_000, 10_000),
        );
        assert_eq!(b.input.picos(), 3_000_000_000);
        assert_eq!(b.output.picos(), 7_500_000_000);
        assert_eq!(b.cache_write_5m.picos(), 7_500_000_000);
        assert_eq!(b.cache_write_1h.picos(), 6_000_000_000);
        assert_eq!(b.cache_read.picos(), 3_000_000_000);
        assert_eq!(b.total.picos(), 27_000_000_000);
        assert_eq!(b.total.to_string(), "0.027");
        assert!(!b.tier_applied);
    }

    #[test]
    fn opus_4_1_odd_counts() {
        // claude-opus-4-1: 15 / 75 / 18.75 / 30 / 1.5
        //   input   7 × 15_000_000 =   105_000_000
        //   output 13 × 75_000_000 =   975_000_000
        //   5m      3 × 18_750_000 =    56_250_000
        //   1h      1 × 30_000_000 =    30_000_000
        //   read   11 ×  1_500_000 =    16_500_000
        //   total                    1_182_750_000 picos = 0.00118275 USD
        let total = cost(&builtin("claude-opus-4-1"), &usage(7, 13, 3, 1, 11));
        assert_eq!(total.picos(), 1_182_750_000);
        assert_eq!(total.to_string(), "0.00118275");
    }

    #[test]
    fn sonnet_4_5_tier_switches_every_rate_above_200k() {
        let price = builtin("claude-sonnet-4-5");
        // Prompt = 150_000 + 20_000 + 10_000 + 20_000 = exactly 200_000: base rates.
        //   input  150_000 × 3_000_000  = 450_000_000_000
        //   output   1_000 × 15_000_000 =  15_000_000_000
        //   5m      20_000 × 3_750_000  =  75_000_000_000
        //   1h      10_000 × 6_000_000  =  60_000_000_000
        //   read    20_000 × 300_000    =   6_000_000_000
        //   total                         606_000_000_000
        let at = cost_breakdown(&price, &usage(150_000, 1_000, 20_000, 10_000, 20_000));
        assert!(!at.tier_applied);
        assert_eq!(at.tokens.prompt(), 200_000);
        assert_eq!(at.total.picos(), 606_000_000_000);

        // One more input token: prompt 200_001, every rate is the above-200k one
        // (6 / 22.5 / 7.5 / 12 / 0.6):
        //   input  150_001 × 6_000_000  =   900_006_000_000
        //   output   1_000 × 22_500_000 =    22_500_000_000
        //   5m      20_000 × 7_500_000  =   150_000_000_000
        //   1h      10_000 × 12_000_000 =   120_000_000_000
        //   read    20_000 × 600_000    =    12_000_000_000
        //   total                         1_204_506_000_000
        let above = cost_breakdown(&price, &usage(150_001, 1_000, 20_000, 10_000, 20_000));
        assert!(above.tier_applied);
        assert_eq!(above.input.picos(), 900_006_000_000);
        assert_eq!(above.output.picos(), 22_500_000_000);
        assert_eq!(above.cache_write_5m.picos(), 150_000_000_000);
        assert_eq!(above.cache_write_1h.picos(), 120_000_000_000);
        assert_eq!(above.cache_read.picos(), 12_000_000_000);
        assert_eq!(above.total.picos(), 1_204_506_000_000);
    }

    #[test]
    fn cache_tokens_count_toward_the_threshold() {
        // 1 input token, 200_000 cache-read tokens: prompt 200_001 > 200_000.
        //   input 1 × 6_000_000 + read 200_000 × 600_000 = 6_000_000 + 120_000_000_000
        let b = cost_breakdown(&builtin("claude-sonnet-4-5"), &usage(1, 0, 0, 0, 200_000));
        assert!(b.tier_applied);
        assert_eq!(b.total.picos(), 120_006_000_000);
    }

    #[test]
    fn haiku_5_5_tier_is_at_100k() {
        let price = builtin("claude-haiku-5-5");
        // Prompt exactly 100_000: base 0.1 / 0.5 / 0.125 / 0.2 / 0.01.
        //   input  60_000 × 100_000 = 6_000_000_000
        //   output  2_000 × 500_000 = 1_000_000_000
        //   5m     20_000 × 125_000 = 2_500_000_000
        //   1h     10_000 × 200_000 = 2_000_000_000
        //   read   10_000 ×  10_000 =   100_000_000
        //   total                    11_600_000_000
        let at = cost_breakdown(&price, &usage(60_000, 2_000, 20_000, 10_000, 10_000));
        assert!(!at.tier_applied);
        assert_eq!(at.total.picos(), 11_600_000_000);

        // Prompt 100_001: 0.5 / 2.5 / 0.625 / 1.0 / 0.05.
        //   input  60_001 ×   500_000 = 30_000_500_000
        //   output  2_000 × 2_500_000 =  5_000_000_000
        //   5m     20_000 ×   625_000 = 12_500_000_000
        //   1h     10_000 × 1_000_000 = 10_000_000_000
        //   read   10_000 ×    50_000 =    500_000_000
        //   total                       58_000_500_000
        let above = cost_breakdown(&price, &usage(60_001, 2_000, 20_000, 10_000, 10_000));
        assert!(above.tier_applied);
        assert_eq!(above.total.picos(), 58_000_500_000);
    }

    #[test]
    fn unattributed_cache_writes_use_the_5m_rate() {
        let price = builtin("claude-sonnet-4-5");
        // Total 5_000 writes, no TTL split at all: all 5_000 at 3.75.
        //   5_000 × 3_750_000 = 18_750_000_000
        let no_split = Usage {
            cache_creation_input_tokens: Some(5_000),
            ..Usage::default()
        };
        let b = cost_breakdown(&price, &no_split);
        assert_eq!(b.tokens.cache_write_unattributed, 5_000);
        assert_eq!(b.cache_write_5m.picos(), 18_750_000_000);
        assert_eq!(b.total.picos(), 18_750_000_000);

        // Total 5_000, split 1_000 (5m) + 3_000 (1h): 1_000 unattributed at 3.75.
        //   5m  (1_000 + 1_000) × 3_750_000 =  7_500_000_000
        //   1h         3_000 × 6_000_000    = 18_000_000_000
        //   total                             25_500_000_000
        let partial = Usage {
            cache_creation_input_tokens: Some(5_000),
            cache_write_5m_tokens: Some(1_000),
            cache_write_1h_tokens: Some(3_000),
            ..Usage::default()
        };
        let b = cost_breakdown(&price, &partial);
        assert_eq!(b.tokens.cache_write_unattributed, 1_000);
        assert_eq!(b.cache_write_5m.picos(), 7_500_000_000);
        assert_eq!(b.cache_write_1h.picos(), 18_000_000_000);
        assert_eq!(b.total.picos(), 25_500_000_000);
    }

    #[test]
    fn missing_total_is_the_split() {
        // 5m 100 + 1h 200, no cache_creation_input_tokens: total 300, nothing unattributed.
        //   100 × 3_750_000 + 200 × 6_000_000 = 375_000_000 + 1_200_000_000
        let split_only = Usage {
            cache_write_5m_tokens: Some(100),
            cache_write_1h_tokens: Some(200),
            ..Usage::default()
        };
        let b = cost_breakdown(&builtin("claude-sonnet-4-5"), &split_only);
        assert_eq!(b.tokens.cache_write_total(), 300);
        assert_eq!(b.tokens.prompt(), 300);
        assert_eq!(b.total.picos(), 1_575_000_000);

        // A total smaller than its split is inconsistent: the split wins, nothing unattributed.
        let short_total = Usage {
            cache_creation_input_tokens: Some(100),
            ..split_only
        };
        let b = cost_breakdown(&builtin("claude-sonnet-4-5"), &short_total);
        assert_eq!(b.tokens.cache_write_unattributed, 0);
        assert_eq!(b.tokens.cache_write_total(), 300);
        assert_eq!(b.total.picos(), 1_575_000_000);
    }

    #[test]
    fn tier_without_1h_rate_uses_the_tier_5m_rate() {
        // claude-sonnet-4-20250514 above 200k: 6 / 22.5 / 7.5 / null / 0.6 → 1h billed at 7.5.
        //   input  200_000 × 6_000_000 = 1_200_000_000_000
        //   1h         100 × 7_500_000 =       750_000_000
        //   total                        1_200_750_000_000
        let b = cost_breakdown(
            &builtin("claude-sonnet-4-20250514"),
            &usage(200_000, 0, 0, 100, 0),
        );
        assert!(b.tier_applied);
        assert_eq!(b.cache_write_1h.picos(), 750_000_000);
        assert_eq!(b.total.picos(), 1_200_750_000_000);
    }

    #[test]
    fn openai_kind_without_write_rates() {
        // azure/gpt-4o: 2.5 / 10 / – / – / 1.25. Cache writes (none on OpenAI) would be input.
        //   input  1_000 × 2_500_000  = 2_500_000_000
        //   output   100 × 10_000_000 = 1_000_000_000
        //   read   4_000 × 1_250_000  = 5_000_000_000
        //   write     10 × 2_500_000  =    25_000_000
        let u = Usage {
            input_tokens: Some(1_000),
            output_tokens: Some(100),
            cache_read_input_tokens: Some(4_000),
            cache_creation_input_tokens: Some(10),
            ..Usage::default()
        };
        let b = cost_breakdown(&builtin("azure/gpt-4o"), &u);
        assert_eq!(b.cache_write_5m.picos(), 25_000_000);
        assert_eq!(b.total.picos(), 8_525_000_000);
    }

    #[test]
    fn empty_usage_costs_zero_and_huge_usage_does_not_panic() {
        assert_eq!(
            cost(&builtin("claude-opus-4-1"), &Usage::default()),
            Money::ZERO
        );
        let max = Usage {
            input_tokens: Some(u64::MAX),
            output_tokens: Some(u64::MAX),
            cache_creation_input_tokens: Some(u64::MAX),
            cache_write_5m_tokens: Some(u64::MAX),
            cache_write_1h_tokens: Some(u64::MAX),
            cache_read_input_tokens: Some(u64::MAX),
        };
        let price = ModelPrice::flat(
            Rate::from_micros_per_mtok(u64::MAX),
            Rate::from_micros_per_mtok(u64::MAX),
        );
        let b = cost_breakdown(&price, &max);
        assert_eq!(b.total, Money::MAX);
        assert_eq!(b.tokens.prompt(), u64::MAX);
    }

    #[test]
    fn a_million_costs_sum_exactly() {
        // claude-haiku-5-5, input 1_234, output 567:
        //   1_234 × 100_000 + 567 × 500_000 = 123_400_000 + 283_500_000 = 406_900_000 picos
        let price = builtin("claude-haiku-5-5");
        let one = usage(1_234, 567, 0, 0, 0);
        let unit = cost(&price, &one);
        assert_eq!(unit.picos(), 406_900_000);

        let n: u32 = 1_000_000;
        let total: Money = (0..n).map(|_| cost(&price, &one)).sum();
        assert_eq!(total.picos(), 406_900_000 * u128::from(n));
        assert_eq!(total.to_string(), "406.9");

        // The same sum in f64 drifts away from 406.9 (to about 406.89999999).
        let naive: f64 = (0..n).map(|_| unit.to_usd_f64()).sum();
        assert_ne!(naive, 406.9);
        assert_eq!(total.to_usd_f64(), 406.9);
    }
}
