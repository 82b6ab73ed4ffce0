//! `Duration`: the duration strings users write in a PodTask (`90s`, `5m`, `1h30m`).
//!
//! One grammar, [`PATTERN`], is what the CRD schema accepts (so `kubectl apply` refuses anything else with a
//! readable message), what `FromStr` accepts (CLI flags), and what the end-to-end tests prove the two agree on.
//! Reading a PodTask is more forgiving (see `Deserialize`): a PodTask stored under an older, looser schema must
//! never stop the operator.

use std::{fmt, str::FromStr, time::Duration as StdDuration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Each unit at most once, largest first, with a bounded number of digits so that every accepted value stays far
/// below the 292 years the API server's CEL `duration()` can represent (the largest is about 137 years).
pub const PATTERN: &str = "^([0-9]{1,6}h)?([0-9]{1,7}m)?([0-9]{1,8}s)?([0-9]{1,10}ms)?$";

/// Units in the order the grammar requires, with the most digits each may have.
const UNITS: [(&str, StdDuration, usize); 4] = [
    ("h", StdDuration::from_secs(3600), 6),
    ("m", StdDuration::from_secs(60), 7),
    ("s", StdDuration::from_secs(1), 8),
    ("ms", StdDuration::from_millis(1), 10),
];

/// What the schema says when a value does not match [`PATTERN`]; also the parser's hint.
pub const GRAMMAR_MESSAGE: &str = "must be a duration such as 90s, 5m, 1h30m or 250ms: whole numbers with the units h, m, s, ms, each at most once and in that order (no spaces, no decimals), at most 999999h";

/// A positive duration written like Go's `time.Duration` (`90s`, `5m`, `1h30m`, `250ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(StdDuration);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("{0:?} {GRAMMAR_MESSAGE}")]
    Malformed(String),
    #[error("{0:?} must be longer than zero")]
    Zero(String),
}

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(StdDuration::from_secs(secs))
    }

    pub const fn from_millis(ms: u64) -> Self {
        Self(StdDuration::from_millis(ms))
    }

    pub const fn as_std(self) -> StdDuration {
        self.0
    }

    /// For timestamp arithmetic with `jiff`.
    pub fn as_signed(self) -> crate::jiff::SignedDuration {
        crate::jiff::SignedDuration::try_from(self.0).unwrap_or(crate::jiff::SignedDuration::MAX)
    }

    /// The forgiving reading used for stored PodTasks: `<digits><unit>` groups in any order and number, as long
    /// as the total fits. Everything [`PATTERN`] accepts is read the same way by both.
    pub fn parse_lenient(s: &str) -> Result<Self, ParseError> {
        let malformed = || ParseError::Malformed(s.to_owned());
        let groups = groups(s).ok_or_else(malformed)?;
        let mut total = StdDuration::ZERO;
        for (digits, unit) in groups {
            let value: u64 = digits.parse().map_err(|_| malformed())?;
            let part = unit_size(unit).as_millis().checked_mul(u128::from(value)).ok_or_else(malformed)?;
            let part = u64::try_from(part).map(StdDuration::from_millis).map_err(|_| malformed())?;
            total = total.checked_add(part).ok_or_else(malformed)?;
        }
        positive(s, total)
    }
}

/// Split `s` into `(digits, unit)` groups; None unless the whole string is such groups.
fn groups(s: &str) -> Option<Vec<(&str, &str)>> {
    let mut out = vec![];
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let unit = ["ms", "h", "m", "s"].into_iter().find(|u| tail.starts_with(u))?;
        if number.is_empty() {
            return None;
        }
        out.push((number, unit));
        rest = &tail[unit.len()..];
    }
    (!out.is_empty()).then_some(out)
}

fn unit_size(unit: &str) -> StdDuration {
    UNITS.iter().find(|(u, ..)| *u == unit).map_or(StdDuration::ZERO, |(_, size, _)| *size)
}

fn positive(s: &str, total: StdDuration) -> Result<Duration, ParseError> {
    if total.is_zero() { Err(ParseError::Zero(s.to_owned())) } else { Ok(Duration(total)) }
}

impl From<StdDuration> for Duration {
    fn from(d: StdDuration) -> Self {
        Self(d)
    }
}

impl FromStr for Duration {
    type Err = ParseError;

    /// Exactly [`PATTERN`], and longer than zero.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || ParseError::Malformed(s.to_owned());
        let groups = groups(s).ok_or_else(malformed)?;
        let mut next_unit = 0;
        for (digits, unit) in &groups {
            let at = UNITS.iter().position(|(u, ..)| u == unit).ok_or_else(malformed)?;
            if at < next_unit || digits.len() > UNITS[at].2 {
                return Err(malformed());
            }
            next_unit = at + 1;
        }
        Self::parse_lenient(s)
    }
}

