//! `TimeSpec`: an absolute time a user writes in a PodTask (`spec.deadline`), as RFC 3339.
//!
//! Kept as the string the user wrote: the CRD schema checks it with [`PATTERN`] (so the API server never has to
//! parse it as a date for the spec's immutability rule), and podtask reads it with [`TimeSpec::timestamp`], which
//! also understands what older, looser schemas accepted. Reading never fails the watch: a value podtask cannot
//! read makes the task fail with `InvalidSpec`, naming the field.

use serde::{Deserialize, Serialize};

use crate::jiff::{Timestamp, civil::DateTime};

/// RFC 3339 with an uppercase `T` and `Z`, seconds, at most nine fractional digits and a `Z` or `±hh:mm` offset, on
/// a real calendar date (leap years included) in the years 1000 to 9998. Every string it matches is a valid time
/// for the API server's CEL and for podtask alike, so the schema never has to evaluate a rule that can fail.
pub fn pattern() -> String {
    let year = "([1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])";
    let leap_year = "([1-9][0-9](0[48]|[2468][048]|[13579][26])|([2468][048]|[13579][26])00)";
    let date = format!(
        "({year}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|{year}-(0[13-9]|1[0-2])-(29|30)|{year}-(0[13578]|1[02])-31|{leap_year}-02-29)"
    );
    let time = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?";
    let offset = "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
    format!("^{date}T{time}{offset}$")
}

pub const GRAMMAR_MESSAGE: &str = "must be an RFC 3339 time such as 2026-11-22T18:00:00Z or 2026-11-22T19:00:00+01:00: a real date in the years 1000 to 9998, uppercase T and Z, seconds required, at most 9 fractional digits";

/// An absolute time as written in the spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(transparent)]
pub struct TimeSpec(pub String);

impl TimeSpec {
    /// The instant this names. Accepts everything [`PATTERN`] does, and what a `format: date-time` schema let
    /// through (lowercase `t`/`z`, more than nine fractional digits, no offset meaning UTC); times beyond the
    /// representable range saturate, which for a deadline means "no earlier than the end of time".
    pub fn timestamp(&self) -> Result<Timestamp, String> {
        let upper = self.0.trim().to_ascii_uppercase().replace(' ', "T");
        let text = shorten_fraction(&upper);
        if let Ok(t) = text.parse::<Timestamp>() {
            return Ok(t);
        }
        let (civil, offset) = split_offset(&text);
        let civil: DateTime = civil.parse().map_err(|_| format!("{:?} {GRAMMAR_MESSAGE}", self.0))?;
        if offset.is_empty() {
            return civil.to_zoned(crate::jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).map_err(|e| e.to_string());
        }
        // A valid date and time whose offset pushes it out of range.
        Ok(if civil.year() > 0 { Timestamp::MAX } else { Timestamp::MIN })
    }
}

impl From<Timestamp> for TimeSpec {
    fn from(t: Timestamp) -> Self {
        Self(t.to_string())
    }
}

/// At most nine fractional digits (nanoseconds); further digits are dropped.
fn shorten_fraction(s: &str) -> String {
    let Some(dot) = s.find('.') else { return s.to_owned() };
    let digits = s[dot + 1..].find(|c: char| !c.is_ascii_digit()).map_or(s.len(), |i| dot + 1 + i);
    if digits - dot - 1 <= 9 {
        return s.to_owned();
    }
    format!("{}{}", &s[..dot + 10], &s[digits..])
}

/// `(date and time, offset)`: the offset is a trailing `Z` or `±hh[:mm]` after the time.
fn split_offset(s: &str) -> (&str, &str) {
    let time_at = s.find('T').map_or(0, |i| i + 1);
    match s[time_at..].rfind(['Z', '+', '-']) {
        Some(i) => s.split_at(time_at + i),
        None => (s, ""),
    }
}

crate::duration::validated_string_schema!(
    TimeSpec,
    "TimeSpec",
    [{ "rule": format!("self.matches('{}')", pattern()), "message": GRAMMAR_MESSAGE }]
);

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Result<String, String> {
        TimeSpec(s.into()).timestamp().map(|t| t.to_string())
    }

    #[test]
    fn reads_rfc3339_and_what_looser_schemas_accepted() {
        let cases = [
            ("2026-11-22T23:00:00Z", "2026-11-22T23:00:00Z"),
            ("2026-11-22T23:00:00.5Z", "2026-11-22T23:00:00.5Z"),
            ("2026-11-22T23:00:00+01:00", "2026-11-22T22:00:00Z"),
            ("2030-01-01t00:00:00z", "2030-01-01T00:00:00Z"),
            ("2026-11-22T23:00:00.1234567891234Z", "2026-11-22T23:00:00.123456789Z"),
            ("2026-11-22T23:00:00", "2026-11-22T23:00:00Z"),
            ("9999-12-31T23:59:59+14:00", &Timestamp::MAX.to_string()),
        ];
        for (input, want) in cases {
            assert_eq!(read(input).as_deref(), Ok(want), "{input}");
        }
    }

    /// The schema's pattern accepts a date exactly when it is a real one: every day of the month up to 32, for
    /// common, leap and century years, and the range's ends.
    #[test]
    fn the_pattern_accepts_exactly_the_real_dates() {
        let re = regex::Regex::new(&pattern()).unwrap();
        for year in [1000, 1600, 1900, 2000, 2023, 2024, 2100, 2400, 9996, 9998] {
            for month in 1..=13 {
                for day in 0..=32 {
                    let s = format!("{year:04}-{month:02}-{day:02}T12:00:00Z");
                    let real = crate::jiff::civil::Date::new(year, month, day).is_ok();
                    assert_eq!(re.is_match(&s), real, "{s}");
                    if real {
                        assert!(TimeSpec(s.clone()).timestamp().is_ok(), "{s}");
                    }
                }
            }
        }
        for outside in ["0999-12-31T00:00:00Z", "9999-01-01T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:60Z"]
        {
            assert!(!re.is_match(outside), "{outside}");
        }
        for inside in ["9998-12-31T23:59:59-23:59", "1000-01-01T00:00:00+23:59", "2026-01-01T00:00:00.123456789+05:30"]
        {
            assert!(re.is_match(inside) && TimeSpec(inside.into()).timestamp().is_ok(), "{inside}");
        }
    }

    #[test]
    fn unreadable_values_name_the_fix() {
        let err = read("tomorrow at noon").unwrap_err();
        assert!(err.contains("must be an RFC 3339 time such as"), "{err}");
    }
}
