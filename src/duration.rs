//! `Duration`: the duration strings users write in a PodTask (`90s`, `5m`, `1h30m`).
//!
//! The same grammar is enforced three times, on purpose: by the CRD schema (CEL, so `kubectl apply` rejects a bad
//! value with a readable message), by serde (so the operator never acts on a value it cannot read), and by the CLI.

use std::{borrow::Cow, fmt, str::FromStr, time::Duration as StdDuration};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The grammar accepted everywhere: one or more `<integer><unit>` groups, units `ms`, `s`, `m`, `h`.
pub const PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";

/// A positive duration written like Go's `time.Duration` (`90s`, `5m`, `1h30m`, `250ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(StdDuration);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("{0:?} is not a duration: write it like 90s, 5m, 1h30m or 250ms")]
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
}

impl From<StdDuration> for Duration {
    fn from(d: StdDuration) -> Self {
        Self(d)
    }
}

impl FromStr for Duration {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut total = StdDuration::ZERO;
        let mut rest = s;
        if rest.is_empty() {
            return Err(ParseError::Malformed(s.to_owned()));
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits == 0 {
                return Err(ParseError::Malformed(s.to_owned()));
            }
            let value: u64 = rest[..digits].parse().map_err(|_| ParseError::Malformed(s.to_owned()))?;
            rest = &rest[digits..];
            let (unit, len) = if rest.starts_with("ms") {
                (StdDuration::from_millis(1), 2)
            } else if rest.starts_with('s') {
                (StdDuration::from_secs(1), 1)
            } else if rest.starts_with('m') {
                (StdDuration::from_secs(60), 1)
            } else if rest.starts_with('h') {
                (StdDuration::from_secs(3600), 1)
            } else {
                return Err(ParseError::Malformed(s.to_owned()));
            };
            rest = &rest[len..];
            let part = u32::try_from(value)
                .ok()
                .and_then(|v| unit.checked_mul(v))
                .ok_or_else(|| ParseError::Malformed(s.to_owned()))?;
            total = total.checked_add(part).ok_or_else(|| ParseError::Malformed(s.to_owned()))?;
        }
        if total.is_zero() {
            return Err(ParseError::Zero(s.to_owned()));
        }
        Ok(Self(total))
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

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 32,
            "x-kubernetes-validations": [
                {
                    "rule": format!("self.matches('{PATTERN}')"),
                    "message": "must be a duration such as 90s, 5m, 1h30m or 250ms (units ms, s, m, h; no spaces, no decimals)"
                },
                {
                    "rule": format!("!self.matches('{PATTERN}') || duration(self) > duration('0s')"),
                    "message": "must be longer than zero"
                }
            ]
        })
    }
}

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
        for bad in ["", "5", "m", "5 m", "1.5h", "-5s", "5d", "5mm", "10S", "1h 30m", "99999999999h"] {
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
        assert!(err.contains("write it like 90s"), "{err}");
    }
}
