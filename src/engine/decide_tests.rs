//! Table tests of `decide`, one behaviour of the contract each.

use serde_json::json;

use super::*;
use crate::crd::{Phase, PodTaskStatus, Reason};
use crate::engine::{create_error::CreateError, failure_policy, status as cond, testing::*};

const P1: &str = "job-0f0f0-1";
const P2: &str = "job-0f0f0-2";

/// Apply a plan's status to the task, as the API server would after the write.
fn after(task: &PodTask, plan: &Decided) -> PodTask {
    with_status(task.clone(), plan.status.clone())
}

fn reason(plan: &Decided) -> Option<Reason> {
    plan.status.reason
}

fn deleted(plan: &Decided) -> Vec<&str> {
    plan.delete.iter().map(|d| d.name.as_str()).collect()
}

fn has_condition(plan: &Decided, type_: &str) -> bool {
    plan.status.conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// A task whose attempt 1 has been reported as `phase`.
fn reported(task: PodTask, phase: Phase, reason: Reason, start: Timestamp) -> PodTask {
    with_status(
        task,
        PodTaskStatus {
            phase,
            reason: Some(reason),
            attempt: 1,
            pod_name: Some(P1.into()),
            start_time: Some(Time(start)),
            ..Default::default()
        },
    )
}

// ---- launching ----

#[test]
fn a_new_task_creates_its_first_pod_and_reports_it_at_once() {
    let task = task(json!({"executionTimeout": "10m"}));
    let plan = cached(&task, &[], t(0));
    let pod = plan.create.as_ref().expect("creates a pod");
    assert_eq!(pod.metadata.name.as_deref(), Some(P1));
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(
        spec.active_deadline_seconds,
        Some(568),
        "the kubelet stops it in time to be gone by the deadline, margin included"
    );
    let s = &plan.status;
    assert_eq!((s.phase, s.reason, s.attempt), (Phase::Starting, Some(Reason::PodCreated), 1));
    assert_eq!(s.pod_name.as_deref(), Some(P1));
    assert_eq!((s.start_time.clone(), s.deadline.clone()), (Some(Time(t(0))), Some(Time(t(600)))));
    assert_eq!(s.startup_deadline, Some(Time(t(300))));
    assert_eq!(s.observed_generation, Some(1), "kstatus reads InProgress from the first status on");
    assert!(has_condition(&plan, cond::RECONCILING));
    assert_eq!(plan.requeue_at, Some(t(300)), "the startup timeout");
    assert!(plan.events.is_empty(), "the launch is no Event: the attempt's first report or its outcome is");
}

#[test]
fn a_pod_starting_normally_is_reported_only_once_it_takes_a_while() {
    let task = task(json!({}));
    let task = after(&task, &cached(&task, &[], t(0)));
    let pod = pod_at(&task, 1, t(0), scheduled_waiting("ContainerCreating", ""));
    let plan = cached(&task, std::slice::from_ref(&pod), t(9));
    assert!(!plan.writes_status, "still PodCreated: nothing written");
    assert!(plan.create.is_none(), "never a second pod");
    assert_eq!(plan.requeue_at, Some(t(10)), "when starting has taken long enough to be news");
    let plan = cached(&task, &[pod], t(10));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Starting, Some(Reason::ContainerCreating)));
    let events: Vec<_> = plan.events.iter().map(|e| (e.reason.as_str(), e.warning)).collect();
    assert_eq!(events, [("ContainerCreating", false)], "the attempt's first report is its Event");
    let task = after(&task, &plan);
    let running = pod_at(&task, 1, t(0), running_since(t(12)));
    let plan = fresh(&task, &[running], t(14));
    assert_eq!(reason(&plan), Some(Reason::Running));
    assert!(plan.events.is_empty(), "normal progress after the first report is in the status, not in an Event");
}

/// A busy scheduler: 12 s to a node (Scheduling is news at 10 s); creating the containers is then timed from the
/// moment the pod got its node, not from its creation.
#[test]
fn each_normal_step_is_news_only_once_that_step_takes_a_while() {
    let task = task(json!({}));
    let mut task = after(&task, &cached(&task, &[], t(0)));
    let unscheduled = pod_at(&task, 1, t(0), json!({"phase": "Pending"}));
    let plan = cached(&task, std::slice::from_ref(&unscheduled), t(10));
    assert_eq!(reason(&plan), Some(Reason::Scheduling));
    task = after(&task, &plan);
    let mut creating = scheduled_waiting("ContainerCreating", "");
    creating["conditions"][0]["lastTransitionTime"] = json!(t(12).to_string());
    let pod = pod_at(&task, 1, t(0), creating);
    let plan = cached(&task, std::slice::from_ref(&pod), t(15));
    assert!(!plan.writes_status, "3 s into creating its containers: not news yet, however old the pod");
    assert_eq!(plan.requeue_at, Some(t(22)), "10 s after the pod got its node");
    let plan = cached(&task, &[pod], t(22));
    assert_eq!(reason(&plan), Some(Reason::ContainerCreating));
}

#[test]
fn trouble_starting_is_reported_once_the_settle_time_has_passed() {
    let task = task(json!({}));
    let task = after(&task, &cached(&task, &[], t(0)));
    let pod = pod_at(&task, 1, t(0), scheduled_waiting("ImagePullBackOff", "Back-off pulling image"));
    let early = cached(&task, std::slice::from_ref(&pod), ts("2026-01-01T10:00:01.5Z"));
    assert!(!early.writes_status);
    assert_eq!(early.requeue_at, Some(t(2)));
    let plan = cached(&task, &[pod], t(2));
    assert_eq!(reason(&plan), Some(Reason::ImagePullBackOff));
}

/// Running, with its container started at `started`.
fn running_since(started: Timestamp) -> serde_json::Value {
    let mut status = running();
    status["containerStatuses"][0]["state"]["running"]["startedAt"] = json!(started.to_string());
    status
}

#[test]
fn a_running_pod_is_reported_once_it_has_run_for_the_settle_time() {
    let task = task(json!({"executionTimeout": "10m"}));
    let task = after(&task, &cached(&task, &[], t(0)));
    // slow to start (a busy cluster), then running since t(5)
    let pod = pod_at(&task, 1, t(0), running_since(t(5)));
    let plan = cached(&task, std::slice::from_ref(&pod), t(6));
    assert!(!plan.writes_status, "a short task is over before this is news");
    assert_eq!(plan.requeue_at, Some(t(7)));
    let plan = cached(&task, std::slice::from_ref(&pod), t(7));
    assert_eq!(plan.read_fresh.as_deref(), Some(P1), "a status write on the cache's word: the pod is read first");
    let plan = fresh(&task, &[pod], t(7));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Running, Some(Reason::Running)));
    let events: Vec<_> = plan.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(events, ["Running"], "the attempt's first report is its Event");
}

/// Under load the cache may still show a pod running that has finished: the fresh read before reporting it finds
/// the outcome, and the task takes its two status writes and one Event all the same.
#[test]
fn a_pod_the_cache_holds_running_but_that_has_finished_is_reported_finished() {
    let task = task(json!({"executionTimeout": "10m"}));
    let task = after(&task, &cached(&task, &[], t(0)));
    let running = pod_at(&task, 1, t(0), running_since(t(1)));
    let plan = cached(&task, &[running], t(3));
    assert_eq!(plan.read_fresh.as_deref(), Some(P1));
    let done = pod_at(&task, 1, t(0), exited("Succeeded", 0, ""));
    let plan = fresh(&task, &[done], t(3));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Succeeded, Some(Reason::Completed)));
    let events: Vec<_> = plan.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(events, ["Completed"]);
}

#[test]
fn a_running_pod_is_news_once_the_cache_has_held_it_running_for_the_settle_time() {
    let task = task(json!({"executionTimeout": "10m"}));
    let task = after(&task, &cached(&task, &[], t(0)));
    // the kubelet started it at t(1); a busy API server showed that to the cache only at t(4), when the pod may
    // well be over already
    let mut pod = pod_at(&task, 1, t(0), running_since(t(1)));
    pod.annotations_mut().insert(naming::NOTE_SEEN_RUNNING.into(), t(4).to_string());
    let plan = cached(&task, std::slice::from_ref(&pod), t(5));
    assert!(!plan.writes_status, "running 4 s by the kubelet's clock, 1 s in the cache's view");
    assert_eq!(plan.requeue_at, Some(t(6)));
    let plan = fresh(&task, &[pod], t(6));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Running, Some(Reason::Running)));
}

#[test]
fn a_short_task_takes_two_status_writes_and_one_event_however_slowly_it_starts() {
    let spec = task(json!({"executionTimeout": "10m"}));
    let mut task = spec.clone();
    let (mut writes, mut events) = (0, vec![]);
    // launched at 0; a node after 3 s, containers at 4.5 s, running at 6 s, done at 7 s
    let pods = [
        (t(0), None),
        (t(3), Some(scheduled_waiting("", ""))),
        (ts("2026-01-01T10:00:04.5Z"), Some(scheduled_waiting("ContainerCreating", ""))),
        (ts("2026-01-01T10:00:06.2Z"), Some(running_since(t(6)))),
        (ts("2026-01-01T10:00:07.5Z"), Some(exited("Succeeded", 0, ""))),
    ];
    for (now, pod) in pods {
        let pods: Vec<Pod> = pod.map(|s| pod_at(&spec, 1, t(0), s)).into_iter().collect();
        let plan = fresh(&task, &pods, now);
        writes += usize::from(plan.writes_status);
        events.extend(plan.events.iter().map(|e| e.reason.clone()));
        task = after(&task, &plan);
    }
    assert_eq!(task.status.as_ref().unwrap().phase, Phase::Succeeded);
    assert_eq!(writes, 2, "PodCreated, then Succeeded");
    assert_eq!(events, ["Completed"], "as many Events as the Job controller's: the outcome, naming pod and attempt");
}

