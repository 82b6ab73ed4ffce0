//! Which attempt outcomes are retried, and how long to wait first.

use std::time::Duration as StdDuration;

use crate::{
    crd::{Reason, RetryPolicy, RetryReason},
    jiff::Timestamp,
};

pub const DEFAULT_LIMIT: u32 = 2;
pub const DEFAULT_INITIAL: StdDuration = StdDuration::from_secs(10);
pub const DEFAULT_FACTOR: u32 = 2;
pub const DEFAULT_MAX: StdDuration = StdDuration::from_secs(300);

/// Infrastructure failures: retried unless the policy lists its own reasons.
pub const DEFAULT_REASONS: [RetryReason; 5] = [
    RetryReason::ImagePullTimeout,
    RetryReason::StartupTimeout,
    RetryReason::Unschedulable,
    RetryReason::Evicted,
    RetryReason::PodLost,
];

/// The retry class of an attempt's outcome; `None` for outcomes that are never retried.
pub fn retry_reason(reason: Reason) -> Option<RetryReason> {
    Some(match reason {
        Reason::ImagePullTimeout => RetryReason::ImagePullTimeout,
        Reason::StartupTimeout => RetryReason::StartupTimeout,
        Reason::Unschedulable => RetryReason::Unschedulable,
        Reason::Evicted => RetryReason::Evicted,
        Reason::PodLost => RetryReason::PodLost,
        Reason::PodFailed => RetryReason::PodFailed,
        Reason::OOMKilled => RetryReason::OOMKilled,
        _ => return None,
    })
}

/// The longest wait between two creates of a task's pod that the API server refused (a full ResourceQuota).
pub const MAX_CREATE_RETRY: StdDuration = StdDuration::from_secs(300);

/// When to try again to create a pod the API server refused: `least` at first, then half the time the task has
/// waited since its first attempt to launch, up to `MAX_CREATE_RETRY`. A thousand tasks refused for an hour try
/// about three creates a second between them, not sixty.
pub fn create_retry(least: StdDuration, first_try: Timestamp, now: Timestamp) -> StdDuration {
    let waited = now.duration_since(first_try).unsigned_abs();
    (waited / 2).clamp(least, MAX_CREATE_RETRY.max(least))
}

/// How many extra attempts the policy allows.
pub fn limit(policy: Option<&RetryPolicy>) -> u32 {
    policy.and_then(|p| p.limit).unwrap_or(DEFAULT_LIMIT)
}

/// May attempt number `attempt` (1-based, just ended with `reason`) be followed by another?
pub fn may_retry(policy: Option<&RetryPolicy>, attempt: u32, reason: Reason) -> bool {
    let Some(class) = retry_reason(reason) else {
        return false;
    };
    let limit = limit(policy);
    let listed = match policy.and_then(|p| p.reasons.as_deref()) {
        Some(reasons) => reasons.contains(&class),
        None => DEFAULT_REASONS.contains(&class),
    };
    listed && attempt <= limit
}

/// How long to wait after attempt number `attempt` failed: initial × factor^(attempt-1), capped at max, and at
/// least `rate_limit_floor` when the registry was throttling us.
pub fn backoff(policy: Option<&RetryPolicy>, attempt: u32, rate_limit_floor: Option<StdDuration>) -> StdDuration {
    let b = policy.and_then(|p| p.backoff.clone()).unwrap_or_default();
    let initial = b.initial.map_or(DEFAULT_INITIAL, |d| d.as_std());
    let factor = b.factor.unwrap_or(DEFAULT_FACTOR).max(1);
    let max = b.max.map_or(DEFAULT_MAX, |d| d.as_std());
    let exp = attempt.saturating_sub(1).min(32);
    let scaled = factor.checked_pow(exp).and_then(|f| initial.checked_mul(f)).unwrap_or(max);
    let wait = scaled.min(max);
    match rate_limit_floor {
        Some(floor) => wait.max(floor),
        None => wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Backoff;

    fn policy(limit: Option<u32>, reasons: Option<Vec<RetryReason>>) -> RetryPolicy {
        RetryPolicy { limit, backoff: None, reasons }
    }

    #[test]
    fn eligibility_table() {
        use Reason::*;
        let default = None;
        let exits = policy(Some(3), Some(vec![RetryReason::PodFailed]));
        let none = policy(Some(0), None);
        let cases: &[(Option<&RetryPolicy>, u32, Reason, bool)] = &[
            (default, 1, ImagePullTimeout, true),
            (default, 1, StartupTimeout, true),
            (default, 1, Unschedulable, true),
            (default, 1, Evicted, true),
            (default, 1, PodLost, true),
            (default, 2, PodLost, true),
            (default, 3, PodLost, false),
            (default, 1, PodFailed, false),
            (default, 1, InvalidImageName, false),
            (default, 1, ErrImageNeverPull, false),
            (default, 1, CreateContainerConfigError, false),
            (default, 1, DeadlineExceeded, false),
            (default, 1, InvalidSpec, false),
            (default, 1, Forbidden, false),
            (Some(&exits), 1, PodFailed, true),
            (Some(&exits), 3, PodFailed, true),
            (Some(&exits), 4, PodFailed, false),
            (Some(&exits), 1, ImagePullTimeout, false),
            (Some(&none), 1, ImagePullTimeout, false),
        ];
        for (p, attempt, reason, want) in cases {
            assert_eq!(may_retry(*p, *attempt, *reason), *want, "{reason:?} after attempt {attempt} with {p:?}");
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            limit: Some(10),
            backoff: Some(Backoff {
                initial: Some("2s".parse().unwrap()),
                factor: Some(3),
                max: Some("1m".parse().unwrap()),
            }),
            reasons: None,
        };
        let secs: Vec<u64> = (1..=6).map(|n| backoff(Some(&p), n, None).as_secs()).collect();
        assert_eq!(secs, [2, 6, 18, 54, 60, 60]);
        assert_eq!(backoff(None, 1, None), DEFAULT_INITIAL);
        assert_eq!(backoff(None, 2, None), DEFAULT_INITIAL * 2);
        assert_eq!(backoff(None, 100, None), DEFAULT_MAX, "no overflow on long retry chains");
    }

    #[test]
    fn rate_limited_attempts_wait_at_least_the_floor() {
        let floor = StdDuration::from_secs(60);
        assert_eq!(backoff(None, 1, Some(floor)), floor);
        assert_eq!(backoff(None, 10, Some(floor)), DEFAULT_MAX, "a longer regular backoff still wins");
    }
}
