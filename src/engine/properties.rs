//! Property tests of `decide`: random sequences of what the world does (pod phases, waiting reasons, deletions by
//! others, a status that lags behind the pods, lost writes, clock jumps) never yield two live pods for a task,
//! never move a deadline, never start an attempt after the deadline, and never leave a terminal phase. And
//! whatever a status says (any attempt number, phase, history or times), a decision costs what the task's pods
//! cost.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Next, Observed, decide, testing::*};
use crate::{crd::PodTask, jiff::Timestamp};

/// One thing that happens between reconciles.
#[derive(Clone, Debug)]
enum Step {
    /// Time passes (seconds; a small negative value is a clock that jumped back).
    Clock(i64),
    /// The newest live pod changes state.
    Pod(PodChange),
    /// Someone else deletes the newest pod.
    DeletedByOthers,
    /// podtask reconciles from its cache (`stale`: the task as read one write ago) or from a fresh read.
    Reconcile { fresh: bool, stale: bool, lose_status_write: bool },
}

#[derive(Clone, Copy, Debug)]
enum PodChange {
    Running,
    Waiting(&'static str, &'static str),
    Succeeded,
    Failed(i32),
    Evicted,
}

fn step() -> impl Strategy<Value = Step> {
    let waiting = prop_oneof![
        Just(("ImagePullBackOff", "Back-off pulling image")),
        Just(("ErrImagePull", "429 Too Many Requests")),
        Just(("ContainerCreating", "")),
        Just(("CreateContainerConfigError", "secret \"x\" not found")),
        Just(("InvalidImageName", "bad")),
    ];
    let change = prop_oneof![
        Just(PodChange::Running),
        waiting.prop_map(|(r, m)| PodChange::Waiting(r, m)),
        Just(PodChange::Succeeded),
        (1..4i32).prop_map(PodChange::Failed),
        Just(PodChange::Evicted),
    ];
    prop_oneof![
        3 => (-5..400i64).prop_map(Step::Clock),
        3 => change.prop_map(Step::Pod),
        1 => Just(Step::DeletedByOthers),
        5 => (any::<bool>(), any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(fresh, stale, lose_status_write)| Step::Reconcile { fresh, stale, lose_status_write }),
    ]
}

fn spec() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop_oneof![Just("2m"), Just("10m"), Just("30m")]),
        prop_oneof![Just("30s"), Just("2m")],
        0..4u32,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(timeout, startup, limit, retry_exits, rules)| {
            let mut s = json!({"startupTimeout": startup, "retry": {"limit": limit, "backoff": {"initial": "5s"}}});
            if let Some(t) = timeout {
                s["executionTimeout"] = json!(t);
            }
            if retry_exits {
                s["retry"]["reasons"] =
                    json!(["PodFailed", "Evicted", "PodLost", "ImagePullTimeout", "StartupTimeout"]);
            }
            if rules {
                s["podFailurePolicy"] = json!({"rules": [
                    {"action": "RetryWithoutCounting", "onExitCodes": {"operator": "In", "values": [2]}},
                    {"action": "Succeed", "onExitCodes": {"operator": "In", "values": [3]}},
                ]});
            }
            s
        })
}

fn pod_status(change: PodChange) -> Value {
    match change {
        PodChange::Running => running(),
        PodChange::Waiting(reason, message) => scheduled_waiting(reason, message),
        PodChange::Succeeded => exited("Succeeded", 0, ""),
        PodChange::Failed(code) => exited("Failed", code, ""),
        PodChange::Evicted => json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
    }
}