#[test]
fn a_pod_still_starting_after_the_settle_time_is_reported() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), scheduled_waiting("ContainerCreating", ""));
    let plan = cached(&task, &[pod], t(2));
    assert_eq!(plan.status.phase, Phase::Starting);
    assert_eq!(reason(&plan), Some(Reason::ContainerCreating));
    assert_eq!(plan.status.attempt, 1);
    assert_eq!(plan.status.pod_name.as_deref(), Some(P1));
    assert_eq!(plan.status.start_time, Some(Time(t(0))));
    assert_eq!(plan.status.deadline, Some(Time(t(600))));
    assert_eq!(plan.status.startup_deadline, Some(Time(t(300))), "default startup timeout 5m from pod creation");
    assert_eq!(plan.requeue_at, Some(t(300)));
    assert!(has_condition(&plan, cond::RECONCILING));
}

#[test]
fn a_running_pod_is_reported_and_the_deadline_is_the_next_instant() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let plan = cached(&task, &[pod], ts("2026-01-01T10:00:00.3Z"));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Running, Some(Reason::Running)));
    assert_eq!(
        plan.requeue_at,
        Some(t(568)),
        "timer at the exact instant stopping must begin (deadline - grace - margin)"
    );
    assert_eq!(plan.events.len(), 1);
}

#[test]
fn without_a_deadline_a_running_pod_needs_no_timer() {
    let task = task(json!({}));
    let pod = pod_at(&task, 1, t(0), running());
    assert_eq!(cached(&task, &[pod], t(5)).requeue_at, None);
}

// ---- finishing ----

#[test]
fn success_records_exit_code_message_and_conditions_and_deletes_the_pod() {
    let task = reported(task(json!({})), Phase::Running, Reason::Running, t(0));
    let pod = pod_at(&task, 1, t(0), exited("Succeeded", 0, "all good"));
    let plan = cached(&task, &[pod], t(30));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Succeeded, Some(Reason::Completed)));
    assert_eq!(plan.status.exit_code, Some(0));
    assert_eq!(plan.status.termination_message.as_deref(), Some("all good"));
    assert_eq!(plan.status.completion_time, Some(Time(t(30))));
    assert!(has_condition(&plan, cond::COMPLETE) && !has_condition(&plan, cond::RECONCILING));
    assert_eq!(deleted(&plan), [P1]);
    assert_eq!(plan.status.attempts.len(), 1);
}

#[test]
fn cleanup_policy_table() {
    // (cleanup, pod phase, exit code, pod deleted?)
    let cases = [
        ("Delete", "Succeeded", 0, true),
        ("DeleteSucceeded", "Succeeded", 0, true),
        ("Keep", "Succeeded", 0, false),
        ("Delete", "Failed", 2, true),
        ("DeleteSucceeded", "Failed", 2, false),
        ("Keep", "Failed", 2, false),
    ];
    for (policy, phase, code, want) in cases {
        let task =
            reported(task(json!({"cleanup": policy, "retry": {"limit": 0}})), Phase::Running, Reason::Running, t(0));
        let pod = pod_at(&task, 1, t(0), exited(phase, code, ""));
        let plan = cached(&task, std::slice::from_ref(&pod), t(30));
        assert_eq!(!plan.delete.is_empty(), want, "{policy} / {phase}");
        // and once finished, the same policy holds on every later look
        let later = cached(&after(&task, &plan), &[pod], t(60));
        assert_eq!(!later.delete.is_empty(), want, "{policy} / {phase}, later");
    }
}

#[test]
fn a_non_zero_exit_fails_with_code_and_message_and_is_not_retried_by_default() {
    let task = reported(task(json!({})), Phase::Running, Reason::Running, t(0));
    let pod = pod_at(&task, 1, t(0), exited("Failed", 3, "disk full"));
    let plan = cached(&task, &[pod], t(30));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Failed, Some(Reason::PodFailed)));
    assert_eq!(plan.status.exit_code, Some(3));
    assert_eq!(plan.status.termination_message.as_deref(), Some("disk full"));
    assert!(plan.status.message.as_deref().unwrap().contains("exited with 3: disk full"));
    assert!(has_condition(&plan, cond::FAILED) && has_condition(&plan, cond::STALLED));
    assert!(plan.events.iter().any(|e| e.warning && e.reason == "PodFailed"));
}

#[test]
fn a_non_zero_exit_is_retried_when_asked() {
    let task =
        reported(task(json!({"retry": {"limit": 1, "reasons": ["PodFailed"]}})), Phase::Running, Reason::Running, t(0));
    let pod = pod_at(&task, 1, t(0), exited("Failed", 1, "flaky"));
    let plan = cached(&task, std::slice::from_ref(&pod), t(30));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Pending, Some(Reason::BackingOff)));
    assert_eq!(plan.status.next_attempt_time, Some(Time(t(40))), "default backoff 10s");
    assert_eq!(plan.requeue_at, Some(t(40)));
    assert_eq!(plan.status.exit_code, Some(1));
    // attempt 2 fails too: the limit is reached
    let task2 = after(&task, &plan);
    let second = cached(&task2, std::slice::from_ref(&pod), t(40));
    let pod2 = pod_at(&task2, 2, t(40), exited("Failed", 1, "flaky again"));
    assert_eq!(second.create.as_ref().and_then(|p| p.metadata.name.as_deref()), Some(P2));
    let last = cached(&task2, &[pod, pod2], t(60));
    assert_eq!((last.status.phase, reason(&last)), (Phase::Failed, Some(Reason::PodFailed)));
    assert!(last.status.message.as_deref().unwrap().contains("after 2 attempts: #1 PodFailed, #2 PodFailed"));
}

#[test]
fn eviction_is_retried_and_counted_once() {
    let task = reported(task(json!({})), Phase::Running, Reason::Running, t(0));
    let evicted = pod_at(
        &task,
        1,
        t(0),
        json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
    );
    let plan = cached(&task, std::slice::from_ref(&evicted), t(30));
    assert_eq!(reason(&plan), Some(Reason::BackingOff));
    assert_eq!(plan.status.attempts[0].reason, Reason::Evicted);
    assert!(plan.status.message.as_deref().unwrap().contains("low on resource"));
    let again = cached(&after(&task, &plan), &[evicted], t(31));
    assert_eq!(again.status.attempts.len(), 1, "seeing the same pod again does not count it twice");
    assert!(again.create.is_none(), "and waits for the backoff");
}

#[test]
fn kubelet_active_deadline_is_reported_as_deadline_exceeded() {
    let task =
        reported(task(json!({"executionTimeout": "1m", "retry": {"limit": 5}})), Phase::Running, Reason::Running, t(0));
    let killed = pod_at(
        &task,
        1,
        t(0),
        json!({"phase": "Failed", "reason": "DeadlineExceeded", "message": "Pod was active on the node longer than the specified deadline"}),
    );
    let plan = cached(&task, &[killed], t(61));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Failed, Some(Reason::DeadlineExceeded)));
}

// ---- the absolute deadline ----

#[test]
fn at_the_stop_time_the_cache_is_not_trusted_the_pod_is_read_fresh() {
    let task = reported(task(json!({"executionTimeout": "1m"})), Phase::Running, Reason::Running, t(0));
    let pod = pod_at(&task, 1, t(0), running());
    let plan = cached(&task, std::slice::from_ref(&pod), t(40));
    assert_eq!(plan.read_fresh.as_deref(), Some(P1), "stopping was due at 28 s, the deadline is at 60 s");
    assert_eq!(plan.status, task.status.clone().unwrap(), "no verdict before the fresh read");
    assert!(plan.delete.is_empty() && plan.create.is_none());
}

#[test]
fn after_the_deadline_the_cached_pod_is_deleted_on_condition_it_is_still_that_version() {
    let task = reported(task(json!({"executionTimeout": "1m"})), Phase::Running, Reason::Running, t(0));
    let pod = pod_at(&task, 1, t(0), running());
    let plan = cached(&task, std::slice::from_ref(&pod), t(60));
    let expected = PodDeletion { name: P1.into(), uid: Some("pod-uid-1".into()), resource_version: Some("1".into()) };
    assert_eq!(plan.stop_first, Some(expected));
    assert_eq!(plan.status, task.status.clone().unwrap(), "no verdict before the delete");
    assert!(plan.read_fresh.is_none() && plan.delete.is_empty() && plan.create.is_none());
    // The delete found it so: that view decides, as a fresh read would.
    let then = fresh(&task, std::slice::from_ref(&pod), t(60));
    assert_eq!((then.status.phase, reason(&then)), (Phase::Failed, Some(Reason::DeadlineExceeded)));
    assert_eq!(deleted(&then), [P1]);
    // Whatever happened after the delete (a crash before the status write), a pod gone after the deadline reads so.
    let gone = fresh(&task, &[], t(70));
    assert_eq!((gone.status.phase, reason(&gone)), (Phase::Failed, Some(Reason::DeadlineExceeded)));
}

