//! Conditions derived from the phase: Job-compatible `Complete`/`Failed` for `kubectl wait`, and kstatus's
//! `Reconciling`/`Stalled` for Flux, kpt and Argo CD.

use crate::jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{Phase, PodTaskStatus};

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// At most this many attempts are kept in `status.attempts`.
pub const HISTORY_LIMIT: usize = 20;

// The bounds of what podtask writes to a status, which the CRD's schema holds every writer to: a status someone
// else wrote never holds more than podtask could have, and `bound` keeps podtask itself within them.

/// The most RetryWithoutCounting retries podtask makes, plus the attempt that found the limit reached.
pub const MAX_UNCOUNTED_ATTEMPTS: u32 = super::failure_policy::MAX_UNCOUNTED_RETRIES + 1;
/// The highest attempt number: the first, `retry.limit` counted retries at most, and the uncounted ones.
pub const MAX_ATTEMPTS: u32 = 1 + crate::crd::MAX_RETRY_LIMIT + MAX_UNCOUNTED_ATTEMPTS;
/// The longest `status.message` (as long as a condition's message may be).
pub const MESSAGE_MAX: usize = 32 * 1024;
/// The longest termination message, and message or matched rule of one attempt.
pub const DETAIL_MAX: usize = 4096;
/// The longest pod name podtask gives (`naming::pod_name`).
pub const POD_NAME_MAX: usize = 63;
/// At most this many conditions (podtask sets two at most).
pub const CONDITIONS_MAX: usize = 4;
/// Every time in a status, as podtask writes it (RFC 3339 in UTC, whole seconds) and within the times podtask can
/// read back: from year 0 up to 9999-12-30T22:00:00Z, the last instant `jiff` holds.
pub const TIME_PATTERN: &str = concat!(
    r"^(([0-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}",
    r"|9999-(0[0-9]|1[01])-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}",
    r"|9999-12-[0-2][0-9]T[0-9]{2}:[0-9]{2}:[0-9]{2}",
    r"|9999-12-30T([01][0-9]|2[01]):[0-9]{2}:[0-9]{2}",
    r"|9999-12-30T22:00:00)Z$"
);

/// Cuts what podtask is about to write to the schema's bounds (a long message from the API server or the kubelet,
/// say), so the write is never refused.
pub fn bound(status: &mut PodTaskStatus) {
    let cut = |s: &mut Option<String>, max: usize| {
        if let Some(text) = s.as_mut().filter(|t| t.chars().count() > max) {
            *text = text.chars().take(max - 1).chain(['…']).collect();
        }
    };
    cut(&mut status.message, MESSAGE_MAX);
    cut(&mut status.termination_message, DETAIL_MAX);
    for record in &mut status.attempts {
        cut(&mut record.message, DETAIL_MAX);
        cut(&mut record.matched_rule, DETAIL_MAX);
    }
    let excess = status.attempts.len().saturating_sub(HISTORY_LIMIT);
    status.attempts.drain(..excess);
}

