//! Calendar months in UTC, as the partitions see them.

use crate::calendar::{civil_from_days, days_from_civil};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i64 = 86_400_000;

/// A month: `year * 12 + (month - 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Month(pub(crate) i64);

impl Month {
    /// The month holding the instant `ms` (unix milliseconds).
    pub(crate) fn of_ms(ms: i64) -> Month {
        let (year, month, _) = civil_from_days(ms.div_euclid(MS_PER_DAY));
        Month(year * 12 + month - 1)
    }

    /// The month after this one.
    pub(crate) fn next(self) -> Month {
        Month(self.0 + 1)
    }

    /// Its first instant, in unix milliseconds.
    pub(crate) fn start_ms(self) -> i64 {
        let (year, month) = (self.0.div_euclid(12), self.0.rem_euclid(12) + 1);
        days_from_civil(year, month, 1) * MS_PER_DAY
    }

    /// The suffix of its partitions' names: `p202612`.
    pub(crate) fn suffix(self) -> String {
        format!(
            "p{:04}{:02}",
            self.0.div_euclid(12),
            self.0.rem_euclid(12) + 1
        )
    }

    /// The month a partition suffix names (`p202612`), if it is one.
    pub(crate) fn parse_suffix(suffix: &str) -> Option<Month> {
        let digits = suffix.strip_prefix('p')?;
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year: i64 = digits[..4].parse().ok()?;
        let month: i64 = digits[4..].parse().ok()?;
        (1..=12)
            .contains(&month)
            .then_some(Month(year * 12 + month - 1))
    }
}

/// Unix milliseconds as a `SystemTime` (before the epoch too).
pub(crate) fn time_of_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// A `SystemTime` as unix milliseconds (truncated).
pub(crate) fn ms_of_time(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_round_trip_through_names_and_instants() {
        // 2026-12-07T15:00:00Z
        let month = Month::of_ms(1_796_655_600_000);
        assert_eq!(month.suffix(), "p202612");
        assert_eq!(Month::parse_suffix("p202612"), Some(month));
        assert_eq!(month.next().suffix(), "p202701");
        assert_eq!(month.start_ms(), 1_796_083_200_000); // 2026-12-01
        assert_eq!(Month::of_ms(month.start_ms() - 1).suffix(), "p202611");
        assert_eq!(Month::parse_suffix("p202613"), None);
        assert_eq!(Month::parse_suffix("x202612"), None);
        assert_eq!(ms_of_time(time_of_ms(-1_500)), -1_500);
        assert_eq!(ms_of_time(time_of_ms(1_796_655_600_123)), 1_796_655_600_123);
    }
}
