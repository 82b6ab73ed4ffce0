//! The absolute deadline: computed once from persisted facts and never extended.

use crate::jiff::{SignedDuration, Timestamp};

use crate::crd::PodTaskSpec;

/// The task's absolute deadline, given when its first attempt launched. `None`: the task has no time limit.
/// With both an execution timeout and an absolute `spec.deadline`, the earlier wins.
pub fn absolute(spec: &PodTaskSpec, first_start: Option<Timestamp>) -> Option<Timestamp> {
    let by_budget = first_start.zip(spec.execution_timeout).map(|(start, budget)| after(start, budget.as_std()));
    let by_date = spec.deadline.as_ref().map(|t| t.0);
    match (by_budget, by_date) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `t` plus `d`, saturating at the end of time (a duration from a spec can be huge).
pub fn after(t: Timestamp, d: std::time::Duration) -> Timestamp {
    SignedDuration::try_from(d).ok().and_then(|d| t.checked_add(d).ok()).unwrap_or(Timestamp::MAX)
}

/// Seconds left until `deadline`, rounded up, at least 1: the pod's `activeDeadlineSeconds`, so the kubelet
/// stops the pod even while the operator is down.
pub fn remaining_seconds(deadline: Timestamp, now: Timestamp) -> i64 {
    let left = deadline.duration_since(now);
    let secs = left.as_secs() + i64::from(left.subsec_nanos() > 0);
    secs.max(1)
}

/// Timestamps podtask stores are whole seconds, because that is all the API server keeps (RFC 3339 without
/// fractions). Computing with finer times would make every re-read look like a change.
pub fn whole_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The first whole second at or after `t`.
pub fn whole_second_ceil(t: Timestamp) -> Timestamp {
    let down = whole_second(t);
    if down == t { t } else { after(down, std::time::Duration::from_secs(1)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn spec(timeout: Option<&str>, deadline: Option<&str>) -> PodTaskSpec {
        PodTaskSpec {
            template: Default::default(),
            execution_timeout: timeout.map(|t| t.parse().unwrap()),
            deadline: deadline.map(|d| Time(ts(d))),
            startup_timeout: None,
            retry: None,
            cleanup: None,
            ttl_after_finished: None,
        }
    }

    #[test]
    fn deadline_table() {
        let start = Some(ts("2026-01-01T10:00:00Z"));
        let cases = [
            (spec(Some("30m"), None), start, Some("2026-01-01T10:30:00Z")),
            (spec(None, Some("2026-01-01T11:00:00Z")), start, Some("2026-01-01T11:00:00Z")),
            (spec(Some("30m"), Some("2026-01-01T10:10:00Z")), start, Some("2026-01-01T10:10:00Z")),
            (spec(Some("30m"), Some("2026-01-01T12:00:00Z")), start, Some("2026-01-01T10:30:00Z")),
            (spec(None, None), start, None),
            (spec(Some("30m"), None), None, None),
            (spec(None, Some("2026-01-01T11:00:00Z")), None, Some("2026-01-01T11:00:00Z")),
        ];
        for (i, (spec, start, want)) in cases.into_iter().enumerate() {
            assert_eq!(absolute(&spec, start), want.map(ts), "case {i}");
        }
    }

    #[test]
    fn remaining_budget_rounds_up_and_never_reaches_zero() {
        let d = ts("2026-01-01T10:00:10Z");
        assert_eq!(remaining_seconds(d, ts("2026-01-01T10:00:00Z")), 10);
        assert_eq!(remaining_seconds(d, ts("2026-01-01T10:00:00.5Z")), 10);
        assert_eq!(remaining_seconds(d, ts("2026-01-01T10:00:09.9Z")), 1);
        assert_eq!(remaining_seconds(d, ts("2026-01-01T10:00:30Z")), 1);
    }

    #[test]
    fn whole_seconds() {
        assert_eq!(whole_second(ts("2026-01-01T10:00:00.7Z")), ts("2026-01-01T10:00:00Z"));
        assert_eq!(whole_second_ceil(ts("2026-01-01T10:00:00.1Z")), ts("2026-01-01T10:00:01Z"));
        assert_eq!(whole_second_ceil(ts("2026-01-01T10:00:00Z")), ts("2026-01-01T10:00:00Z"));
    }
}
