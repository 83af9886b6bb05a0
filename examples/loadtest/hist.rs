//! A fixed-size log-linear histogram of microsecond samples, for percentiles.
//!
//! Why not keep every sample: a `--duration-secs` run has no fixed count, and the
//! inter-event gaps are `events + 2` samples per stream. Why not the `hdrhistogram`
//! crate: a few lines do.
//!
//! The layout is HDR's: values below `2^SUB_BITS` µs (1,024 µs) get one bucket each, so
//! they are exact; above that, each power of two `[2^h, 2^(h+1))` is split into
//! `2^SUB_BITS` equal sub-buckets of width `2^(h - SUB_BITS)`. A value is therefore
//! reported within 1/2,048 (0.05 %) of itself: 32 µs at 60 ms, fine enough to subtract
//! two paced figures. Values are clamped to `u32::MAX` µs (71 minutes); the table is
//! 23,552 `u64`s (184 KB), whatever the number of samples. Count, sum, min and max are
//! kept exactly.

const SUB_BITS: u32 = 10;
const SUB: u64 = 1 << SUB_BITS;
/// Highest bit position a clamped value can have.
const MAX_BIT: u32 = 31;
const BUCKETS: usize = (SUB + (MAX_BIT - SUB_BITS + 1) as u64 * SUB) as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

fn index(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let high = 63 - value.leading_zeros(); // >= SUB_BITS
    let shift = high - SUB_BITS;
    let sub = (value >> shift) - SUB; // in [0, SUB)
    (SUB + u64::from(shift) * SUB + sub) as usize
}

/// The middle of bucket `index` (exact for the one-value buckets).
fn value_at(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let shift = (index - SUB) / SUB;
    let sub = (index - SUB) % SUB;
    let low = (SUB + sub) << shift;
    low + ((1u64 << shift) - 1) / 2
}

impl Histogram {
    /// Record one sample, in microseconds.
    pub fn record(&mut self, micros: u64) {
        let micros = micros.min(u64::from(u32::MAX));
        self.counts[index(micros)] += 1;
        self.count += 1;
        self.sum += u128::from(micros);
        self.min = self.min.min(micros);
        self.max = self.max.max(micros);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `p`-th percentile (nearest rank: the smallest sample with at least `p` % of
    /// the samples at or below it), in µs; `None` when empty. p100 is the exact max.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        if p >= 100.0 {
            return Some(self.max);
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(value_at(i).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_the_stated_error() {
        for v in (0..5_000_000u64)
            .step_by(997)
            .chain([255, 256, 257, 511, 512, 1 << 31])
        {
            let back = value_at(index(v));
            let err = back.abs_diff(v) as f64 / (v.max(1)) as f64;
            assert!(err <= 1.0 / SUB as f64, "{v} -> {back}");
            assert!(index(v) < BUCKETS);
        }
        assert_eq!(index(u64::from(u32::MAX)), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut h = Histogram::default();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), Some(50));
        assert_eq!(h.percentile(99.0), Some(99));
        assert_eq!(h.percentile(100.0), Some(100));
    }
}
