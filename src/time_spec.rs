//! `TimeSpec`: an absolute time a user writes in a PodTask (`spec.deadline`), as RFC 3339.
//!
//! Kept as the string the user wrote: the CRD schema checks it with [`PATTERN`] (so the API server never has to
//! parse it as a date for the spec's immutability rule), and podtask reads it with [`TimeSpec::timestamp`], which
//! also understands what older, looser schemas accepted. Reading never fails the watch: a value podtask cannot
//! read makes the task fail with `InvalidSpec`, naming the field.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::jiff::{Timestamp, civil::DateTime};

/// RFC 3339 with an uppercase `T` and `Z`, seconds, at most nine fractional digits and a `Z` or `±hh:mm` offset.
pub const PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// The latest time accepted (the end of the range every Kubernetes client can represent, with any offset).
pub const LATEST: &str = "9999-12-30T00:00:00Z";

pub const GRAMMAR_MESSAGE: &str = "must be an RFC 3339 time such as 2026-11-22T18:00:00Z or 2026-11-22T19:00:00+01:00 (uppercase T and Z, seconds required, at most 9 fractional digits)";

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

impl JsonSchema for TimeSpec {
    fn schema_name() -> Cow<'static, str> {
        "TimeSpec".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 40,
            "x-kubernetes-validations": [
                { "rule": format!("self.matches('{PATTERN}')"), "message": GRAMMAR_MESSAGE },
                {
                    "rule": format!("!self.matches('{PATTERN}') || timestamp(self) < timestamp('{LATEST}')"),
                    "message": format!("must be before {LATEST}")
                }
            ]
        })
    }
}

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

    #[test]
    fn unreadable_values_name_the_fix() {
        let err = read("tomorrow at noon").unwrap_err();
        assert!(err.contains("must be an RFC 3339 time such as"), "{err}");
    }
}
