//! RFC 3339 timestamps as Kubernetes parses `metadata.creationTimestamp`
//! (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`), compared as exact instants (B.1).

use std::fmt;

/// An instant: seconds since the Unix epoch (UTC) and nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z (offset applied).
    pub seconds: i64,
    /// Nanoseconds within the second (fraction digits past nine are dropped, as Go does).
    pub nanos: u32,
}

/// Why a timestamp was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampError;

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an RFC 3339 date-time")
    }
}

impl Timestamp {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return Err(TimestampError);
        }
        let num = |from: usize, len: usize| -> Result<u32, TimestampError> {
            let digits = b.get(from..from + len).ok_or(TimestampError)?;
            digits.iter().try_fold(0u32, |acc, &d| {
                if d.is_ascii_digit() {
                    Ok(acc * 10 + u32::from(d - b'0'))
                } else {
                    Err(TimestampError)
                }
            })
        };
        let sep = |at: usize, c: u8| {
            if b[at] == c {
                Ok(())
            } else {
                Err(TimestampError)
            }
        };
        let year = num(0, 4)?;
        sep(4, b'-')?;
        let month = num(5, 2)?;
        sep(7, b'-')?;
        let day = num(8, 2)?;
        sep(10, b'T')?;
        let hour = num(11, 2)?;
        sep(13, b':')?;
        let minute = num(14, 2)?;
        sep(16, b':')?;
        let second = num(17, 2)?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(TimestampError);
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(TimestampError);
        }
        let mut at = 19;
        let mut nanos = 0u32;
        if b[at] == b'.' {
            let start = at + 1;
            let mut end = start;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            if end == start {
                return Err(TimestampError);
            }
            for (i, &d) in b[start..end].iter().enumerate() {
                if i < 9 {
                    nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
                }
            }
            at = end;
        }
        let offset_seconds: i64 = match &b[at..] {
            [b'Z'] => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let oh = num(at + 1, 2)?;
                let om = num(at + 4, 2)?;
                if oh > 23 || om > 59 {
                    return Err(TimestampError);
                }
                let magnitude = i64::from(oh * 3600 + om * 60);
                if *sign == b'+' { magnitude } else { -magnitude }
            }
            _ => return Err(TimestampError),
        };
        let days = days_from_civil(i64::from(year), month, day);
        let local = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
        Ok(Self {
            seconds: local - offset_seconds,
            nanos,
        })
    }
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn parses_and_applies_offsets() {
        assert_eq!(
            ts("1970-01-01T00:00:00Z"),
            Timestamp {
                seconds: 0,
                nanos: 0
            }
        );
        assert_eq!(ts("2026-11-20T08:00:00Z").seconds, 1_795_161_600);
        assert_eq!(ts("2026-11-20T09:30:00+01:30"), ts("2026-11-20T08:00:00Z"));
        assert_eq!(ts("2026-11-20T07:00:00-01:00"), ts("2026-11-20T08:00:00Z"));
        assert_eq!(ts("2024-02-29T00:00:00.5Z").nanos, 500_000_000);
        assert_eq!(ts("2024-02-29T00:00:00.1234567891Z").nanos, 123_456_789);
        assert!(ts("2026-01-01T00:00:00.000000001Z") > ts("2026-01-01T00:00:00Z"));
        assert!(ts("1969-12-31T23:59:59Z").seconds == -1);
    }

    #[test]
    fn refuses_what_kubernetes_refuses() {
        for bad in [
            "2026-11-20",
            "2026-11-20 08:00:00Z",
            "2026-11-20T08:00:00",
            "2026-11-20t08:00:00Z",
            "2026-11-20T08:00:00z",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-11-20T24:00:00Z",
            "2026-11-20T08:60:00Z",
            "2026-11-20T08:00:60Z",
            "2026-11-20T08:00:00.Z",
            "2026-11-20T08:00:00+0100",
            "2026-11-20T08:00:00+24:00",
            "26-11-20T08:00:00Z",
            "yesterday",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(TimestampError.to_string(), "not an RFC 3339 date-time");
    }
}
