//! RFC 3339 times as Go's `time.Time` reads and writes them in JSON.
//!
//! Kept apart from any calendar crate: only parsing, formatting with the
//! original offset, and comparing instants are needed.

use std::cmp::Ordering;

/// An instant plus the UTC offset it was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    pub unix: i64,
    pub nanos: u32,
    /// Offset from UTC in seconds (0 prints as `Z`).
    pub offset: i32,
}

impl Time {
    pub fn from_unix(unix: i64) -> Self {
        Time {
            unix,
            nanos: 0,
            offset: 0,
        }
    }

    /// Compares instants, ignoring the offsets.
    pub fn cmp_instant(&self, other: &Time) -> Ordering {
        (self.unix, self.nanos).cmp(&(other.unix, other.nanos))
    }

    pub fn is_after(&self, other: &Time) -> bool {
        self.cmp_instant(other) == Ordering::Greater
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fffffffff](Z|±HH:MM)`.
    pub fn parse(s: &str) -> Option<Time> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let t = s.get(r)?;
            if !t.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || min > 59
            || sec > 59
        {
            return None;
        }
        let mut i = 19;
        let mut nanos = 0u32;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let frac = &s[start..i];
            if frac.is_empty() || frac.len() > 9 {
                return None;
            }
            nanos = format!("{frac:0<9}").parse().ok()?;
        }
        let offset = match b.get(i)? {
            b'Z' | b'z' if i + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
                let h = num(i + 1..i + 3)? as i32;
                let m = num(i + 4..i + 6)? as i32;
                let o = h * 3600 + m * 60;
                if *sign == b'-' {
                    -o
                } else {
                    o
                }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month as u32, day as u32);
        let unix = days * 86400 + hour * 3600 + min * 60 + sec - offset as i64;
        Some(Time {
            unix,
            nanos,
            offset,
        })
    }

    /// Go's RFC3339Nano: trailing zeros of the fraction dropped.
    pub fn format(&self) -> String {
        self.format_with(true)
    }

    /// RFC 3339 to the second (`org.opencontainers.image.created`).
    pub fn format_seconds(&self) -> String {
        self.format_with(false)
    }

    fn format_with(&self, nanos: bool) -> String {
        let local = self.unix + self.offset as i64;
        let days = local.div_euclid(86400);
        let secs = local.rem_euclid(86400);
        let (y, m, d) = civil_from_days(days);
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            y,
            m,
            d,
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        );
        if nanos && self.nanos > 0 {
            let f = format!("{:09}", self.nanos);
            s.push('.');
            s.push_str(f.trim_end_matches('0'));
        }
        if self.offset == 0 {
            s.push('Z');
        } else {
            let sign = if self.offset < 0 { '-' } else { '+' };
            let o = self.offset.abs();
            s.push_str(&format!("{sign}{:02}:{:02}", o / 3600, o % 3600 / 60));
        }
        s
    }
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "2023-11-14T22:13:20Z",
            "2025-06-01T12:30:45.123456789Z",
            "2026-11-28T00:31:36.5152242Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59+05:30",
        ] {
            assert_eq!(Time::parse(s).unwrap().format(), s);
        }
        assert_eq!(
            Time::parse("2023-11-14T22:13:20Z").unwrap().unix,
            1_700_000_000
        );
        assert_eq!(Time::from_unix(0).format_seconds(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn compares_instants_across_offsets() {
        let a = Time::parse("2024-01-01T01:00:00+01:00").unwrap();
        let b = Time::parse("2024-01-01T00:00:00Z").unwrap();
        assert_eq!(a.cmp_instant(&b), Ordering::Equal);
        assert!(Time::parse("2024-01-01T00:00:00.1Z").unwrap().is_after(&b));
    }
}
