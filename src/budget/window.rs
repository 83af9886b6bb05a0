//! Budget periods and their calendar-aligned windows in UTC.

use crate::calendar::{civil_from_days, days_from_civil};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY_SECS: u64 = 86_400;

/// How long a budget lasts before it starts again; windows are aligned to the calendar
/// in UTC (`week` starts on Monday, `total` never ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// From each full hour to the next.
    Hour,
    /// From midnight UTC to the next.
    Day,
    /// From Monday 00:00 UTC to the next Monday.
    Week,
    /// From the first of the month 00:00 UTC to the first of the next.
    Month,
    /// One window for all time.
    Total,
}

/// One window of a [`Period`]: `[start, end)`, in seconds since the Unix epoch
/// (`end` is `None` for [`Period::Total`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// First second of the window.
    pub start: u64,
    /// First second after it, when it ends.
    pub end: Option<u64>,
}

impl Period {
    /// The name used in the config and the API (`hour`, `day`, `week`, `month`, `total`).
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Total => "total",
        }
    }

    /// The window of this period that holds `at`.
    pub fn window(self, at: SystemTime) -> Window {
        let secs = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let day_start = secs - secs % DAY_SECS;
        let days = (secs / DAY_SECS) as i64;
        let (start, end) = match self {
            Period::Hour => {
                let start = secs - secs % 3_600;
                (start, Some(start + 3_600))
            }
            Period::Day => (day_start, Some(day_start + DAY_SECS)),
            Period::Week => {
                // 1970-01-01 was a Thursday: Monday is 3 days before it.
                let since_monday = (days + 3).rem_euclid(7) as u64;
                let start = day_start - since_monday * DAY_SECS;
                (start, Some(start + 7 * DAY_SECS))
            }
            Period::Month => {
                let (year, month, _) = civil_from_days(days);
                let first = days_from_civil(year, month, 1) as u64 * DAY_SECS;
                let (next_year, next_month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                let next = days_from_civil(next_year, next_month, 1) as u64 * DAY_SECS;
                (first, Some(next))
            }
            Period::Total => (0, None),
        };
        Window { start, end }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Period {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "hour" => Ok(Period::Hour),
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            "total" => Ok(Period::Total),
            other => Err(format!(
                "unknown budget period {other:?} (hour, day, week, month or total)"
            )),
        }
    }
}

impl Window {
    /// When the window ends, as a time (`None` for a window that never ends).
    pub fn resets_at(&self) -> Option<SystemTime> {
        self.end.map(|end| UNIX_EPOCH + Duration::from_secs(end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).expect("a time")
    }

    fn secs(rfc3339: &str) -> u64 {
        at(rfc3339).duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn windows_are_aligned_to_the_utc_calendar() {
        let now = at("2026-12-09T13:45:10Z"); // a Wednesday
        let cases = [
            (Period::Hour, "2026-12-09T13:00:00Z", "2026-12-09T14:00:00Z"),
            (Period::Day, "2026-12-09T00:00:00Z", "2026-12-10T00:00:00Z"),
            (Period::Week, "2026-12-07T00:00:00Z", "2026-12-14T00:00:00Z"),
            (
                Period::Month,
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
        ];
        for (period, start, end) in cases {
            let window = period.window(now);
            assert_eq!(window.start, secs(start), "{period} start");
            assert_eq!(window.end, Some(secs(end)), "{period} end");
        }
        assert_eq!(
            Period::Total.window(now),
            Window {
                start: 0,
                end: None
            }
        );
    }

    #[test]
    fn edges_belong_to_the_window_they_start() {
        let monday = at("2026-12-07T00:00:00Z");
        assert_eq!(
            Period::Week.window(monday).start,
            secs("2026-12-07T00:00:00Z")
        );
        let before = monday - Duration::from_secs(1);
        assert_eq!(
            Period::Week.window(before).start,
            secs("2026-11-30T00:00:00Z")
        );
        let leap = at("2028-02-29T23:59:59Z");
        assert_eq!(
            Period::Month.window(leap).end,
            Some(secs("2028-03-01T00:00:00Z"))
        );
    }

    #[test]
    fn periods_parse_by_name() {
        for period in [
            Period::Hour,
            Period::Day,
            Period::Week,
            Period::Month,
            Period::Total,
        ] {
            assert_eq!(period.as_str().parse::<Period>(), Ok(period));
        }
        assert!("fortnight"
            .parse::<Period>()
            .unwrap_err()
            .contains("fortnight"));
    }
}