fn live(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

fn after(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(crate::jiff::SignedDuration::from_secs(secs)).unwrap_or(t)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn decide_keeps_its_promises(spec in spec(), steps in prop::collection::vec(step(), 1..60)) {
        let mut task: PodTask = task(spec);
        let mut previous = task.clone();
        let mut now = t(0);
        // The pods that exist, by name (the API server's view).
        let mut pods: BTreeMap<String, k8s_openapi::api::core::v1::Pod> = BTreeMap::new();
        let mut deadline_seen: Option<Timestamp> = None;
        let mut terminal_seen = false;
        for step in steps {
            match step {
                Step::Clock(secs) => now = after(now, secs),
                Step::Pod(change) => {
                    if let Some(pod) = pods.values_mut().filter(|p| live(p)).last() {
                        pod.status = Some(serde_json::from_value(pod_status(change)).expect("pod status"));
                        let version = pod.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
                        pod.metadata.resource_version = Some((version.unwrap_or(0) + 1).to_string());
                    }
                }
                Step::DeletedByOthers => {
                    if let Some(name) = pods.keys().last().cloned() {
                        pods.remove(&name);
                    }
                }
                Step::Reconcile { fresh, stale, lose_status_write } => {
                    let seen_task = if stale { &previous } else { &task };
                    let all: Vec<_> = pods.values().cloned().collect();
                    let observed = Observed { pods: &all, now, fresh, create_refused: None };
                    let plan = match decide(seen_task, observed, &cfg()) {
                        Next::Act(plan) => plan,
                        // The delete on the cache's word, if the pod is still that version; then nothing more (as
                        // if the operator crashed before it could decide again and write the status).
                        Next::StopFirst(d) => {
                            if pods.get(&d.name).is_some_and(|p| p.metadata.resource_version == d.resource_version) {
                                pods.remove(&d.name);
                            }
                            continue;
                        }
                        Next::ReadFresh(_) => continue,
                    };
                    let super::Plan { create, status: new_status, delete, deadline_stop, .. } = *plan;
                    if create.is_some() && stale {
                        // The operator reads the task fresh before any launch, and decides again on that.
                        continue;
                    }
                    if let Some(mut pod) = create {
                        prop_assert!(
                            deadline_seen.is_none_or(|d| now < d),
                            "an attempt started at {now}, at or after the deadline {deadline_seen:?}"
                        );
                        pod.metadata.uid = Some(format!("uid-{}", pod.name_any()));
                        pod.metadata.creation_timestamp = Some(Time(now));
                        pod.metadata.resource_version = Some("1".into());
                        pod.status = Some(serde_json::from_value(scheduled_waiting("ContainerCreating", "")).expect("status"));
                        // The name is deterministic: a create of an existing name is refused (AlreadyExists).
                        pods.entry(pod.name_any()).or_insert(pod);
                    }
                    // As the operator acts: the status write first (refused when the read was stale, or lost); the
                    // deletes only after it succeeded, except a deadline's, which happens regardless.
                    let written = match new_status {
                        Some(_) if stale || lose_status_write => false,
                        Some(status) => {
                            previous = task.clone();
                            task.status = Some(status);
                            true
                        }
                        None => true,
                    };
                    if written || deadline_stop.is_some() {
                        for d in &delete {
                            pods.remove(&d.name);
                        }
                    }
                }
            }
            let live_pods = pods.values().filter(|p| live(p)).count();
            prop_assert!(live_pods <= 1, "{live_pods} live pods: {:?}", pods.keys().collect::<Vec<_>>());
            let status = task.status.clone().unwrap_or_default();
            if let Some(d) = status.deadline.as_ref().map(|d| d.0) {
                prop_assert!(deadline_seen.is_none_or(|seen| seen == d), "the deadline moved from {deadline_seen:?} to {d}");
                deadline_seen = Some(d);
            }
            if terminal_seen {
                prop_assert!(status.phase.is_terminal(), "a terminal phase was left: {:?}", status.phase);
            }
            terminal_seen |= status.phase.is_terminal();
        }
    }
}

/// A status as anyone may have written it: any attempt number, any phase, a history with any attempt numbers, and
/// times anywhere.
fn any_status() -> impl Strategy<Value = crate::crd::PodTaskStatus> {
    use crate::crd::{AttemptRecord, Outcome, Phase, PodTaskStatus, Reason};
    let phase = prop_oneof![
        Just(Phase::Pending),
        Just(Phase::Starting),
        Just(Phase::Running),
        Just(Phase::Succeeded),
        Just(Phase::Failed)
    ];
    let time = prop::option::of((-400_000_000i64..400_000_000i64).prop_map(|s| Time(after(t(0), s))));
    let record = (any::<u32>(), time.clone()).prop_map(|(attempt, end_time)| AttemptRecord {
        attempt,
        pod_name: format!("p-{attempt}"),
        start_time: None,
        end_time,
        outcome: Outcome::Failed,
        reason: Reason::PodLost,
        message: None,
        exit_code: None,
        matched_rule: None,
        stop_requested_time: None,
        pod_gone_time: None,
    });
    let attempt = prop_oneof![Just(u32::MAX), Just(i32::MAX as u32), any::<u32>(), 0..5u32];
    (attempt, phase, prop::collection::vec(record, 0..25), time.clone(), time.clone(), time, any::<u32>()).prop_map(
        |(attempt, phase, attempts, start_time, deadline, next_attempt_time, uncounted_attempts)| PodTaskStatus {
            phase,
            attempt,
            attempts,
            start_time,
            deadline,
            next_attempt_time,
            uncounted_attempts,
            pod_name: Some("anything".into()),
            ..PodTaskStatus::default()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The engine builds a pod name per pod it sees, and a few more (the pod it expects, the next one), never one
    /// per attempt number: counted, not timed.
    #[test]
    fn a_decisions_cost_does_not_grow_with_status_values(
        status in any_status(),
        pods in 0..4u32,
        fresh in any::<bool>(),
        now in 0..10_000u64,
    ) {
        let task = with_status(task(json!({"executionTimeout": "10m"})), status);
        let pods: Vec<_> = (1..=pods).map(|attempt| pod_at(&task, attempt, t(0), running())).collect();
        let before = super::naming::NAMES_BUILT.with(std::cell::Cell::get);
        let observed = Observed { pods: &pods, now: t(now), fresh, create_refused: None };
        let next = decide(&task, observed, &cfg());
        let built = super::naming::NAMES_BUILT.with(std::cell::Cell::get) - before;
        prop_assert!(built <= pods.len() + 3, "{built} pod names built for {} pods", pods.len());
        if let Next::Act(plan) = next
            && let Some(s) = plan.status
        {
            // What podtask writes stays within the schema's bounds, whatever it read.
            prop_assert!(s.attempts.len() <= super::status::HISTORY_LIMIT);
            prop_assert!(s.attempt <= super::status::MAX_ATTEMPTS.max(pods.len() as u32 + 1), "attempt {}", s.attempt);
        }
    }
}
