//! The mixed load: each task gets a scenario (a kwok behaviour plus a spec) that implies its outcome.

use podtask::crd::Phase;
use serde_json::{Value, json};

use crate::harness::template;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Runs 1-3 s and exits 0.
    Succeed,
    /// Exits 3 on every attempt; PodFailed is retried twice.
    FailAndRetry,
    /// The registry rate-limits the pull for a few seconds, then the pod runs and succeeds.
    RateLimitedPull,
    /// Runs forever; the execution timeout ends it.
    Deadline,
}

/// What a task of a scenario must end with: phase, reason and the number of attempts recorded.
#[derive(Debug)]
pub struct Expected {
    pub phase: Phase,
    pub reason: &'static str,
    pub attempts: usize,
}

impl Expected {
    pub fn matches(&self, (phase, reason, attempts): &(Phase, String, usize)) -> bool {
        *phase == self.phase && reason == self.reason && *attempts == self.attempts
    }
}

/// Retries of FailAndRetry (attempts = RETRIES + 1).
const RETRIES: u32 = 2;

impl Scenario {
    pub const ALL: [Scenario; 4] =
        [Scenario::Succeed, Scenario::FailAndRetry, Scenario::RateLimitedPull, Scenario::Deadline];

    pub fn prefix(self) -> &'static str {
        match self {
            Scenario::Succeed => "ok",
            Scenario::FailAndRetry => "retry",
            Scenario::RateLimitedPull => "pull",
            Scenario::Deadline => "deadline",
        }
    }

    /// The spec of task number `i` (varies the durations a little).
    pub fn spec(self, i: usize) -> Value {
        let run_for = format!("{}ms", 1000 + (i * 137) % 2000);
        match self {
            Scenario::Succeed => json!({
                "template": template("succeed", &[("run-for", &run_for)]),
                "executionTimeout": "10m",
            }),
            Scenario::FailAndRetry => json!({
                "template": template("fail", &[("run-for", "1s"), ("exit-code", "3")]),
                "executionTimeout": "10m",
                "retry": {"limit": RETRIES, "reasons": ["PodFailed"], "backoff": {"initial": "1s", "factor": 2, "max": "4s"}},
            }),
            Scenario::RateLimitedPull => json!({
                "template": template("pull-rate-limited", &[("pull-for", "3s"), ("run-for", &run_for)]),
                "executionTimeout": "10m",
                "startupTimeout": "2m",
            }),
            Scenario::Deadline => json!({
                "template": template("run-forever", &[]),
                "executionTimeout": format!("{}s", 15 + i % 20),
            }),
        }
    }

    pub fn expected(self) -> Option<Expected> {
        Some(match self {
            Scenario::Succeed | Scenario::RateLimitedPull => {
                Expected { phase: Phase::Succeeded, reason: "Completed", attempts: 1 }
            }
            Scenario::FailAndRetry => {
                Expected { phase: Phase::Failed, reason: "PodFailed", attempts: RETRIES as usize + 1 }
            }
            Scenario::Deadline => Expected { phase: Phase::Failed, reason: "DeadlineExceeded", attempts: 1 },
        })
    }
}
