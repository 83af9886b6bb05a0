//! [`SpendWindows`]: one scope's settled spend in the current window of every period.
//!
//! All five windows are kept at once, so changing a key's `budget_period` reads a window
//! that was counted all along.

use super::Period;
use crate::pricing::Money;
use std::time::SystemTime;

const PERIODS: [Period; 5] = [
    Period::Hour,
    Period::Day,
    Period::Week,
    Period::Month,
    Period::Total,
];

/// Spend in the latest window of each period: `(window start, amount)`.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpendWindows([Option<(u64, Money)>; 5]);

fn slot(period: Period) -> usize {
    PERIODS.iter().position(|p| *p == period).unwrap_or(0)
}

impl SpendWindows {
    /// Add `cost`, settled at `now`, to the window of every period that holds `now`.
    pub(crate) fn add(&mut self, now: SystemTime, cost: Money) {
        for period in PERIODS {
            let start = period.window(now).start;
            let entry = &mut self.0[slot(period)];
            match entry {
                Some((at, spent)) if *at == start => *spent += cost,
                _ => *entry = Some((start, cost)),
            }
        }
    }

    /// Settled in the window of `period` that holds `now`.
    pub(crate) fn in_window(&self, period: Period, now: SystemTime) -> Money {
        let start = period.window(now).start;
        match self.0[slot(period)] {
            Some((at, spent)) if at == start => spent,
            _ => Money::ZERO,
        }
    }

    /// Each period's window holding `now` with its spend (for the journal).
    pub(crate) fn current(&self, now: SystemTime) -> Vec<(Period, u64, Money)> {
        PERIODS
            .iter()
            .map(|period| {
                (
                    *period,
                    period.window(now).start,
                    self.in_window(*period, now),
                )
            })
            .collect()
    }

    /// Put back what the journal kept for one window (the latest window wins).
    pub(crate) fn restore(&mut self, period: Period, window_start: u64, spent: Money) {
        let entry = &mut self.0[slot(period)];
        if entry.is_none_or(|(at, _)| at <= window_start) {
            *entry = Some((window_start, spent));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn each_period_rolls_over_on_its_own() {
        let before_midnight = UNIX_EPOCH + Duration::from_secs(1_796_947_140); // 2026-12-10T23:59:00Z
        let mut spend = SpendWindows::default();
        spend.add(before_midnight, Money::from_picos(5));
        let next_minute = before_midnight + Duration::from_secs(60);
        spend.add(next_minute, Money::from_picos(7));
        let day = Period::Day.window(before_midnight);
        let crossed_day = Period::Day.window(next_minute) != day;
        assert!(crossed_day, "the fixture must cross midnight");
        assert_eq!(
            spend.in_window(Period::Day, next_minute),
            Money::from_picos(7)
        );
        assert_eq!(
            spend.in_window(Period::Total, next_minute),
            Money::from_picos(12)
        );
        assert_eq!(
            spend.in_window(Period::Day, before_midnight),
            Money::ZERO,
            "the old day is gone"
        );
    }
}
