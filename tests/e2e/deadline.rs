//! The absolute deadline: enforced at the exact time, backed by the pod's activeDeadlineSeconds, and never
//! extended by an operator restart.

use std::time::Duration;

use podtask::{crd::Phase, jiff::Timestamp};
use serde_json::json;

use crate::harness::*;

const T: Duration = Duration::from_secs(30);

fn deadline_of(t: &podtask::crd::PodTask) -> Option<Timestamp> {
    status(t).deadline.map(|d| d.0)
}

/// A pod that runs forever under `executionTimeout: 10s`: it carries activeDeadlineSeconds, and at the deadline the
/// task fails with DeadlineExceeded and the pod is deleted. Prints the enforcement lag. (10 s: Running is reported
/// once the pod has run for the 2 s settle time, and the stop comes 3 s before the deadline; with a shorter budget
/// a pod that takes a second or two to start is stopped before it is ever reported Running.)
#[tokio::test]
async fn execution_timeout_deletes_the_pod_at_the_deadline() {
    let env = Env::start("execution_timeout_deletes_the_pod_at_the_deadline").await;
    env.create("slow", json!({"template": template("run-forever", &[]), "executionTimeout": "10s"})).await;
    let running = env.wait_task("slow", "Running", T, |t| phase(t) == Phase::Running).await;
    let deadline = deadline_of(&running).expect("status.deadline while running");
    let start = status(&running).start_time.expect("status.startTime").0;
    // startTime is shown rounded down, the deadline rounded up: the budget is never shorter than asked.
    let budget = deadline.duration_since(start).as_secs();
    assert!((10..=11).contains(&budget), "deadline = first launch + executionTimeout, got {budget}s");
    // kstatus (Flux, kpt, Argo CD): in progress while running, with observedGeneration current.
    assert_eq!(condition(&running, "Reconciling").as_deref(), Some("True"), "{}", yaml(&running));
    assert_eq!(status(&running).observed_generation, running.metadata.generation);

    let pod = env.pods_of("slow").await.pop().expect("the running pod");
    let ads = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds).expect("activeDeadlineSeconds (backstop)");
    let grace = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).expect("a grace period");
    assert_eq!(grace, 1, "a tenth of the 10s budget, at least 1s");
    assert!((1..=10).contains(&ads), "activeDeadlineSeconds {ads} should be the remaining budget minus the grace");
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("podtask.dev/deadline").map(String::as_str), Some(deadline.to_string().as_str()));

    let task = env.wait_finished("slow", Duration::from_secs(20)).await;
    assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Failed, "DeadlineExceeded"), "{}", yaml(&task));
    assert_eq!(deadline_of(&task), Some(deadline), "the deadline never moves");
    assert_eq!(history(&task), [(1, "DeadlineExceeded".to_owned())]);
    assert_eq!(condition(&task, "Stalled").as_deref(), Some("True"));
    assert_eq!(condition(&task, "Reconciling"), None);
    env.wait_no_pods("slow", Duration::from_secs(10)).await;

    let seen = env.pods_seen("slow");
    assert_eq!(seen.len(), 1, "{seen:?}");
    let p = &seen[0];
    let delete_lag = ms_between(deadline, p.deletion_seen.expect("pod deletion seen"));
    let gone_lag = ms_between(deadline, p.gone.expect("pod gone"));
    // Who stopped the pod first: podtask's timer, or the kubelet's activeDeadlineSeconds (kwok fires it in the same
    // instant when the pod's startTime truncates to the same second); podtask then deletes the failed pod at once.
    let attempt_message = status(&task).attempts[0].message.clone().unwrap_or_default();
    let by = if attempt_message.contains("the kubelet stopped") { "kubelet" } else { "podtask" };
    println!(
        "MEASURE deadline_lag_ms={delete_lag} deadline_pod_gone_ms={gone_lag} stopped_by={by} (kwok removes a running pod 500ms after its deletion)"
    );
    // Stopping starts the pod's grace period (1s) and podtask's margin (2s) before the deadline, so that the pod is
    // gone by then.
    let grace_ms = (grace + podtask::engine::deadline::STOP_MARGIN_SECONDS) * 1000;
    assert!(delete_lag >= -grace_ms, "the pod was deleted {delete_lag}ms before the deadline, more than its grace");
    assert!(delete_lag < 3000 - grace_ms, "the pod was deleted {delete_lag}ms after its stop was due");
    let completion = status(&task).completion_time.expect("completionTime").0;
    assert!(ms_between(deadline, completion) >= -grace_ms - 1000, "completionTime {completion} long before {deadline}");
}

