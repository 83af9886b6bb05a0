//! Record timestamps: RFC 3339 text in the record, unix milliseconds in the
//! store's index column.

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

/// Digits `b[start..end]` as a number, or `None` if any is not an ASCII digit.
fn number(b: &[u8], start: usize, end: usize) -> Option<i64> {
    let mut n: i64 = 0;
    for &c in b.get(start..end)? {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    Some(n)
}

fn expect(b: &[u8], at: usize, allowed: &[u8]) -> Option<()> {
    allowed.contains(b.get(at)?).then_some(())
}

/// Parse `YYYY-MM-DD` (midnight UTC) or
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (`t`, `z`, space accepted; the
/// fraction truncated to milliseconds; a leap second `:60` accepted) into
/// unix milliseconds.
pub(crate) fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let year = number(b, 0, 4)?;
    expect(b, 4, b"-")?;
    let month = number(b, 5, 7)?;
    expect(b, 7, b"-")?;
    let day = number(b, 8, 10)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Some(days * MS_PER_DAY);
    }
    expect(b, 10, b"Tt ")?;
    let hour = number(b, 11, 13)?;
    expect(b, 13, b":")?;
    let minute = number(b, 14, 16)?;
    expect(b, 16, b":")?;
    let second = number(b, 17, 19)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let kept = (i - start).min(3);
        millis = number(b, start, start + kept)? * 10_i64.pow(3 - kept as u32);
    }
    let offset_s = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 => {
            let oh = number(b, i + 1, i + 3)?;
            expect(b, i + 3, b":")?;
            let om = number(b, i + 4, i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let secs = hour * 3600 + minute * 60 + second - offset_s;
    Some(days * MS_PER_DAY + secs * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1–12).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