#[test]
fn at_the_deadline_the_pod_is_deleted_and_the_task_fails_without_retry() {
    let task = reported(
        task(json!({"executionTimeout": "1m", "retry": {"limit": 5, "reasons": ["PodFailed", "PodLost"]}})),
        Phase::Running,
        Reason::Running,
        t(0),
    );
    let pod = pod_at(&task, 1, t(0), running());
    let plan = fresh(&task, &[pod], t(60));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Failed, Some(Reason::DeadlineExceeded)));
    assert_eq!(deleted(&plan), [P1], "the pod is deleted even under Keep-like policies");
    assert_eq!(
        plan.deadline_stop,
        Some(t(28)),
        "stopping was due at the deadline minus the pod's 30s grace and the margin"
    );
    assert!(plan.status.next_attempt_time.is_none());
    let later = cached(&after(&task, &plan), &[], t(90));
    assert!(later.create.is_none(), "no further attempt ever starts");
}

#[test]
fn a_pod_that_succeeded_just_before_the_deadline_counts_as_success() {
    let task = reported(task(json!({"executionTimeout": "1m"})), Phase::Running, Reason::Running, t(0));
    let pod = pod_at(&task, 1, t(0), exited("Succeeded", 0, ""));
    let plan = fresh(&task, &[pod], t(61));
    assert_eq!(plan.status.phase, Phase::Succeeded);
}

#[test]
fn the_deadline_is_computed_once_from_the_first_launch_and_never_extended() {
    let task = task(json!({"executionTimeout": "10m", "retry": {"limit": 3}}));
    // attempt 1 launched at T+0 and timed out pulling; attempt 2 launches at T+400
    let pod1 = pod_at(&task, 1, t(0), scheduled_waiting("ImagePullBackOff", "Back-off"));
    let s1 = fresh(&task, std::slice::from_ref(&pod1), t(300));
    assert_eq!(s1.status.deadline, Some(Time(t(600))));
    let task1 = after(&task, &s1);
    let launch = cached(&task1, &[], t(400));
    let pod2 = launch.create.expect("attempt 2");
    assert_eq!(
        pod2.spec.as_ref().unwrap().active_deadline_seconds,
        Some(178),
        "the remaining budget (200s, minus 20s grace and the 2s margin), not a fresh one"
    );
    assert_eq!(pod2.metadata.annotations.as_ref().unwrap()["podtask.dev/start-time"], t(0).to_string());
    // an operator restarted at T+500 with only persisted facts enforces the same instant
    let mut pod2 = pod2;
    pod2.metadata.uid = Some("pod-uid-2".into());
    pod2.metadata.creation_timestamp = Some(Time(t(400)));
    pod2.status = Some(serde_json::from_value(running()).unwrap());
    let restarted = cached(&task1, std::slice::from_ref(&pod2), t(500));
    assert_eq!(restarted.status.deadline, Some(Time(t(600))));
    assert_eq!(
        restarted.requeue_at,
        Some(t(578)),
        "the same instant: deadline minus the pod's grace (20s) and the margin"
    );
}

#[test]
fn a_restarted_operator_recovers_the_start_from_the_pod_when_status_was_never_written() {
    let task = task(json!({"executionTimeout": "5m"}));
    let pod = pod_at(&task, 1, t(0), running());
    // the operator crashed right after creating the pod; it comes back at T+400, past the deadline
    let plan = fresh(&task, &[pod], t(400));
    assert_eq!(plan.status.start_time, Some(Time(t(0))));
    assert_eq!(plan.status.deadline, Some(Time(t(300))));
    assert_eq!(reason(&plan), Some(Reason::DeadlineExceeded));
    assert_eq!(deleted(&plan), [P1]);
}

#[test]
fn the_deadline_a_pod_was_launched_with_survives_a_spec_edit_before_the_first_status_write() {
    // Launched with executionTimeout 5m; before podtask wrote any status (the CRD locks the spec only once
    // status.startTime is set: within the settle time, or while the operator is down) the spec was edited to 1h.
    let launched = task(json!({"executionTimeout": "5m"}));
    let mut pod = pod_at(&launched, 1, t(0), running());
    pod.metadata.annotations.get_or_insert_default().insert("podtask.dev/deadline".into(), t(300).to_string());
    let edited = task(json!({"executionTimeout": "1h"}));
    let plan = cached(&edited, std::slice::from_ref(&pod), t(5));
    assert_eq!(plan.status.deadline, Some(Time(t(300))), "the pod's deadline, not one from the edited spec");
    assert_eq!(plan.requeue_at, Some(t(268)));
    let late = fresh(&edited, &[pod], t(301));
    assert_eq!(reason(&late), Some(Reason::DeadlineExceeded));
}

#[test]
fn a_retry_that_would_start_after_the_deadline_is_not_started() {
    let task = reported(
        task(json!({"executionTimeout": "2m", "startupTimeout": "1m", "retry": {"backoff": {"initial": "90s"}}})),
        Phase::Starting,
        Reason::ImagePullBackOff,
        t(0),
    );
    let pod = pod_at(&task, 1, t(0), scheduled_waiting("ImagePullBackOff", "Back-off pulling image"));
    let plan = fresh(&task, &[pod], t(60));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Failed, Some(Reason::ImagePullTimeout)));
    assert!(plan.status.message.as_deref().unwrap().contains("after the deadline"), "{:?}", plan.status.message);
    assert_eq!(deleted(&plan), [P1]);
}

#[test]
fn an_absolute_deadline_already_past_fails_without_launching() {
    let task = task(json!({"deadline": "2026-01-01T09:00:00Z"}));
    let plan = cached(&task, &[], t(0));
    assert!(plan.create.is_none());
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Failed, Some(Reason::DeadlineExceeded)));
}

#[test]
fn the_earlier_of_timeout_and_absolute_deadline_bounds_the_pod() {
    let task = task(json!({"executionTimeout": "1h", "deadline": "2026-01-01T10:02:00Z"}));
    let pod = cached(&task, &[], t(0)).create.unwrap().spec.unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(12));
    assert_eq!(pod.active_deadline_seconds, Some(106), "120s left, minus the grace and the margin");
}

#[test]
fn the_deadline_also_ends_a_backoff() {
    let task = reported(task(json!({"executionTimeout": "10m"})), Phase::Pending, Reason::BackingOff, t(0));
    let mut status = task.status.clone().unwrap();
    status.deadline = Some(Time(t(600)));
    status.attempts = vec![crate::crd::AttemptRecord {
        attempt: 1,
        pod_name: P1.into(),
        start_time: None,
        end_time: Some(Time(t(100))),
        outcome: crate::crd::Outcome::Failed,
        reason: Reason::Evicted,
        message: None,
        exit_code: None,
        matched_rule: None,
        stop_requested_time: None,
        pod_gone_time: None,
    }];
    status.next_attempt_time = Some(Time(t(700)));
    let task = with_status(task, status);
    let waiting = cached(&task, &[], t(200));
    assert_eq!(waiting.requeue_at, Some(t(600)), "wakes at the deadline, not the (later) next attempt");
    let plan = cached(&task, &[], t(600));
    assert_eq!(reason(&plan), Some(Reason::DeadlineExceeded));
    assert!(plan.create.is_none());
}

// ---- startup and image pulls ----

#[test]
fn a_rate_limited_pull_is_a_transient_wait_shown_as_such() {
    let task = reported(task(json!({})), Phase::Starting, Reason::ContainerCreating, t(0));
    let pod = pod_at(
        &task,
        1,
        t(0),
        scheduled_waiting("ErrImagePull", "toomanyrequests: You have reached your pull rate limit"),
    );
    let plan = cached(&task, &[pod], t(20));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Starting, Some(Reason::ImagePullRateLimited)));
    assert!(plan.status.message.as_deref().unwrap().contains("toomanyrequests"));
    assert!(plan.delete.is_empty(), "not a failure");
    // the kubelet then shows ImagePullBackOff without the registry's words: still rate-limited, no flapping
    let task = after(&task, &plan);
    let backoff = pod_at(&task, 1, t(0), scheduled_waiting("ImagePullBackOff", "Back-off pulling image \"busybox\""));
    let next = cached(&task, &[backoff], t(30));
    assert_eq!(reason(&next), Some(Reason::ImagePullRateLimited));
    assert_eq!(next.status, task.status.clone().unwrap(), "nothing changed, nothing written");
}

#[test]
fn a_pull_that_recovers_inside_the_startup_timeout_goes_on() {
    let task = reported(task(json!({})), Phase::Starting, Reason::ImagePullRateLimited, t(0));
    let pod = pod_at(&task, 1, t(0), running());
    let plan = cached(&task, &[pod], t(100));
    assert_eq!(plan.status.phase, Phase::Running);
    assert!(plan.status.attempts.is_empty(), "no failed attempt was recorded");
}

#[test]
fn at_the_startup_timeout_the_pod_is_read_fresh_and_one_that_started_goes_on() {
    let task = reported(task(json!({"startupTimeout": "2m"})), Phase::Starting, Reason::ImagePullBackOff, t(0));
    let stale = pod_at(&task, 1, t(0), scheduled_waiting("ImagePullBackOff", "Back-off"));
    let plan = cached(&task, &[stale], t(120));
    assert_eq!(plan.read_fresh.as_deref(), Some(P1));
    let started = pod_at(&task, 1, t(0), running());
    let plan = fresh(&task, &[started], t(120));
    assert_eq!(plan.status.phase, Phase::Running);
    assert!(plan.delete.is_empty());
}