/// The operator is SIGKILLed while the pod runs and comes back after the deadline passed: status.deadline is the
/// same value throughout, and the restarted operator ends the task (DeadlineExceeded) and deletes the pod at once
/// instead of granting a fresh budget. The pod's activeDeadlineSeconds (kwok simulates the kubelet's enforcement)
/// may already have stopped it meanwhile; both paths end in DeadlineExceeded.
#[tokio::test]
async fn restarted_operator_enforces_the_original_deadline() {
    let mut env = Env::start("restarted_operator_enforces_the_original_deadline").await;
    env.create("budget", json!({"template": template("run-forever", &[]), "executionTimeout": "6s"})).await;
    // A pod no node takes: no kubelet ever sees it, so activeDeadlineSeconds cannot stop it; only podtask can.
    let mut nowhere = template("succeed", &[]);
    nowhere["spec"]["nodeSelector"] = json!({"podtask.dev/e2e": "nowhere"});
    env.create("unplaced", json!({"template": nowhere, "executionTimeout": "6s", "startupTimeout": "1m"})).await;
    let running = env.wait_task("budget", "Running", T, |t| phase(t) == Phase::Running).await;
    let waiting = env.wait_task("unplaced", "Unschedulable", T, |t| reason(t) == "Unschedulable").await;
    let deadlines = [
        ("budget", deadline_of(&running).expect("status.deadline")),
        ("unplaced", deadline_of(&waiting).expect("status.deadline")),
    ];
    env.operator.kill();

    // Wait (operator down) until both deadlines are well past, watching that nothing moves them.
    let latest = deadlines.iter().map(|(_, d)| *d).max().expect("two deadlines");
    let past = podtask::engine::deadline::after(latest, Duration::from_secs(2));
    let api = env.tasks();
    wait_for("the deadlines to pass while the operator is down", T, async || {
        for (name, deadline) in deadlines {
            let t = api.get(name).await.ok()?;
            assert_eq!(deadline_of(&t), Some(deadline), "status.deadline of {name} moved while the operator was down");
        }
        (now() > past).then_some(())
    })
    .await;
    let pod_before = env.pods_of("budget").await;
    let backstop = pod_before.iter().any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"));
    let stuck = env.pods_of("unplaced").await;
    assert!(
        stuck.len() == 1 && stuck[0].metadata.deletion_timestamp.is_none(),
        "the unscheduled pod outlives its deadline while podtask is down"
    );

    let restarted = now();
    env.operator.restart().await;
    for (name, deadline) in deadlines {
        let task = env.wait_finished(name, Duration::from_secs(15)).await;
        assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Failed, "DeadlineExceeded"), "{}", yaml(&task));
        assert_eq!(deadline_of(&task), Some(deadline), "the deadline of {name} never moves");
        assert_eq!(status(&task).attempt, 1, "no further attempt after the deadline");
        env.wait_no_pods(name, Duration::from_secs(10)).await;
    }

    let enforced = |name: &str| {
        let seen = env.pods_seen(name);
        assert_eq!(seen.len(), 1, "{seen:?}");
        ms_between(restarted, seen[0].deletion_seen.expect("pod deletion seen"))
    };
    let (running_ms, unscheduled_ms) = (enforced("budget"), enforced("unplaced"));
    println!(
        "MEASURE restart_enforce_ms={running_ms} restart_enforce_unscheduled_ms={unscheduled_ms} (from spawning the restarted operator to the pod's deletion; kubelet backstop had stopped the running pod first: {backstop})"
    );
    assert!(running_ms < 10_000, "the restarted operator took {running_ms}ms to delete the pod");
    assert!(unscheduled_ms < 10_000, "the restarted operator took {unscheduled_ms}ms to delete the pod");
}

/// A retry whose start would fall after the deadline is not started: the task fails at once with the attempt's
/// reason and says why.
#[tokio::test]
async fn retry_after_the_deadline_is_not_started() {
    let env = Env::start("retry_after_the_deadline_is_not_started").await;
    env.create(
        "late",
        json!({
            "template": template("fail", &[("run-for", "1s")]),
            "executionTimeout": "8s",
            "retry": {"limit": 3, "reasons": ["PodFailed"], "backoff": {"initial": "30s"}}
        }),
    )
    .await;
    let task = env.wait_finished("late", T).await;
    assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Failed, "PodFailed"), "{}", yaml(&task));
    assert_eq!(history(&task), [(1, "PodFailed".to_owned())]);
    assert!(message(&task).contains("not retried: attempt 2 would start at"), "{}", message(&task));
    assert!(message(&task).contains("after the deadline"), "{}", message(&task));
    let done = status(&task).completion_time.expect("completionTime").0;
    assert!(done < deadline_of(&task).expect("deadline"), "failed before the deadline rather than waiting for it");
    env.wait_no_pods("late", Duration::from_secs(10)).await;
    assert_eq!(env.pods_seen("late").len(), 1);
}