impl fmt::Display for Duration {
    /// Renders in the same grammar it parses, largest units first (`1h30m`, `90s` prints as `1m30s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let (h, m, s, rem) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        let mut out = String::new();
        for (v, unit) in [(h, "h"), (m, "m"), (s, "s"), (rem, "ms")] {
            if v > 0 {
                out.push_str(&format!("{v}{unit}"));
            }
        }
        if out.is_empty() {
            out.push_str("0s");
        }
        f.write_str(&out)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Lenient: see [`Duration::parse_lenient`].
impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Duration::parse_lenient(&s).map_err(serde::de::Error::custom)
    }
}

/// A string in the CRD schema checked by CEL `rules` (`[{"rule": ..., "message": ...}]`), for the spec's value
/// types that podtask reads itself.
macro_rules! validated_string_schema {
    ($type:ty, $name:literal, $rules:tt) => {
        impl schemars::JsonSchema for $type {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "maxLength": 40, "x-kubernetes-validations": $rules })
            }
        }
    };
}
pub(crate) use validated_string_schema;

validated_string_schema!(
    Duration,
    "Duration",
    [
        { "rule": format!("size(self) > 0 && self.matches('{PATTERN}')"), "message": GRAMMAR_MESSAGE },
        {
            "rule": format!("size(self) == 0 || !self.matches('{PATTERN}') || duration(self) > duration('0s')"),
            "message": "must be longer than zero"
        }
    ]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let cases = [
            ("90s", 90_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("250ms", 250),
            ("1m30s", 90_000),
            ("2h", 7_200_000),
            ("1s500ms", 1_500),
        ];
        for (input, ms) in cases {
            let d: Duration = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(d.as_std().as_millis(), ms, "{input}");
        }
    }

    #[test]
    fn rejects_what_the_schema_rejects() {
        let bad_ones = [
            "",
            "5",
            "m",
            "5 m",
            "1.5h",
            "-5s",
            "5d",
            "5mm",
            "10S",
            "1h 30m",
            "99999999999h",
            "30m1h",
            "5m5m",
            "1000000h",
            "5000000000s",
            "\u{0661}s",
            "1s500",
            "h1",
        ];
        for bad in bad_ones {
            assert!(matches!(bad.parse::<Duration>(), Err(ParseError::Malformed(_))), "{bad:?} accepted");
        }
        assert_eq!("0s".parse::<Duration>(), Err(ParseError::Zero("0s".into())));
        assert_eq!("0h0m".parse::<Duration>(), Err(ParseError::Zero("0h0m".into())));
    }

    #[test]
    fn displays_in_the_grammar_it_parses() {
        for (input, shown) in [("90s", "1m30s"), ("1h30m", "1h30m"), ("250ms", "250ms"), ("3600s", "1h")] {
            let d: Duration = input.parse().unwrap();
            assert_eq!(d.to_string(), shown);
            assert_eq!(shown.parse::<Duration>().unwrap(), d);
        }
    }

    #[test]
    fn serde_round_trip_and_error_names_the_fix() {
        let d: Duration = serde_json::from_str("\"5m\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"5m\"");
        let err = serde_json::from_str::<Duration>("\"five minutes\"").unwrap_err().to_string();
        assert!(err.contains("must be a duration such as 90s"), "{err}");
    }

    #[test]
    fn the_largest_accepted_value_is_far_from_any_limit() {
        let max: Duration = "999999h9999999m99999999s9999999999ms".parse().expect("the grammar's largest value");
        let years = max.as_std().as_secs() / (365 * 24 * 3600);
        assert_eq!(years, 136, "well below the 292 years of the API server's CEL duration()");
    }

    #[test]
    fn stored_tasks_are_read_leniently() {
        // Values an older schema accepted: they must be readable, never stop the operator.
        for (input, secs) in
            [("5000000000s", 5_000_000_000), ("4294967296ms", 4_294_967), ("30m1h", 5400), ("5m5m", 600)]
        {
            let d: Duration =
                serde_json::from_value(serde_json::json!(input)).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(d.as_std().as_secs(), secs, "{input}");
        }
        for hopeless in ["five", "99999999999999999999999h", "0s"] {
            assert!(serde_json::from_value::<Duration>(serde_json::json!(hopeless)).is_err(), "{hopeless}");
        }
    }
}