#[test]
fn startup_timeouts_end_the_attempt_with_what_it_waited_for() {
    // (pod status, attempt reason)
    let unschedulable = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
        "reason": "Unschedulable", "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."}]});
    let cases = [
        (scheduled_waiting("ImagePullBackOff", "Back-off pulling image"), Reason::ImagePullTimeout),
        (scheduled_waiting("ErrImagePull", "429 Too Many Requests"), Reason::ImagePullTimeout),
        (unschedulable, Reason::Unschedulable),
        (scheduled_waiting("ContainerCreating", ""), Reason::StartupTimeout),
        (scheduled_waiting("CreateContainerError", "runtime error"), Reason::StartupTimeout),
    ];
    for (pod_status, want) in cases {
        let task = reported(task(json!({"startupTimeout": "1m"})), Phase::Starting, Reason::ContainerCreating, t(0));
        let pod = pod_at(&task, 1, t(0), pod_status);
        let plan = fresh(&task, &[pod], t(60));
        assert_eq!(plan.status.attempts.last().map(|a| a.reason), Some(want));
        assert_eq!(reason(&plan), Some(Reason::BackingOff), "{want:?} is retried by default");
        assert_eq!(deleted(&plan), [P1], "a timed-out pod is always deleted");
        assert!(plan.status.message.as_deref().unwrap().contains("startup timeout 1m"));
    }
}

#[test]
fn a_rate_limited_attempt_waits_at_least_the_longer_minimum_backoff() {
    let task = reported(task(json!({"startupTimeout": "1m"})), Phase::Starting, Reason::ImagePullRateLimited, t(0));
    let pod = pod_at(&task, 1, t(0), scheduled_waiting("ImagePullBackOff", "Back-off pulling image"));
    let plan = fresh(&task, &[pod], t(60));
    assert_eq!(plan.status.next_attempt_time, Some(Time(t(120))), "min rate-limit backoff 60s, not 10s");
    let plain = reported(task.clone(), Phase::Starting, Reason::ImagePullBackOff, t(0));
    let pod = pod_at(&plain, 1, t(0), scheduled_waiting("ImagePullBackOff", "Back-off pulling image"));
    assert_eq!(fresh(&plain, &[pod], t(60)).status.next_attempt_time, Some(Time(t(70))));
}

#[test]
fn a_pull_that_never_recovers_fails_naming_every_attempt() {
    let mut task = task(json!({"startupTimeout": "1m", "retry": {"limit": 2, "backoff": {"initial": "5s"}}}));
    let mut now = 0;
    let mut pods = vec![];
    for attempt in 1..=3 {
        let launch = cached(&task, &pods, t(now));
        assert!(launch.create.is_some(), "attempt {attempt} launches");
        pods.push(pod_at(&task, attempt, t(now), scheduled_waiting("ImagePullBackOff", "Back-off pulling image")));
        now += 60;
        let end = fresh(&task, &pods, t(now));
        assert_eq!(end.status.attempts.len(), attempt as usize);
        task = after(&task, &end);
        pods.retain(|p| !end.delete.iter().any(|d| Some(&d.name) == p.metadata.name.as_ref()));
        now += 60;
    }
    let s = task.status.unwrap();
    assert_eq!((s.phase, s.reason), (Phase::Failed, Some(Reason::ImagePullTimeout)));
    assert!(
        s.message.unwrap().contains("after 3 attempts: #1 ImagePullTimeout, #2 ImagePullTimeout, #3 ImagePullTimeout")
    );
    assert!(pods.is_empty(), "every timed-out pod was deleted");
}

#[test]
fn startup_timeout_counts_from_pod_creation_so_a_restart_does_not_reset_it() {
    let task = task(json!({"startupTimeout": "5m"}));
    // no status at all (fresh operator memory); the pod was created 6 minutes ago
    let pod = pod_at(&task, 1, t(0), scheduled_waiting("ImagePullBackOff", "Back-off"));
    let plan = fresh(&task, &[pod], t(360));
    assert_eq!(plan.status.attempts[0].reason, Reason::ImagePullTimeout);
}

#[test]
fn permanent_image_errors_fail_at_once_without_retry() {
    for (kubelet, want) in
        [("InvalidImageName", Reason::InvalidImageName), ("ErrImageNeverPull", Reason::ErrImageNeverPull)]
    {
        let task = reported(task(json!({"retry": {"limit": 5}})), Phase::Starting, Reason::ContainerCreating, t(0));
        let pod = pod_at(&task, 1, t(0), scheduled_waiting(kubelet, "couldn't parse image name"));
        let plan = cached(&task, &[pod], t(3));
        assert_eq!((plan.status.phase, reason(&plan)), (Phase::Failed, Some(want)));
        assert_eq!(deleted(&plan), [P1]);
    }
}

#[test]
fn a_config_error_fails_after_the_grace_with_the_kubelets_message() {
    let task = reported(task(json!({})), Phase::Starting, Reason::ContainerCreating, t(0));
    let pod =
        pod_at(&task, 1, t(0), scheduled_waiting("CreateContainerConfigError", "secret \"db-password\" not found"));
    let early = cached(&task, std::slice::from_ref(&pod), t(10));
    assert_eq!((early.status.phase, reason(&early)), (Phase::Starting, Some(Reason::CreateContainerConfigError)));
    assert_eq!(early.requeue_at, Some(t(30)), "looks again when the 30s grace ends");
    assert_eq!(cached(&task, std::slice::from_ref(&pod), t(30)).read_fresh.as_deref(), Some(P1));
    let late = fresh(&task, &[pod], t(30));
    assert_eq!((late.status.phase, reason(&late)), (Phase::Failed, Some(Reason::CreateContainerConfigError)));
    assert!(late.status.message.as_deref().unwrap().contains("secret \"db-password\" not found"));
    assert_eq!(deleted(&late), [P1]);
}

#[test]
fn unschedulable_surfaces_the_schedulers_message_while_waiting() {
    let task = reported(task(json!({})), Phase::Starting, Reason::Scheduling, t(0));
    let pod = pod_at(
        &task,
        1,
        t(0),
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
        "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu."}]}),
    );
    let plan = cached(&task, &[pod], t(10));
    assert_eq!(reason(&plan), Some(Reason::Unschedulable));
    assert!(plan.status.message.as_deref().unwrap().contains("Insufficient cpu"));
    assert!(plan.events.iter().any(|e| e.warning && e.reason == "Unschedulable"));
}

// ---- one pod per attempt ----

#[test]
fn a_missing_pod_is_read_fresh_then_counted_lost_once_and_retried() {
    let task = reported(task(json!({})), Phase::Running, Reason::Running, t(0));
    let plan = cached(&task, &[], t(10));
    assert_eq!(plan.read_fresh.as_deref(), Some(P1), "the cache may just be behind");
    let plan = fresh(&task, &[], t(10));
    assert_eq!(plan.status.attempts.last().map(|a| a.reason), Some(Reason::PodLost));
    assert_eq!(reason(&plan), Some(Reason::BackingOff));
    let again = cached(&after(&task, &plan), &[], t(11));
    assert_eq!(again.status.attempts.len(), 1, "never counted twice");
    assert!(again.read_fresh.is_none());
}

#[test]
fn a_pod_deleted_by_someone_else_is_lost_not_deleted_again() {
    let task = reported(task(json!({})), Phase::Running, Reason::Running, t(0));
    let mut pod = pod_at(&task, 1, t(0), running());
    pod.metadata.deletion_timestamp = Some(Time(t(5)));
    let plan = cached(&task, &[pod], t(6));
    assert_eq!(plan.status.attempts[0].reason, Reason::PodLost);
    assert!(plan.status.attempts[0].message.as_deref().unwrap().contains("deleted by someone else"));
    assert!(plan.delete.is_empty(), "it is already going");
}

/// podtask deleted the pod at its stop time (the deadline minus its grace) but the status write saying so was lost:
/// the deadline ended the attempt, not someone else.
#[test]
fn a_pod_being_stopped_once_its_stop_was_due_is_a_deadline_not_a_loss() {
    let mut task = reported(task(json!({"executionTimeout": "10m"})), Phase::Running, Reason::Running, t(0));
    task.status.as_mut().unwrap().deadline = Some(Time(t(600)));
    let mut pod = pod_at(&task, 1, t(0), running()); // the default 30 s grace: stop due at T+570
    pod.metadata.deletion_timestamp = Some(Time(t(600)));
    for (now, want) in
        [(t(571), Reason::DeadlineExceeded), (t(605), Reason::DeadlineExceeded), (t(300), Reason::PodLost)]
    {
        let plan = fresh(&task, std::slice::from_ref(&pod), now);
        assert_eq!(plan.status.attempts[0].reason, want, "at {now}");
        if want == Reason::DeadlineExceeded {
            assert_eq!((plan.status.phase, plan.status.reason), (Phase::Failed, Some(Reason::DeadlineExceeded)));
        }
        assert!(plan.delete.is_empty() && plan.create.is_none(), "it is already going; no attempt after it");
    }
}

