//! The absolute deadline: computed once from persisted facts and never extended.

use crate::jiff::{SignedDuration, Timestamp};

use k8s_openapi::api::core::v1::Pod;

use crate::crd::{PodTask, PodTaskSpec};

/// The task's absolute deadline, given when its first attempt launched. `None`: the task has no time limit.
/// With both an execution timeout and an absolute `spec.deadline`, the earlier wins.
pub fn absolute(spec: &PodTaskSpec, first_start: Option<Timestamp>) -> Option<Timestamp> {
    // Stored times are whole seconds: round a budget's end up (never shorter than asked) and an absolute date
    // down (never later than asked).
    let by_budget =
        first_start.zip(spec.execution_timeout).map(|(start, budget)| whole_second_ceil(after(start, budget.as_std())));
    let by_date = spec.deadline.as_ref().and_then(|t| t.timestamp().ok()).map(whole_second);
    match (by_budget, by_date) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Is enforcing the task's deadline due at `now`? It is while the task is in progress and the deadline has come,
/// or the moment one of its live pods must start stopping to be gone by then. Such a reconcile goes ahead of
/// routine ones (operator::permits).
pub fn is_due(task: &PodTask, pods: &[Pod], now: Timestamp) -> bool {
    let Some(status) = task.status.as_ref().filter(|s| !s.phase.is_terminal()) else { return false };
    let deadline = status.deadline.as_ref().map(|t| t.0).or_else(|| pods.iter().find_map(super::pod::deadline_of));
    let Some(deadline) = deadline else { return false };
    now >= deadline
        || pods.iter().any(|p| p.metadata.deletion_timestamp.is_none() && now >= super::pod::stop_at(p, deadline))
}

/// `t` plus `d`, saturating at the end of time (a duration from a spec can be huge).
pub fn after(t: Timestamp, d: std::time::Duration) -> Timestamp {
    SignedDuration::try_from(d).ok().and_then(|d| t.checked_add(d).ok()).unwrap_or(Timestamp::MAX)
}

/// Seconds left until `deadline`, rounded up, at least 1 and at most what the API allows: the pod's
/// `activeDeadlineSeconds`, so the kubelet stops the pod even while the operator is down.
pub fn remaining_seconds(deadline: Timestamp, now: Timestamp) -> i64 {
    let left = deadline.duration_since(now);
    let secs = left.as_secs() + i64::from(left.subsec_nanos() > 0);
    secs.clamp(1, MAX_ACTIVE_DEADLINE_SECONDS)
}

/// The API server's limit for `activeDeadlineSeconds` (a 32-bit integer).
pub const MAX_ACTIVE_DEADLINE_SECONDS: i64 = i32::MAX as i64;

/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The grace period a pod gets when its deadline comes: what its template asks (Kubernetes' default 30s), but
/// at most a tenth of the budget left when the pod is created (at least 1s). podtask starts stopping the pod
/// this long before the deadline, so that even a container that ignores SIGTERM is gone by the deadline.
pub fn stop_grace(template_grace: Option<i64>, deadline: Timestamp, now: Timestamp) -> i64 {
    let left = deadline.duration_since(now).as_secs().max(0);
    template_grace.unwrap_or(DEFAULT_GRACE_SECONDS).min((left / 10).max(1)).max(0)
}

/// How much earlier than its grace period podtask starts stopping a pod: room for podtask's own lag (the timer,
/// the delete request) and the kubelet's (it learns of the delete from its watch, and stops the pod's containers
/// one after another), so that a container that ignores SIGTERM is gone by the deadline, not just after it.
pub const STOP_MARGIN_SECONDS: i64 = 2;

/// When stopping a pod with `grace_seconds` must begin for it to be gone by `deadline`.
pub fn stop_at(deadline: Timestamp, grace_seconds: i64) -> Timestamp {
    let lead = grace_seconds.max(0).saturating_add(STOP_MARGIN_SECONDS);
    deadline.checked_sub(SignedDuration::from_secs(lead)).unwrap_or(deadline)
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

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn spec(timeout: Option<&str>, deadline: Option<&str>) -> PodTaskSpec {
        PodTaskSpec {
            template: Default::default(),
            execution_timeout: timeout.map(|t| t.parse().unwrap()),
            deadline: deadline.map(|d| crate::time_spec::TimeSpec(d.into())),
            startup_timeout: None,
            retry: None,
            cleanup: None,
            ttl_after_finished: None,
            deciding_containers: None,
            pod_failure_policy: None,
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
        assert_eq!(remaining_seconds(Timestamp::MAX, ts("2026-01-01T10:00:00Z")), i64::from(i32::MAX));
    }

    #[test]
    fn the_grace_at_the_deadline_fits_in_the_budget() {
        let now = ts("2026-01-01T10:00:00Z");
        let cases = [
            // (template grace, budget left in seconds, grace used)
            (None, 3600, 30),
            (Some(60), 3600, 60),
            (Some(60), 300, 30),
            (None, 20, 2),
            (None, 5, 1),
            (Some(0), 3600, 0),
        ];
        for (template, left, want) in cases {
            let deadline = after(now, std::time::Duration::from_secs(left));
            assert_eq!(stop_grace(template, deadline, now), want, "{template:?} with {left}s left");
        }
        assert_eq!(stop_at(ts("2026-01-01T10:00:32Z"), 30), now, "the grace and the margin before the deadline");
    }

    #[test]
    fn budgets_are_never_shorter_than_asked() {
        let start = ts("2026-01-01T10:00:00.830Z");
        let d = absolute(&spec(Some("20s"), None), Some(start)).unwrap();
        assert!(d.duration_since(start) >= SignedDuration::from_secs(20), "{d}");
        assert_eq!(d, ts("2026-01-01T10:00:21Z"), "rounded up to the whole second that is stored");
    }

    #[test]
    fn a_deadline_is_due_from_the_moment_its_pod_must_start_stopping() {
        use crate::crd::{Phase, PodTaskStatus};
        use crate::engine::testing::{pod_at, running, t, task, with_status};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let task = task(serde_json::json!({"executionTimeout": "10m"}));
        let live = pod_at(&task, 1, t(0), running());
        let mut stopping = live.clone();
        stopping.metadata.deletion_timestamp = Some(Time(t(100)));
        let status = |phase| PodTaskStatus { phase, deadline: Some(Time(t(600))), ..Default::default() };
        let in_progress = with_status(task.clone(), status(Phase::Running));
        let over = with_status(task.clone(), status(Phase::Failed));
        let cases = [
            // (task, its pods, now, due): the pod's grace is Kubernetes' default 30s
            (&task, vec![live.clone()], t(700), false), // no status yet: nothing launched that podtask knows of
            (&in_progress, vec![live.clone()], t(567), false),
            (&in_progress, vec![live.clone()], t(568), true), // 600 - 30s grace - 2s margin
            (&in_progress, vec![stopping.clone()], t(568), false), // its stop has begun already
            (&in_progress, vec![stopping], t(600), true),
            (&in_progress, vec![], t(600), true),
            (&over, vec![live], t(700), false),
        ];
        for (i, (task, pods, now, due)) in cases.into_iter().enumerate() {
            assert_eq!(is_due(task, &pods, now), due, "case {i}");
        }
    }

    #[test]
    fn whole_seconds() {
        assert_eq!(whole_second(ts("2026-01-01T10:00:00.7Z")), ts("2026-01-01T10:00:00Z"));
        assert_eq!(whole_second_ceil(ts("2026-01-01T10:00:00.1Z")), ts("2026-01-01T10:00:01Z"));
        assert_eq!(whole_second_ceil(ts("2026-01-01T10:00:00Z")), ts("2026-01-01T10:00:00Z"));
    }
}
