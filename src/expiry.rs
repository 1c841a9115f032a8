//! When a grant ends: its `expires` as the administrator writes it, read into one instant.
//!
//! Two forms: a date, `2027-01-31`, which means through the end of that day in UTC (the
//! grant ends at `2027-02-01T00:00:00Z`); or an RFC 3339 time with its offset,
//! `2027-01-31T18:00:00+01:00` (or `...Z`), at which the grant ends. A grant whose end has
//! come matches nothing. No time zone database and no clock here: the caller says what
//! time it is.

use std::fmt;

/// The end of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The first second (Unix time) at which the grant no longer holds.
    pub ends: i64,
    /// As written in the config.
    pub text: String,
}

impl Expiry {
    /// Reads `expires`.
    pub fn parse(text: &str) -> Result<Expiry, String> {
        let ends = ends_at(text).ok_or_else(|| {
            format!(
                "{text:?} is not a date (2027-01-31: through the end of that day, UTC) or an \
                 RFC 3339 time with an offset (2027-01-31T18:00:00+01:00)"
            )
        })?;
        Ok(Expiry {
            ends,
            text: text.to_owned(),
        })
    }

    /// Whether the grant has ended at `now` (Unix time).
    pub fn has_ended(&self, now: i64) -> bool {
        now >= self.ends
    }

    /// Whether it ends within `seconds` after `now` (and has not ended yet).
    pub fn ends_within(&self, now: i64, seconds: i64) -> bool {
        !self.has_ended(now) && self.ends - now <= seconds
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (ends {})", self.text, utc(self.ends))
    }
}

/// The current time, in Unix seconds, for the policy's callers.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time.
pub fn utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

fn ends_at(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let (year, month, day) = date(bytes.get(..10)?)?;
    if bytes.len() == 10 {
        // Through the end of that day: the grant ends when the next one begins.
        return Some((days_from_civil(year, month, day) + 1) * 86_400);
    }
    let rest = &bytes[10..];
    if !matches!(rest.first(), Some(b'T' | b't')) {
        return None;
    }
    let hour = two_digits(rest.get(1..3)?)?;
    let minute = two_digits(rest.get(4..6)?)?;
    let second = two_digits(rest.get(7..9)?)?;
    if rest.get(3) != Some(&b':') || rest.get(6) != Some(&b':') || hour > 23 || minute > 59 {
        return None;
    }
    // 60 is a leap second: the instant after 59.
    if second > 60 {
        return None;
    }
    let mut rest = &rest[9..];
    let mut fraction = false;
    if let Some(after) = rest.strip_prefix(b".") {
        let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        fraction = after[..digits].iter().any(|b| *b != b'0');
        rest = &after[digits..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (hours, minutes) = (two_digits(&[*h1, *h2])?, two_digits(&[*m1, *m2])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    // A fraction of a second: the grant still holds during that whole second.
    Some(local - offset + i64::from(fraction))
}

/// `YYYY-MM-DD`, a real calendar day.
fn date(bytes: &[u8]) -> Option<(i64, i64, i64)> {
    if bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
        return None;
    }
    let year = two_digits(&bytes[..2])? * 100 + two_digits(&bytes[2..4])?;
    let month = two_digits(&bytes[5..7])?;
    let day = two_digits(&bytes[8..10])?;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days_in_month)
        .contains(&day)
        .then_some((year, month, day))
}

fn two_digits(bytes: &[u8]) -> Option<i64> {
    match bytes {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(i64::from(a - b'0') * 10 + i64::from(b - b'0'))
        }
        _ => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_table() {
        // (text, the instant it ends as UTC, or None when refused)
        let cases: &[(&str, Option<&str>)] = &[
            ("2027-01-31", Some("2027-02-01T00:00:00Z")),
            ("2024-02-29", Some("2024-03-01T00:00:00Z")),
            ("2026-12-31", Some("2027-01-01T00:00:00Z")),
            ("1970-01-01", Some("1970-01-02T00:00:00Z")),
            ("2027-01-31T18:00:00+01:00", Some("2027-01-31T17:00:00Z")),
            ("2027-01-31T18:00:00-05:30", Some("2027-01-31T23:30:00Z")),
            ("2027-01-31T18:00:00Z", Some("2027-01-31T18:00:00Z")),
            ("2027-01-31t18:00:00z", Some("2027-01-31T18:00:00Z")),
            ("2027-01-31T18:00:00.000Z", Some("2027-01-31T18:00:00Z")),
            ("2027-01-31T18:00:00.5Z", Some("2027-01-31T18:00:01Z")),
            ("2027-01-31T23:59:60Z", Some("2027-02-01T00:00:00Z")),
            ("2027-01-31T00:00:00+00:00", Some("2027-01-31T00:00:00Z")),
            ("2023-02-29", None),
            ("2027-13-01", None),
            ("2027-00-10", None),
            ("2027-04-31", None),
            ("2027-1-31", None),
            ("27-01-31", None),
            ("2027/01/31", None),
            ("2027-01-31 ", None),
            ("2027-01-31T18:00:00", None),
            ("2027-01-31T18:00Z", None),
            ("2027-01-31T24:00:00Z", None),
            ("2027-01-31T18:60:00Z", None),
            ("2027-01-31T18:00:61Z", None),
            ("2027-01-31T18:00:00+1:00", None),
            ("2027-01-31T18:00:00+24:00", None),
            ("2027-01-31T18:00:00.Z", None),
            ("2027-01-31T18:00:00ZZ", None),
            ("tomorrow", None),
            ("", None),
            ("２０２７-01-31", None),
        ];
        for (text, expected) in cases {
            let parsed = Expiry::parse(text).map(|e| utc(e.ends));
            assert_eq!(parsed.ok().as_deref(), *expected, "{text:?}");
        }
    }

    #[test]
    fn a_grant_ends_at_its_instant() {
        let expiry = Expiry::parse("2027-01-31T18:00:00Z").unwrap();
        assert!(!expiry.has_ended(expiry.ends - 1));
        assert!(expiry.has_ended(expiry.ends));
        assert!(expiry.ends_within(expiry.ends - 7 * 86_400, 7 * 86_400));
        assert!(!expiry.ends_within(expiry.ends - 7 * 86_400 - 1, 7 * 86_400));
        assert!(!expiry.ends_within(expiry.ends, 7 * 86_400));
    }

    #[test]
    fn days_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
    }
}