#[test]
fn after_a_restart_existing_pods_are_adopted_and_nothing_launches_twice() {
    let task = task(json!({}));
    let pod = pod_at(&task, 1, t(0), running());
    let plan = cached(&task, &[pod], t(100));
    assert!(plan.create.is_none());
    assert_eq!((plan.status.attempt, plan.status.phase), (1, Phase::Running));
    // the same when status knew attempt 1 ended and attempt 2's pod exists but was never reported
    let mut ended = reported(task.clone(), Phase::Pending, Reason::BackingOff, t(0)).status.unwrap();
    ended.attempts.push(crate::crd::AttemptRecord {
        attempt: 1,
        pod_name: P1.into(),
        start_time: None,
        end_time: Some(Time(t(50))),
        outcome: crate::crd::Outcome::Failed,
        reason: Reason::PodLost,
        message: None,
        exit_code: None,
        matched_rule: None,
        stop_requested_time: None,
        pod_gone_time: None,
    });
    ended.next_attempt_time = Some(Time(t(60)));
    let task = with_status(task, ended);
    let pod2 = pod_at(&task, 2, t(60), running());
    let plan = cached(&task, &[pod2], t(100));
    assert!(plan.create.is_none());
    assert_eq!((plan.status.attempt, plan.status.pod_name.as_deref()), (2, Some(P2)));
    assert!(plan.status.next_attempt_time.is_none());
}

#[test]
fn pods_owned_by_another_task_are_never_touched() {
    let task = task(json!({}));
    let mut foreign = pod_at(&task, 1, t(0), running());
    foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "someone-else".into();
    let plan = cached(&task, &[foreign], t(5));
    assert!(plan.delete.is_empty());
    assert!(plan.create.is_some(), "it is not ours, so our attempt 1 is still to launch");
}

#[test]
fn a_stray_pod_of_an_ended_attempt_is_cleaned_up() {
    // crash between recording the end of attempt 1 (ImagePullTimeout) and deleting its pod
    let task = task(json!({"startupTimeout": "1m"}));
    let pod = pod_at(&task, 1, t(0), scheduled_waiting("ImagePullBackOff", "Back-off"));
    let ended = fresh(&task, std::slice::from_ref(&pod), t(60));
    let plan = cached(&after(&task, &ended), &[pod], t(61));
    assert_eq!(deleted(&plan), [P1]);
}

// ---- after the end ----

#[test]
fn ttl_after_finished_deletes_the_task_on_time() {
    let task = reported(task(json!({"ttlAfterFinished": "1h"})), Phase::Running, Reason::Running, t(0));
    let pod = pod_at(&task, 1, t(0), exited("Succeeded", 0, ""));
    let done = cached(&task, &[pod], t(10));
    assert_eq!(done.requeue_at, Some(t(3610)));
    let task = after(&task, &done);
    assert!(!cached(&task, &[], t(3000)).delete_task);
    assert_eq!(cached(&task, &[], t(3000)).requeue_at, Some(t(3610)));
    assert!(cached(&task, &[], t(3610)).delete_task);
}

#[test]
fn a_task_being_deleted_is_left_to_garbage_collection() {
    let mut task = reported(task(json!({})), Phase::Running, Reason::Running, t(0));
    task.metadata.deletion_timestamp = Some(Time(t(5)));
    let pod = pod_at(&task, 1, t(0), running());
    let plan = cached(&task, &[pod], t(6));
    assert!(plan.create.is_none() && plan.delete.is_empty() && plan.events.is_empty());
}

#[test]
fn the_attempt_history_is_bounded() {
    let mut task =
        task(json!({"retry": {"limit": 30, "reasons": ["PodFailed"], "backoff": {"initial": "1s", "factor": 1}}}));
    let mut now = 0;
    for attempt in 1..=25 {
        let pod = pod_at(&task, attempt, t(now), exited("Failed", 1, ""));
        let plan = cached(&task, &[pod], t(now + 1));
        task = after(&task, &plan);
        now += 5;
    }
    let s = task.status.unwrap();
    assert_eq!(s.attempts.len(), status::HISTORY_LIMIT);
    assert_eq!((s.attempts[0].attempt, s.attempts.last().unwrap().attempt), (6, 25));
}

// ---- no storms ----

#[test]
fn re_deciding_an_unchanged_world_writes_nothing_and_says_nothing() {
    let base = task(json!({"executionTimeout": "10m", "startupTimeout": "2m"}));
    let worlds = [
        running(),
        scheduled_waiting("ContainerCreating", ""),
        scheduled_waiting("ErrImagePull", "toomanyrequests"),
        scheduled_waiting("CreateContainerConfigError", "secret \"x\" not found"),
        exited("Succeeded", 0, "ok"),
        exited("Failed", 2, "no"),
    ];
    for world in worlds {
        let pod = pod_at(&base, 1, t(0), world.clone());
        let first = cached(&base, std::slice::from_ref(&pod), t(5));
        let task = after(&base, &first);
        let second = cached(&task, std::slice::from_ref(&pod), t(6));
        assert_eq!(second.status, first.status, "{world}");
        assert!(!second.writes_status, "no status write for {world}");
        assert!(second.events.is_empty(), "no repeated events for {world}");
    }
}

// ---- pod-create refusals ----

#[test]
fn create_refusals_table() {
    let task = task(json!({}));
    let invalid = refused(&task, &CreateError::Invalid("spec.containers[0].image: Required value".into()), t(0));
    assert_eq!((invalid.status.phase, reason(&invalid)), (Phase::Failed, Some(Reason::InvalidSpec)));
    assert!(invalid.status.message.as_deref().unwrap().contains("Required value"));
    let denied = refused(&task, &CreateError::Forbidden("violates PodSecurity".into()), t(0));
    assert_eq!((denied.status.phase, reason(&denied)), (Phase::Failed, Some(Reason::Forbidden)));
    let conflict =
        refused(&task, &CreateError::Conflict("pod job-0f0f0-1 exists and belongs to something else".into()), t(0));
    assert_eq!((conflict.status.phase, reason(&conflict)), (Phase::Failed, Some(Reason::PodConflict)));
    let quota = refused(&task, &CreateError::Quota("exceeded quota: pods".into()), t(0));
    assert_eq!((quota.status.phase, reason(&quota)), (Phase::Pending, Some(Reason::QuotaExceeded)));
    assert_eq!(quota.requeue_at, Some(t(15)), "waits, never a hot loop");
    let rbac = refused(&task, &CreateError::OperatorForbidden("cannot create resource".into()), t(0));
    assert_eq!((rbac.status.phase, rbac.status.reason), (Phase::Pending, None), "the task is not at fault");
    assert_eq!((rbac.requeue_at, rbac.events[0].reason.as_str()), (Some(t(15)), "OperatorForbidden"));
    let transient = refused(&task, &CreateError::Transient("etcd timeout".into()), t(0));
    assert_eq!(
        (transient.status.phase, transient.status.reason, transient.requeue_at),
        (Phase::Pending, None, Some(t(15)))
    );
    for refusal in [&quota, &rbac, &transient] {
        assert_eq!(refusal.status.start_time, Some(Time(t(0))), "the first attempt to launch starts the budget");
    }
}

// ---- podFailurePolicy ----

/// One row per action: (rule, the pod's exit code, disrupted?, phase after, reason after, retried attempts
/// uncounted). The attempt's record names the rule.
#[test]
fn pod_failure_policy_table() {
    let rules = json!({"rules": [
        {"action": "Fail", "onExitCodes": {"operator": "In", "values": [2]}},
        {"action": "Retry", "onExitCodes": {"operator": "In", "values": [75]}},
        {"action": "Succeed", "onExitCodes": {"operator": "In", "values": [99]}},
        {"action": "RetryWithoutCounting", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]});
    let evicted = |code: i32| {
        json!({"phase": "Failed", "reason": "Evicted", "message": "preempted",
            "conditions": [{"type": "DisruptionTarget", "status": "True"}],
            "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": code}}}]})
    };
    // retry.limit 1, PodFailed not in retry.reasons: without a rule a non-zero exit is not retried.
    let cases = [
        (exited("Failed", 2, "bad input"), Phase::Failed, Reason::PodFailed, 0, Some("rules[0]")),
        (exited("Failed", 75, "try again"), Phase::Pending, Reason::BackingOff, 0, Some("rules[1]")),
        (exited("Failed", 99, "nothing to do"), Phase::Succeeded, Reason::Completed, 0, Some("rules[2]")),
        (evicted(137), Phase::Pending, Reason::BackingOff, 1, Some("rules[3]")),
        (exited("Failed", 3, "no rule"), Phase::Failed, Reason::PodFailed, 0, None),
    ];
    for (pod_status, phase, reason_after, uncounted, rule) in cases {
        let task = reported(
            task(json!({"retry": {"limit": 1}, "podFailurePolicy": rules})),
            Phase::Running,
            Reason::Running,
            t(0),
        );
        let pod = pod_at(&task, 1, t(0), pod_status.clone());
        let plan = cached(&task, &[pod], t(30));
        let s = &plan.status;
        assert_eq!((s.phase, reason(&plan)), (phase, Some(reason_after)), "{pod_status}: {:?}", s.message);
        assert_eq!(s.uncounted_attempts, uncounted, "{pod_status}");
        let matched = s.attempts[0].matched_rule.as_deref();
        assert_eq!(matched.map(|m| &m[..8]), rule, "{pod_status}: {matched:?}");
        if let Some(rule) = rule {
            assert!(s.message.as_deref().unwrap_or("").contains(rule), "the message names the rule: {:?}", s.message);
        }
    }
}