/// Rewrites `status.conditions` to match `status.phase`, keeping each condition's lastTransitionTime when its
/// status did not change (so an unchanged task produces an identical status and no write).
pub fn set_conditions(status: &mut PodTaskStatus, generation: Option<i64>, now: Timestamp) {
    let reason = status.reason.map_or_else(|| "Pending".to_owned(), |r| r.to_string());
    let message = status.message.clone().unwrap_or_default();
    let wanted: Vec<(&str, &str)> = match status.phase {
        Phase::Pending | Phase::Starting | Phase::Running => vec![(RECONCILING, "True")],
        Phase::Succeeded => vec![(COMPLETE, "True")],
        Phase::Failed => vec![(FAILED, "True"), (STALLED, "True")],
    };
    let old = std::mem::take(&mut status.conditions);
    status.conditions = wanted
        .into_iter()
        .map(|(type_, value)| {
            let prior = old.iter().find(|c| c.type_ == type_ && c.status == value);
            Condition {
                type_: type_.to_owned(),
                status: value.to_owned(),
                reason: reason.clone(),
                message: message.clone(),
                observed_generation: generation,
                last_transition_time: prior.map_or(Time(now), |c| c.last_transition_time.clone()),
            }
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Reason;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn types(s: &PodTaskStatus) -> Vec<(&str, &str)> {
        s.conditions.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect()
    }

    /// What podtask writes fits the schema: a message of any length is cut to its bound.
    #[test]
    fn bound_cuts_long_texts_to_the_schema() {
        let long = "é".repeat(MESSAGE_MAX + 10);
        let mut s = PodTaskStatus {
            message: Some(long.clone()),
            termination_message: Some(long.clone()),
            attempts: vec![
                crate::crd::AttemptRecord {
                    attempt: 1,
                    pod_name: "p".into(),
                    start_time: None,
                    end_time: None,
                    outcome: crate::crd::Outcome::Failed,
                    reason: Reason::PodFailed,
                    message: Some(long.clone()),
                    exit_code: Some(1),
                    matched_rule: Some("short".into()),
                    stop_requested_time: None,
                    pod_gone_time: None,
                };
                HISTORY_LIMIT + 3
            ],
            ..Default::default()
        };
        bound(&mut s);
        assert_eq!(s.message.as_ref().map(|m| m.chars().count()), Some(MESSAGE_MAX));
        assert!(s.message.as_ref().is_some_and(|m| m.ends_with('…')));
        assert_eq!(s.termination_message.as_ref().map(|m| m.chars().count()), Some(DETAIL_MAX));
        assert_eq!(s.attempts.len(), HISTORY_LIMIT);
        assert_eq!(s.attempts[0].message.as_ref().map(|m| m.chars().count()), Some(DETAIL_MAX));
        assert_eq!(s.attempts[0].matched_rule.as_deref(), Some("short"), "within its bound: untouched");
    }

    /// Every time podtask can hold and write matches the schema's pattern; the first instant beyond it does not.
    #[test]
    fn the_time_pattern_admits_exactly_the_times_podtask_reads() {
        let pattern = regex::Regex::new(TIME_PATTERN).expect("the pattern compiles");
        let written = |t: Timestamp| serde_json::to_value(Time(t)).expect("a time").as_str().unwrap_or("").to_owned();
        let max = crate::engine::deadline::whole_second(Timestamp::MAX);
        for t in [at("1970-01-01T00:00:00Z"), at("2026-12-04T15:04:05Z"), at("9998-12-31T23:59:59Z"), max] {
            let text = written(t);
            assert!(pattern.is_match(&text), "{text} is refused");
            let back: Time = serde_json::from_value(text.clone().into()).expect("read back");
            assert_eq!(back.0, t, "{text}");
        }
        for refused in [
            "9999-12-30T22:00:01Z",
            "9999-12-31T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-12-04T15:04:05+14:00",
            "2026-12-04T15:04:05.5Z",
            "2026-12-04t15:04:05z",
            "12026-12-04T15:04:05Z",
        ] {
            assert!(!pattern.is_match(refused), "{refused} is admitted");
        }
        for admitted in ["0000-01-01T00:00:00Z", "9999-12-29T23:59:59Z", "9999-12-30T21:59:59Z", "9999-11-30T23:59:59Z"]
        {
            assert!(pattern.is_match(admitted), "{admitted}");
            assert!(admitted.parse::<Timestamp>().is_ok(), "{admitted} is beyond what podtask reads");
        }
    }

    #[test]
    fn conditions_follow_the_phase() {
        let cases = [
            (Phase::Pending, vec![(RECONCILING, "True")]),
            (Phase::Starting, vec![(RECONCILING, "True")]),
            (Phase::Running, vec![(RECONCILING, "True")]),
            (Phase::Succeeded, vec![(COMPLETE, "True")]),
            (Phase::Failed, vec![(FAILED, "True"), (STALLED, "True")]),
        ];
        for (phase, want) in cases {
            let mut s = PodTaskStatus { phase, ..Default::default() };
            set_conditions(&mut s, Some(3), at("2026-01-01T00:00:00Z"));
            assert_eq!(types(&s), want, "{phase:?}");
            assert!(s.conditions.iter().all(|c| c.observed_generation == Some(3)));
        }
    }

    #[test]
    fn transition_time_only_moves_on_a_transition() {
        let mut s = PodTaskStatus { phase: Phase::Starting, reason: Some(Reason::Scheduling), ..Default::default() };
        set_conditions(&mut s, Some(1), at("2026-01-01T00:00:00Z"));
        s.phase = Phase::Running;
        s.reason = Some(Reason::Running);
        set_conditions(&mut s, Some(1), at("2026-01-01T00:05:00Z"));
        assert_eq!(s.conditions[0].last_transition_time.0, at("2026-01-01T00:00:00Z"), "still reconciling");
        assert_eq!(s.conditions[0].reason, "Running");
        s.phase = Phase::Succeeded;
        s.reason = Some(Reason::Completed);
        set_conditions(&mut s, Some(1), at("2026-01-01T00:09:00Z"));
        assert_eq!(s.conditions[0].last_transition_time.0, at("2026-01-01T00:09:00Z"));
        assert_eq!(s.conditions[0].reason, "Completed");
    }
}
