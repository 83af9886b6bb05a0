//! The upper bound of a request's cost, before anything is known of its answer.
//!
//! Input: at most one token per byte of the body (no tokenizer yields more), plus
//! [`MEDIA_ALLOWANCE_TOKENS`] for every image or document block (an image given by URL
//! or a PDF costs far more tokens than its bytes in the body). Output: `max_tokens`.
//! Every input token is priced at the dearest prompt rate of the model (input, cache
//! writes of either TTL, cache reads), and every rate at the dearer of the base level and
//! the long-context tier, so whatever the answer turns out to be, it costs no more.

use crate::pricing::{cost, ModelPrice, Money, Rate};
use crate::usage::Usage;

/// Tokens allowed for each image or document block on top of its bytes: Anthropic
/// scales images to at most about 1,600 tokens; a document's pages cost more, so the
/// allowance is generous (an over-estimate only holds budget until `message_start`).
pub const MEDIA_ALLOWANCE_TOKENS: u64 = 100_000;

/// The most input tokens a body of `body_bytes` with `media_blocks` image or document
/// blocks can be billed for.
pub(crate) fn input_bound(body_bytes: usize, media_blocks: u32) -> u64 {
    (body_bytes as u64).saturating_add(u64::from(media_blocks) * MEDIA_ALLOWANCE_TOKENS)
}

/// The most `input_tokens` of prompt and `max_tokens` of output can cost at `price`.
pub(crate) fn cost_bound(price: &ModelPrice, input_tokens: u64, max_tokens: u64) -> Money {
    let mut levels = vec![price.base().resolve()];
    if let Some(tier) = &price.tier {
        levels.push(tier.prices.resolve());
    }
    let prompt_rate = levels
        .iter()
        .flat_map(|r| [r.input, r.cache_write_5m, r.cache_write_1h, r.cache_read])
        .max()
        .unwrap_or(Rate::default());
    let output_rate = levels.iter().map(|r| r.output).max().unwrap_or_default();
    prompt_rate
        .cost_of(input_tokens)
        .saturating_add(output_rate.cost_of(max_tokens))
}

/// The most an answer can cost once its `message_start` told the exact input in
/// `usage`: that input exactly, plus `max_tokens` of output at the level the prompt
/// is billed at.
pub(crate) fn exact_input_bound(price: &ModelPrice, usage: &Usage, max_tokens: u64) -> Money {
    let with_all_output = Usage {
        output_tokens: Some(max_tokens),
        ..*usage
    };
    cost(price, &with_all_output)
}

/// Every token of `usage`: input, cache writes, cache reads and output.
pub(crate) fn tokens_of(usage: &Usage) -> u64 {
    [
        usage.input_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
        usage.output_tokens,
    ]
    .into_iter()
    .flatten()
    .fold(0u64, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::PriceTable;

    #[test]
    fn the_bound_covers_every_answer_the_request_could_get() {
        let table = PriceTable::builtin();
        let price = table.lookup(None, "claude-sonnet-4-5").expect("priced");
        let max_tokens = 4_096;
        let bound = cost_bound(price, input_bound(300_000, 0), max_tokens);
        // However the 300 KB prompt splits into input, cache writes and cache reads, and
        // whichever tier it lands in, the exact cost stays under the bound.
        for (input, write, read) in [
            (300_000, 0, 0),
            (0, 300_000, 0),
            (0, 0, 300_000),
            (100, 199_000, 100_900),
        ] {
            let usage = Usage {
                input_tokens: Some(input),
                cache_creation_input_tokens: Some(write),
                cache_write_1h_tokens: Some(write),
                cache_read_input_tokens: Some(read),
                output_tokens: Some(max_tokens),
                ..Usage::default()
            };
            let exact = cost(price, &usage);
            assert!(exact <= bound, "{exact} > {bound} for {usage:?}");
            assert!(exact_input_bound(price, &usage, max_tokens) <= bound);
        }
    }

    #[test]
    fn media_blocks_add_their_allowance() {
        assert_eq!(input_bound(1_000, 0), 1_000);
        assert_eq!(input_bound(1_000, 2), 1_000 + 2 * MEDIA_ALLOWANCE_TOKENS);
    }

    #[test]
    fn every_kind_of_token_counts() {
        let usage = Usage {
            input_tokens: Some(1),
            cache_creation_input_tokens: Some(20),
            cache_read_input_tokens: Some(300),
            output_tokens: Some(4_000),
            ..Usage::default()
        };
        assert_eq!(tokens_of(&usage), 4_321);
    }
}