#[test]
fn a_retry_rule_still_counts_against_the_limit_and_an_uncounted_one_does_not() {
    let rules = json!({"rules": [
        {"action": "Retry", "onExitCodes": {"operator": "In", "values": [75]}},
        {"action": "RetryWithoutCounting", "onExitCodes": {"operator": "In", "values": [76]}},
    ]});
    let after_two = |code: i32, uncounted_before: u32| {
        let mut task = reported(
            task(json!({"retry": {"limit": 1}, "podFailurePolicy": rules})),
            Phase::Running,
            Reason::Running,
            t(0),
        );
        let mut status = task.status.clone().unwrap();
        status.attempt = 2;
        status.pod_name = Some(P2.into());
        status.uncounted_attempts = uncounted_before;
        task = with_status(task, status);
        let pod = pod_at(&task, 2, t(0), exited("Failed", code, ""));
        cached(&task, &[pod], t(30)).status
    };
    // Attempt 2 ends with 75 (Retry): the limit of 1 extra attempt is spent.
    assert_eq!(after_two(75, 0).phase, Phase::Failed);
    // The same after an uncounted attempt 1: only one attempt counted, so one retry is left.
    assert_eq!(after_two(75, 1).phase, Phase::Pending);
    // 76 never counts.
    let s = after_two(76, 0);
    assert_eq!((s.phase, s.uncounted_attempts), (Phase::Pending, 1));
    // ... up to the hard cap.
    assert_eq!(after_two(76, failure_policy::MAX_UNCOUNTED_RETRIES).phase, Phase::Failed);
}

// ---- pods of real clusters ----

fn container(name: &str, state: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "image": "busybox", "imageID": "", "ready": false, "restartCount": 0, "state": state})
}

/// A running pod whose containers are in these states (`main` ended, a sidecar running, ...).
fn containers(states: serde_json::Value) -> serde_json::Value {
    json!({"phase": "Running", "startTime": t(0).to_string(), "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": states})
}

fn ended(code: i32, reason: &str) -> serde_json::Value {
    json!({"terminated": {"exitCode": code, "reason": reason, "message": "last words"}})
}

fn still_running() -> serde_json::Value {
    json!({"running": {"startedAt": t(0).to_string()}})
}

/// A sidecar that admission added never exits: the task ends when its own container has, and the pod goes.
#[test]
fn a_sidecar_does_not_keep_a_finished_task_running() {
    let task = reported(task(json!({"executionTimeout": "10m"})), Phase::Running, Reason::Running, t(0));
    let cases = [(0, Phase::Succeeded, Reason::Completed), (3, Phase::Failed, Reason::PodFailed)];
    for (code, phase, want) in cases {
        let reason_word = if code == 0 { "Completed" } else { "Error" };
        let pod = pod_at(
            &task,
            1,
            t(0),
            containers(json!([container("main", ended(code, reason_word)), container("istio-proxy", still_running())])),
        );
        let plan = cached(&task, std::slice::from_ref(&pod), t(20));
        assert_eq!((plan.status.phase, reason(&plan), plan.status.exit_code), (phase, Some(want), Some(code)));
        assert_eq!(deleted(&plan), [P1], "the pod goes, and the sidecar with it");
        if code != 0 {
            let message = plan.status.message.as_deref().unwrap_or_default();
            assert!(message.contains("container main of pod job-0f0f0-1 exited with 3: last words"), "{message}");
        }
    }
}

/// A template that carries its own long-running helper names the container that decides.
#[test]
fn deciding_containers_name_the_task_s_own_work() {
    let spec = json!({"decidingContainers": ["main"], "template": {"spec": {"containers": [
        {"name": "main", "image": "busybox"}, {"name": "cloudsql-proxy", "image": "proxy"}]}}});
    let task = reported(task(spec), Phase::Running, Reason::Running, t(0));
    let helper_runs = json!([container("main", ended(0, "Completed")), container("cloudsql-proxy", still_running())]);
    let pod = pod_at(&task, 1, t(0), containers(helper_runs));
    assert_eq!(pod.metadata.annotations.as_ref().unwrap()["podtask.dev/deciding-containers"], "main");
    let plan = cached(&task, std::slice::from_ref(&pod), t(20));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Succeeded, Some(Reason::Completed)));
    // Without the field, both containers decide: the helper keeps the task running.
    let mut unnamed = task.clone();
    unnamed.spec.deciding_containers = None;
    let pod = pod_at(
        &unnamed,
        1,
        t(0),
        containers(json!([container("main", ended(0, "Completed")), container("cloudsql-proxy", still_running())])),
    );
    assert_eq!(pod.metadata.annotations.as_ref().unwrap()["podtask.dev/deciding-containers"], "main,cloudsql-proxy");
    let plan = cached(&unnamed, std::slice::from_ref(&pod), t(20));
    assert_eq!(plan.status.phase, Phase::Running);
}

#[test]
fn deciding_containers_must_be_the_template_s() {
    let task = task(json!({"decidingContainers": ["mian"]}));
    let plan = cached(&task, &[], t(0));
    assert!(plan.create.is_none());
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Failed, Some(Reason::InvalidSpec)));
    assert!(plan.status.message.as_deref().unwrap_or_default().contains("\"mian\""), "{:?}", plan.status.message);
}

/// A pod that `cleanup` keeps still has what runs in it stopped, once: its activeDeadlineSeconds is lowered.
#[test]
fn a_kept_pod_has_its_sidecar_stopped_once() {
    let task = reported(task(json!({"cleanup": "Keep"})), Phase::Running, Reason::Running, t(0));
    let mut pod = pod_at(
        &task,
        1,
        t(0),
        containers(json!([container("main", ended(0, "Completed")), container("log-shipper", still_running())])),
    );
    let plan = cached(&task, std::slice::from_ref(&pod), t(30));
    assert_eq!(plan.status.phase, Phase::Succeeded);
    assert!(plan.delete.is_empty(), "Keep keeps the pod");
    assert_eq!(plan.stop.len(), 1);
    assert_eq!((plan.stop[0].name.as_str(), plan.stop[0].active_deadline_seconds), (P1, 31));
    // Once lowered (the watch shows it), nothing more is asked; nor once the kubelet has stopped the pod.
    let done = after(&task, &plan);
    pod.spec.as_mut().unwrap().active_deadline_seconds = Some(31);
    assert!(cached(&done, std::slice::from_ref(&pod), t(31)).stop.is_empty());
    pod.status.as_mut().unwrap().phase = Some("Failed".into());
    pod.spec.as_mut().unwrap().active_deadline_seconds = None;
    assert!(cached(&done, std::slice::from_ref(&pod), t(40)).stop.is_empty());
}

#[test]
fn an_out_of_memory_kill_is_named_and_rules_can_act_on_it() {
    let oom = || json!({"phase": "Failed", "containerStatuses": [container("main", ended(137, "OOMKilled"))]});
    let base = reported(task(json!({})), Phase::Running, Reason::Running, t(0));
    let pod = pod_at(&base, 1, t(0), oom());
    let plan = cached(&base, std::slice::from_ref(&pod), t(20));
    assert_eq!(
        (plan.status.phase, reason(&plan), plan.status.exit_code),
        (Phase::Failed, Some(Reason::OOMKilled), Some(137))
    );
    assert_eq!(plan.status.attempts[0].reason, Reason::OOMKilled);
    let message = plan.status.message.as_deref().unwrap_or_default();
    assert!(
        message.contains("container main of pod job-0f0f0-1 ran out of memory (OOMKilled, exit code 137)"),
        "{message}"
    );
    assert_eq!((plan.events[0].reason.as_str(), plan.events[0].warning), ("OOMKilled", true));
    // Not retried by default (the same limit would kill it again), retried when asked.
    let retried = reported(task(json!({"retry": {"reasons": ["OOMKilled"]}})), Phase::Running, Reason::Running, t(0));
    let plan = cached(&retried, &[pod_at(&retried, 1, t(0), oom())], t(20));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Pending, Some(Reason::BackingOff)));
    // A rule on the termination reason wins over retry.
    let ruled = reported(
        task(json!({"retry": {"reasons": ["OOMKilled"]}, "podFailurePolicy": {"rules": [
            {"action": "Fail", "onTerminationReasons": {"values": ["OOMKilled"]}}]}})),
        Phase::Running,
        Reason::Running,
        t(0),
    );
    let plan = cached(&ruled, &[pod_at(&ruled, 1, t(0), oom())], t(20));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Failed, Some(Reason::OOMKilled)));
    assert_eq!(
        plan.status.attempts[0].matched_rule.as_deref(),
        Some("rules[0]: container main terminated with OOMKilled -> Fail")
    );
}

/// The node lifecycle controller marks the pods of a node that stopped answering not ready, without a reason of
/// the kubelet's: the task says what is known.
#[test]
fn a_node_that_stops_answering_is_reported() {
    let task = reported(task(json!({"executionTimeout": "10m"})), Phase::Running, Reason::Running, t(0));
    let on_node = |ready: serde_json::Value| {
        let mut status = running();
        status["conditions"].as_array_mut().unwrap().push(ready);
        let mut pod = pod_at(&task, 1, t(0), status);
        pod.spec.as_mut().unwrap().node_name = Some("node-7".into());
        pod
    };
    let lost = on_node(json!({"type": "Ready", "status": "False"}));
    let plan = cached(&task, std::slice::from_ref(&lost), t(100));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Running, Some(Reason::NodeUnreachable)));
    let message = plan.status.message.as_deref().unwrap_or_default();
    assert!(message.contains("node node-7 is not answering") && message.contains("may still be running"), "{message}");
    assert!(plan.events[0].warning);
    assert_eq!(plan.requeue_at, Some(t(568)), "the deadline still holds");
    // Not ready for a reason of the kubelet's (a readiness probe) is not a lost node.
    let probing = on_node(json!({"type": "Ready", "status": "False", "reason": "ContainersNotReady"}));
    let plan = cached(&task, std::slice::from_ref(&probing), t(100));
    assert_eq!(reason(&plan), Some(Reason::Running));
    // The node answers again: back to Running.
    let lost_task = after(&task, &cached(&task, std::slice::from_ref(&lost), t(100)));
    let plan = cached(&lost_task, &[on_node(json!({"type": "Ready", "status": "True"}))], t(120));
    assert_eq!(reason(&plan), Some(Reason::Running));
}

