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
