//! Record timestamps: RFC 3339 text in the record, unix milliseconds in the
//! store's index column.

use crate::calendar::{days_from_civil, days_in_month};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) const MS_PER_DAY: i64 = 86_400_000;

/// `t` as RFC 3339 in UTC with milliseconds (`2026-12-07T08:40:00.123Z`);
/// a time before 1970 is written as the epoch.
pub(crate) fn format_rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t.max(UNIX_EPOCH)).to_string()
}

/// Unix milliseconds as RFC 3339 (see [`format_rfc3339`]).
pub(crate) fn format_ms(ms: i64) -> String {
    format_rfc3339(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The ASCII digits `s[range]` as a number.
fn digits(s: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = s.get(range)?;
    part.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| part.parse().ok())?
}

/// Parse `YYYY-MM-DD` (midnight UTC) or
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (`t`, `z`, space accepted; the
/// fraction truncated to milliseconds; a leap second `:60` accepted) into
/// unix milliseconds.
pub(crate) fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let at = |i: usize, allowed: &str| s.get(i..i + 1).filter(|c| allowed.contains(*c));
    let (year, month, day) = (digits(s, 0..4)?, digits(s, 5..7)?, digits(s, 8..10)?);
    at(4, "-")?;
    at(7, "-")?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if s.len() == 10 {
        return Some(days * MS_PER_DAY);
    }
    at(10, "Tt ")?;
    at(13, ":")?;
    at(16, ":")?;
    let (hour, minute, second) = (digits(s, 11..13)?, digits(s, 14..16)?, digits(s, 17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        let kept = len.min(3);
        millis = digits(fraction, 0..kept)? * 10_i64.pow(3 - kept as u32);
        rest = &fraction[len..];
        if len == 0 {
            return None;
        }
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let (oh, om) = (digits(rest, 1..3)?, digits(rest, 4..6)?);
            rest.get(3..4).filter(|c| *c == ":")?;
            if oh > 23 || om > 59 {
                return None;
            }
            let offset = oh * 3600 + om * 60;
            if rest.starts_with('+') {
                offset
            } else {
                -offset
            }
        }
        _ => return None,
    };
    Some(days * MS_PER_DAY + (hour * 3600 + minute * 60 + second - offset_s) * 1000 + millis)
}