/// A deadline stop is "requested" while the pod exists, and done once it is gone: one more status write, once.
#[test]
fn a_deadline_stop_is_requested_until_the_pod_is_gone() {
    let task = reported(task(json!({"executionTimeout": "60s"})), Phase::Running, Reason::Running, t(0));
    let mut pod = pod_at(&task, 1, t(0), running());
    pod.spec.as_mut().unwrap().node_name = Some("node-7".into());
    pod.status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()
        .push(serde_json::from_value(json!({"type": "Ready", "status": "False"})).unwrap());
    let stop = fresh(&task, std::slice::from_ref(&pod), t(58));
    assert_eq!((stop.status.phase, reason(&stop)), (Phase::Failed, Some(Reason::DeadlineExceeded)));
    let message = stop.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("stop of pod job-0f0f0-1 requested") && message.contains("node node-7 is not answering"),
        "{message}"
    );
    let record = &stop.status.attempts[0];
    assert_eq!((record.stop_requested_time.clone(), record.pod_gone_time.clone()), (Some(Time(t(58))), None));
    let stopping_task = after(&task, &stop);
    // Still there, being deleted (its node frozen): nothing new to say.
    pod.metadata.deletion_timestamp = Some(Time(t(60)));
    let waiting = cached(&stopping_task, std::slice::from_ref(&pod), t(90));
    assert!(!waiting.writes_status && waiting.events.is_empty());
    // Gone: the stop is done.
    let gone = cached(&stopping_task, &[], t(130));
    assert!(gone.writes_status);
    assert_eq!(gone.status.attempts[0].pod_gone_time, Some(Time(t(130))));
    let done = gone.status.message.as_deref().unwrap_or_default();
    assert!(done.ends_with("grace period; pod job-0f0f0-1 is gone"), "{done}");
    assert!(!done.contains("may still be running"), "no longer: {done}");
    assert!(!cached(&after(&stopping_task, &gone), &[], t(140)).writes_status, "once");
    // A pod that was already gone or finished at the deadline needs no confirmation.
    let finished = pod_at(&task, 1, t(0), exited("Failed", 137, ""));
    let mut finished_status = finished.status.clone().unwrap();
    finished_status.reason = Some("DeadlineExceeded".into());
    let mut finished = finished;
    finished.status = Some(finished_status);
    let plan = cached(&task, &[finished], t(61));
    assert_eq!(reason(&plan), Some(Reason::DeadlineExceeded));
    assert_eq!(plan.status.attempts[0].stop_requested_time, None);
}

/// One attempt's pod at a time: the next attempt waits while an earlier pod may still run.
#[test]
fn no_next_attempt_while_an_earlier_pod_may_still_run() {
    let task = task(json!({"startupTimeout": "60s"}));
    let pod1 = pod_at(&task, 1, t(0), scheduled_waiting("ImagePullBackOff", "Back-off pulling"));
    let timed_out = after(&task, &fresh(&task, std::slice::from_ref(&pod1), t(61)));
    assert_eq!(timed_out.status.as_ref().unwrap().phase, Phase::Pending);
    let next = timed_out.status.as_ref().unwrap().next_attempt_time.clone().unwrap().0;
    let mut stopping = pod1.clone();
    stopping.metadata.deletion_timestamp = Some(Time(t(61)));
    let held = cached(&timed_out, std::slice::from_ref(&stopping), next);
    assert!(held.create.is_none(), "attempt 2 waits for pod 1");
    assert!(
        held.status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("waits until pod job-0f0f0-1 of attempt 1 has stopped")
    );
    let launched = cached(&after(&timed_out, &held), &[], next);
    assert!(launched.create.is_some(), "pod 1 gone: attempt 2 starts");
}

// ---- when the budget starts ----

/// A task whose pod cannot be created (a full ResourceQuota) still runs out of time: the budget starts at the
/// first create request, refused or not.
#[test]
fn a_task_whose_pod_is_refused_still_runs_out_of_time() {
    let quota = CreateError::Quota("exceeded quota: one-pod, requested: pods=1, used: pods=1, limited: pods=1".into());
    for spec in [json!({"executionTimeout": "20s"}), json!({"deadline": t(20).to_string()})] {
        let task = task(spec.clone());
        let first = refused(&task, &quota, t(0));
        assert_eq!((first.status.phase, reason(&first)), (Phase::Pending, Some(Reason::QuotaExceeded)), "{spec}");
        assert_eq!(first.status.start_time, Some(Time(t(0))));
        assert_eq!(first.status.deadline, Some(Time(t(20))), "{spec}");
        assert_eq!(first.requeue_at, Some(t(15)));
        let waiting = after(&task, &first);
        // A later refusal (a restart, say) never moves the start.
        let again = refused(&waiting, &quota, t(15));
        assert_eq!((again.status.start_time.clone(), again.requeue_at), (Some(Time(t(0))), Some(t(20))));
        // Out of time: DeadlineExceeded, saying what kept it from starting, without trying again.
        let late = cached(&waiting, &[], t(20));
        assert!(late.create.is_none());
        assert_eq!((late.status.phase, reason(&late)), (Phase::Failed, Some(Reason::DeadlineExceeded)));
        let message = late.status.message.as_deref().unwrap_or_default();
        assert!(
            message.contains("passed before the first attempt could start")
                && message.contains("exceeded quota: one-pod"),
            "{message}"
        );
    }
}

/// Quota freed in time: the task runs within its original budget.
#[test]
fn a_refused_task_that_gets_its_pod_keeps_its_original_budget() {
    let task = task(json!({"executionTimeout": "60s"}));
    let quota = CreateError::Quota("exceeded quota".into());
    let waiting = after(&task, &refused(&task, &quota, t(0)));
    let launch = cached(&waiting, &[], t(15));
    let pod = launch.create.expect("the quota has room now");
    assert_eq!(pod.metadata.annotations.as_ref().unwrap()["podtask.dev/start-time"], t(0).to_string());
    assert_eq!(launch.status.deadline, Some(Time(t(60))));
    assert_eq!(
        pod.spec.unwrap().active_deadline_seconds,
        Some(39),
        "60 - 15 - 4s grace (a tenth of what is left) - 2s margin"
    );
}

/// Refused creates are paced by how long the task has waited: 15 s at first, up to 5 minutes.
#[test]
fn refused_creates_are_paced_by_the_time_waited() {
    let task = task(json!({}));
    let quota = CreateError::Quota("exceeded quota".into());
    let waiting = after(&task, &refused(&task, &quota, t(0)));
    for (now, next) in [(15, 30), (100, 150), (1000, 1300), (7200, 7500)] {
        assert_eq!(refused(&waiting, &quota, t(now)).requeue_at, Some(t(next)), "at T+{now}");
    }
}

// ---- a status edited by someone else ----

/// A task with a 10-minute budget whose attempt 1 launched at T+0 (deadline T+600), its pod in `pod_status`, and
/// its status as podtask wrote it, then `edit`ed by someone else.
fn edited(pod_status: serde_json::Value, edit: impl FnOnce(&mut PodTaskStatus)) -> (PodTask, Pod) {
    let spec = task(json!({"executionTimeout": "10m"}));
    let mut pod = pod::build(&spec, 1, t(0), Some(t(600)), t(0));
    pod.metadata.uid = Some("pod-uid-1".into());
    pod.metadata.creation_timestamp = Some(Time(t(0)));
    pod.status = Some(serde_json::from_value(pod_status).expect("a pod status"));
    let mut task = reported(spec, Phase::Running, Reason::Running, t(0));
    if let Some(s) = task.status.as_mut() {
        s.deadline = Some(Time(t(600)));
        edit(s);
    }
    (task, pod)
}

/// podtask's record of attempt 1 (launched at T+0) failing with `reason` at `end`.
fn attempt_1_ended(reason: Reason, end: Timestamp) -> AttemptRecord {
    AttemptRecord {
        attempt: 1,
        pod_name: P1.into(),
        start_time: Some(Time(t(0))),
        end_time: Some(Time(end)),
        outcome: Outcome::Failed,
        reason,
        message: None,
        exit_code: None,
        matched_rule: None,
        stop_requested_time: None,
        pod_gone_time: None,
    }
}

fn corrections(plan: &Decided) -> Vec<&str> {
    plan.events.iter().filter(|e| e.warning && e.reason == trust::CORRECTED).map(|e| e.note.as_str()).collect()
}

#[test]
fn a_status_edit_of_a_fact_the_pods_record_is_corrected_from_the_pods() {
    type Edit = fn(&mut PodTaskStatus);
    let cases: [(&str, Edit, &str); 4] = [
        (
            "deadline later",
            |s| s.deadline = Some(Time(ts("2999-01-01T00:00:00Z"))),
            "status.deadline was 2999-01-01T00:00:00Z; corrected to 2026-01-01T10:10:00Z, from the podtask.dev/deadline annotation of pod job-0f0f0-1",
        ),
        (
            "deadline earlier",
            |s| s.deadline = Some(Time(t(60))),
            "status.deadline was 2026-01-01T10:01:00Z; corrected to 2026-01-01T10:10:00Z",
        ),
        (
            "start later",
            |s| s.start_time = Some(Time(t(3000))),
            "status.startTime was 2026-01-01T10:50:00Z; corrected to 2026-01-01T10:00:00Z, from the podtask.dev/start-time annotation of pod job-0f0f0-1",
        ),
        ("deadline removed", |s| s.deadline = None, ""),
    ];
    for (what, edit, note) in cases {
        let (task, pod) = edited(running_since(t(0)), edit);
        let plan = cached(&task, std::slice::from_ref(&pod), t(100));
        assert_eq!(plan.status.deadline, Some(Time(t(600))), "{what}");
        assert_eq!(plan.status.start_time, Some(Time(t(0))), "{what}");
        assert_eq!(
            plan.requeue_at,
            Some(t(568)),
            "{what}: the stop is due at the real deadline, less the grace and the margin"
        );
        let notes = corrections(&plan);
        assert_eq!(notes.len(), usize::from(!note.is_empty()), "{what}: {notes:?}");
        assert!(notes.iter().all(|n| n.starts_with(note)), "{what}: {notes:?}");
        assert!(plan.delete.is_empty(), "{what}: the pod runs on");
    }
}

#[test]
fn a_deadline_moved_away_still_stops_the_pod_at_the_real_one() {
    let (task, pod) = edited(running_since(t(0)), |s| s.deadline = Some(Time(ts("2999-01-01T00:00:00Z"))));
    let plan = fresh(&task, std::slice::from_ref(&pod), t(568));
    assert_eq!(reason(&plan), Some(Reason::DeadlineExceeded));
    assert_eq!(plan.status.deadline, Some(Time(t(600))), "reported with the real deadline");
    assert!(
        plan.status.message.as_deref().is_some_and(|m| m.contains("2026-01-01T10:10:00Z")),
        "{:?}",
        plan.status.message
    );
    assert_eq!(deleted(&plan), [P1]);
}

#[test]
fn a_terminal_phase_podtask_did_not_record_is_not_believed_while_its_pod_is_there() {
    for phase in [Phase::Succeeded, Phase::Failed] {
        let (task, pod) = edited(running_since(t(0)), |s| {
            s.phase = phase;
            s.completion_time = Some(Time(t(50)));
        });
        let plan = cached(&task, std::slice::from_ref(&pod), t(100));
        assert_eq!(plan.status.phase, Phase::Running, "{phase:?}: the task follows its running pod");
        assert_eq!(plan.status.completion_time, None, "{phase:?}");
        assert!(plan.delete.is_empty(), "{phase:?}: the pod runs on");
        assert_eq!(plan.requeue_at, Some(t(568)), "{phase:?}: and is stopped at the deadline");
        let notes = corrections(&plan);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains(&format!("status.phase was {phase:?}")) && notes[0].contains("job-0f0f0-1"),
            "{notes:?}"
        );
        assert!(has_condition(&plan, cond::RECONCILING), "{phase:?}: conditions follow");
    }
}

#[test]
fn the_outcome_comes_from_the_pod_when_the_terminal_phase_was_not_podtasks() {
    // Succeeded written by someone while the pod ran; the pod then failed: the task fails, the pod is deleted.
    let (task, pod) = edited(exited("Failed", 3, "boom"), |s| s.phase = Phase::Succeeded);
    let plan = cached(&task, std::slice::from_ref(&pod), t(100));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Failed, Some(Reason::PodFailed)));
    assert_eq!(plan.status.exit_code, Some(3));
    assert_eq!(deleted(&plan), [P1]);
    // Failed written by someone while the pod ran; the pod then succeeded.
    let (task, pod) = edited(exited("Succeeded", 0, ""), |s| s.phase = Phase::Failed);
    let plan = cached(&task, std::slice::from_ref(&pod), t(100));
    assert_eq!((plan.status.phase, reason(&plan)), (Phase::Succeeded, Some(Reason::Completed)));
    assert_eq!(deleted(&plan), [P1]);
}

#[test]
fn a_terminal_phase_podtask_recorded_is_believed() {
    let (task, pod) = edited(running_since(t(0)), |s| {
        s.phase = Phase::Failed;
        s.reason = Some(Reason::DeadlineExceeded);
        s.attempts = vec![attempt_1_ended(Reason::DeadlineExceeded, t(570))];
    });
    // Its pod is still there (being stopped, say): the task stays Failed, and the pod goes.
    let plan = cached(&task, std::slice::from_ref(&pod), t(580));
    assert_eq!(plan.status.phase, Phase::Failed);
    assert!(corrections(&plan).is_empty());
    assert_eq!(deleted(&plan), [P1]);
}

#[test]
fn without_a_pod_the_status_is_checked_against_the_spec_and_the_clock() {
    // Between attempts (attempt 1 recorded, its pod deleted), backing off until T+200.
    let between = |edit: fn(&mut PodTaskStatus)| {
        let (task, _) = edited(running(), |s| {
            s.phase = Phase::Pending;
            s.reason = Some(Reason::BackingOff);
            s.next_attempt_time = Some(Time(t(200)));
            s.observed_generation = Some(1);
            s.attempts = vec![attempt_1_ended(Reason::Evicted, t(100))];
            edit(s);
        });
        cached(&task, &[], t(150))
    };
    let later = between(|s| s.deadline = Some(Time(ts("2999-01-01T00:00:00Z"))));
    assert_eq!(later.status.deadline, Some(Time(t(600))), "never later than the spec allows from the first launch");
    assert_eq!(corrections(&later).len(), 1);
    let earlier = between(|s| s.deadline = Some(Time(t(300))));
    assert_eq!(earlier.status.deadline, Some(Time(t(300))), "an earlier deadline only ends the task sooner");
    assert!(corrections(&earlier).is_empty());
    let launched_later = between(|s| s.start_time = Some(Time(t(120))));
    assert_eq!(launched_later.status.deadline, Some(Time(t(600))), "a later start never moves the deadline");
    let future = between(|s| s.start_time = Some(Time(ts("2999-01-01T00:00:00Z"))));
    assert_eq!(future.status.start_time, Some(Time(t(150))), "a first launch cannot be later than now");
    assert_eq!(future.status.deadline, Some(Time(t(600))));
    let untouched = between(|_| {});
    assert!(!untouched.writes_status && corrections(&untouched).is_empty(), "podtask's own status is left alone");
}

#[test]
fn before_the_first_launch_a_status_deadline_is_not_believed() {
    let task = with_status(
        task(json!({"executionTimeout": "10m"})),
        PodTaskStatus { deadline: Some(Time(ts("2999-01-01T00:00:00Z"))), ..Default::default() },
    );
    let plan = fresh(&task, &[], t(100));
    let pod = plan.create.as_ref().expect("the first attempt launches");
    assert_eq!(pod.metadata.annotations.as_ref().unwrap()[naming::ANNOTATION_DEADLINE], t(700).to_string());
    assert_eq!(plan.status.deadline, Some(Time(t(700))), "the budget from this launch");
    assert_eq!(corrections(&plan).len(), 1);
}

#[test]
fn an_attempt_number_beyond_any_podtask_makes_goes_back_to_what_its_pods_show() {
    // Only an older, looser schema lets such a value through; the cost of deciding never depends on it.
    let (task, pod) = edited(running_since(t(0)), |s| s.attempt = i32::MAX as u32);
    let before = naming::NAMES_BUILT.with(std::cell::Cell::get);
    let plan = cached(&task, std::slice::from_ref(&pod), t(100));
    assert!(naming::NAMES_BUILT.with(std::cell::Cell::get) - before <= 3, "a few pod names, not one per attempt");
    assert_eq!(plan.status.attempt, 1);
    assert_eq!(plan.status.phase, Phase::Running);
    assert!(plan.delete.is_empty(), "the running pod is the current attempt's");
    assert_eq!(corrections(&plan).len(), 1);
}

#[test]
fn an_attempt_number_the_pods_and_history_do_not_support_goes_back() {
    // Within the schema's bounds, but never written by podtask: the running pod is attempt 1's, and stays.
    let (task, pod) = edited(running_since(t(0)), |s| s.attempt = 202);
    let plan = cached(&task, std::slice::from_ref(&pod), t(100));
    assert_eq!((plan.status.attempt, plan.status.phase), (1, Phase::Running));
    assert!(plan.delete.is_empty());
    assert!(corrections(&plan)[0].starts_with("status.attempt was 202"), "{:?}", corrections(&plan));
    // One past the last recorded attempt, its pod gone: podtask's own (its pod was deleted by someone else).
    let (task, _) = edited(running(), |s| s.attempt = 1);
    let plan = fresh(&task, &[], t(100));
    assert!(corrections(&plan).is_empty());
    assert_eq!(plan.status.attempts.first().map(|a| a.reason), Some(Reason::PodLost));
}

#[test]
fn a_pod_that_podtask_did_not_name_is_not_an_attempt() {
    let task = reported(task(json!({})), Phase::Running, Reason::Running, t(0));
    let mut impostor = pod_at(&task, 1, t(0), running());
    impostor.metadata.name = Some("someone-elses".into());
    if let Some(labels) = impostor.metadata.labels.as_mut() {
        labels.insert(naming::LABEL_ATTEMPT.into(), "7".into());
    }
    let plan = fresh(&task, &[impostor], t(10));
    assert_eq!(plan.status.attempt, 1, "attempt 7 is not believed from a pod podtask did not name");
    let ended: Vec<_> = plan.status.attempts.iter().map(|a| (a.attempt, a.reason)).collect();
    assert_eq!(ended, [(1, Reason::PodLost)], "attempt 1's pod is gone");
}
